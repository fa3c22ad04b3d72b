"""Time to summarise a long trip: 3 days at one fix every 10 s (25,920 points).

Run: .venv/bin/python benchmarks/trip_summary.py [--days 3] [--vertices 500 5000 20000]

The truck follows a planned route of ~1,500 km (driving at 60 km/h with a night halt of 8 h
each day and a 20 km detour), GPS noise of ~10 m. Two figures:

1. `summarise` alone (the domain: filter, distance, route share and deviation, stops, fuel),
   for planned routes of several vertex counts;
2. the whole `SummaryService.compute` on a real data folder (the points read back from SQLite
   through the trip history, the stops from the stop detector, the route from the object
   store), as on trip_completed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import numpy as np

from trucktrack import bootstrap
from trucktrack.domain.fuel import CLASS_DEFAULTS, VehicleClass
from trucktrack.domain.model import GpsPoint, Principal, Role
from trucktrack.domain.pod import PodType
from trucktrack.domain.stops import Stop
from trucktrack.domain.summary import TrackColumns, summarise
from trucktrack.domain.trips import ORDER, Milestone, Place
from trucktrack.services.pod import Capture
from trucktrack.services.trips import MilestoneRequest, TripDraft
from trucktrack.settings import Settings

T0 = 1_795_000_000_000
STEP_S = 10
PROOF_OF_DELIVERY = (
    Capture(PodType.PHOTO, b"\xff\xd8\xff\xe0" + bytes(2000), file_name="door.jpg"),
    Capture(PodType.SIGNATURE, b'{"strokes": [[[0, 0], [10, 5]]]}', signer_name="Asha"),
)
"""What the fleet's default POD policy asks before trip_completed: a photo and a signature."""


def route(vertices: int) -> np.ndarray:
    """(lng, lat): from near Pune north-east for ~1,500 km, gently winding."""
    t = np.linspace(0, 1, vertices)
    return np.c_[73.9 + 9.0 * t + 0.08 * np.sin(37 * t), 18.5 + 9.0 * t + 0.08 * np.cos(23 * t)]


def drive(days: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ts, (lng, lat) and speed of every fix: 16 h driving and 8 h halted, each day."""
    n = days * 86_400 // STEP_S
    ts = T0 + np.arange(n, dtype=np.int64) * STEP_S * 1000
    hour = (np.arange(n) * STEP_S // 3600) % 24
    moving = hour < 16
    along = np.cumsum(moving) / moving.sum()  # share of the route done at each fix
    line = route(20_000)
    idx = along * (len(line) - 1)
    lo = np.minimum(idx.astype(int), len(line) - 2)
    frac = (idx - lo)[:, None]
    pos = line[lo] * (1 - frac) + line[lo + 1] * frac + rng.normal(0, 1e-4, (n, 2))
    detour = (np.arange(n) > n // 3) & (np.arange(n) < n // 3 + 240)  # 40 min, ~20 km off
    pos[detour, 1] += 0.18 * np.sin(np.linspace(0, np.pi, detour.sum()))
    return ts, pos, np.where(moving, 60.0, 0.0)


def stops_of(ts: np.ndarray, speed: np.ndarray, pos: np.ndarray) -> list[Stop]:
    halted = speed == 0
    edges = np.flatnonzero(np.diff(halted.astype(int))) + 1
    starts = [0, *edges] if halted[0] else list(edges)
    found = []
    for a in starts:
        if not halted[a]:
            continue
        b = a + int(np.argmax(~halted[a:])) if (~halted[a:]).any() else len(ts) - 1
        found.append(Stop("V", "T", int(ts[a]), int(ts[b]), float(pos[a, 1]),
                          float(pos[a, 0]), (ts[b] - ts[a]) / 1000, False))  # fmt: skip
    return found


def bench_domain(days: int, vertex_counts: list[int], repeat: int) -> None:
    from trucktrack.domain.trips import MilestoneRecord, RouteRef, Trip, TripStatus

    rng = np.random.default_rng(1)
    ts, pos, speed = drive(days, rng)
    n = len(ts)
    track = TrackColumns(ts, pos[:, 1], pos[:, 0], speed, np.full(n, 10.0), np.full(n, np.nan))
    stops = stops_of(ts, speed, pos)
    marks = np.linspace(ts[0], ts[-1], len(ORDER)).astype(np.int64)
    here = Place(float(pos[0, 1]), float(pos[0, 0]))
    print(f"{n} points, {len(stops)} stops")
    print(f"| route vertices | summarise ms (median of {repeat}) | min ms |")
    print("|---:|---:|---:|")
    for vertices in vertex_counts:
        line = route(vertices)
        trip = Trip(
            "f", "T", "V", here, Place(float(pos[-1, 1]), float(pos[-1, 0])),
            status=TripStatus.COMPLETED,
            milestones=tuple(MilestoneRecord(m, int(t), int(t), "b") for m, t in
                             zip(ORDER, marks, strict=True)),
            planned_route=RouteRef("k", "given", 1.5e6, vertices),
            started_at=int(ts[0]), ended_at=int(ts[-1]),
        )  # fmt: skip
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            summarise(trip, track, planned_route=line, stops=stops, speeding=[],
                      fuel=CLASS_DEFAULTS[VehicleClass.HCV], fuel_source="default",
                      computed_at=0)  # fmt: skip
            times.append((time.perf_counter() - started) * 1000)
        print(f"| {vertices:,} | {statistics.median(times):.0f} | {min(times):.0f} |")


def bench_service(days: int, vertices: int, repeat: int) -> None:
    rng = np.random.default_rng(2)
    ts, pos, speed = drive(days, rng)
    with tempfile.TemporaryDirectory() as tmp:
        # The trip is recorded long after it was driven (T0 is fixed): milestones dated days
        # or years before the trip was made are what this replay is, not a client's mistake.
        settings = Settings(data_dir=tmp, bootstrap_demo_token=False,
                            milestone_backdate_h=10 * 365 * 24.0)  # fmt: skip
        services = bootstrap.local(settings)
        try:
            admin = Principal("f", Role.ADMIN, token_id="bench")
            asyncio.run(_run_trip(services, admin, ts, pos, speed, vertices))
            trip = services.trips.get(admin, "T")
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                summary = services.summaries.compute(trip, 0)
                times.append((time.perf_counter() - started) * 1000)
            print(
                f"SummaryService.compute, {summary.points} points from SQLite, {vertices} "
                f"route vertices, {summary.stops.count} stops: median "
                f"{statistics.median(times):.0f} ms, min {min(times):.0f} ms ({repeat} runs)"
            )
        finally:
            services.close()


async def _run_trip(services, admin, ts, pos, speed, vertices) -> None:  # type: ignore[no-untyped-def]
    line = [(float(x), float(y)) for x, y in route(vertices)]
    here = Place(float(pos[0, 1]), float(pos[0, 0]))
    draft = TripDraft("V", here, Place(float(pos[-1, 1]), float(pos[-1, 0])), trip_id="T",
                      route=line)  # fmt: skip
    await services.trips.create(admin, draft)
    marks = np.linspace(ts[0], ts[-1], len(ORDER)).astype(np.int64)
    await services.trips.record_milestone(
        admin, "T", MilestoneRequest(Milestone.TRIP_STARTED, int(marks[0]))
    )
    fields = zip(ts.tolist(), pos[:, 1].tolist(), pos[:, 0].tolist(), speed.tolist(), strict=True)
    points = [
        GpsPoint("f", "V", t, la, ln, v, 0.0, 10.0, None, "T", None, None, t)
        for t, la, ln, v in fields
    ]
    for k in range(0, len(points), 1000):
        await services.tracking._log.append("f", points[k : k + 1000])
    for milestone, at in zip(ORDER[1:], marks[1:], strict=True):  # the position check waived
        if milestone is Milestone.TRIP_COMPLETED:  # the default POD policy, met as a driver would
            for capture in PROOF_OF_DELIVERY:
                await services.pod.capture(admin, "T", capture)
        request = MilestoneRequest(milestone, int(at), override=True)
        await services.trips.record_milestone(admin, "T", request)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--vertices", type=int, nargs="+", default=[500, 5000, 20000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bench_domain(args.days, args.vertices, args.repeat)
    bench_service(args.days, args.vertices[0], args.repeat)


if __name__ == "__main__":
    main()

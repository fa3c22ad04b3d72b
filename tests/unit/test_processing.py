"""The vectorised processor chain agrees with the per-vehicle reference steps.

Random tracks (driving, stopping, speeding, GPS jumps, poor fixes, retries, late points) around
fences of every kind and rule go through `TrackProcessor` in batches of many vehicles, and
through the reference steps one vehicle at a time; both must give the same events.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import numpy as np
import pytest

from trucktrack.domain import fence_transitions, filters, speeding, stops
from trucktrack.domain.fence_transitions import MembershipState
from trucktrack.domain.geofence import FenceKind, FenceRules, Geofence, fence_shape
from trucktrack.domain.processing import (
    EventKind,
    FenceCatalog,
    ProcessorRules,
    TrackBatch,
    TrackProcessor,
    TrackState,
)
from trucktrack.simulation import destination

PUNE = (18.5204, 73.8567)
T0 = 1_795_000_000_000
RULES = ProcessorRules(
    stops=stops.StopRules(min_duration_s=120, unexpected_after_s=600),
    speed=speeding.SpeedRules(min_duration_s=20),
    default_speed_limit_kmh=70,
)
Point = tuple[int, float, float, float, float]  # ts, lat, lng, speed, accuracy


def _ring(lat: float, lng: float, metres: float) -> list[list[float]]:
    ring = []
    for bearing in (0, 90, 180, 270, 0):
        p = destination(lat, lng, bearing + 45, metres)
        ring.append([p[1], p[0]])
    return ring


def fences(fleet: str = "f1") -> list[Geofence]:
    north = destination(*PUNE, 0, 1500)
    east = destination(*PUNE, 90, 2000)
    road_a, road_b = destination(*PUNE, 180, 3000), destination(*PUNE, 45, 3000)
    return [
        Geofence(
            geofence_id="depot", fleet_id=fleet, name="depot", kind=FenceKind.CIRCULAR,
            geometry={"type": "Point", "coordinates": [PUNE[1], PUNE[0]]}, radius_m=400,
            rules=FenceRules(stop_allowed=True, max_dwell_min=15),
        ),
        Geofence(
            geofence_id="city", fleet_id=fleet, name="city", kind=FenceKind.POLYGON,
            geometry={"type": "Polygon", "coordinates": [_ring(*north, 700)]},
            rules=FenceRules(restricted=True, restricted_hours=[("08:00", "20:00")],
                             speed_limit_kmh=30),
        ),
        Geofence(
            geofence_id="road", fleet_id=fleet, name="road", kind=FenceKind.CORRIDOR,
            geometry={"type": "LineString",
                      "coordinates": [[road_a[1], road_a[0]], [road_b[1], road_b[0]]]},
            width_m=60, rules=FenceRules(speed_limit_kmh=40, min_dwell_s=20),
        ),
        Geofence(
            geofence_id="yard", fleet_id=fleet, name="yard", kind=FenceKind.CIRCULAR,
            geometry={"type": "Point", "coordinates": [east[1], east[0]]}, radius_m=300,
            rules=FenceRules(vehicle_ids=["v1", "v3"], restricted=True),
        ),
        Geofence(
            geofence_id="site", fleet_id=fleet, name="site", kind=FenceKind.CIRCULAR,
            geometry={"type": "Point", "coordinates": [PUNE[1], PUNE[0] - 0.01]}, radius_m=500,
            rules=FenceRules(trip_ids=["trip-v2", "trip-v5"], speed_limit_kmh=20),
        ),
    ]  # fmt: skip


def catalog(version: int = 0, born: int = 0, fleet: str = "f1") -> FenceCatalog:
    return FenceCatalog([(f, fence_shape(f), born) for f in fences(fleet)], version)


def random_track(rng: random.Random, n: int) -> list[Point]:
    """Drives around Pune, stops for a while, speeds now and then, with GPS faults."""
    lat, lng = destination(*PUNE, rng.uniform(0, 360), rng.uniform(0, 2500))
    heading, ts, out = rng.uniform(0, 360), T0 + rng.randint(0, 60_000), []
    stopped_until = 0
    for _ in range(n):
        ts += rng.choice((5, 10, 15, 30)) * 1000
        if ts < stopped_until:
            speed = rng.uniform(0, 3)
            lat, lng = destination(lat, lng, rng.uniform(0, 360), rng.uniform(0, 10))
        else:
            if rng.random() < 0.03:
                stopped_until = ts + rng.randint(60, 1500) * 1000
            speed = rng.choice((rng.uniform(20, 60), rng.uniform(60, 100)))
            heading = (heading + rng.uniform(-40, 40)) % 360
            lat, lng = destination(lat, lng, heading, speed / 3.6 * 10)
            if abs(lat - PUNE[0]) > 0.04 or abs(lng - PUNE[1]) > 0.04:
                heading = (heading + 180) % 360
        accuracy = 500.0 if rng.random() < 0.03 else 8.0
        if rng.random() < 0.03:  # a GPS jump, then back on track
            far = destination(lat, lng, rng.uniform(0, 360), 40_000)
            out.append((ts, far[0], far[1], speed, 8.0))
            ts += 5000
        out.append((ts, lat, lng, speed, accuracy))
    return out


def arrival(tracks: dict[str, list[Point]], rng: random.Random, batch: int) -> list[list]:  # type: ignore[type-arg]
    """Interleave vehicles in time order with retries and late points; cut into batches."""
    stream = sorted(((p[0], v, p) for v, pts in tracks.items() for p in pts), key=lambda x: x[0])
    sent: list[tuple[str, Point]] = []
    for _, vehicle, point in stream:
        sent.append((vehicle, point))
        if rng.random() < 0.03:
            sent.append((vehicle, point))  # a retry
        if rng.random() < 0.02 and len(sent) > 50:
            sent.append(sent[-rng.randint(10, 50)])  # a late point
    return [sent[i : i + batch] for i in range(0, len(sent), batch)]


def to_batch(items: list[tuple[str, Point]], cat: FenceCatalog) -> TrackBatch:
    slot = {"v1": 1, "v2": 2, "v3": 3, "v4": 4, "v5": 5, "v6": 6}
    return TrackBatch(
        slot=np.array([slot[v] for v, _ in items], dtype=np.int64),
        fleet=np.full(len(items), cat.fleet_code("f1"), dtype=np.int64),
        trip=np.array([slot[v] * 10 for v, _ in items], dtype=np.int64),
        ts=np.array([p[0] for _, p in items], dtype=np.int64),
        lat=np.array([p[1] for _, p in items]),
        lng=np.array([p[2] for _, p in items]),
        speed=np.array([p[3] for _, p in items]),
        accuracy=np.array([p[4] for _, p in items]),
        vehicle_ids=[v for v, _ in items],
        trip_ids=[f"trip-{v}" for v, _ in items],
    )


class Reference:
    """One vehicle through the reference steps, a batch at a time (sorted by device time)."""

    def __init__(self, vehicle: str) -> None:
        self.vehicle = vehicle
        self.filter = filters.FilterState()
        self.fences = MembershipState()
        self.speed = speeding.SpeedState()
        self.stop = stops.StopState()
        self.events: list[tuple[object, ...]] = []

    def run(self, points: list[Point], cat: FenceCatalog, tz: dt.tzinfo) -> None:
        points = sorted(points, key=lambda p: p[0])
        before = self.filter.last
        fixes = [filters.TrackFix(p[0], p[1], p[2], p[4]) for p in points]
        self.filter, verdicts = filters.step(self.filter, fixes, RULES.filter)
        kept = [p for p, v in zip(points, verdicts, strict=True) if v is None]
        if not kept:
            return
        lat, lng = np.array([p[1] for p in kept]), np.array([p[2] for p in kept])
        prev = [before] + [filters.TrackFix(p[0], p[1], p[2]) for p in kept[:-1]]
        scoped = {
            f.geofence_id for f in fences()
            if (f.rules.vehicle_ids is not None and self.vehicle not in f.rules.vehicle_ids)
            or (f.rules.trip_ids is not None and f"trip-{self.vehicle}" not in f.rules.trip_ids)
        }  # fmt: skip
        inside = [s - scoped for s in cat.index.containing(lng, lat)]
        crossed = [
            frozenset() if b is None else s - scoped
            for b, s in zip(prev, cat.index.crossed(
                np.array([b.lng if b else p[2] for b, p in zip(prev, kept, strict=True)]),
                np.array([b.lat if b else p[1] for b, p in zip(prev, kept, strict=True)]),
                lng, lat), strict=True)
        ]  # fmt: skip
        terms = cat.terms[cat.fleet_code("f1")]
        self.fences, found = fence_transitions.step(
            self.fences, [fence_transitions.Fix(p[0], p[1], p[2]) for p in kept], inside,
            crossed, terms, cat.version, tz,
        )  # fmt: skip
        self.events += [(e.kind.value, e.ts, e.fence_id, e.since) for e in found]
        limits = {f.geofence_id: f.rules.speed_limit_kmh for f in fences()}
        limit = [
            min([RULES.default_speed_limit_kmh] + [limits[f] or 1e9 for f in s]) for s in inside
        ]
        self.speed, found_speed = speeding.step(
            self.speed,
            [speeding.SpeedFix(p[0], p[3], lim) for p, lim in zip(kept, limit, strict=True)],
            RULES.speed,
        )
        self.events += [(e.kind.value, e.ts, None, e.started_ts) for e in found_speed]
        allowed = {f.geofence_id for f in fences() if f.rules.stop_allowed}
        self.stop, found_stops = stops.step(
            self.stop,
            [stops.StopFix(p[0], p[1], p[2], p[3], bool(s & allowed))
             for p, s in zip(kept, inside, strict=True)],
            RULES.stops,
        )  # fmt: skip
        self.events += [(e.kind.value, e.ts, None, e.started_ts) for e in found_stops]


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_chain_matches_the_reference_steps(seed: int) -> None:
    rng = random.Random(seed)
    tracks = {v: random_track(rng, 300) for v in ("v1", "v2", "v3", "v4", "v5", "v6")}
    cat = catalog()
    processor = TrackProcessor(RULES)
    processor.catalog = cat
    references = {v: Reference(v) for v in tracks}
    got: list[tuple[object, ...]] = []
    for items in arrival(tracks, rng, batch=(1, 3, 7, 40, 200, 5)[seed]):
        batch = to_batch(items, cat)
        for e in processor.process(batch):
            fence = e.fence_id if e.kind not in _SPEED_AND_STOPS else None
            got.append((batch.vehicle_ids[e.point], e.kind.value, e.ts, fence, e.since))
        by_vehicle: dict[str, list[Point]] = {}
        for vehicle, point in items:
            by_vehicle.setdefault(vehicle, []).append(point)
        for vehicle, points in by_vehicle.items():
            references[vehicle].run(points, cat, processor._tz)
    want = [(v, *e) for v, ref in references.items() for e in ref.events]
    assert Counter(got) == Counter(want)
    kinds = {k for _, k, *_ in got}
    assert {"enter", "exit", "stop_started", "speeding_started"} <= kinds, kinds
    for vehicle, ref in references.items():
        slot = int(vehicle[1])
        assert processor.state.distance[slot] == pytest.approx(ref.filter.distance_m)


_SPEED_AND_STOPS = {
    EventKind.SPEEDING_STARTED, EventKind.SPEEDING_ENDED, EventKind.STOP_STARTED,
    EventKind.STOP_ENDED, EventKind.UNEXPECTED_STOP,
}  # fmt: skip


def test_state_survives_a_snapshot_and_the_stream_goes_on_identically() -> None:
    rng = random.Random(11)
    tracks = {v: random_track(rng, 200) for v in ("v1", "v2", "v3")}
    batches = arrival(tracks, rng, batch=50)
    cat = catalog()
    straight, resumed = TrackProcessor(RULES), TrackProcessor(RULES)
    straight.catalog = resumed.catalog = cat
    a, b = [], []
    for n, items in enumerate(batches):
        a += straight.process(to_batch(items, cat))
        b += resumed.process(to_batch(items, cat))
        if n == len(batches) // 2:
            resumed = TrackProcessor(RULES, TrackState.from_bytes(resumed.state.to_bytes()))
            resumed.catalog = cat
    assert a == b and a


def test_fences_of_another_fleet_are_invisible() -> None:
    rng = random.Random(3)
    tracks = {v: random_track(rng, 300) for v in ("v1", "v2")}
    processor = TrackProcessor(RULES)
    processor.catalog = catalog(fleet="other-fleet")
    events = []
    for items in arrival(tracks, rng, batch=100):
        events += processor.process(to_batch(items, processor.catalog))
    assert not [e for e in events if e.fence_id is not None]
    assert processor.state.membership == {}


def test_a_fence_created_around_parked_trucks_is_a_baseline() -> None:
    parked = {v: [(T0 + i * 30_000, PUNE[0], PUNE[1], 0.0, 8.0) for i in range(10)]
              for v in ("v1", "v2")}  # fmt: skip
    processor = TrackProcessor(RULES)
    processor.catalog = FenceCatalog([], version=0)
    first = [(v, p[0]) for v, p in parked.items()] + [(v, p[1]) for v, p in parked.items()]
    processor.process(to_batch(first, processor.catalog))
    processor.catalog = catalog(version=1, born=1)
    rest = [(v, p) for i in range(2, 10) for v, p in ((v, parked[v][i]) for v in parked)]
    events = processor.process(to_batch(rest, processor.catalog))
    assert not [e for e in events if e.kind is EventKind.ENTER]
    assert set(processor.state.membership) == {1, 2}
    assert all("depot" in m.inside for m in processor.state.membership.values())

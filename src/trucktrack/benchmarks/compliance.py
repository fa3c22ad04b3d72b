"""`trucktrack bench compliance`: route compliance for many active trips, against the naive way.

10,000 active trips, each with a planned route of 500 vertices (a highway-like polyline of
300-1000 km over India: gentle bends, uneven vertex spacing), and each trip's truck reporting
every 30 s as it drives along its route at 40-85 km/h with GPS noise; 5% of the trucks leave
their route for a while (up to 6-9 km off: deviations) and 1% turn back for a few km (wrong
direction). Batches are shaped like the stream: several fixes per trip per batch (50,000
fixes by default). Side by side in one run:

1. `ComplianceChecker.check` over every batch, from a fresh state (median of `--passes`):
   windowed matching, deviation, wrong direction, ETA and events;
2. the naive way, `nearest_on_route` per fix: every segment of the trip's route, no index, no
   state (distance and chainage only), for a bounded time on a sample; it also checks that
   both agree on the sample;
3. the catalog: planning every route, then trips ending and new ones starting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import shlex
import sys
import time

import numpy as np

from trucktrack.domain.compliance import (
    M_PER_DEG_LAT,
    ComplianceBatch,
    ComplianceChecker,
    ComplianceRules,
    ComplianceState,
    RouteCatalog,
    nearest_on_route,
    vertex_chainage,
)

LAT, LNG = (10.0, 28.0), (72.0, 86.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trips", type=int, default=10_000)
    parser.add_argument("--vertices", type=int, default=500, help="per planned route")
    parser.add_argument("--fixes", type=int, default=60, help="fixes per trip")
    parser.add_argument("--per-batch", type=int, default=5, help="fixes per trip per batch")
    parser.add_argument("--naive-seconds", type=float, default=10.0)
    parser.add_argument("--passes", type=int, default=3, help="runs of the checker")
    parser.add_argument("--churn", type=int, default=1000, help="trips ended and started")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--markdown", help="append the results as a markdown section to FILE")


def _routes(args: argparse.Namespace, rng: np.random.Generator) -> np.ndarray:
    """(trips, vertices, 2) of (lng, lat): random walks of 300-1000 km with gentle bends."""
    n, v = args.trips, args.vertices
    length = rng.uniform(300_000, 1_000_000, n)
    steps = rng.uniform(0.3, 1.7, (n, v - 1))
    steps *= (length / steps.sum(axis=1))[:, None]
    bearing = rng.uniform(0, 360, n)[:, None] + np.cumsum(rng.normal(0, 4, (n, v - 1)), axis=1)
    lat0, lng0 = rng.uniform(*LAT, n), rng.uniform(*LNG, n)
    dlat = steps * np.cos(np.radians(bearing)) / M_PER_DEG_LAT
    lat = lat0[:, None] + np.c_[np.zeros(n), np.cumsum(dlat, axis=1)]
    dlng = steps * np.sin(np.radians(bearing)) / (M_PER_DEG_LAT * np.cos(np.radians(lat[:, :-1])))
    lng = lng0[:, None] + np.c_[np.zeros(n), np.cumsum(dlng, axis=1)]
    return np.stack((lng, lat), axis=2)


def _drives(
    args: argparse.Namespace, routes: np.ndarray, chain: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """(trips, fixes) arrays ts, lat, lng, speed, heading of the trucks along their routes."""
    n, k = args.trips, args.fixes
    every_s = 30.0
    kmh = rng.uniform(40, 85, n)[:, None] + rng.normal(0, 3, (n, k))
    step = np.clip(kmh, 0, None) / 3.6 * every_s
    sign = np.ones((n, k))
    back = rng.random(n) < 0.01  # turn back for 8 fixes (~4 km) a third of the way in
    sign[back, k // 3 : k // 3 + 8] = -1
    c = rng.uniform(0, 0.5, n)[:, None] * chain[:, -1:] + np.cumsum(step * sign, axis=1)
    c = np.clip(c, 0, chain[:, -1:] - 1)
    # Where each fix falls on its route: one search over all routes' chainage laid end to end.
    base = (np.arange(n) * 2e6)[:, None]
    flat = (chain + base).ravel()
    i = np.searchsorted(flat, (c + base).ravel(), side="right") - 1
    i = np.minimum(i - np.repeat(np.arange(n) * chain.shape[1], k), chain.shape[1] - 2)
    rows = np.repeat(np.arange(n), k)
    a, b = routes[rows, i], routes[rows, i + 1]
    f = ((c.ravel() - chain[rows, i]) / (chain[rows, i + 1] - chain[rows, i]))[:, None]
    lng, lat = (a + f * (b - a)).T
    east = (b[:, 0] - a[:, 0]) * np.cos(np.radians(lat))
    bearing = np.degrees(np.arctan2(east, b[:, 1] - a[:, 1]))
    # Sideways: GPS noise for all, and 5% of the trucks off route for 20 fixes.
    side = rng.normal(0, 8, (n, k))
    off = np.flatnonzero(rng.random(n) < 0.05)
    ramp = np.minimum(np.arange(20), np.arange(20)[::-1]) / 5  # 0 .. ~2 .. 0
    start = rng.integers(0, max(k - 20, 1), len(off))
    top = rng.uniform(3000, 4500, len(off))
    for trip, s0, metres in zip(off.tolist(), start.tolist(), top.tolist(), strict=True):
        width = min(20, k - s0)
        side[trip, s0 : s0 + width] += metres * ramp[:width]
    side = side.ravel()
    lat = lat + side * np.cos(np.radians(bearing + 90)) / M_PER_DEG_LAT
    lng = lng + side * np.sin(np.radians(bearing + 90)) / (M_PER_DEG_LAT * np.cos(np.radians(lat)))
    heading = (bearing + np.where(sign.ravel() < 0, 180, 0) + rng.normal(0, 5, n * k)) % 360
    ts = 1000 * (int(time.time()) - 3600) + (np.arange(k) * every_s * 1000).astype(np.int64)
    ts = np.broadcast_to(ts, (n, k)) + rng.integers(0, 30_000, n)[:, None]
    return ts, lat.reshape(n, k), lng.reshape(n, k), kmh, heading.reshape(n, k)


def _batches(args: argparse.Namespace, drives: tuple[np.ndarray, ...]) -> list[ComplianceBatch]:
    """`per_batch` fixes of every trip per batch, interleaved as a stream would carry them."""
    ts, lat, lng, kmh, heading = drives
    n, k = ts.shape
    out = []
    for a in range(0, k, args.per_batch):
        cols = slice(a, min(a + args.per_batch, k))
        width = cols.stop - cols.start
        trip = np.tile(np.arange(n, dtype=np.int64), width)
        out.append(
            ComplianceBatch(
                trip, ts[:, cols].T.ravel(), lat[:, cols].T.ravel(), lng[:, cols].T.ravel(),
                kmh[:, cols].T.ravel(), heading[:, cols].T.ravel(),
            )
        )  # fmt: skip
    return out


def _machine() -> str:
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        ram = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        ram = ""
    return f"{os.cpu_count()} cores{ram}, {platform.system()} {platform.machine()}, " + (
        f"Python {platform.python_version()}"
    )


def main(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    routes = _routes(args, rng)
    chain = np.stack([vertex_chainage(r) for r in routes])
    batches = _batches(args, _drives(args, routes, chain, rng))
    points = sum(len(b) for b in batches)
    rules = ComplianceRules()

    catalog = RouteCatalog()
    started = time.perf_counter()
    for trip in range(args.trips):
        catalog.put(trip, routes[trip])
    plan_s = time.perf_counter() - started
    segments = catalog.used

    gc.freeze()  # routes and batches are long-lived: never garbage
    passes, batch_s = [], []
    for _ in range(args.passes):
        checker = ComplianceChecker(rules, ComplianceState(), catalog)
        events: dict[str, int] = {}
        times = []
        for batch in batches:
            started = time.perf_counter()
            result = checker.check(batch)
            times.append(time.perf_counter() - started)
            for event in result.events:
                events[event.kind.value] = events.get(event.kind.value, 0) + 1
        passes.append(sum(times))
        batch_s.append(times)
    median = int(np.argsort(passes)[len(passes) // 2])
    chain_s = passes[median]
    steady = points - len(batches[0])
    steady_s = sum(batch_s[median][1:])
    searches = checker.whole_route_searches
    last = result

    # The naive way on a sample of the last batch: the same fixes, so the answers compare.
    sample = rng.permutation(len(last.checked))
    naive_points, worst = 0, 0.0
    batch = batches[-1]
    deadline = time.perf_counter() + args.naive_seconds
    started = time.perf_counter()
    for i in sample.tolist():
        if time.perf_counter() > deadline:
            break
        trip = int(batch.trip[i])
        ref = nearest_on_route(routes[trip], float(batch.lat[i]), float(batch.lng[i]), chain[trip])
        worst = max(worst, abs(ref.distance_m - float(last.distance_m[i])))
        naive_points += 1
    naive_s = time.perf_counter() - started

    churn = min(args.churn, args.trips)
    started = time.perf_counter()
    for trip in range(churn):
        checker.finish(trip)
        checker.plan(trip, routes[(trip + 1) % args.trips])
    churn_s = time.perf_counter() - started

    chain_rate, naive_rate = points / chain_s, naive_points / naive_s
    n_batches = len(batches)
    command = shlex.join(["trucktrack", "bench", "compliance", *sys.argv[3:]])
    lines = [
        f"### bench compliance, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`  ",
        f"Machine: {_machine()}  ",
        f"{args.trips} trips with {args.vertices}-vertex routes of "
        f"{chain[:, -1].min() / 1000:.0f}-{chain[:, -1].max() / 1000:.0f} km "
        f"({segments:,} segments, {segments * 7 * 8 / 2**20:.0f} MB), "
        f"{args.fixes} fixes per trip every 30 s in {n_batches} batches of "
        f"{len(batches[0]):,} ({args.per_batch} per trip), {points:,} fixes  ",
        "events: " + ", ".join(f"{k} {v}" for k, v in sorted(events.items())) + "; "
        f"{searches:,} fixes searched their whole route (first fixes, far off)",
        "",
        "| method | points/s |",
        "|---|---:|",
        f"| ComplianceChecker.check, all {n_batches} batches, median of {args.passes} passes "
        f"({points / max(passes):,.0f}-{points / min(passes):,.0f}) | {chain_rate:,.0f} |",
        f"| ... the same pass without its first batch (every trip's first fix searches its whole "
        f"route) | {steady / steady_s:,.0f} |",
        f"| naive: every segment of the route per fix, `nearest_on_route` ({naive_points:,} "
        f"fixes; agree within {worst:.2f} m) | {naive_rate:,.0f} |",
        "",
        f"checker vs naive: {chain_rate / naive_rate:,.0f}x; planning {args.trips} routes: "
        f"{plan_s:.1f} s ({plan_s / args.trips * 1e6:,.0f} us each); {churn} trips ended and "
        f"started: {churn_s / churn * 1e6:,.0f} us each",
    ]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write(report + "\n")
    return 0

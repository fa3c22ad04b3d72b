"""`trucktrack bench geofence`: the processor chain for many vehicles, against the naive loop.

10,000 active fences (a third each circles, polygons and corridors, with speed limits, depots
where stops are allowed, restricted zones and dwell limits) spread over India, 10,000 vehicles
reporting every 30 s (most driving, some parked, some speeding). Side by side in one run:

1. the whole chain, `TrackProcessor` (noise filter, distance, fence membership and transitions,
   restricted and dwell rules, speeding, stops), one batch per round of fixes;
   (median of `--passes` runs);
2. the spatial part alone: `GeofenceIndex` fences holding each fix and touched by each segment
   between fixes, through its grid (the chain's path) and through a shapely STRtree;
3. the spec's sample approach, every fence tested for every point (for a bounded time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import os
import platform
import random
import shlex
import statistics
import sys
import time

import numpy as np

from trucktrack.domain.geofence import FenceKind, FenceRules, Geofence, fence_shape
from trucktrack.domain.processing import FenceCatalog, ProcessorRules, TrackBatch, TrackProcessor
from trucktrack.simulation import destination

LAT, LNG = (8.5, 32.0), (69.0, 88.5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fences", type=int, default=10_000)
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=60, help="fixes per vehicle")
    parser.add_argument("--naive-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--passes", type=int, default=3, help="runs of the whole chain")


def _fences(n: int, rng: random.Random) -> list[Geofence]:
    out: list[Geofence] = []
    for i in range(n):
        lat, lng = rng.uniform(*LAT), rng.uniform(*LNG)
        kind = i % 3
        rules = FenceRules(
            speed_limit_kmh=rng.choice((None, None, 40.0, 60.0)),
            stop_allowed=rng.random() < 0.3,
            restricted=rng.random() < 0.1,
            restricted_hours=[("08:00", "20:00")] if rng.random() < 0.5 else None,
            max_dwell_min=rng.choice((None, None, 60.0)),
        )
        common = {"fleet_id": "bench", "name": f"fence {i}", "rules": rules}
        if kind == 0:
            radius = rng.uniform(100, 5_000)
            out.append(Geofence(
                geofence_id=f"circle-{i}", kind=FenceKind.CIRCULAR, radius_m=radius,
                geometry={"type": "Point", "coordinates": [lng, lat]}, **common,  # type: ignore[arg-type]
            ))  # fmt: skip
        elif kind == 1:
            ring = []
            sides = rng.randint(5, 12)
            for k in range(sides):  # a star-shaped ring around (lat, lng): always simple
                b = 360 * (k + rng.uniform(0, 0.5)) / sides
                p = destination(lat, lng, b, rng.uniform(500, 5_000))
                ring.append([p[1], p[0]])
            ring.append(ring[0])
            out.append(Geofence(
                geofence_id=f"polygon-{i}", kind=FenceKind.POLYGON,
                geometry={"type": "Polygon", "coordinates": [ring]}, **common,  # type: ignore[arg-type]
            ))  # fmt: skip
        else:
            line = [[lng, lat]]
            for _ in range(rng.randint(2, 10)):
                p = destination(
                    line[-1][1], line[-1][0], rng.uniform(0, 360), rng.uniform(1e3, 5e3)
                )
                line.append([p[1], p[0]])
            out.append(Geofence(
                geofence_id=f"corridor-{i}", kind=FenceKind.CORRIDOR, width_m=rng.uniform(50, 300),
                geometry={"type": "LineString", "coordinates": line}, **common,  # type: ignore[arg-type]
            ))  # fmt: skip
    return out


def _rounds(args: argparse.Namespace) -> list[TrackBatch]:
    """Every vehicle's fix of each round: 80% driving at 30-90 km/h (the default limit is 80),
    15% parked with GPS jitter, 5% crawling in traffic; one fix every 30 s."""
    n = args.vehicles
    rng = np.random.default_rng(args.seed)
    lat, lng = rng.uniform(*LAT, n), rng.uniform(*LNG, n)
    heading = rng.uniform(0, 2 * np.pi, n)
    cruise = rng.uniform(30, 90, n)
    mode = rng.choice(3, n, p=(0.8, 0.15, 0.05))
    base = [1000 * (int(time.time()) - 3600)] * n
    batches = []
    for r in range(args.rounds):
        speed = np.where(mode == 0, cruise + rng.normal(0, 3, n), np.where(mode == 1, 0.0, 4.0))
        speed = np.clip(speed, 0, None)
        metres = speed / 3.6 * 30 + np.where(mode == 1, rng.normal(0, 3, n), 0.0)
        heading = heading + rng.normal(0, 0.2, n)
        lat = lat + metres * np.cos(heading) / 111_195
        lng = lng + metres * np.sin(heading) / (111_195 * np.cos(np.radians(lat)))
        batches.append(
            TrackBatch(
                slot=np.arange(n, dtype=np.int64),
                fleet=np.zeros(n, dtype=np.int64),
                trip=np.arange(n, dtype=np.int64),
                ts=np.array(base, dtype=np.int64) + r * 30_000,
                lat=lat.copy(),
                lng=lng.copy(),
                speed=speed,
                accuracy=np.full(n, 8.0),
                vehicle_ids=[f"truck-{i}" for i in range(n)],
                trip_ids=[f"trip-{i}" for i in range(n)],
            )
        )
    return batches


def main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    started = time.perf_counter()
    fences = _fences(args.fences, rng)
    catalog = FenceCatalog([(f, fence_shape(f), 0) for f in fences], version=0)
    build_s = time.perf_counter() - started
    index = catalog.index
    batches = _rounds(args)
    points = sum(len(b) for b in batches)

    gc.freeze()  # the fences and batches are long-lived: never garbage
    # This machine's speed varies from one second to the next (a shared VM): the chain runs
    # `--passes` times from a fresh state and the median pass is reported, with the range.
    passes = []
    for _ in range(args.passes):
        processor = TrackProcessor(ProcessorRules())
        processor.catalog = catalog
        events: dict[str, int] = {}
        started = time.perf_counter()
        for batch in batches:
            for event in processor.process(batch):
                events[event.kind.value] = events.get(event.kind.value, 0) + 1
        passes.append(time.perf_counter() - started)
    chain_s = statistics.median(passes)

    inside = crossings = 0
    started = time.perf_counter()
    for before, batch in itertools.pairwise(batches):
        inside += index.point_pairs(batch.lng, batch.lat).shape[1]
        crossings += index.segment_pairs(before.lng, before.lat, batch.lng, batch.lat).shape[1]
    grid_s = time.perf_counter() - started
    started = time.perf_counter()
    for before, batch in itertools.pairwise(batches):
        index.containing(batch.lng, batch.lat)
        index.crossed(before.lng, before.lat, batch.lng, batch.lat)
    tree_s = time.perf_counter() - started
    spatial_points = points - len(batches[0])

    naive_points = 0
    lng1, lat1 = batches[0].lng, batches[0].lat
    deadline = time.perf_counter() + args.naive_seconds
    started = time.perf_counter()
    while naive_points < len(lng1) and time.perf_counter() < deadline:
        chunk = slice(naive_points, naive_points + 10)
        index.naive_containing(lng1[chunk], lat1[chunk])
        naive_points += len(lng1[chunk])
    naive_s = time.perf_counter() - started

    chain_rate, naive_rate = points / chain_s, naive_points / naive_s
    print(f"### bench geofence, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n")
    command = shlex.join(["trucktrack", "bench", "geofence", *sys.argv[3:]])
    print(f"Command: `{command}`  ")
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}  ")
    print(
        f"{args.fences} fences (built in {build_s:.1f} s), {args.vehicles} vehicles, "
        f"{args.rounds} rounds, {points} fixes; {inside} fixes inside a fence, {crossings} "
        f"segment crossings  "
    )
    print("events: " + ", ".join(f"{k} {v}" for k, v in sorted(events.items())) + "\n")
    print("| method | points/s |")
    print("|---|---:|")
    chain = "whole chain: TrackProcessor (filter, distance, fences, speed, stops)"
    spread = f"{points / max(passes):,.0f}-{points / min(passes):,.0f}"
    print(f"| {chain}, median of {args.passes} passes ({spread}) | {chain_rate:,.0f} |")
    grid = "spatial part alone, grid + exact tests (the chain's path): point + segment pairs"
    print(f"| {grid} | {spatial_points / grid_s:,.0f} |")
    tree = "spatial part alone, shapely STRtree query: containing + crossed"
    print(f"| {tree} | {spatial_points / tree_s:,.0f} |")
    print(f"| naive: every fence per point ({naive_points} points) | {naive_rate:,.0f} |")
    print(f"\nwhole chain vs naive: {chain_rate / naive_rate:,.0f}x")
    return 0

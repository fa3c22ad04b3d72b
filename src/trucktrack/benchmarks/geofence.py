"""`trucktrack bench geofence`: fence membership for many points, indexed vs the naive loop.

10,000 active fences (a third each circles, polygons and corridors) spread over India, 10,000
vehicles moving between fixes. Side by side in one run: `GeofenceIndex` (STRtree, whole arrays of
points, plus the segment-crossing query between consecutive fixes) and the spec's sample
approach, every fence tested for every point (run for a bounded time, it is slow).

(Issue #3 measures the whole processor chain, transitions included; this measures the spatial
part, which is the one that grows with the number of fences.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import shlex
import sys
import time

import numpy as np

from trucktrack.domain.geofence import GeofenceIndex, circle, corridor, polygon
from trucktrack.simulation import destination

LAT, LNG = (8.5, 32.0), (69.0, 88.5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fences", type=int, default=10_000)
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20, help="fixes per vehicle")
    parser.add_argument("--naive-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)


def _fences(n: int, rng: random.Random) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for i in range(n):
        lat, lng = rng.uniform(*LAT), rng.uniform(*LNG)
        kind = i % 3
        if kind == 0:
            out.append((f"circle-{i}", circle(lat, lng, rng.uniform(100, 5_000))))
        elif kind == 1:
            ring = []
            n = rng.randint(5, 12)
            for k in range(n):  # a star-shaped ring around (lat, lng): always simple
                b = 360 * (k + rng.uniform(0, 0.5)) / n
                p = destination(lat, lng, b, rng.uniform(500, 5_000))
                ring.append([p[1], p[0]])
            ring.append(ring[0])
            out.append((f"polygon-{i}", polygon({"type": "Polygon", "coordinates": [ring]})))
        else:
            line = [[lng, lat]]
            for _ in range(rng.randint(2, 10)):
                p = destination(
                    line[-1][1], line[-1][0], rng.uniform(0, 360), rng.uniform(1e3, 5e3)
                )
                line.append([p[1], p[0]])
            out.append((f"corridor-{i}", corridor(line, rng.uniform(50, 300))))
    return out


def main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    started = time.perf_counter()
    index = GeofenceIndex(_fences(args.fences, rng))  # type: ignore[arg-type]
    build_s = time.perf_counter() - started

    nprng = np.random.default_rng(args.seed)
    lat = nprng.uniform(*LAT, args.vehicles)
    lng = nprng.uniform(*LNG, args.vehicles)
    steps = []
    for _ in range(args.rounds):  # each vehicle moves up to ~1 km between fixes
        new_lat = lat + nprng.normal(0, 0.005, args.vehicles)
        new_lng = lng + nprng.normal(0, 0.005, args.vehicles)
        steps.append((lng, lat, new_lng, new_lat))
        lat, lng = new_lat, new_lng

    inside = crossings = 0
    started = time.perf_counter()
    for lng0, lat0, lng1, lat1 in steps:
        inside += sum(map(len, index.containing(lng1, lat1)))
        crossings += sum(map(len, index.crossed(lng0, lat0, lng1, lat1)))
    indexed_s = time.perf_counter() - started
    points = args.vehicles * args.rounds

    naive_points = 0
    _, _, lng1, lat1 = steps[0]
    deadline = time.perf_counter() + args.naive_seconds
    started = time.perf_counter()
    while naive_points < len(lng1) and time.perf_counter() < deadline:
        chunk = slice(naive_points, naive_points + 10)
        index.naive_containing(lng1[chunk], lat1[chunk])
        naive_points += len(lng1[chunk])
    naive_s = time.perf_counter() - started

    indexed_rate, naive_rate = points / indexed_s, naive_points / naive_s
    print(f"### bench geofence, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n")
    command = shlex.join(["trucktrack", "bench", "geofence", *sys.argv[3:]])
    print(f"Command: `{command}`  ")
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}  ")
    print(
        f"{args.fences} fences (built in {build_s:.1f} s), {args.vehicles} vehicles, {points} "
        f"fixes; {inside} fixes inside a fence, {crossings} segment crossings\n"
    )
    print("| method | points/s |")
    print("|---|---:|")
    print(f"| GeofenceIndex: containing + crossed (STRtree) | {indexed_rate:,.0f} |")
    print(f"| naive: every fence per point ({naive_points} points) | {naive_rate:,.0f} |")
    print(f"\nratio: {indexed_rate / naive_rate:,.0f}x")
    return 0

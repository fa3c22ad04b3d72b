"""`trucktrack bench routing`: Valhalla tile builds and truck route latency.

Builds tiles for the routing test network (`road_network.known_network`) and for a square city
grid (`--grid-km` wide, a road every `--spacing-m`, every fifth one primary), the way
`trucktrack routing build-tiles` does; then, on each network side by side, routes a truck
`--queries` times through the routing service (its thread pool, one Valhalla Actor per thread):
on the test network between the two ends of each of its situations (toll, low bridge, one-way,
...; both ways round), on the grid between random pairs of nodes; first one route at a time
(latency), then `--threads` routes at once (throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from trucktrack.benchmarks.ingest import _machine
from trucktrack.domain.routing import LatLng, RouteRequest, TruckProfile
from trucktrack.road_network import RoadNetwork, grid, known_network

if TYPE_CHECKING:  # pyvalhalla loads a 37 MB library: only when the benchmark runs
    from trucktrack.adapters.valhalla import TileBuild
    from trucktrack.services.routing import RoutingService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grid-km", type=float, default=30.0, help="side of the square grid")
    parser.add_argument("--spacing-m", type=float, default=250.0, help="between grid roads")
    parser.add_argument("--queries", type=int, default=1000, help="routes per phase")
    parser.add_argument("--threads", type=int, default=2, help="routing threads (Actors)")
    parser.add_argument("--build-threads", type=int, default=2, help="valhalla_build_tiles -j")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--markdown", help="append the results as a markdown section to FILE")


def _build(net: RoadNetwork, folder: Path, threads: int) -> tuple[TileBuild, float]:
    from trucktrack.adapters.valhalla import build_tiles

    folder.mkdir(parents=True)
    pbf = net.write(folder / "network.osm.pbf")
    started = time.perf_counter()
    built = build_tiles(pbf, folder / "routing", threads=threads)
    return built, time.perf_counter() - started


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _requests(net: RoadNetwork, count: int, seed: int) -> list[RouteRequest]:
    rng = random.Random(seed)
    nodes = [(lat, lng) for _, lat, lng in net.nodes]
    truck = TruckProfile(height_m=4.0, width_m=2.5, length_m=16.0, weight_t=28.0, axle_load_t=10)
    out = []
    for _ in range(count):
        (a_lat, a_lng), (b_lat, b_lng) = rng.sample(nodes, 2)
        out.append(
            RouteRequest(
                origin=LatLng(a_lat, a_lng), destination=LatLng(b_lat, b_lng), vehicle=truck
            )
        )
    return out


KNOWN_ROUTABLE = (
    "toll", "lowbridge", "weakbridge", "nohgv", "oneway", "narrow", "short", "axleload",
    "hazmat", "axles", "ferry", "speed",
)  # fmt: skip
"""The test network's situations with a legal path for the benchmark's truck."""


def _known_requests(net: RoadNetwork, count: int) -> list[RouteRequest]:
    """West to east and back across every situation, in turn, `count` routes."""
    truck = TruckProfile(height_m=4.0, width_m=2.5, length_m=16.0, weight_t=28.0, axle_load_t=10)
    pairs = []
    for name in KNOWN_ROUTABLE:
        west, east = net.places[f"{name}.west"], net.places[f"{name}.east"]
        pairs += [(west, east), (east, west)]
    return [
        RouteRequest(origin=LatLng(*a), destination=LatLng(*b), vehicle=truck)
        for a, b in (pairs[i % len(pairs)] for i in range(count))
    ]


class Latencies:
    """One network's routes: one at a time, then `threads` at once."""

    def __init__(
        self, tiles: Path, requests: list[RouteRequest], warm: list[RouteRequest], threads: int
    ) -> None:
        from trucktrack.adapters.valhalla import ValhallaRouter
        from trucktrack.services.routing import RoutingService

        service = RoutingService(ValhallaRouter(tiles), threads=threads)
        try:
            # Warm every thread's engine (each has its own tile cache) before measuring.
            asyncio.run(_concurrent(service, warm, threads))
            self.one: list[float] = []
            km = 0.0
            started = time.perf_counter()
            for request in requests:
                t0 = time.perf_counter()
                km += service.calculate_blocking(request).distance_m / 1000
                self.one.append(time.perf_counter() - t0)
            self.one_s = time.perf_counter() - started
            self.mean_km = km / len(requests)
            self.many_s, self.many = asyncio.run(_concurrent(service, requests, threads))
        finally:
            service.close()


async def _concurrent(
    service: RoutingService, requests: list[RouteRequest], at_once: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(reversed(requests))

    async def worker() -> None:
        while queue:
            request = queue.pop()
            started = time.perf_counter()
            await service.calculate(request)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(at_once)))
    return time.perf_counter() - started, latencies


def main(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="trucktrack-bench-routing-"))
    try:
        known = known_network()
        known_built, known_s = _build(known, folder / "known", args.build_threads)
        city = grid(args.grid_km, args.spacing_m)
        city_built, city_s = _build(city, folder / "grid", args.build_threads)
        known_requests = _known_requests(known, args.queries)
        on_known = Latencies(
            Path(known_built.tiles), known_requests, known_requests[: 20 * args.threads],
            args.threads,
        )  # fmt: skip
        warm = _requests(city, 20 * args.threads, args.seed + 1)
        on_grid = Latencies(
            Path(city_built.tiles), _requests(city, args.queries, args.seed), warm, args.threads
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    valhalla = importlib.metadata.version("pyvalhalla")

    command = shlex.join(["trucktrack", "bench", "routing", *sys.argv[3:]])
    side = int(args.grid_km * 1000 // args.spacing_m) + 1

    def built_row(name: str, net: RoadNetwork, built: TileBuild, total_s: float) -> str:
        extract = "-" if built.extract_s is None else f"{built.extract_s:.2f}"
        return (
            f"| {name} | {len(net.nodes):,} nodes, {len(net.ways):,} ways | {built.tile_count} | "
            f"{built.size_bytes / 1e6:.2f} | {built.build_s:.2f} | {extract} | {total_s:.2f} |"
        )

    def route_row(network: str, name: str, seconds: float, latencies: list[float]) -> str:
        return (
            f"| {network} | {name} | {len(latencies):,} | {len(latencies) / seconds:,.0f} | "
            f"{statistics.median(latencies) * 1000:.1f} | "
            f"{_percentile(latencies, 0.99) * 1000:.1f} | {max(latencies) * 1000:.1f} |"
        )

    report = "\n".join(
        [
            f"### bench routing, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"Command: `{command}`  ",
            f"Machine: {_machine()}  ",
            f"Valhalla (pyvalhalla {valhalla}), truck costing; tiles built with "
            f"`valhalla_build_tiles -j {args.build_threads}` then packed into tiles.tar",
            "",
            "| network | size | tiles | MB | build s | extract s | total s |",
            "|---|---|---:|---:|---:|---:|---:|",
            built_row("routing test network", known, known_built, known_s),
            built_row(
                f"grid {args.grid_km:g} x {args.grid_km:g} km, {side} x {side} roads "
                f"{args.spacing_m:g} m apart",
                city,
                city_built,
                city_s,
            ),
            "",
            "Truck routes through the routing service: on the test network across each of its "
            f"{len(KNOWN_ROUTABLE)} situations both ways (mean {on_known.mean_km:.1f} km), on the "
            f"grid between random pairs of nodes (mean {on_grid.mean_km:.1f} km):",
            "",
            "| network | phase | routes | routes/s | p50 ms | p99 ms | max ms |",
            "|---|---|---:|---:|---:|---:|---:|",
            *(
                row
                for network, run in (("test network", on_known), ("grid", on_grid))
                for row in (
                    route_row(network, "one at a time", run.one_s, run.one),
                    route_row(
                        network,
                        f"{args.threads} at once ({args.threads} threads)",
                        run.many_s,
                        run.many,
                    ),
                )
            ),
        ]
    )
    print(report)
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write(report + "\n")
    return 0

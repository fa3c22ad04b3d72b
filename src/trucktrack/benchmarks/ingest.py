"""`trucktrack bench ingest`: the real server over HTTP, measured in one run.

Phases, each bounded in time: (1) maximum sustained ingest with concurrent clients posting
batches of 100 points for 10,000 vehicles, (2) an open-loop paced run at 20,000 points/s, with
latency measured from each request's *scheduled* send time so a stalled server cannot hide its
queueing (no coordinated omission), (3) current-location reads. With `--trips N`, the first N
trucks are on active trips and drive along their planned routes; a last phase reads a sample
of those trips and fails the run unless route compliance placed each on its route (progress
and ETA).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec


class PhaseResult(msgspec.Struct):
    name: str
    seconds: float
    requests: int
    points: int
    statuses: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def points_per_s(self) -> float:
        return self.points / self.seconds if self.seconds else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="bench an already running server instead of starting one")
    parser.add_argument("--token", help="admin token for --url")
    parser.add_argument("--data-dir", help="data folder of the started server (default: temp)")
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100, help="points per request")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per ingest phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds")
    parser.add_argument("--paced-rate", type=float, default=20_000, help="points/s of phase 2")
    parser.add_argument("--read-duration", type=float, default=10.0, help="seconds")
    parser.add_argument(
        "--fences",
        type=int,
        default=0,
        help="active geofences to create (over HTTP) before the phases, as bench geofence makes",
    )
    parser.add_argument(
        "--trips",
        type=int,
        default=0,
        help="active trips to start (over HTTP) before the phases: the first N vehicles each on "
        "a trip with a 500-vertex planned route along the way it drives (route compliance)",
    )
    parser.add_argument("--markdown", help="append the results as a markdown section to FILE")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the started server, e.g. TRUCKTRACK_SQLITE_SYNCHRONOUS=NORMAL",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL:NAME=VALUE[,NAME=VALUE]",
        help="also run every phase against a server started with this environment, reported "
        "side by side with the default (repeatable); names without the TRUCKTRACK_ prefix set "
        "this command's options, e.g. '10k fences:fences=10000' or "
        "'normal:TRUCKTRACK_SQLITE_SYNCHRONOUS=NORMAL'",
    )


def main(args: argparse.Namespace) -> int:
    if args.url:
        if not args.token:
            print("--url needs --token", file=sys.stderr)
            return 2
        results = _run_phases(args.url, args.token, args)
    else:
        results = []
        for label, env, options in [("", {}, {}), *(_parse_variant(v) for v in args.variant)]:
            run_args = argparse.Namespace(**{**vars(args), **options})
            with _server(run_args, env) as (url, token):
                if url is None:
                    return 1
                for r in _run_phases(url, token, run_args):
                    results.append(msgspec.structs.replace(r, name=f"{label}{r.name}"))
    report = _report(results, args)
    print(report)
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write(report + "\n")
    lost = [r.name for r in results if r.name.endswith(TRIP_PHASE) and r.statuses["no progress"]]
    if lost:
        print(f"route compliance did not place every sampled trip: {lost}", file=sys.stderr)
        return 1
    return 0


def _parse_variant(text: str) -> tuple[str, dict[str, str], dict[str, int]]:
    label, _, assignments = text.partition(":")
    pairs = dict(item.split("=", 1) for item in assignments.split(",") if "=" in item)
    env = {k: v for k, v in pairs.items() if k.startswith("TRUCKTRACK_")}
    options = {k: int(v) for k, v in pairs.items() if not k.startswith("TRUCKTRACK_")}
    return f"[{label}] ", env, options


# --- the server under test ---------------------------------------------------------------------


@contextlib.contextmanager
def _server(args: argparse.Namespace, extra_env: dict[str, str]):  # type: ignore[no-untyped-def]
    own_dir = args.data_dir is None or bool(extra_env) or bool(args.fences) or bool(args.trips)
    data_dir = Path(tempfile.mkdtemp(prefix="trucktrack-bench-") if own_dir else args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = dict(os.environ, TRUCKTRACK_BOOTSTRAP_DEMO_TOKEN="false")
    env.update(item.split("=", 1) for item in args.server_env)
    env.update(extra_env)
    cli = [sys.executable, "-m", "trucktrack"]
    token = (
        subprocess.run(
            [
                *cli,
                "token",
                "create",
                "--data-dir",
                str(data_dir),
                "--fleet",
                "bench",
                "--role",
                "admin",
            ],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    log = open(data_dir / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not _wait_ready(url, proc, timeout_s=30):
            print(f"server did not start; see {data_dir / 'server.log'}", file=sys.stderr)
            yield None, None
            return
        if args.fences:
            started = time.monotonic()
            asyncio.run(_create_fences(url, token, args.fences))
            print(f"{args.fences} fences created in {time.monotonic() - started:.1f} s",
                  file=sys.stderr)  # fmt: skip
        if args.trips:
            started = time.monotonic()
            asyncio.run(_start_trips(url, token, args.trips, args.vehicles))
            print(f"{args.trips} trips started in {time.monotonic() - started:.1f} s",
                  file=sys.stderr)  # fmt: skip
        yield url, token
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _create_fences(url: str, token: str, n: int) -> None:
    """The fences of `trucktrack bench geofence` (same seed), through POST /geofences."""
    import aiohttp

    from trucktrack.benchmarks.geofence import _fences

    bodies = [
        msgspec.json.encode(
            {
                "name": f.name,
                "type": f.kind.value,
                "geometry": f.geometry,
                "radius_m": f.radius_m,
                "width_m": f.width_m,
                "rules": msgspec.to_builtins(f.rules),
            }
        )
        for f in _fences(n, random.Random(7))
    ]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker(share: list[bytes]) -> None:
            for body in share:
                async with session.post(url + "/geofences", data=body) as resp:
                    if resp.status != 201:
                        raise RuntimeError(f"fence not created: {resp.status} {await resp.text()}")

        await asyncio.gather(*(worker(bodies[i::16]) for i in range(16)))


async def _start_trips(url: str, token: str, n: int, vehicles: int) -> None:
    """Trips BT-i for the first `n` vehicles, each planned along the road its points will take
    (due east from where `_Batches` puts it, 500 vertices over 500 km), started 5 h ago."""
    import aiohttp

    starts = _Batches(vehicles, 1).coords
    started_at = time.time_ns() // 10**6 - 5 * 3_600_000
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def body(vid: int) -> bytes:
        lat, lng = starts[vid]
        per_km = 1 / (111.32 * math.cos(math.radians(lat)))
        line = [[lng + i * per_km, lat] for i in range(500)]
        place = {"lat": lat, "lng": lng}
        return msgspec.json.encode(
            {"trip_id": f"BT-{vid:05d}", "vehicle_id": f"BENCH-{vid:05d}", "pickup": place,
             "delivery": {"lat": lat, "lng": line[-1][0]},
             "planned_route": {"type": "LineString", "coordinates": line}}
        )  # fmt: skip

    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker(share: range) -> None:
            for vid in share:
                async with session.post(url + "/trips", data=body(vid)) as resp:
                    if resp.status != 201:
                        raise RuntimeError(f"trip not created: {resp.status} {await resp.text()}")
                start = {"trip_id": f"BT-{vid:05d}", "milestone": "trip_started",
                         "timestamp": started_at}  # fmt: skip
                async with session.post(url + "/delivery/milestone", json=start) as resp:
                    if resp.status != 201:
                        raise RuntimeError(f"trip not started: {resp.status}")

        await asyncio.gather(*(worker(range(i, n, 16)) for i in range(16)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url + "/healthz", timeout=1) as resp,
        ):
            if resp.status == 200:
                return True
        time.sleep(0.1)
    return False


# --- load --------------------------------------------------------------------------------------


SPEED_KMH = 52.5
FIX_INTERVAL_MS = 10_000
"""Device time between two fixes of one truck: each is 146 m further east (52.5 km/h)."""
DEVICE_TIME_MS = int(3.5 * 3_600_000)
"""How far device time may run from the start (4 h ago); past it, fixes come 1 ms apart in
place (a run that long would otherwise post points from the future)."""


class _Batches:
    """Request bodies for `vehicles` trucks, each driving due east (along its planned route,
    when on a trip) at the speed it reports, a fix every 10 s of device time; every point is
    new. Cheap to make: the client must not be the bottleneck."""

    def __init__(self, vehicles: int, batch: int) -> None:
        self.vehicles, self.batch = vehicles, batch
        rng = random.Random(7)
        self.base_ms = time.time_ns() // 10**6 - 4 * 3_600_000  # well inside the time window
        self.coords = [(rng.uniform(8.5, 32.0), rng.uniform(69.0, 88.5)) for _ in range(vehicles)]
        self.step_m = SPEED_KMH / 3.6 * FIX_INTERVAL_MS / 1000
        self.moving_fixes = DEVICE_TIME_MS // FIX_INTERVAL_MS
        self.k = 0

    def driven_km(self, vid: int) -> float:
        """How far east of its start truck `vid` was at its newest fix made so far."""
        last = (self.k + 1) * self.batch - 1  # request k holds points k * n + i, i < n
        newest = last - (last - vid) % self.vehicles
        if newest < self.batch:  # none yet
            return 0.0
        return min(newest // self.vehicles, self.moving_fixes) * self.step_m / 1000

    def next_body(self) -> bytes:
        self.k += 1
        k, n, v = self.k, self.batch, self.vehicles
        updates = []
        for i in range(n):
            vid = (k * n + i) % v
            fix = (k * n + i) // v  # this truck's how-many-th
            moved = min(fix, self.moving_fixes)
            ts = self.base_ms + moved * FIX_INTERVAL_MS + (fix - moved)
            lat, lng = self.coords[vid]
            lng += moved * self.step_m / (111_320 * math.cos(math.radians(lat)))
            updates.append(
                {"vehicle_id": f"BENCH-{vid:05d}", "lat": lat, "lng": lng, "timestamp": ts,
                 "speed": SPEED_KMH, "heading": 90.0, "trip_id": f"BT-{vid:05d}"}
            )  # fmt: skip
        return msgspec.json.encode({"updates": updates})


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1000


class _Tally:
    """Latencies, statuses and acknowledged points of one phase."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.points = 0

    async def post(self, session: Any, url: str, body: bytes, since: float) -> None:
        """POST one batch; latency counts from `since` (the scheduled time, when paced)."""
        import aiohttp

        try:
            async with session.post(url + "/tracking/gps", data=body) as resp:
                reply = await resp.read()
                self.statuses[str(resp.status)] += 1
                if resp.status == 200:
                    self.points += msgspec.json.decode(reply)["processed"]
        except aiohttp.ClientError:
            self.statuses["error"] += 1
        self.latencies.append(time.perf_counter() - since)

    async def get(self, session: Any, url: str) -> None:
        import aiohttp

        since = time.perf_counter()
        try:
            async with session.get(url) as resp:
                await resp.read()
                self.statuses[str(resp.status)] += 1
        except aiohttp.ClientError:
            self.statuses["error"] += 1
        self.latencies.append(time.perf_counter() - since)

    def result(self, name: str, seconds: float) -> PhaseResult:
        lat = sorted(self.latencies)
        return PhaseResult(
            name=name,
            seconds=seconds,
            requests=len(lat),
            points=self.points,
            statuses=dict(self.statuses),
            p50_ms=_percentile(lat, 0.50),
            p99_ms=_percentile(lat, 0.99),
            max_ms=lat[-1] * 1000 if lat else 0.0,
        )


async def _closed_loop(
    url: str, token: str, args: argparse.Namespace, batches: _Batches, seconds: float, name: str
) -> PhaseResult:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    tally = _Tally()
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        end = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < end:
                await tally.post(session, url, batches.next_body(), time.perf_counter())

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.clients)))
        return tally.result(name, time.perf_counter() - started)


async def _paced(url: str, token: str, args: argparse.Namespace, batches: _Batches) -> PhaseResult:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    tally = _Tally()
    interval = args.batch / args.paced_rate
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.perf_counter()
        tasks: list[asyncio.Task[None]] = []
        i = 0
        while True:
            scheduled = started + i * interval
            if scheduled - started >= args.duration:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(tally.post(session, url, batches.next_body(), scheduled))
            )
            i += 1
        await asyncio.wait(tasks, timeout=60)
        return tally.result(f"paced {args.paced_rate:.0f} points/s", time.perf_counter() - started)


async def _reads(url: str, token: str, args: argparse.Namespace, vehicles: int) -> PhaseResult:
    import aiohttp

    tally = _Tally()
    rng = random.Random(3)
    connector = aiohttp.TCPConnector(limit=args.clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        end = time.perf_counter() + args.read_duration

        async def client() -> None:
            while time.perf_counter() < end:
                vid = f"BENCH-{rng.randrange(vehicles):05d}"
                await tally.get(session, f"{url}/tracking/vehicle/{vid}/location")

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.clients)))
        return tally.result("current-location reads", time.perf_counter() - started)


COMPLIANCE_SAMPLE = 20
TRIP_PHASE = "trip reads: route progress"


async def _trip_reads(
    url: str, token: str, trips: int, batches: _Batches, timeout_s: float = 30
) -> PhaseResult:
    """Read a sample of the trips until each shows an ETA and progress along its route as far
    as its truck drove (the processors publish it every snapshot): statuses count `on route`
    and `no progress`."""
    import aiohttp

    tally = _Tally()
    step = max(1, trips // COMPLIANCE_SAMPLE)
    waiting = {f"BT-{vid:05d}" for vid in range(0, trips, step)[:COMPLIANCE_SAMPLE]}
    total = len(waiting)
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as session:
        while waiting and time.perf_counter() - started < timeout_s:
            for trip_id in sorted(waiting):
                since = time.perf_counter()
                async with session.get(f"{url}/trips/{trip_id}") as resp:
                    trip = msgspec.json.decode(await resp.read())
                tally.latencies.append(time.perf_counter() - since)
                progress = trip.get("progress") or {}
                driven = batches.driven_km(int(trip_id[3:]))
                along = progress.get("along_route_km", 0)
                if progress.get("eta") is not None and abs(along - driven) <= 0.5 + driven / 20:
                    waiting.discard(trip_id)
            if waiting:
                await asyncio.sleep(1)
    tally.statuses.update({"on route": total - len(waiting), "no progress": len(waiting)})
    return tally.result(TRIP_PHASE, time.perf_counter() - started)


def _run_phases(url: str, token: str, args: argparse.Namespace) -> list[PhaseResult]:
    import uvloop

    async def phases() -> list[PhaseResult]:
        batches = _Batches(args.vehicles, args.batch)
        if args.warmup > 0:
            await _closed_loop(url, token, args, batches, args.warmup, "warm-up")
        results = [
            await _closed_loop(
                url, token, args, batches, args.duration, f"max ingest, {args.clients} clients"
            )
        ]
        results.append(await _paced(url, token, args, batches))
        if args.read_duration > 0:
            results.append(await _reads(url, token, args, args.vehicles))
        if args.trips:
            results.append(await _trip_reads(url, token, min(args.trips, args.vehicles), batches))
        return results

    return uvloop.run(phases())


# --- report -------------------------------------------------------------------------------------


def _machine() -> str:
    mem_gib = 0.0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    return (
        f"{os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def _report(results: list[PhaseResult], args: argparse.Namespace) -> str:
    command = (
        "trucktrack bench ingest " + shlex.join(sys.argv[3:])
        if sys.argv[1:3] == ["bench", "ingest"]
        else "trucktrack bench ingest"
    )
    lines = [
        f"### bench ingest, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {_machine()}  ",
        f"Load: {args.vehicles} vehicles, batches of {args.batch} points; "
        "client and server share the machine",
        "",
        "| phase | seconds | requests/s | points/s | p50 ms | p99 ms | max ms | statuses |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items()))
        points = f"{r.points_per_s:,.0f}" if r.points else "-"
        lines.append(
            f"| {r.name} | {r.seconds:.1f} | {r.requests_per_s:,.0f} | {points} | "
            f"{r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | {statuses} |"
        )
    return "\n".join(lines) + "\n"

"""`trucktrack bench realtime`: live WebSocket delivery while points are being ingested.

Starts the real server, connects `--clients` WebSocket clients (1,000) that each track
`--per-client` vehicles (10; every vehicle watched by one client), then posts `--rate` points/s
(10,000) in batches of 100 on a fixed schedule for `--warmup` (3 s, not measured: the server
settles after the connection rush) then `--duration` seconds: every vehicle moves once a round,
and each point's device time is the moment it is sent. Each client records, for every update
it receives of a point sent after the warm-up, the time from that moment to its arrival (so the
figure includes HTTP, validation, the durable write, the hub and the WebSocket). The clients
and the load generator are one process, the measuring instrument: once connected it freezes
its heap out of the garbage collector, whose full collections would otherwise add their own
pauses to the figures. At the end, after a settle
time, every client's last position of every vehicle must be the last one posted: anything else
is counted as lost (updates in between may be coalesced by the 1 s rate limit: that is
intended, a map only needs the newest position).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from trucktrack.benchmarks.ingest import _machine, _percentile, _server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--per-client", type=int, default=10, help="vehicles each client tracks")
    parser.add_argument("--rate", type=float, default=10_000, help="points/s ingested")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of ingest")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of ingest before measuring")  # fmt: skip
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait at the end")
    parser.add_argument(
        "--timeline", action="store_true", help="also report when latency went over 60 ms"
    )
    parser.add_argument("--data-dir", help="data folder of the started server (default: temp)")
    parser.add_argument("--markdown", help="append the results as a markdown section to FILE")


class _Client:
    def __init__(self, vehicles: list[str]) -> None:
        self.vehicles = vehicles
        self.latest: dict[str, int] = {}
        self.latencies: list[float] = []
        self.sent_at: list[int] = []
        """The device time of each measured delivery, beside its latency (for --timeline)."""
        self.messages = 0


async def _watch(url: str, token: str, client: _Client, ready: asyncio.Event, stop: asyncio.Event,
                 connected: list[int], measured_from: list[int]) -> None:  # fmt: skip
    from websockets.asyncio.client import connect

    ws_url = url.replace("http://", "ws://", 1)
    async with connect(f"{ws_url}/tracking/ws?token={token}", max_queue=None) as ws:
        await ws.send(json.dumps({"action": "track", "vehicle_ids": client.vehicles}))
        await ws.recv()  # the snapshot
        connected[0] += 1
        if connected[0] == connected[1]:
            ready.set()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            now_ms = time.time_ns() / 1e6
            message = json.loads(raw)
            if message.get("type") != "location_update":
                continue
            measured = False
            for update in message["updates"]:
                ts = update["timestamp_ms"]
                client.latest[update["vehicle_id"]] = ts
                if ts >= measured_from[0]:
                    client.latencies.append(now_ms - ts)
                    client.sent_at.append(ts)
                    measured = True
            client.messages += measured


async def _run(url: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    n = args.clients * args.per_client
    vehicles = [f"LIVE-{i:06d}" for i in range(n)]
    clients = [
        _Client(vehicles[i * args.per_client : (i + 1) * args.per_client])
        for i in range(args.clients)
    ]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        # Every vehicle's first position, so that the snapshots are not empty.
        base_lat, base_lng = 20.0, 78.0
        for i in range(0, n, 1000):
            body = {"updates": [{"vehicle_id": v, "lat": base_lat, "lng": base_lng,
                                 "timestamp": time.time_ns() // 10**6 - 60_000}
                                for v in vehicles[i : i + 1000]]}  # fmt: skip
            async with session.post(url + "/tracking/gps", json=body) as resp:
                assert resp.status == 200, await resp.text()
        ready, stop = asyncio.Event(), asyncio.Event()
        connected = [0, len(clients)]
        measured_from = [2**62]  # device time of the first measured point, set after warm-up
        tasks = []
        started = time.perf_counter()
        for start in range(0, len(clients), 50):  # connect in waves, not all at once
            tasks += [
                asyncio.create_task(_watch(url, token, c, ready, stop, connected, measured_from))
                for c in clients[start : start + 50]
            ]
            await asyncio.sleep(0.05)
        await asyncio.wait_for(ready.wait(), timeout=120)
        connect_s = time.perf_counter() - started
        gc.collect()
        gc.freeze()

        batch = 100
        interval = batch / args.rate
        last_sent: dict[str, int] = {}
        post_latencies: list[float] = []
        post_sent_at: list[int] = []
        statuses: dict[int, int] = {}
        k = 0
        begin = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()

        async def post(body: bytes, since: float, measured: bool) -> None:
            async with session.post(url + "/tracking/gps", data=body) as resp:
                await resp.read()
                status = resp.status
            if measured:
                statuses[status] = statuses.get(status, 0) + 1
                post_latencies.append(time.perf_counter() - since)
                post_sent_at.append(int((time.time() - (time.perf_counter() - since)) * 1000))
            elif status != 200:
                statuses[status] = statuses.get(status, 0) + 1

        warm_k = int(args.warmup / interval)
        while (due := begin + k * interval) < begin + args.warmup + args.duration:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            now_ms = time.time_ns() // 10**6
            if k == warm_k:
                measured_from[0] = now_ms
                measure_begin = time.perf_counter()
            first = (k * batch) % n
            chosen = vehicles[first : first + batch]
            step = (k * batch) // n + 1
            updates = [{"vehicle_id": v, "lat": base_lat + step * 1e-4, "lng": base_lng,
                        "speed": 40.0, "timestamp": now_ms} for v in chosen]  # fmt: skip
            for v in chosen:
                last_sent[v] = now_ms
            task = asyncio.create_task(
                post(msgspec.json.encode({"updates": updates}), due, k >= warm_k)
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
            k += 1
        ingest_s = time.perf_counter() - measure_begin
        await asyncio.gather(*pending)
        await asyncio.sleep(args.settle)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    start_ms = measured_from[0]
    deliveries = _timeline(
        start_ms, ((t, x) for c in clients for t, x in zip(c.sent_at, c.latencies, strict=True))
    )
    posts = _timeline(start_ms, zip(post_sent_at, (x * 1000 for x in post_latencies), strict=True))
    latencies = sorted(x for c in clients for x in c.latencies)
    lost = sum(
        1 for c in clients for v in c.vehicles if v in last_sent and c.latest.get(v) != last_sent[v]
    )
    return {
        "connect_s": connect_s,
        "ingest_s": ingest_s,
        "points": (k - warm_k) * batch,
        "statuses": statuses,
        "post_p99_ms": _percentile(sorted(post_latencies), 0.99),
        "deliveries": len(latencies),
        "messages": sum(c.messages for c in clients),
        "p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        if latencies
        else 0.0,
        "max_ms": latencies[-1] if latencies else 0.0,
        "timeline": (deliveries, posts),
        "lost": lost,
        "watched": len(last_sent),
    }


def main(args: argparse.Namespace) -> int:
    args.fences, args.trips, args.server_env = 0, 0, []
    with _server(args, {}) as (url, token):
        if url is None:
            return 1
        r = asyncio.run(_run(url, token, args))
    command = shlex.join(["trucktrack", "bench", "realtime", *sys.argv[3:]])
    lines = [
        f"### bench realtime, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`  ",
        f"Machine: {_machine()}  ",
        f"Load: {args.clients} WebSocket clients x {args.per_client} vehicles; "
        f"{r['points']:,} points posted over {r['ingest_s']:.1f} s after {args.warmup:g} s "
        "of warm-up "
        f"({r['points'] / r['ingest_s']:,.0f} points/s, statuses {r['statuses']}, "
        f"POST p99 {r['post_p99_ms']:.1f} ms); clients connected in {r['connect_s']:.1f} s; "
        "client, server and load share the machine",
        "",
        "| deliveries | deliveries/s | messages | p50 ms | p99 ms | max ms | lost |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['deliveries']:,} | {r['deliveries'] / r['ingest_s']:,.0f} | {r['messages']:,} | "
        f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | "
        f"{r['lost']} of {r['watched']:,} |",
        "",
        f"Python {platform.python_version()}, {os.cpu_count()} cores. Latency: from a point's "
        "device time (its send time) to its update reaching the client; lost: vehicles whose "
        "last update a client got is not the last position posted.",
    ]
    if args.timeline:
        deliveries, posts = r["timeline"]
        lines += [
            "",
            "Worst latency (ms) per 250 ms of send time, seconds after the warm-up, where over "
            f"{SLOW_MS} ms:",
            f"deliveries: {_spots(deliveries)}",
            f"POST replies: {_spots(posts)}",
        ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write(report + "\n")
    return 0 if r["lost"] == 0 else 1


SLOW_MS = 60


def _timeline(start_ms: int, samples: Iterable[tuple[int, float]]) -> dict[int, float]:
    """The worst latency in each 250 ms of send time (bucket number from `start_ms`)."""
    worst: dict[int, float] = {}
    for sent_ms, latency in samples:
        bucket = (sent_ms - start_ms) // 250
        if latency > worst.get(bucket, 0.0):
            worst[bucket] = latency
    return worst


def _spots(worst: dict[int, float]) -> str:
    slow = [f"{b / 4:.2f}s {v:.0f}" for b, v in sorted(worst.items()) if v > SLOW_MS]
    return ", ".join(slow) if slow else "none"

"""Simulated trucks: plausible road-like tracks over India, posted to a running server.

Each truck leaves a city and drives straight road segments of a few km with gentle bends, turns
at junctions, changes speed smoothly and stops now and then (a dhaba, a toll plaza). The model
(`TruckSimulator`) is pure and deterministic for a seed; `run_simulation` posts its points.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from typing import TextIO

import msgspec

from trucktrack.domain.geo import EARTH_RADIUS_M

CITIES = (
    ("Delhi", 28.6139, 77.2090),
    ("Mumbai", 19.0760, 72.8777),
    ("Bengaluru", 12.9716, 77.5946),
    ("Chennai", 13.0827, 80.2707),
    ("Kolkata", 22.5726, 88.3639),
    ("Hyderabad", 17.3850, 78.4867),
    ("Pune", 18.5204, 73.8567),
    ("Ahmedabad", 23.0225, 72.5714),
    ("Jaipur", 26.9124, 75.7873),
    ("Nagpur", 21.1458, 79.0882),
    ("Lucknow", 26.8467, 80.9462),
    ("Indore", 22.7196, 75.8577),
)
# India's rough bounding box: trucks turn back before leaving it.
LAT_MIN, LAT_MAX, LNG_MIN, LNG_MAX = 8.5, 32.0, 69.0, 88.5


class _Truck:
    __slots__ = (
        "bend",
        "driver_id",
        "heading",
        "last_ts",
        "lat",
        "lng",
        "segment_left_m",
        "speed",
        "stop_left_s",
        "target_speed",
        "trip_id",
        "vehicle_id",
    )

    def __init__(self, vehicle_id: str, rng: random.Random) -> None:
        _, lat, lng = rng.choice(CITIES)
        self.vehicle_id = vehicle_id
        self.lat = lat + rng.uniform(-0.05, 0.05)
        self.lng = lng + rng.uniform(-0.05, 0.05)
        self.heading = rng.uniform(0, 360)
        self.speed = 0.0
        self.target_speed = rng.uniform(40, 70)
        self.segment_left_m = rng.uniform(1_000, 8_000)
        self.bend = rng.uniform(-0.02, 0.02)  # degrees of heading change per 100 m
        self.stop_left_s = 0.0
        self.trip_id = f"TRIP-{vehicle_id}-{rng.randrange(10**6):06d}"
        self.driver_id = f"DRV-{rng.randrange(10**5):05d}"
        self.last_ts = 0


class TruckSimulator:
    """N trucks; `step(dt, now_ms)` moves them all and returns one point dict per truck."""

    def __init__(self, vehicles: int, seed: int = 1, prefix: str = "TRK") -> None:
        self._rng = random.Random(seed)
        self.trucks = [_Truck(f"{prefix}-{i + 1:05d}", self._rng) for i in range(vehicles)]

    def step(self, dt_s: float, now_ms: int) -> list[dict[str, object]]:
        rng = self._rng
        points: list[dict[str, object]] = []
        for t in self.trucks:
            self._move(t, dt_s, rng)
            ts = max(now_ms, t.last_ts + 1)  # strictly increasing per vehicle
            t.last_ts = ts
            points.append(
                {
                    "vehicle_id": t.vehicle_id,
                    "lat": round(t.lat, 7),
                    "lng": round(t.lng, 7),
                    "timestamp": ts,
                    "speed": round(t.speed, 1),
                    "heading": round(t.heading % 360.0, 1) % 360.0,
                    "accuracy": round(rng.uniform(3, 15), 1),
                    "trip_id": t.trip_id,
                    "driver_id": t.driver_id,
                    "engine_status": t.speed > 0 or t.stop_left_s < 120,
                }
            )
        return points

    @staticmethod
    def _move(t: _Truck, dt_s: float, rng: random.Random) -> None:
        if t.stop_left_s > 0:
            t.stop_left_s = max(0.0, t.stop_left_s - dt_s)
            t.speed = 0.0
            return
        if rng.random() < dt_s / 3_600:  # about one stop per driving hour
            t.stop_left_s = rng.uniform(120, 2_400)
            t.speed = 0.0
            return
        # Speed eases toward a target that changes now and then (traffic, ghats, towns).
        if rng.random() < dt_s / 300:
            t.target_speed = rng.uniform(30, 80)
        max_change = 1.5 * dt_s * 3.6  # ~1.5 m/s^2 in km/h
        t.speed += max(-max_change, min(max_change, t.target_speed - t.speed))
        distance = t.speed / 3.6 * dt_s
        t.heading = (t.heading + t.bend * distance / 100) % 360.0
        t.segment_left_m -= distance
        if t.segment_left_m <= 0:  # a junction: turn, or carry on with a new bend
            t.heading = (t.heading + rng.choice((0, 0, 90, -90, 45, -45))) % 360.0
            t.segment_left_m = rng.uniform(1_000, 8_000)
            t.bend = rng.uniform(-0.02, 0.02)
        if not (LAT_MIN < t.lat < LAT_MAX and LNG_MIN < t.lng < LNG_MAX):
            t.heading = (t.heading + 180.0) % 360.0
        t.lat, t.lng = destination(t.lat, t.lng, t.heading, distance)


def destination(
    lat: float, lng: float, bearing_deg: float, distance_m: float
) -> tuple[float, float]:
    """The point `distance_m` away from (lat, lng) along `bearing_deg` on a sphere."""
    d = distance_m / EARTH_RADIUS_M
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(lat), math.radians(lng)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


class SimulationStats(msgspec.Struct):
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    http_errors: int = 0
    retries: int = 0


async def run_simulation(
    url: str,
    token: str,
    *,
    vehicles: int,
    interval_s: float,
    duration_s: float | None,
    batch_size: int = 100,
    concurrency: int = 8,
    seed: int = 1,
    out: TextIO = sys.stderr,
) -> SimulationStats:
    """Post every truck's point each `interval_s` seconds until `duration_s` (None: forever)."""
    import aiohttp

    sim = TruckSimulator(vehicles, seed=seed)
    stats = SimulationStats()
    started = time.monotonic()
    deadline = None if duration_s is None else started + duration_s
    gate = asyncio.Semaphore(concurrency)
    tty = out.isatty()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    endpoint = url.rstrip("/") + "/tracking/gps"

    async def post(session: aiohttp.ClientSession, body: bytes) -> None:
        async with gate:
            for attempt in range(8):
                stop = deadline is not None and time.monotonic() > deadline + 30
                try:
                    async with session.post(endpoint, data=body, headers=headers) as resp:
                        if resp.status == 200:
                            reply = await resp.json()
                            stats.accepted += reply["processed"] - reply["duplicates"]
                            stats.duplicates += reply["duplicates"]
                            stats.rejected += len(reply["rejected"])
                            return
                        stats.http_errors += 1
                        if resp.status not in (429, 503) or stop:
                            return
                        wait = float(resp.headers.get("Retry-After", "1"))
                except (aiohttp.ClientError, TimeoutError):
                    stats.http_errors += 1
                    if stop:
                        return
                    wait = min(10.0, 0.5 * 2**attempt)
                stats.retries += 1
                await asyncio.sleep(wait)

    last_step = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        pending: set[asyncio.Task[None]] = set()
        while deadline is None or time.monotonic() < deadline:
            now = time.monotonic()
            points = sim.step(
                now - last_step if stats.sent else interval_s, time.time_ns() // 10**6
            )
            last_step = now
            for k in range(0, len(points), batch_size):
                chunk = points[k : k + batch_size]
                stats.sent += len(chunk)
                task = asyncio.create_task(post(session, msgspec.json.encode({"updates": chunk})))
                pending.add(task)
                task.add_done_callback(pending.discard)
            _progress(out, tty, stats, time.monotonic() - started)
            next_at = now + interval_s
            sleep = next_at - time.monotonic()
            if deadline is not None:
                sleep = min(sleep, deadline - time.monotonic())
            if sleep > 0:
                await asyncio.sleep(sleep)
        if pending:
            await asyncio.wait(pending, timeout=60)
    _progress(out, tty, stats, time.monotonic() - started, final=True)
    return stats


def _progress(
    out: TextIO, tty: bool, s: SimulationStats, elapsed: float, final: bool = False
) -> None:
    line = (
        f"{elapsed:7.1f}s  sent {s.sent}  accepted {s.accepted}  duplicates {s.duplicates}  "
        f"rejected {s.rejected}  {s.sent / max(elapsed, 1e-9):.0f} points/s  errors {s.http_errors}"
    )
    if tty:
        out.write("\r" + line + ("\n" if final else ""))
    else:
        out.write(line + "\n")
    out.flush()

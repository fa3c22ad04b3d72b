"""SIGKILL the server while clients post: every acknowledged point must be there after a restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, create_token, history, now_ms, point

CLIENTS = 6
VEHICLES_PER_CLIENT = 5
POINTS_PER_VEHICLE = 4  # per batch: 20 points
POST_FOR_S = 3.0
MIN_ACKED_POINTS = 1000


class Client(threading.Thread):
    """Posts batches of new points for its own vehicles until told to stop; keeps what was
    acknowledged (200) and counts what was not (connection errors, 503)."""

    def __init__(self, n: int, url: str, token: str, base_ms: int, stop: threading.Event) -> None:
        super().__init__(name=f"crash-client-{n}")
        self.vehicles = [f"C{n}-{i}" for i in range(VEHICLES_PER_CLIENT)]
        self.url, self.token, self.base_ms, self.stop = url, token, base_ms, stop
        self.acked: list[dict[str, Any]] = []
        self.unacked_batches = 0
        self.unexpected: list[str] = []

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        k = 0
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as c:
            while not self.stop.is_set():
                batch = [
                    point(v, self.base_ms + k * POINTS_PER_VEHICLE + j, trip_id=f"CT-{v}",
                          lat=(k % 80) + j / 10, speed=k % 100)
                    for v in self.vehicles
                    for j in range(POINTS_PER_VEHICLE)
                ]  # fmt: skip
                k += 1
                try:
                    r = c.post("/tracking/gps", json={"updates": batch})
                except httpx.HTTPError:
                    self.unacked_batches += 1  # may or may not be stored
                    continue
                if r.status_code == 200 and r.json()["processed"] == len(batch):
                    self.acked.extend(batch)
                elif r.status_code == 503:
                    self.unacked_batches += 1
                else:
                    self.unexpected.append(f"{r.status_code} {r.text[:200]}")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_acknowledged_points_survive_sigkill(tmp_path: Path) -> None:
    """GIVEN 6 clients posting unique points as fast as they can for ~3 s
    WHEN the server is SIGKILLed while they post, then restarted on the same data folder
    THEN every acknowledged point is in its trip's history with the posted values, and each
    vehicle's current location is its newest stored point, no older than its newest acked one."""
    server = Server(tmp_path / "data").start()
    try:
        token = create_token(server.data_dir, "crash", "admin")
        stop = threading.Event()
        base = now_ms() - 3_600_000
        clients = [Client(n, server.url, token, base, stop) for n in range(CLIENTS)]
        for c in clients:
            c.start()
        time.sleep(POST_FOR_S)  # the clients post meanwhile; this is the traffic's duration
        server.kill()  # while the clients are still posting
        stop.set()
        for c in clients:
            c.join(timeout=30)
        assert not any(c.is_alive() for c in clients)
        assert [u for c in clients for u in c.unexpected] == []
        acked = [p for c in clients for p in c.acked]
        assert len(acked) >= MIN_ACKED_POINTS, f"only {len(acked)} points acknowledged"
        assert sum(c.unacked_batches for c in clients) >= 1, "the kill hit no request"

        server.start()
        newest_acked: dict[str, int] = {}
        for p in acked:
            newest_acked[p["vehicle_id"]] = max(
                newest_acked.get(p["vehicle_id"], 0), p["timestamp"]
            )
        with server.client(token) as c:
            for vehicle, newest in newest_acked.items():
                stored = {p["timestamp_ms"]: p for p in history(c, f"CT-{vehicle}")}
                mine = [p for p in acked if p["vehicle_id"] == vehicle]
                lost = [p["timestamp"] for p in mine if p["timestamp"] not in stored]
                assert not lost, f"{vehicle}: {len(lost)} acknowledged points lost"
                for p in mine:
                    s = stored[p["timestamp"]]
                    assert (s["vehicle_id"], s["lat"], s["speed"]) == (
                        vehicle, p["lat"], p["speed"],
                    )  # fmt: skip
                loc = c.get(f"/tracking/vehicle/{vehicle}/location")
                assert loc.status_code == 200, loc.text
                assert loc.json()["timestamp_ms"] >= newest
                assert loc.json()["timestamp_ms"] == max(stored)
    finally:
        server.stop()

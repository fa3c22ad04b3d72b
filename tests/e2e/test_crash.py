"""SIGKILL the server while clients post: every acknowledged point must be there after a restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, create_token, now_ms, point

CLIENTS = 6
VEHICLES_PER_CLIENT = 5


@pytest.mark.slow
def test_acknowledged_points_survive_sigkill(tmp_path: Path) -> None:
    server = Server(tmp_path / "data").start()
    token = create_token(server.data_dir, "crash", "admin")
    acked: list[list[dict[str, object]]] = [[] for _ in range(CLIENTS)]
    killed = threading.Event()
    base = now_ms() - 3_600_000

    def client(n: int) -> None:
        vehicles = [f"C{n}-{i}" for i in range(VEHICLES_PER_CLIENT)]
        k = 0
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                          timeout=10) as c:  # fmt: skip
            while not killed.is_set():
                k += 1
                batch = [point(v, base + k, trip_id=f"CT-{v}", lat=k % 80) for v in vehicles]
                try:
                    r = c.post("/tracking/gps", json={"updates": batch})
                except httpx.HTTPError:
                    continue  # not acknowledged: may or may not be stored
                if r.status_code == 200:
                    assert r.json()["processed"] == len(batch)
                    acked[n].extend(batch)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while sum(map(len, acked)) < 3000 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # while the clients are still posting
    killed.set()
    for t in threads:
        t.join(timeout=30)
    points = [p for per_client in acked for p in per_client]
    assert len(points) >= 3000, "the clients did not get enough acknowledgements before the kill"

    server.start()  # same data folder
    try:
        with server.client(token) as c:
            newest: dict[str, int] = {}
            for p in points:
                newest[p["vehicle_id"]] = max(newest.get(p["vehicle_id"], 0), p["timestamp"])
            for vehicle, newest_acked in newest.items():
                stored = _all_points(c, f"CT-{vehicle}")
                acked_ts = {p["timestamp"] for p in points if p["vehicle_id"] == vehicle}
                stored_ts = {p["timestamp_ms"] for p in stored}
                assert acked_ts <= stored_ts, f"{vehicle}: lost {len(acked_ts - stored_ts)}"
                loc = c.get(f"/tracking/vehicle/{vehicle}/location").json()
                assert loc["timestamp_ms"] >= newest_acked
                assert loc["timestamp_ms"] == max(stored_ts)
    finally:
        server.stop()


def _all_points(c: httpx.Client, trip: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    cursor = None
    for _ in range(100):
        params: dict[str, object] = {"limit": 10_000}
        if cursor:
            params["cursor"] = cursor
        body = c.get(f"/tracking/trip/{trip}/history", params=params).json()
        out += body["points"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("history did not end")

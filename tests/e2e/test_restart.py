"""Stopping with SIGTERM and starting again on the same data folder keeps everything."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.e2e.conftest import (
    Server,
    assert_error,
    create_token,
    history,
    now_ms,
    point,
    post_ok,
)


def test_data_tokens_and_ownership_survive_a_sigterm_restart(tmp_path: Path) -> None:
    """GIVEN points of two fleets and their tokens WHEN the server is stopped with SIGTERM and
    started again THEN the same tokens work, history and locations are unchanged, a vehicle still
    belongs to its first fleet, and a trip continues where it stopped."""
    server = Server(tmp_path / "data").start()
    try:
        token_a = create_token(server.data_dir, "fa", "admin")
        token_b = create_token(server.data_dir, "fb", "admin")
        t = now_ms() - 60_000
        with server.client(token_a) as a:
            post_ok(a, *(point("RV-1", t + i, trip_id="RT-1", lat=i) for i in range(10)))
        with server.client(token_b) as b:
            post_ok(b, point("RV-B", t, trip_id="RT-1"))
        status = server.stop(grace_s=10)
        assert status is not None, "SIGTERM did not stop the server within 10 s"
        assert status in (0, -signal.SIGTERM), f"exit status {status}"

        server.start()
        with server.client(token_a) as a, server.client(token_b) as b:
            assert [p["lat"] for p in history(a, "RT-1")] == [float(i) for i in range(10)]
            assert a.get("/tracking/vehicle/RV-1/location").json()["timestamp_ms"] == t + 9
            assert [p["vehicle_id"] for p in history(b, "RT-1")] == ["RV-B"]
            r = b.post("/tracking/gps", json={"updates": [point("RV-1", t + 100)]})
            assert_error(r, 403, "forbidden")
            post_ok(a, point("RV-1", t + 10, trip_id="RT-1", lat=10))
            assert len(history(a, "RT-1")) == 11
            again = a.post("/tracking/gps", json={"updates": [point("RV-1", t, trip_id="RT-1")]})
            assert again.json() == {"processed": 1, "duplicates": 1, "rejected": []}
        with httpx.Client(base_url=server.url) as anonymous:
            assert anonymous.get("/healthz").status_code == 200
    finally:
        server.stop()


def test_sigterm_closes_the_store_cleanly(tmp_path: Path) -> None:
    """After SIGTERM the writer was drained and every connection closed; SQLite then deletes the
    WAL file, so none is left behind."""
    server = Server(tmp_path / "data").start()
    try:
        token = create_token(server.data_dir, "fa", "admin")
        with server.client(token) as a:
            post_ok(a, point("CL-1", now_ms() - 10))
        server.stop()
        assert not (server.data_dir / "trucktrack.db-wal").exists()
    finally:
        server.stop()


def test_an_active_trip_keeps_its_points_after_a_restart(tmp_path: Path) -> None:
    """A trip started before a restart still takes its truck's points after it, and a trip
    killed mid-way (SIGKILL right after the milestone's reply) has kept the milestone."""
    server = Server(tmp_path / "data").start()
    try:
        token = create_token(server.data_dir, "fa", "admin")
        body = {"trip_id": "RT-9", "vehicle_id": "RV-9", "pickup": {"lat": 18.5, "lng": 73.8},
                "delivery": {"lat": 18.6, "lng": 73.9}}  # fmt: skip
        t = now_ms() - 60_000
        with server.client(token) as a:
            assert a.post("/trips", json=body).status_code == 201
            r = a.post("/delivery/milestone", json={"trip_id": "RT-9", "milestone":
                                                     "trip_started", "timestamp": t})  # fmt: skip
            assert r.status_code == 201
        server.kill()
        server.start()
        with server.client(token) as a:
            assert a.get("/trips/RT-9").json()["status"] == "active"
            post_ok(a, point("RV-9", t + 1000))
            assert len(history(a, "RT-9")) == 1
    finally:
        server.stop()

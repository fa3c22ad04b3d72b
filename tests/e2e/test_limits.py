"""Configured limits on a server of its own: batch size, body size, time window, location TTL,
the write-queue bound (503 + Retry-After) and the in-flight request bound."""

from __future__ import annotations

import gzip
import json
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    DAY_MS,
    HOUR_MS,
    JSON,
    Server,
    assert_error,
    create_token,
    history,
    metric,
    now_ms,
    point,
    post_ok,
    run_cli,
    wait_for,
)

MAX_INFLIGHT = 3
LIMITS = {
    "TRUCKTRACK_MAX_BATCH_POINTS": "5",
    "TRUCKTRACK_MAX_BODY_BYTES": "2048",
    "TRUCKTRACK_MAX_PENDING_POINTS": "1",
    "TRUCKTRACK_MAX_INFLIGHT_REQUESTS": str(MAX_INFLIGHT),
    "TRUCKTRACK_RETENTION_DAYS": "2",
    "TRUCKTRACK_MAX_FUTURE_S": "60",
    "TRUCKTRACK_LOCATION_TTL_H": "1",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A server with small limits and an admin token for it."""
    srv = Server(tmp_path_factory.mktemp("limits") / "data", env=LIMITS).start()
    try:
        yield srv, create_token(srv.data_dir, "lim", "admin")
    finally:
        srv.stop()


@pytest.fixture
def c(limited: tuple[Server, str]) -> Iterator[httpx.Client]:
    srv, token = limited
    with srv.client(token) as client:
        yield client


def test_the_batch_limit_is_configurable(c: httpx.Client, uid: str) -> None:
    t = now_ms() - 1000
    batch = [point(f"BL-{uid}", t + i) for i in range(6)]
    assert_error(c.post("/tracking/gps", json={"updates": batch}), 413, "payload_too_large")
    assert post_ok(c, *batch[:5])["processed"] == 5


def test_the_body_limit_is_configurable(c: httpx.Client, uid: str) -> None:
    """Over 2048 bytes is 413 whether sent plain or gzipped; a small gzip body is fine."""
    t = now_ms() - 1000
    fat = {"updates": [point(f"BB-{uid}", t, padding="x" * 2100)]}
    assert_error(c.post("/tracking/gps", json=fat), 413, "payload_too_large")
    packed = gzip.compress(json.dumps(fat).encode())
    assert len(packed) < 2048
    r = c.post("/tracking/gps", content=packed, headers={**JSON, "Content-Encoding": "gzip"})
    assert_error(r, 413, "payload_too_large")
    small = gzip.compress(json.dumps({"updates": [point(f"BB-{uid}", t)]}).encode())
    r = c.post("/tracking/gps", content=small, headers={**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["processed"] == 1, r.text


def test_retention_and_future_skew_are_configurable(c: httpx.Client, uid: str) -> None:
    """With 2 days of retention and 60 s of skew: 3 days old and 2 min ahead are rejected."""
    v, now = f"TW-{uid}", now_ms()
    r = c.post(
        "/tracking/gps",
        json={
            "updates": [
                point(v, now - 3 * DAY_MS),
                point(v, now - 47 * HOUR_MS, trip_id=v),
                point(v, now + 120_000),
                point(v, now + 30_000, trip_id=v),
            ]
        },
    )
    assert r.status_code == 200
    rejected = {x["index"]: x["reason"] for x in r.json()["rejected"]}
    assert sorted(rejected) == [0, 2] and r.json()["processed"] == 2
    assert "retention" in rejected[0] and "future" in rejected[2]
    assert [p["timestamp_ms"] for p in history(c, v)] == [now - 47 * HOUR_MS, now + 30_000]


def test_the_location_ttl_is_configurable(c: httpx.Client, uid: str) -> None:
    """With a 1 h TTL a vehicle last seen 2 h ago has no current location, but has history."""
    v, ts = f"TTL-{uid}", now_ms() - 2 * HOUR_MS
    post_ok(c, point(v, ts, trip_id=v))
    assert_error(c.get(f"/tracking/vehicle/{v}/location"), 404, "not_found")
    assert c.post("/tracking/vehicles/bulk", json={"vehicle_ids": [v]}).json() == {
        "locations": {},
        "missing": [v],
    }
    assert [p["timestamp_ms"] for p in history(c, v)] == [ts]


def test_maintenance_deletes_points_past_retention(
    limited: tuple[Server, str], c: httpx.Client, uid: str
) -> None:
    """GIVEN a point accepted 1.5 s before it leaves the 2-day retention, and one 47 h old
    WHEN `trucktrack maintenance` runs after the first has aged out
    THEN that one is gone (its trip is 404) and the other is still in its trip's history."""
    srv, _ = limited
    now = now_ms()
    old_ts, kept_ts = now - 2 * DAY_MS + 1500, now - 47 * HOUR_MS
    post_ok(c, point(f"RET-{uid}", old_ts, trip_id=f"OLD-{uid}"))
    post_ok(c, point(f"RET-{uid}", kept_ts, trip_id=f"KEPT-{uid}"))
    wait_for(lambda: now_ms() > old_ts + 2 * DAY_MS + 100, what="the point to age out")
    out = run_cli("maintenance", "--data-dir", str(srv.data_dir), env=LIMITS)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["deleted_hot_points"] >= 1
    assert_error(c.get(f"/tracking/trip/OLD-{uid}/history"), 404, "not_found")
    assert [p["timestamp_ms"] for p in history(c, f"KEPT-{uid}")] == [kept_ts]


def _queued_points(c: httpx.Client) -> float:
    return metric(c.get("/metrics").text, "gps_write_queue_points")


def test_a_full_write_queue_answers_503_with_retry_after(
    limited: tuple[Server, str], c: httpx.Client, uid: str
) -> None:
    """GIVEN the database write-locked by another process, so a first batch waits in the queue
    WHEN a second batch arrives past TRUCKTRACK_MAX_PENDING_POINTS=1
    THEN it gets 503 `overloaded` with Retry-After and is not stored; once the lock goes the first
    batch is acknowledged, and retrying the second one succeeds."""
    srv, token = limited
    t = now_ms() - 1000
    first = [point(f"Q1-{uid}", t + i, trip_id=f"Q1-{uid}") for i in range(3)]
    second = [point(f"Q2-{uid}", t)]
    overloaded_before = metric(c.get("/metrics").text, "ingest_overloaded_total")
    replies: dict[str, httpx.Response] = {}

    def post_first() -> None:
        with srv.client(token) as other:
            replies["first"] = other.post("/tracking/gps", json={"updates": first})

    lock = sqlite3.connect(Path(srv.data_dir) / "trucktrack.db", isolation_level=None, timeout=10)
    thread = threading.Thread(target=post_first)
    try:
        lock.execute("BEGIN IMMEDIATE")
        thread.start()
        wait_for(lambda: _queued_points(c) == 3, what="the first batch to wait for the disk")
        r = c.post("/tracking/gps", json={"updates": second})
        assert_error(r, 503, "overloaded")
        assert r.headers["Retry-After"] == "1"
        assert "first" not in replies  # still waiting: not acknowledged before it is durable
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        thread.join(timeout=30)
    assert replies["first"].status_code == 200, replies["first"].text
    assert replies["first"].json() == {"processed": 3, "duplicates": 0, "rejected": []}
    assert len(history(c, f"Q1-{uid}")) == 3
    assert_error(c.get(f"/tracking/vehicle/Q2-{uid}/location"), 404, "not_found")
    after = c.get("/metrics").text
    assert metric(after, "ingest_overloaded_total") == overloaded_before + 1
    assert metric(after, "gps_write_queue_points") == 0
    assert post_ok(c, *second)["processed"] == 1


def _stalled_request(srv: Server, token: str) -> socket.socket:
    """A POST whose body never finishes arriving: it stays in flight until the socket closes."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(
        b"POST /tracking/gps HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    return s


def test_too_many_requests_in_flight_answer_503_until_they_finish(
    limited: tuple[Server, str],
) -> None:
    """GIVEN as many stalled requests as TRUCKTRACK_MAX_INFLIGHT_REQUESTS
    THEN any other request gets 503 `overloaded` with Retry-After; once they go, 200 again."""
    srv, token = limited
    stalled = [_stalled_request(srv, token) for _ in range(MAX_INFLIGHT)]
    try:
        shed = wait_for(
            lambda: (r := httpx.get(srv.url + "/healthz")).status_code == 503 and r,
            what="the in-flight limit to be reached",
        )
        assert_error(shed, 503, "overloaded")
        assert shed.headers["Retry-After"] == "1"
    finally:
        for s in stalled:
            s.close()
    wait_for(
        lambda: httpx.get(srv.url + "/healthz").status_code == 200,
        what="the stalled requests to be dropped",
    )


def test_many_idle_keepalive_connections_do_not_break_the_error_contract(
    limited: tuple[Server, str],
) -> None:
    """GIVEN 4 x MAX_INFLIGHT idle keep-alive connections (no request in flight)
    THEN a new request is served (200) or shed with the JSON envelope and Retry-After."""
    srv, _ = limited
    idle: list[socket.socket] = []
    try:
        for _ in range(4 * MAX_INFLIGHT - 1):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            idle.append(s)
        r = httpx.get(srv.url + "/healthz")
        if r.status_code != 200:
            assert_error(r, 503, "overloaded")
            assert r.headers["Retry-After"]
    finally:
        for s in idle:
            s.close()
        wait_for(lambda: httpx.get(srv.url + "/healthz").status_code == 200, what="recovery")

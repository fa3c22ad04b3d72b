"""Live tracking over the real WebSocket endpoint, with a real client (`websockets`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import Server, create_token, metric, now_ms, post_ok, wait_for
from trucktrack.simulation import destination

PUNE = (18.5204, 73.8567)


def ws(server: Server, token: str | None, **kwargs: Any) -> ClientConnection:
    query = f"?token={token}" if token else ""
    return connect(f"ws://127.0.0.1:{server.port}/tracking/ws{query}", **kwargs)


def ask(conn: ClientConnection, **message: object) -> dict[str, Any]:
    conn.send(json.dumps(message))
    return next_message(conn)


def next_message(conn: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(conn.recv(timeout=timeout))
    return reply


def nothing_within(conn: ClientConnection, seconds: float) -> bool:
    try:
        conn.recv(timeout=seconds)
    except TimeoutError:
        return True
    return False


def at(vehicle: str, metres_east: float = 0, **extra: object) -> dict[str, object]:
    lat, lng = destination(*PUNE, 90, metres_east)
    return {"vehicle_id": vehicle, "lat": lat, "lng": lng, "timestamp": now_ms(), **extra}


@pytest.fixture
def fleet(server: Server, uid: str) -> Iterator[tuple[str, httpx.Client]]:
    token = create_token(server.data_dir, f"live-{uid}", "admin")
    with server.client(token) as client:
        yield token, client


def test_track_gives_a_snapshot_then_only_what_changed(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    post_ok(c, at(f"A-{uid}", speed=40, trip_id=f"T-{uid}"), at(f"B-{uid}", 500))
    with ws(server, token) as conn:
        snap = ask(conn, action="track", vehicle_ids=[f"A-{uid}", f"NOPE-{uid}"])
        assert snap["type"] == "snapshot" and snap["action"] == "track"
        [a] = snap["vehicles"]
        assert a["vehicle_id"] == f"A-{uid}" and a["speed"] == 40 and a["trip_id"] == f"T-{uid}"
        moved = at(f"A-{uid}", 100, speed=40, trip_id=f"T-{uid}")
        post_ok(c, moved, at(f"B-{uid}", 600))  # B is not tracked
        update = next_message(conn)
        assert update["type"] == "location_update"
        [delta] = update["updates"]
        assert set(delta) == {"vehicle_id", "timestamp_ms", "lat", "lng"}  # speed, trip same
        assert delta["lng"] == pytest.approx(moved["lng"])
        assert ask(conn, action="untrack", vehicle_ids=[f"A-{uid}"])["type"] == "untracked"
        time.sleep(1.1)  # past the rate limit, so only the untrack can keep it quiet
        post_ok(c, at(f"A-{uid}", 200))
        assert nothing_within(conn, 1.5)


def test_updates_are_rate_limited_and_the_newest_wins(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    vehicle = f"R-{uid}"
    post_ok(c, at(vehicle))
    with ws(server, token) as conn:
        ask(conn, action="track", vehicle_ids=[vehicle])
        base = now_ms()
        for i in range(1, 6):  # five fixes within ~100 ms
            post_ok(c, {**at(vehicle, 10 * i), "timestamp": base + i})
        first = next_message(conn)["updates"]
        assert len(first) == 1
        started = time.monotonic()
        second = next_message(conn)["updates"]
        assert time.monotonic() - started > 0.5  # held back by the 1 s per-vehicle limit
        assert second[0]["timestamp_ms"] == base + 5  # the newest, the others coalesced
        assert nothing_within(conn, 1.5)


def test_a_map_area_gets_its_vehicles_thinned_at_low_zoom(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    post_ok(c, at(f"N1-{uid}"), at(f"N2-{uid}", 300), at(f"FAR-{uid}", 80_000))
    box = [PUNE[1] - 0.05, PUNE[0] - 0.05, PUNE[1] + 0.05, PUNE[0] + 0.05]
    with ws(server, token) as conn:
        near = ask(conn, action="track_area", bbox=box, zoom=15)
        assert {v["vehicle_id"] for v in near["vehicles"]} == {f"N1-{uid}", f"N2-{uid}"}
        far = ask(conn, action="track_area", bbox=box, zoom=5)  # replaces the area
        assert len(far["vehicles"]) == 1  # 300 m apart: one map cell at zoom 5
        assert ask(conn, action="untrack_area")["type"] == "untracked_area"
    with ws(server, token) as conn:
        ask(conn, action="track_area", bbox=box, zoom=15)
        post_ok(c, at(f"IN-{uid}", 1000))  # a vehicle coming into view
        assert next_message(conn)["updates"][0]["vehicle_id"] == f"IN-{uid}"


def test_a_stale_truck_never_hides_a_fresh_one_in_its_cell(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    stale, fresh = f"OLD-{uid}", f"NEW-{uid}"
    post_ok(c, {**at(stale), "timestamp": now_ms() - 25 * 3_600_000})  # over the 24 h TTL
    post_ok(c, at(fresh, 300))
    box = [PUNE[1] - 0.05, PUNE[0] - 0.05, PUNE[1] + 0.05, PUNE[0] + 0.05]
    with ws(server, token) as conn:
        snap = ask(conn, action="track_area", bbox=box, zoom=5)  # one cell for both
        assert [v["vehicle_id"] for v in snap["vehicles"]] == [fresh]
        assert snap["truncated"] is False
        for i in range(2):
            post_ok(c, at(fresh, 350 + 50 * i))
            [update] = next_message(conn)["updates"]
            assert update["vehicle_id"] == fresh


def test_an_area_shows_the_newest_truck_of_each_cell(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    base = now_ms() - 60_000
    trucks = [f"T{i}-{uid}" for i in range(5)]
    post_ok(c, *({**at(v, 100 * i), "timestamp": base + 1000 * i} for i, v in enumerate(trucks)))
    box = [PUNE[1] - 0.05, PUNE[0] - 0.05, PUNE[1] + 0.05, PUNE[0] + 0.05]
    with ws(server, token) as conn:
        snap = ask(conn, action="track_area", bbox=box, zoom=5)
        assert [v["vehicle_id"] for v in snap["vehicles"]] == [trucks[-1]]


def test_a_truck_leaving_the_area_is_announced_and_comes_back_in_full(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    truck = f"OUT-{uid}"
    post_ok(c, at(truck, speed=30, trip_id=f"OT-{uid}"))
    box = [PUNE[1] - 0.05, PUNE[0] - 0.05, PUNE[1] + 0.05, PUNE[0] + 0.05]
    with ws(server, token) as conn:
        snap = ask(conn, action="track_area", bbox=box, zoom=15)
        assert [v["vehicle_id"] for v in snap["vehicles"]] == [truck]
        post_ok(c, at(truck, 20_000, speed=30, trip_id=f"OT-{uid}"))  # 20 km east: outside
        assert next_message(conn) == {"type": "left_area", "vehicle_ids": [truck]}
        post_ok(c, at(truck, 30_000, speed=30, trip_id=f"OT-{uid}"))  # still outside: quiet
        assert nothing_within(conn, 1.2)
        post_ok(c, at(truck, 100, speed=30, trip_id=f"OT-{uid}"))  # back inside
        [update] = next_message(conn)["updates"]
        assert update["speed"] == 30 and update["trip_id"] == f"OT-{uid}"  # all fields again


def test_a_trip_is_followed_and_its_alerts_pushed(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    trip, vehicle = f"TRIP-{uid}", f"V-{uid}"
    post_ok(c, at(vehicle, trip_id=trip))
    with ws(server, token) as conn:
        snap = ask(conn, action="track_trip", trip_id=trip)
        assert [v["vehicle_id"] for v in snap["vehicles"]] == [vehicle]
        r = c.post("/tracking/emergency", json={"vehicle_id": vehicle, "trip_id": trip})
        assert r.status_code == 201
        pushed = next_message(conn)
        assert pushed["type"] == "alert" and pushed["alert"]["alert_id"] == r.json()["alert_id"]
        # A processor alert comes through the writer: 120 km/h for 40 s (newer fixes than the
        # first, so the processors take them: a little ahead of the clock, as allowed).
        start = now_ms() + 1000
        post_ok(c, *({**at(vehicle, 330 * i, speed=120, trip_id=trip), "timestamp": start
                      + 10_000 * i} for i in range(5)))  # fmt: skip
        kinds = set()
        deadline = time.monotonic() + 5
        while "speeding" not in kinds and time.monotonic() < deadline:
            message = next_message(conn)
            if message["type"] == "alert":
                kinds.add(message["alert"]["type"])
        assert "speeding" in kinds


def test_no_fleet_ever_sees_another_fleets_vehicles(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    other = create_token(server.data_dir, f"spy-{uid}", "admin")
    vehicle = f"SECRET-{uid}"
    post_ok(c, at(vehicle, trip_id=f"ST-{uid}"))
    box = [PUNE[1] - 0.05, PUNE[0] - 0.05, PUNE[1] + 0.05, PUNE[0] + 0.05]
    with ws(server, other) as spy:
        assert ask(spy, action="track", vehicle_ids=[vehicle])["vehicles"] == []
        assert ask(spy, action="track_trip", trip_id=f"ST-{uid}")["vehicles"] == []
        area = ask(spy, action="track_area", bbox=box, zoom=15)
        assert vehicle not in {v["vehicle_id"] for v in area["vehicles"]}
        post_ok(c, at(vehicle, 50, trip_id=f"ST-{uid}"))
        c.post("/tracking/emergency", json={"vehicle_id": vehicle})
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                message = next_message(spy, timeout=0.5)
            except TimeoutError:
                continue
            assert vehicle not in json.dumps(message), message


def test_a_vehicle_limited_token_only_gets_its_vehicles(server: Server, uid: str) -> None:
    admin = create_token(server.data_dir, f"lim-{uid}", "admin")
    mine, theirs = f"MINE-{uid}", f"THEIRS-{uid}"
    limited = create_token(server.data_dir, f"lim-{uid}", "viewer", mine)
    with server.client(admin) as c, ws(server, limited) as conn:
        post_ok(c, at(mine), at(theirs, 100))
        snap = ask(conn, action="track", vehicle_ids=[mine, theirs])
        assert [v["vehicle_id"] for v in snap["vehicles"]] == [mine]
        box = [PUNE[1] - 0.05, PUNE[0] - 0.05, PUNE[1] + 0.05, PUNE[0] + 0.05]
        area = ask(conn, action="track_area", bbox=box, zoom=15)
        assert {v["vehicle_id"] for v in area["vehicles"]} <= {mine}


@pytest.mark.parametrize(
    "message, code",
    [
        ("not json", "bad_request"),
        ('{"action": "fly"}', "bad_request"),
        ('{"action": "track"}', "bad_request"),
        ('{"action": "track", "vehicle_ids": []}', "bad_request"),
        ('{"action": "track", "vehicle_ids": ["bad id!"]}', "bad_request"),
        ('{"action": "track_area", "bbox": [1, 2, 3]}', "bad_request"),
        ('{"action": "track_area", "bbox": [0, 50, 10, 40]}', "bad_request"),
        ('{"action": "track_trip", "trip_id": "x", "extra": 1}', "bad_request"),
        ("[1, 2]", "bad_request"),
    ],
)
def test_bad_messages_get_an_error_and_the_connection_stays(
    server: Server, fleet: tuple[str, httpx.Client], message: str, code: str
) -> None:
    token, _ = fleet
    with ws(server, token) as conn:
        conn.send(message)
        reply = next_message(conn)
        assert reply["type"] == "error" and reply["error"]["code"] == code, reply
        assert ask(conn, action="ping") == {"type": "pong"}


def test_more_than_100_vehicles_per_connection_is_refused(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, _ = fleet
    with ws(server, token) as conn:
        ask(conn, action="track", vehicle_ids=[f"M{i}-{uid}" for i in range(60)])
        reply = ask(conn, action="track", vehicle_ids=[f"N{i}-{uid}" for i in range(60)])
        assert reply["type"] == "error" and reply["error"]["code"] == "too_many"


@pytest.mark.parametrize("token", [None, "tt_not-a-real-token"])
def test_a_missing_or_bad_token_closes_with_policy_violation(
    server: Server, token: str | None
) -> None:
    with ws(server, token) as conn, pytest.raises(ConnectionClosed) as closed:
        conn.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_a_bad_token_in_the_authorization_header_closes_with_policy_violation(
    server: Server,
) -> None:
    url = f"ws://127.0.0.1:{server.port}/tracking/ws"
    with (
        connect(url, additional_headers={"Authorization": "Bearer tt_not-a-real-token"}) as conn,
        pytest.raises(ConnectionClosed) as closed,
    ):
        conn.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_the_token_may_come_in_the_authorization_header(
    server: Server, fleet: tuple[str, httpx.Client]
) -> None:
    token, _ = fleet
    url = f"ws://127.0.0.1:{server.port}/tracking/ws"
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as conn:
        assert ask(conn, action="ping") == {"type": "pong"}


def test_disconnecting_cleans_every_subscription_up(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    admin_metrics = c.get("/metrics").text
    before = metric(admin_metrics, "websocket_subscriptions")
    with ws(server, token) as conn:
        ask(conn, action="track", vehicle_ids=[f"C{i}-{uid}" for i in range(10)])
        ask(conn, action="track_trip", trip_id=f"CT-{uid}")
        during = metric(c.get("/metrics").text, "websocket_subscriptions")
        assert during >= before + 11
    wait_for(
        lambda: metric(c.get("/metrics").text, "websocket_subscriptions") <= before,
        what="subscriptions to be dropped",
    )


def test_a_client_that_does_not_read_is_dropped_and_others_go_on(tmp_path: Path) -> None:
    env = {"TRUCKTRACK_LIVE_SEND_TIMEOUT_S": "1", "TRUCKTRACK_LIVE_MIN_INTERVAL_S": "0"}
    server = Server(tmp_path / "data", env=env).start()
    try:
        token = create_token(server.data_dir, "slow", "admin")
        with server.client(token) as c:
            vehicles = [f"S{i:04d}" for i in range(2000)]
            for i in range(0, len(vehicles), 500):
                post_ok(c, *(at(v, i + n) for n, v in enumerate(vehicles[i : i + 500])))
            box = [PUNE[1] - 1, PUNE[0] - 1, PUNE[1] + 1, PUNE[0] + 1]
            # The slow client stops reading after a few messages (max_queue=1): 250 snapshots
            # of 2,000 vehicles (~95 MB) overflow even loopback's 32 MB socket buffers, and
            # the server's sends block.
            with ws(server, token, max_queue=1) as slow, ws(server, token) as fast:
                ask(fast, action="track", vehicle_ids=["S0001"])
                for _ in range(250):
                    slow.send(json.dumps({"action": "track_area", "bbox": box, "zoom": 18}))
                wait_for(
                    lambda: (
                        metric(c.get("/metrics").text, "websocket_slow_clients_dropped_total") >= 1
                    ),
                    timeout_s=30,
                    what="the slow client to be dropped",
                )
                post_ok(c, at("S0001", 5))
                assert next_message(fast)["type"] == "location_update"  # the other goes on
                with pytest.raises(ConnectionClosed):
                    for _ in range(1000):
                        slow.recv(timeout=5)
    finally:
        server.stop()


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of the unmasked frames a server sent."""
    frames, i = [], 0
    while i + 2 <= len(data):
        opcode, size = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if size >= 126:
            width = 2 if size == 126 else 8
            size = int.from_bytes(data[i : i + width], "big")
            i += width
        frames.append((opcode, data[i : i + size]))
        i += size
    return frames


def test_a_client_that_never_answers_pings_is_closed_and_forgotten(tmp_path: Path) -> None:
    """A raw socket does the WebSocket handshake by hand, subscribes, and never answers the
    server's pings: the server closes it after the ping timeout and drops its subscriptions,
    while a client that answers them (`websockets` does) stays."""
    import base64
    import os
    import socket

    env = {"TRUCKTRACK_WS_PING_INTERVAL_S": "0.5", "TRUCKTRACK_WS_PING_TIMEOUT_S": "0.5"}
    server = Server(tmp_path / "data", env=env).start()
    try:
        token = create_token(server.data_dir, "pings", "admin")
        with server.client(token) as c, ws(server, token) as alive:

            def gauge(name: str) -> float:
                return metric(c.get("/metrics").text, name)

            raw = socket.create_connection(("127.0.0.1", server.port))
            key = base64.b64encode(os.urandom(16)).decode()
            raw.sendall(
                f"GET /tracking/ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += raw.recv(4096)
            assert answer.startswith(b"HTTP/1.1 101"), answer
            body = json.dumps({"action": "track", "vehicle_ids": ["P1", "P2", "P3"]}).encode()
            mask = os.urandom(4)
            raw.sendall(bytes([0x81, 0x80 | len(body)]) + mask
                        + bytes(b ^ mask[i % 4] for i, b in enumerate(body)))  # fmt: skip
            wait_for(lambda: gauge("websocket_subscriptions") == 3, what="the subscriptions")
            assert gauge("websocket_connections") == 2
            wait_for(lambda: gauge("websocket_connections") == 1, 10, "the silent client closed")
            assert gauge("websocket_subscriptions") == 0
            raw.settimeout(5)
            received = answer.split(b"\r\n\r\n", 1)[1]
            while chunk := raw.recv(65536):
                received += chunk
            raw.close()
            frames = _frames(received)
            assert 0x9 in [op for op, _ in frames]  # it was pinged
            closes = [payload for op, payload in frames if op == 0x8]
            assert closes and int.from_bytes(closes[0][:2], "big") == 1011  # keepalive timeout
            assert ask(alive, action="ping") == {"type": "pong"}  # it answered every ping
    finally:
        server.stop()


def test_a_stalled_client_neither_slows_ingest_nor_gets_a_backlog(tmp_path: Path) -> None:
    """A client that stops reading (its socket full, but not long enough to be dropped): POST
    /tracking/gps keeps its latency, and once the client reads again it gets the newest
    position of its vehicle, not every one that came meanwhile."""
    import socket
    import statistics

    env = {"TRUCKTRACK_LIVE_SEND_TIMEOUT_S": "120", "TRUCKTRACK_LIVE_MIN_INTERVAL_S": "0"}
    server = Server(tmp_path / "data", env=env).start()
    try:
        token = create_token(server.data_dir, "stall", "admin")
        with server.client(token) as c:

            def timed_post(vehicle: str, metres: float, ts: int) -> float:
                started = time.perf_counter()
                post_ok(c, {**at(vehicle, metres), "timestamp": ts})
                return time.perf_counter() - started

            vehicles = [f"S{i:04d}" for i in range(2000)]
            for i in range(0, len(vehicles), 500):
                post_ok(c, *(at(v, i + n) for n, v in enumerate(vehicles[i : i + 500])))
            base = now_ms()
            before = [timed_post("S0001", 10 * i, base + i) for i in range(1, 21)]
            box = [PUNE[1] - 1, PUNE[0] - 1, PUNE[1] + 1, PUNE[0] + 1]
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            url = f"ws://127.0.0.1:{server.port}/tracking/ws?token={token}"
            # no compression: the snapshots (alike, so they deflate ~15x) fill the socket
            with connect(url, sock=sock, max_queue=1, compression=None) as slow:
                ask(slow, action="track", vehicle_ids=["S0001"])
                for _ in range(20):  # ~8 MB of snapshots it does not read: its socket fills
                    slow.send(json.dumps({"action": "track_area", "bbox": box, "zoom": 18}))
                coalesced = metric(c.get("/metrics").text, "websocket_updates_coalesced_total")
                time.sleep(1.0)
                during = [timed_post("S0001", 300 + 10 * i, base + 100 + i) for i in range(1, 41)]
                newest = base + 140
                text = c.get("/metrics").text
                assert metric(text, "websocket_updates_coalesced_total") >= coalesced + 30
                assert metric(text, "websocket_slow_clients_dropped_total") == 0
                assert statistics.median(during) < 3 * statistics.median(before) + 0.05
                assert max(during) < 1.0, during
                seen: list[int] = []  # it reads again: the snapshots, then one newest update
                while newest not in seen:
                    message = next_message(slow, timeout=30)
                    if message["type"] == "location_update":
                        seen += [u["timestamp_ms"] for u in message["updates"]
                                 if u["vehicle_id"] == "S0001"]  # fmt: skip
                assert len([ts for ts in seen if ts > base + 100]) <= 3, seen
    finally:
        server.stop()


def test_latency_and_message_metrics(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    post_ok(c, at(f"L-{uid}"))
    with ws(server, token) as conn:
        ask(conn, action="track", vehicle_ids=[f"L-{uid}"])
        post_ok(c, at(f"L-{uid}", 10))
        next_message(conn)
        text = c.get("/metrics").text
    assert metric(text, "tracking_latency_seconds_count") >= 1
    assert metric(text, "websocket_messages_sent_total") >= 2
    assert metric(text, "websocket_connections") >= 1

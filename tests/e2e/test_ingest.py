"""POST /tracking/gps through the real server: validation, durability, idempotency, auth."""

from __future__ import annotations

import gzip
import json

import httpx

from tests.e2e.conftest import Server, Tokens, now_ms, point


def history(client: httpx.Client, trip: str) -> list[dict]:
    r = client.get(f"/tracking/trip/{trip}/history")
    assert r.status_code == 200, r.text
    return r.json()["points"]


def test_good_points_are_kept_and_bad_ones_named_by_index(a: httpx.Client, uid: str) -> None:
    t = now_ms() - 60_000
    trip = f"TRIP-{uid}"
    batch = [
        point(f"V-{uid}", t, trip_id=trip, speed=40, heading=90, accuracy=5, altitude=560,
              driver_id="DRV-1", engine_status=True),
        point(f"V-{uid}", t + 1, lat=95),
        point("bad id!", t + 2),
        point(f"V-{uid}", t + 3, lng="73.8"),
        point(f"V-{uid}", t + 4, engine_status="yes"),
        {"lat": 1, "lng": 2},
        point(f"V-{uid}", t + 6, speed=301),
        point(f"V-{uid}", t + 7, heading=360),
        point(f"V-{uid}", t + 8, accuracy=0),
        point(f"V-{uid}", "2026-11-24T10:00:00"),
        point(f"V-{uid}", "yesterday"),
        point(f"V-{uid}", now_ms() + 10 * 60_000),
        point(f"V-{uid}", now_ms() - 31 * 86_400_000),
        point(f"V-{uid}", t + 13, trip_id=trip, unknown_field="ignored"),
    ]  # fmt: skip
    r = a.post("/tracking/gps", json={"updates": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["processed"] == 2
    assert body["duplicates"] == 0
    rejected = {x["index"]: x["reason"] for x in body["rejected"]}
    assert sorted(rejected) == list(range(1, 13))
    assert "lat" in rejected[1]
    assert "vehicle_id" in rejected[2]
    assert "lng" in rejected[3]
    assert "engine_status" in rejected[4]
    assert "vehicle_id" in rejected[5]
    assert "speed" in rejected[6]
    assert "heading" in rejected[7]
    assert "accuracy" in rejected[8]
    assert "offset" in rejected[9]
    assert "ISO-8601" in rejected[10]
    assert "future" in rejected[11]
    assert "retention" in rejected[12]
    stored = history(a, trip)
    assert [p["timestamp_ms"] for p in stored] == [t, t + 13]
    first = stored[0]
    assert (first["speed"], first["heading"], first["accuracy"], first["altitude"]) == (
        40.0, 90.0, 5.0, 560.0,
    )  # fmt: skip
    assert (first["driver_id"], first["engine_status"]) == ("DRV-1", True)


def test_nan_and_infinity_reject_only_their_point(a: httpx.Client, uid: str) -> None:
    t = now_ms() - 1000
    body = (
        '{"updates": ['
        f'{{"vehicle_id": "N-{uid}", "lat": NaN, "lng": 1, "timestamp": {t}}},'
        f'{{"vehicle_id": "N-{uid}", "lat": 1, "lng": Infinity, "timestamp": {t + 1}}},'
        f'{{"vehicle_id": "N-{uid}", "lat": 1e999, "lng": 1, "timestamp": {t + 2}}},'
        f'{{"vehicle_id": "N-{uid}", "lat": 1, "lng": 2, "timestamp": {t + 3}}}]}}'
    )
    r = a.post("/tracking/gps", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["processed"] == 1
    assert [x["index"] for x in r.json()["rejected"]] == [0, 1, 2]
    loc = a.get(f"/tracking/vehicle/N-{uid}/location").json()
    assert loc["timestamp_ms"] == t + 3


def test_iso_timestamps_with_offsets_and_default_time(a: httpx.Client, uid: str) -> None:
    r = a.post(
        "/tracking/gps",
        json={"updates": [
            {"vehicle_id": f"I-{uid}", "lat": 1, "lng": 2, "timestamp": "2026-11-24T10:00:00+05:30",
             "trip_id": f"T-{uid}"},
            {"vehicle_id": f"I-{uid}", "lat": 1, "lng": 2, "trip_id": f"T-{uid}"},
        ]},
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["processed"] == 2, r.text
    pts = history(a, f"T-{uid}")
    assert pts[0]["timestamp"] == "2026-11-24T04:30:00.000Z"
    assert abs(pts[1]["timestamp_ms"] - now_ms()) < 60_000


def test_batch_shape_errors_are_400(a: httpx.Client) -> None:
    for body in (b"not json", b"[1, 2]", b'{"points": []}', b'{"updates": 5}', b'{"updates": []}'):
        r = a.post("/tracking/gps", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "bad_request"


def test_too_many_points_or_bytes_is_413(a: httpx.Client, uid: str) -> None:
    t = now_ms() - 10_000
    r = a.post("/tracking/gps", json={"updates": [point(f"M-{uid}", t + i) for i in range(1001)]})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    huge = b'{"updates": [' + b" " * (5 * 1024 * 1024) + b"]}"
    r = a.post("/tracking/gps", content=huge, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    bomb = gzip.compress(b'{"updates": [' + b" " * (50 * 1024 * 1024) + b"]}")
    r = a.post("/tracking/gps", content=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413


def test_gzip_body_is_accepted(a: httpx.Client, uid: str) -> None:
    t = now_ms() - 5000
    raw = json.dumps({"updates": [point(f"G-{uid}", t + i) for i in range(50)]}).encode()
    r = a.post(
        "/tracking/gps",
        content=gzip.compress(raw),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"processed": 50, "duplicates": 0, "rejected": []}
    assert a.get(f"/tracking/vehicle/G-{uid}/location").json()["timestamp_ms"] == t + 49
    bad = a.post("/tracking/gps", content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert bad.status_code == 400
    odd = a.post("/tracking/gps", content=raw, headers={"Content-Encoding": "br"})
    assert odd.status_code == 400


def test_a_retried_batch_is_stored_once(a: httpx.Client, uid: str) -> None:
    t = now_ms() - 10_000
    batch = {"updates": [point(f"R-{uid}", t + i, trip_id=f"RT-{uid}") for i in range(20)]}
    first = a.post("/tracking/gps", json=batch).json()
    again = a.post("/tracking/gps", json=batch).json()
    assert first == {"processed": 20, "duplicates": 0, "rejected": []}
    assert again == {"processed": 20, "duplicates": 20, "rejected": []}
    same_twice = {"updates": [point(f"R-{uid}", t + 100), point(f"R-{uid}", t + 100)]}
    assert a.post("/tracking/gps", json=same_twice).json()["duplicates"] == 1
    assert len(history(a, f"RT-{uid}")) == 20


def test_out_of_order_points_are_stored_but_never_move_the_location_back(
    a: httpx.Client, uid: str
) -> None:
    t = now_ms() - 60_000
    v, trip = f"O-{uid}", f"OT-{uid}"
    a.post("/tracking/gps", json={"updates": [point(v, t + 30_000, trip_id=trip, lat=10)]})
    r = a.post(
        "/tracking/gps",
        json={"updates": [point(v, t + 10_000, trip_id=trip, lat=11),
                          point(v, t, trip_id=trip, lat=12)]},
    )  # fmt: skip
    assert r.json()["processed"] == 2
    loc = a.get(f"/tracking/vehicle/{v}/location").json()
    assert (loc["timestamp_ms"], loc["lat"]) == (t + 30_000, 10.0)
    assert [p["lat"] for p in history(a, trip)] == [12.0, 11.0, 10.0]


def test_no_token_or_a_bad_token_is_401(server: Server) -> None:
    body = {"updates": [point("X", now_ms())]}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = httpx.post(server.url + "/tracking/gps", json=body, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "unauthenticated"


def test_a_viewer_cannot_post(server: Server, tokens: Tokens, uid: str) -> None:
    with server.client(tokens.viewer_a) as viewer:
        r = viewer.post("/tracking/gps", json={"updates": [point(f"W-{uid}", now_ms())]})
    assert r.status_code == 403


def test_a_device_token_posts_only_its_vehicles(server: Server, tokens: Tokens) -> None:
    t = now_ms() - 1000
    with server.client(tokens.device_a) as device:
        mixed = device.post(
            "/tracking/gps", json={"updates": [point("SCOPED-2", t), point("OTHER-9", t)]}
        )
        assert mixed.status_code == 200
        assert mixed.json()["processed"] == 1
        assert mixed.json()["rejected"] == [
            {"index": 1, "reason": "vehicle_id is not in this token's scope"}
        ]
        only_others = device.post("/tracking/gps", json={"updates": [point("OTHER-9", t)]})
        assert only_others.status_code == 403


def test_another_fleet_cannot_write_to_a_vehicle_it_does_not_own(
    a: httpx.Client, b: httpx.Client, uid: str
) -> None:
    t = now_ms() - 10_000
    v = f"OWN-{uid}"
    assert a.post("/tracking/gps", json={"updates": [point(v, t, lat=10)]}).status_code == 200
    r = b.post("/tracking/gps", json={"updates": [point(v, t + 1, lat=20), point(f"B-{uid}", t)]})
    assert r.status_code == 200
    assert r.json()["processed"] == 1
    assert r.json()["rejected"][0]["index"] == 0
    assert a.get(f"/tracking/vehicle/{v}/location").json()["lat"] == 10.0
    assert b.get(f"/tracking/vehicle/{v}/location").status_code == 404


def test_a_token_made_while_the_server_runs_works_at_once(server: Server, uid: str) -> None:
    from tests.e2e.conftest import create_token

    token = create_token(server.data_dir, f"new-{uid}", "dispatcher")
    with server.client(token) as c:
        r = c.post("/tracking/gps", json={"updates": [point(f"NEW-{uid}", now_ms())]})
    assert r.status_code == 200, r.text

"""POST /tracking/gps through the real server: validation, limits, encoding, idempotency, auth."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import (
    DAY_MS,
    JSON,
    Server,
    Tokens,
    assert_error,
    create_token,
    history,
    now_ms,
    point,
    post_ok,
)


def post_raw(client: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return client.post("/tracking/gps", content=body, headers={**JSON, **headers})


def rejected_by_index(r: httpx.Response) -> dict[int, str]:
    assert r.status_code == 200, r.text
    return {x["index"]: x["reason"] for x in r.json()["rejected"]}


# --- validation, point by point ---------------------------------------------------------------


def test_good_points_are_kept_and_bad_ones_named_by_index(a: httpx.Client, uid: str) -> None:
    """GIVEN a batch mixing one bad point of each kind with two good ones
    THEN the good ones are stored with every field, each bad one is listed by index with a reason
    naming its field, and the reply counts only the good ones."""
    t = now_ms() - 60_000
    v, trip = f"V-{uid}", f"TRIP-{uid}"
    batch = [
        point(v, t, trip_id=trip, speed=40, heading=90, accuracy=5, altitude=560,
              driver_id="DRV-1", engine_status=True),
        point(v, t + 1, lat=95),
        point("bad id!", t + 2),
        point(v, t + 3, lng="73.8"),
        point(v, t + 4, engine_status="yes"),
        {"lat": 1, "lng": 2},
        point(v, t + 6, speed=301),
        point(v, t + 7, heading=360),
        point(v, t + 8, accuracy=0),
        point(v, "2026-11-24T10:00:00"),
        point(v, "yesterday"),
        point(v, now_ms() + 10 * 60_000),
        point(v, now_ms() - 31 * DAY_MS),
        point(v, t + 13, trip_id=trip, unknown_field="ignored"),
        point(v, t + 14, lat="18.5"),
        {"vehicle_id": v, "lng": 2, "timestamp": t + 15},
        {"vehicle_id": v, "lat": 2, "timestamp": t + 16},
        point(v, t + 17, altitude=-1001),
        point(v, t + 18, trip_id="has space"),
        point(v, t + 19, driver_id=""),
        point(v, t + 20, engine_status=1),
        point(v, t + 21, speed=-1),
        point(v, t + 22, lng=180.5),
        point(v, t + 23, timestamp=True),
    ]  # fmt: skip
    r = a.post("/tracking/gps", json={"updates": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["processed"], body["duplicates"]) == (2, 0)
    assert [x["index"] for x in body["rejected"]] == [
        i for i in range(len(batch)) if i not in (0, 13)
    ]
    rejected = rejected_by_index(r)
    expected_words = {
        1: "lat", 2: "vehicle_id", 3: "lng", 4: "engine_status", 5: "vehicle_id", 6: "speed",
        7: "heading", 8: "accuracy", 9: "offset", 10: "ISO-8601", 11: "future", 12: "retention",
        14: "lat", 15: "lat", 16: "lng", 17: "altitude", 18: "trip_id", 19: "driver_id",
        20: "engine_status", 21: "speed", 22: "lng", 23: "timestamp",
    }  # fmt: skip
    for index, word in expected_words.items():
        assert word in rejected[index], (index, rejected[index])
    stored = history(a, trip)
    assert [p["timestamp_ms"] for p in stored] == [t, t + 13]
    first = stored[0]
    assert first == {
        "vehicle_id": v, "lat": 18.52, "lng": 73.85, "timestamp_ms": t,
        "timestamp": first["timestamp"], "speed": 40.0, "heading": 90.0, "accuracy": 5.0,
        "altitude": 560.0, "driver_id": "DRV-1", "engine_status": True,
        "received_at": first["received_at"],
    }  # fmt: skip
    assert first["timestamp"].endswith("Z") and first["received_at"].endswith("Z")


def test_boundary_values_are_accepted(a: httpx.Client, uid: str) -> None:
    """Every range's inclusive end, the longest ids, null optionals and defaults are accepted."""
    t = now_ms() - 30_000
    v64 = f"B-{uid}-".ljust(64, "x")
    trip128 = f"BT-{uid}:.".ljust(128, "_")
    pts = [
        point(v64, t, lat=90, lng=180, speed=300, heading=359.999, accuracy=0.001,
              altitude=10_000, trip_id=trip128, driver_id="d".ljust(128, "-")),
        point(v64, t + 1, lat=-90, lng=-180, speed=0, heading=0, altitude=-1000, trip_id=trip128),
        point(v64, t + 2, altitude=None, trip_id=trip128, driver_id=None, engine_status=None),
        {"vehicle_id": v64, "lat": 0, "lng": 0, "timestamp": t + 3, "trip_id": trip128},
        point(v64, now_ms() + 4 * 60_000, trip_id=trip128),
        point(v64, now_ms() - 29 * DAY_MS, trip_id=trip128),
    ]  # fmt: skip
    assert post_ok(a, *pts) == {"processed": 6, "duplicates": 0, "rejected": []}
    stored = {p["timestamp_ms"]: p for p in history(a, trip128)}
    assert len(stored) == 6
    assert (stored[t]["lat"], stored[t]["lng"], stored[t]["heading"]) == (90.0, 180.0, 359.999)
    defaults = stored[t + 3]
    assert (defaults["speed"], defaults["heading"], defaults["accuracy"]) == (0.0, 0.0, 10.0)
    assert (defaults["altitude"], defaults["driver_id"], defaults["engine_status"]) == (
        None, None, None,
    )  # fmt: skip


def test_ids_one_character_too_long_or_empty_are_rejected(a: httpx.Client, uid: str) -> None:
    """vehicle_id holds 1-64 characters, trip_id and driver_id 1-128."""
    t = now_ms() - 1000
    v = f"L-{uid}"
    r = a.post(
        "/tracking/gps",
        json={"updates": [
            point(v.ljust(65, "x"), t),
            point(v, t, trip_id="t".ljust(129, "x")),
            point(v, t, driver_id="d".ljust(129, "x")),
            point("", t),
            point(v, t, trip_id=""),
        ]},
    )  # fmt: skip
    rejected = rejected_by_index(r)
    assert r.json()["processed"] == 0
    for index, field in enumerate(["vehicle_id", "trip_id", "driver_id", "vehicle_id", "trip_id"]):
        assert field in rejected[index], (index, rejected[index])
    assert a.get(f"/tracking/vehicle/{v}/location").status_code == 404


def test_nan_infinity_and_overflow_reject_only_their_point(a: httpx.Client, uid: str) -> None:
    """Non-standard JSON literals (NaN, Infinity, 1e999) reject their point, not the batch."""
    t = now_ms() - 1000
    v = f"N-{uid}"
    body = (
        '{"updates": ['
        f'{{"vehicle_id": "{v}", "lat": NaN, "lng": 1, "timestamp": {t}}},'
        f'{{"vehicle_id": "{v}", "lat": 1, "lng": Infinity, "timestamp": {t + 1}}},'
        f'{{"vehicle_id": "{v}", "lat": 1e999, "lng": 1, "timestamp": {t + 2}}},'
        f'{{"vehicle_id": "{v}", "lat": 1, "lng": -Infinity, "timestamp": {t + 3}}},'
        f'{{"vehicle_id": "{v}", "lat": 1, "lng": 2, "timestamp": {t + 4}}}]}}'
    )
    r = post_raw(a, body.encode())
    rejected = rejected_by_index(r)
    assert r.json()["processed"] == 1
    assert sorted(rejected) == [0, 1, 2, 3]
    assert "lat" in rejected[0] and "lng" in rejected[1] and "lat" in rejected[2]
    loc = a.get(f"/tracking/vehicle/{v}/location").json()
    assert (loc["timestamp_ms"], loc["lat"], loc["lng"]) == (t + 4, 1.0, 2.0)


def test_nan_after_an_invalid_point_rejects_only_those_points(a: httpx.Client, uid: str) -> None:
    """GIVEN a batch whose first point has a wrong type and whose second has lat NaN
    THEN both are rejected by index and the third is stored (200, not 500)."""
    t = now_ms() - 1000
    v = f"NN-{uid}"
    body = (
        '{"updates": ['
        f'{{"vehicle_id": "{v}", "lat": "x", "lng": 1, "timestamp": {t}}},'
        f'{{"vehicle_id": "{v}", "lat": NaN, "lng": 1, "timestamp": {t + 1}}},'
        f'{{"vehicle_id": "{v}", "lat": 1, "lng": 2, "timestamp": {t + 2}}}]}}'
    )
    r = post_raw(a, body.encode())
    rejected = rejected_by_index(r)
    assert sorted(rejected) == [0, 1] and r.json()["processed"] == 1
    assert "lat" in rejected[0] and "lat" in rejected[1]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'{"points": []}',
        b'{"updates": 5}',
        b'{"updates": null}',
        b'{"updates": {}}',
        b'{"updates": []}',
        b'{"updates": [{"vehicle_id": "X", "lat": 1, "lng": 2}',
    ],
    ids=["text", "empty", "array", "no-updates", "int", "null", "object", "empty-list", "cut"],
)
def test_batch_shape_errors_are_400(a: httpx.Client, body: bytes) -> None:
    """A body that is not `{"updates": [one or more items]}` is refused as a whole."""
    assert_error(post_raw(a, body), 400, "bad_request")


@pytest.mark.parametrize(
    "body",
    [
        b'{"updates": [{"vehicle_id": "X1", "lat": "x", "lng": 1}, {]}',
        b'{"updates": [{"vehicle_id": "X1", "lat": "x", "lng": 1}] trailing',
        b'{"updates": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
        b'{"updates": [{"vehicle_id": "\xe9", "lat": 1, "lng": 2}]}',
    ],
    ids=["malformed-after-invalid", "trailing-after-invalid", "deep-nesting", "invalid-utf8"],
)
def test_bodies_that_are_not_json_are_400_not_500(a: httpx.Client, body: bytes) -> None:
    """Malformed JSON is a client error wherever it hides in the body."""
    assert_error(post_raw(a, body), 400, "bad_request")


def test_items_that_are_not_objects_are_rejected_by_index(a: httpx.Client, uid: str) -> None:
    """null, numbers and strings in `updates` reject their slot; good points still count."""
    good = json.dumps(point(f"IT-{uid}", now_ms() - 1000))
    r = post_raw(a, f'{{"updates": [null, 1, "x", [], {good}]}}'.encode())
    assert sorted(rejected_by_index(r)) == [0, 1, 2, 3]
    assert r.json()["processed"] == 1


def test_iso_timestamps_with_offsets_and_default_time(a: httpx.Client, uid: str) -> None:
    """ISO-8601 with 'Z' or an offset is converted to UTC; no timestamp means 'received now'."""
    day = (now_ms() // DAY_MS - 1) * DAY_MS  # yesterday 00:00 UTC: always within retention
    d = dt.datetime.fromtimestamp(day / 1000, tz=dt.UTC).date().isoformat()
    trip = f"T-{uid}"
    before = now_ms()
    r = a.post(
        "/tracking/gps",
        json={"updates": [
            point(f"I-{uid}", f"{d}T10:00:00+05:30", trip_id=trip),
            point(f"I-{uid}", f"{d}T10:00:01.250Z", trip_id=trip),
            point(f"I-{uid}", f"{d}T00:00:02-01:00", trip_id=trip),
            {"vehicle_id": f"I-{uid}", "lat": 1, "lng": 2, "trip_id": trip},
        ]},
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["processed"] == 4, r.text
    after = now_ms()
    pts = history(a, trip)
    assert [p["timestamp"] for p in pts[:3]] == [
        f"{d}T01:00:02.000Z", f"{d}T04:30:00.000Z", f"{d}T10:00:01.250Z",
    ]  # fmt: skip
    assert pts[1]["timestamp_ms"] == day + 4 * 3_600_000 + 30 * 60_000
    assert before <= pts[3]["timestamp_ms"] <= after


# --- limits and encodings ---------------------------------------------------------------------


def test_too_many_points_is_413(a: httpx.Client, uid: str) -> None:
    """1000 points are fine, 1001 are refused whole (default TRUCKTRACK_MAX_BATCH_POINTS)."""
    t = now_ms() - 10_000
    batch = [point(f"M-{uid}", t + i) for i in range(1001)]
    assert_error(a.post("/tracking/gps", json={"updates": batch}), 413, "payload_too_large")
    assert a.get(f"/tracking/vehicle/M-{uid}/location").status_code == 404
    assert post_ok(a, *batch[:1000])["processed"] == 1000


def test_a_body_over_the_size_limit_is_413(a: httpx.Client) -> None:
    """Over 4 MiB is refused, with a Content-Length, streamed chunked, or after gunzip."""
    huge = b'{"updates": [' + b" " * (5 * 1024 * 1024) + b"]}"
    assert_error(post_raw(a, huge), 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:
        yield b'{"updates": ['
        for _ in range(5):
            yield b" " * (1024 * 1024)
        yield b"]}"

    r = a.post("/tracking/gps", content=chunks(), headers=JSON)
    assert_error(r, 413, "payload_too_large")
    bomb = gzip.compress(b'{"updates": [' + b" " * (50 * 1024 * 1024) + b"]}")
    assert len(bomb) < 100_000
    assert_error(post_raw(a, bomb, **{"Content-Encoding": "gzip"}), 413, "payload_too_large")


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZIP"])
def test_gzip_body_is_accepted(a: httpx.Client, uid: str, encoding: str) -> None:
    """A gzip-compressed batch is stored like a plain one."""
    t = now_ms() - 5000
    v = f"G-{uid}"
    raw = json.dumps({"updates": [point(v, t + i, trip_id=v) for i in range(50)]}).encode()
    r = post_raw(a, gzip.compress(raw), **{"Content-Encoding": encoding})
    assert r.status_code == 200, r.text
    assert r.json() == {"processed": 50, "duplicates": 0, "rejected": []}
    assert a.get(f"/tracking/vehicle/{v}/location").json()["timestamp_ms"] == t + 49
    assert [p["timestamp_ms"] for p in history(a, v)] == [t + i for i in range(50)]


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (b"not gzip", "gzip"),
        (gzip.compress(b'{"updates": [')[:-8], "gzip"),
        (b"{}", "br"),
        (b"{}", "deflate"),
        (b"{}", "gzip, br"),
    ],
    ids=["not-gzip", "truncated-gzip", "br", "deflate", "two-codings"],
)
def test_bad_or_unsupported_encodings_are_400(a: httpx.Client, body: bytes, encoding: str) -> None:
    """Corrupt gzip and codings other than gzip are refused with 400."""
    assert_error(post_raw(a, body, **{"Content-Encoding": encoding}), 400, "bad_request")


def test_identity_encoding_is_plain(a: httpx.Client, uid: str) -> None:
    """`Content-Encoding: identity` means the body is not compressed."""
    body = json.dumps({"updates": [point(f"ID-{uid}", now_ms() - 10)]}).encode()
    r = post_raw(a, body, **{"Content-Encoding": "identity"})
    assert r.status_code == 200 and r.json()["processed"] == 1, r.text


# --- idempotency and ordering -----------------------------------------------------------------


def test_a_retried_batch_is_stored_once(a: httpx.Client, uid: str) -> None:
    """GIVEN a batch stored once WHEN it is posted again THEN all its points are duplicates,
    still `processed`, and history holds each point once."""
    t = now_ms() - 10_000
    batch = {"updates": [point(f"R-{uid}", t + i, trip_id=f"RT-{uid}") for i in range(20)]}
    first = a.post("/tracking/gps", json=batch).json()
    again = a.post("/tracking/gps", json=batch).json()
    assert first == {"processed": 20, "duplicates": 0, "rejected": []}
    assert again == {"processed": 20, "duplicates": 20, "rejected": []}
    assert [p["timestamp_ms"] for p in history(a, f"RT-{uid}")] == [t + i for i in range(20)]


def test_the_same_point_twice_in_a_batch_keeps_the_first(a: httpx.Client, uid: str) -> None:
    """Same vehicle and timestamp is the same point: the first copy wins, later ones are
    duplicates, even when their other fields differ (also across batches)."""
    t = now_ms() - 10_000
    v, trip = f"D-{uid}", f"DT-{uid}"
    r = a.post(
        "/tracking/gps",
        json={"updates": [point(v, t, lat=10, trip_id=trip), point(v, t, lat=20, trip_id=trip)]},
    )
    assert r.json() == {"processed": 2, "duplicates": 1, "rejected": []}
    later = a.post("/tracking/gps", json={"updates": [point(v, t, lat=30, trip_id=trip)]})
    assert later.json() == {"processed": 1, "duplicates": 1, "rejected": []}
    assert [p["lat"] for p in history(a, trip)] == [10.0]
    assert a.get(f"/tracking/vehicle/{v}/location").json()["lat"] == 10.0


def test_out_of_order_points_are_stored_but_never_move_the_location_back(
    a: httpx.Client, uid: str
) -> None:
    """Late points (older device time) land in history in device-time order; the current
    location stays at the newest point."""
    t = now_ms() - 60_000
    v, trip = f"O-{uid}", f"OT-{uid}"
    post_ok(a, point(v, t + 30_000, trip_id=trip, lat=10))
    r = a.post(
        "/tracking/gps",
        json={"updates": [point(v, t + 10_000, trip_id=trip, lat=11),
                          point(v, t, trip_id=trip, lat=12)]},
    )  # fmt: skip
    assert r.json() == {"processed": 2, "duplicates": 0, "rejected": []}
    loc = a.get(f"/tracking/vehicle/{v}/location").json()
    assert (loc["timestamp_ms"], loc["lat"]) == (t + 30_000, 10.0)
    assert [p["lat"] for p in history(a, trip)] == [12.0, 11.0, 10.0]
    post_ok(a, point(v, t + 40_000, trip_id=trip, lat=13))
    assert a.get(f"/tracking/vehicle/{v}/location").json()["lat"] == 13.0


# --- auth and scope ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "tt_abc"},
    ],
    ids=["none", "unknown", "basic", "empty-bearer", "no-scheme"],
)
def test_no_token_or_a_bad_token_is_401(server: Server, headers: dict[str, str]) -> None:
    """Every missing, malformed or unknown token gets 401 with a Bearer challenge."""
    body = {"updates": [point("X", now_ms())]}
    r = httpx.post(server.url + "/tracking/gps", json=body, headers=headers)
    assert_error(r, 401, "unauthenticated")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_scheme_is_case_insensitive(server: Server, tokens: Tokens, uid: str) -> None:
    """`bearer <token>` works like `Bearer <token>` (RFC 7235: the scheme is case-insensitive)."""
    r = httpx.post(
        server.url + "/tracking/gps",
        json={"updates": [point(f"CI-{uid}", now_ms())]},
        headers={"Authorization": f"bearer {tokens.admin_a}"},
    )
    assert r.status_code == 200, r.text


def test_a_viewer_cannot_post(server: Server, tokens: Tokens, uid: str) -> None:
    """Viewers read only: posting is 403 and nothing is stored."""
    with server.client(tokens.viewer_a) as viewer:
        r = viewer.post("/tracking/gps", json={"updates": [point(f"W-{uid}", now_ms())]})
        assert_error(r, 403, "forbidden")
    with server.client(tokens.admin_a) as admin:
        assert admin.get(f"/tracking/vehicle/W-{uid}/location").status_code == 404


def test_a_dispatcher_can_post(server: Server, tokens: Tokens, uid: str) -> None:
    with server.client(tokens.dispatcher_a) as dispatcher:
        assert post_ok(dispatcher, point(f"DP-{uid}", now_ms() - 5))["processed"] == 1


def test_a_device_token_posts_only_its_vehicles(server: Server, tokens: Tokens, uid: str) -> None:
    """GIVEN a device token limited to two vehicles
    WHEN it posts for one of them and for another THEN only its own is stored;
    WHEN every point is for other vehicles THEN the batch is 403."""
    t = now_ms() - 1000
    other = f"OTHER-{uid}"
    with server.client(tokens.device_a) as device:
        mixed = device.post(
            "/tracking/gps", json={"updates": [point(tokens.scoped2, t), point(other, t)]}
        )
        assert mixed.status_code == 200
        assert mixed.json() == {
            "processed": 1,
            "duplicates": 0,
            "rejected": [{"index": 1, "reason": "vehicle_id is not in this token's scope"}],
        }
        only_others = device.post("/tracking/gps", json={"updates": [point(other, t + 1)]})
        assert_error(only_others, 403, "forbidden")
        assert device.get(f"/tracking/vehicle/{tokens.scoped2}/location").status_code == 200
        assert device.get(f"/tracking/vehicle/{other}/location").status_code == 404
    with server.client(tokens.admin_a) as admin:
        assert admin.get(f"/tracking/vehicle/{other}/location").status_code == 404


def test_another_fleet_cannot_write_to_a_vehicle_it_does_not_own(
    a: httpx.Client, b: httpx.Client, uid: str
) -> None:
    """A vehicle id belongs to the first fleet that reports it: another fleet's points for it are
    rejected as out of scope and the owner's data is unchanged."""
    t = now_ms() - 10_000
    v = f"OWN-{uid}"
    post_ok(a, point(v, t, lat=10, trip_id=f"OT-{uid}"))
    r = b.post(
        "/tracking/gps",
        json={"updates": [point(v, t + 1, lat=20, trip_id=f"OT-{uid}"), point(f"B-{uid}", t)]},
    )
    assert r.json() == {
        "processed": 1,
        "duplicates": 0,
        "rejected": [{"index": 0, "reason": "vehicle_id is not in this token's scope"}],
    }
    alone = b.post("/tracking/gps", json={"updates": [point(v, t + 2, lat=30)]})
    assert_error(alone, 403, "forbidden")
    loc = a.get(f"/tracking/vehicle/{v}/location").json()
    assert (loc["timestamp_ms"], loc["lat"]) == (t, 10.0)
    assert [p["lat"] for p in history(a, f"OT-{uid}")] == [10.0]
    assert b.get(f"/tracking/vehicle/{v}/location").status_code == 404
    assert b.get(f"/tracking/trip/OT-{uid}/history").status_code == 404


def test_a_token_made_while_the_server_runs_works_at_once(server: Server, uid: str) -> None:
    """`trucktrack token create` against the live data folder: no restart needed."""
    token = create_token(server.data_dir, f"new-{uid}", "dispatcher")
    with server.client(token) as c:
        post_ok(c, point(f"NEW-{uid}", now_ms()))
        assert c.get(f"/tracking/vehicle/NEW-{uid}/location").status_code == 200


def test_the_trailing_slash_route_behaves_the_same(a: httpx.Client, uid: str) -> None:
    """POST /tracking/gps/ gives the same replies: stored points, rejections by index, 401 and
    400 envelopes."""
    t = now_ms() - 1000
    v = f"TS-{uid}"
    r = a.post("/tracking/gps/", json={"updates": [point(v, t, lat=99), point(v, t)]})
    assert r.status_code == 200, r.text
    assert r.json()["processed"] == 1 and [x["index"] for x in r.json()["rejected"]] == [0]
    assert a.get(f"/tracking/vehicle/{v}/location").json()["timestamp_ms"] == t
    assert_error(a.post("/tracking/gps/", content=b"nope", headers=JSON), 400, "bad_request")
    unauth = httpx.post(str(a.base_url) + "/tracking/gps/", json={"updates": []})
    assert_error(unauth, 401, "unauthenticated")


GOOD = b'{"vehicle_id": "FZ-%s", "lat": 1, "lng": 2}'


def _with(fields: bytes) -> bytes:
    """A batch of one point with these extra fields (raw JSON), then a good point."""
    return (
        b'{"updates": [{"vehicle_id": "FZ", "lat": 1, "lng": 2, ' + fields + b"}, " + GOOD + b"]}"
    )


NASTY_BODIES = [  # (body, status, how many items `updates` holds)
    (b'{"updates": [{"vehicle_id": "FZ", "lng": 2, "lat": 1' + b"0" * 400 + b"}]}", 200, 1),
    (_with(b'"timestamp": 1' + b"0" * 5000), 200, 2),
    (_with(b'"timestamp": -1e400'), 200, 2),
    (_with(b'"timestamp": 18446744073709551616'), 200, 2),
    (_with(b'"timestamp": "0001-01-01T00:00:00+23:59"'), 200, 2),
    (_with(b'"timestamp": "+275760-09-13T00:00:00Z"'), 200, 2),
    (_with(b'"x": NaN'), 200, 2),
    (_with(b'"engine_status": NaN'), 200, 2),
    (_with(b'"driver_id": "D\\u0000"'), 200, 2),
    (_with(b'"lat": "x"'), 200, 2),
    (b'{"updates": [' + b"NaN, 1e999, null, true, " * 10 + GOOD + b"]}", 200, 41),
    (b'{"updates": [' + b"{}," * 999 + b"{}]}", 200, 1000),
    (b'{"updates": [' + b"[" * 900 + b"]" * 900 + b"]}", 200, 1),
    (b'{"updates": [' + GOOD + b'], "extra": NaN}', 200, 1),
    (b'{"updates": [' + GOOD + b'], "updates": 5}', 400, 0),
    (b'{"updates": [{"vehicle_id": "\xff\xfe", "lat": 1, "lng": 2}, {"lat": NaN}]}', 400, 0),
    (b"\x00\x01\x02", 400, 0),
    (b"null", 400, 0),
    (b'"updates"', 400, 0),
]


@pytest.mark.parametrize(("body", "status", "n"), NASTY_BODIES, ids=range(len(NASTY_BODIES)))
def test_nasty_bodies_get_an_answer_not_a_server_error(
    a: httpx.Client, uid: str, body: bytes, status: int, n: int
) -> None:
    """Odd numbers, odd times, odd JSON: a 200 accounts for every item (stored or rejected by
    index), anything else is a 400 with the error envelope; never a 500."""
    body = body.replace(b"FZ-%s", f"FZ-{uid}".encode())
    r = post_raw(a, body)
    if status == 400:
        assert_error(r, 400, "bad_request")
        return
    assert r.status_code == 200, r.text
    reply = r.json()
    indexes = [x["index"] for x in reply["rejected"]]
    assert indexes == sorted(set(indexes)) and all(0 <= i < n for i in indexes)
    assert reply["processed"] + len(indexes) == n
    assert all(x["reason"] for x in reply["rejected"])

"""Current location, bulk locations and trip history (JSON, GeoJSON, GPX) over real HTTP."""

from __future__ import annotations

import base64
import datetime as dt
import json
import xml.etree.ElementTree as ET

import httpx
import pytest

from tests.e2e.conftest import (
    HOUR_MS,
    Server,
    Tokens,
    assert_error,
    history,
    history_pages,
    now_ms,
    point,
    post_ok,
)

GPX = "{http://www.topografix.com/GPX/1/1}"
TT = "{https://trucktrack.dev/gpx/1}"
LOCATION_FIELDS = {
    "vehicle_id", "lat", "lng", "speed", "heading", "accuracy", "altitude", "timestamp",
    "timestamp_ms", "received_at", "age_s", "status", "trip_id", "driver_id", "engine_status",
}  # fmt: skip


def trkpts(gpx_text: str) -> list[ET.Element]:
    root = ET.fromstring(gpx_text)
    assert root.tag == f"{GPX}gpx" and root.get("version") == "1.1"
    return root.findall(f"{GPX}trk/{GPX}trkseg/{GPX}trkpt")


# --- current location -------------------------------------------------------------------------


def test_location_has_every_field(a: httpx.Client, uid: str) -> None:
    """The newest point comes back with exactly the documented fields and values."""
    t = now_ms() - 2000
    v = f"L-{uid}"
    before = now_ms()
    post_ok(a, point(v, t, speed=3, heading=12.5, accuracy=4, altitude=100, trip_id=f"TL-{uid}",
                     driver_id="D1", engine_status=False))  # fmt: skip
    after = now_ms()
    r = a.get(f"/tracking/vehicle/{v}/location")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    loc = r.json()
    assert set(loc) == LOCATION_FIELDS
    assert loc["vehicle_id"] == v
    assert (loc["lat"], loc["lng"], loc["speed"], loc["heading"]) == (18.52, 73.85, 3.0, 12.5)
    assert (loc["accuracy"], loc["altitude"]) == (4.0, 100.0)
    assert loc["timestamp_ms"] == t
    assert loc["timestamp"] == _iso(t)
    received = _ms(loc["received_at"])
    assert before - 1 <= received <= after + 1
    assert 1.5 <= loc["age_s"] < 60
    assert loc["status"] == "stopped"
    assert (loc["trip_id"], loc["driver_id"], loc["engine_status"]) == (f"TL-{uid}", "D1", False)


@pytest.mark.parametrize(("speed", "status"), [(0, "stopped"), (4.99, "stopped"), (5, "moving"),
                                               (120, "moving")])  # fmt: skip
def test_status_is_moving_from_5_kmh(a: httpx.Client, uid: str, speed: float, status: str) -> None:
    v = f"S-{uid}"
    post_ok(a, point(v, now_ms() - 100, speed=speed))
    assert a.get(f"/tracking/vehicle/{v}/location").json()["status"] == status


def test_location_errors(a: httpx.Client, b: httpx.Client, uid: str) -> None:
    """Unknown, another fleet's, and stale (> 24 h) vehicles are 404; bad ids are 400."""
    assert_error(a.get(f"/tracking/vehicle/NOPE-{uid}/location"), 404, "not_found")
    assert_error(a.get("/tracking/vehicle/bad%20id/location"), 400, "bad_request")
    assert_error(a.get("/tracking/vehicle/bad!id/location"), 400, "bad_request")
    v = f"STALE-{uid}"
    stale_ts = now_ms() - 25 * HOUR_MS
    post_ok(a, point(v, stale_ts, trip_id=f"ST-{uid}"))  # accepted: within retention
    assert_error(a.get(f"/tracking/vehicle/{v}/location"), 404, "not_found")
    assert [p["timestamp_ms"] for p in history(a, f"ST-{uid}")] == [stale_ts]  # still in history
    post_ok(a, point(v, now_ms() - 23 * HOUR_MS))
    assert a.get(f"/tracking/vehicle/{v}/location").status_code == 200
    post_ok(b, point(f"BV-{uid}", now_ms()))
    assert_error(a.get(f"/tracking/vehicle/BV-{uid}/location"), 404, "not_found")


def test_ids_with_every_allowed_character_can_be_read(a: httpx.Client, uid: str) -> None:
    """Letters, digits and _ - . : in vehicle and trip ids survive the trip through URLs."""
    v, trip = f"Ab9_-.:{uid}", f"T_-.:{uid}"
    post_ok(a, point(v, now_ms() - 10, trip_id=trip))
    assert a.get(f"/tracking/vehicle/{v}/location").json()["vehicle_id"] == v
    assert [p["vehicle_id"] for p in history(a, trip)] == [v]


# --- bulk -------------------------------------------------------------------------------------


def test_bulk_locations(a: httpx.Client, b: httpx.Client, uid: str) -> None:
    """Known ids come back in `locations`; unknown, other fleets' and stale ones in `missing`."""
    t = now_ms() - 1000
    post_ok(a, point(f"K1-{uid}", t, lat=1), point(f"K2-{uid}", t, lat=2, speed=50),
            point(f"KS-{uid}", now_ms() - 25 * HOUR_MS))  # fmt: skip
    post_ok(b, point(f"KB-{uid}", t))
    ids = [f"K1-{uid}", f"K2-{uid}", f"KB-{uid}", f"K9-{uid}", f"KS-{uid}", f"K1-{uid}"]
    r = a.post("/tracking/vehicles/bulk", json={"vehicle_ids": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"locations", "missing"}
    assert sorted(body["locations"]) == [f"K1-{uid}", f"K2-{uid}"]
    k2 = body["locations"][f"K2-{uid}"]
    assert set(k2) == LOCATION_FIELDS
    assert (k2["vehicle_id"], k2["lat"], k2["status"], k2["timestamp_ms"]) == (
        f"K2-{uid}", 2.0, "moving", t,
    )  # fmt: skip
    assert body["missing"] == [f"KB-{uid}", f"K9-{uid}", f"KS-{uid}"]


def test_bulk_takes_up_to_100_ids(a: httpx.Client, uid: str) -> None:
    post_ok(a, point(f"C0-{uid}", now_ms() - 10))
    ids = [f"C{i}-{uid}" for i in range(100)]
    body = a.post("/tracking/vehicles/bulk", json={"vehicle_ids": ids}).json()
    assert list(body["locations"]) == [f"C0-{uid}"]
    assert body["missing"] == ids[1:]


@pytest.mark.parametrize(
    "payload",
    [
        {"vehicle_ids": []},
        {"vehicle_ids": [f"V{i}" for i in range(101)]},
        {"vehicle_ids": ["bad id"]},
        {"vehicle_ids": "V1"},
        {"vehicle_ids": [1]},
        {},
        {"vehicle_ids": ["x" * 65]},
    ],
    ids=["empty", "101", "bad-chars", "string", "int", "missing", "too-long"],
)
def test_bulk_rejects_bad_requests(a: httpx.Client, payload: object) -> None:
    r = a.post("/tracking/vehicles/bulk", json=payload)
    error = assert_error(r, 400, "validation_error")
    assert error["details"], error


def test_bulk_rejects_a_body_that_is_not_json(a: httpx.Client) -> None:
    r = a.post(
        "/tracking/vehicles/bulk", content=b"nope", headers={"Content-Type": "application/json"}
    )
    assert_error(r, 400, "bad_request")


# --- vehicle-limited tokens -------------------------------------------------------------------


def test_a_vehicle_limited_viewer_sees_only_its_vehicle(
    server: Server, tokens: Tokens, a: httpx.Client, uid: str
) -> None:
    """GIVEN a viewer limited to one vehicle and a trip shared by that vehicle and another
    THEN location, bulk and history (every format) show only its vehicle."""
    t = now_ms() - 1000
    other, trip, other_trip = f"UNSCOPED-{uid}", f"SCOPE-TRIP-{uid}", f"OTHER-TRIP-{uid}"
    post_ok(a, point(tokens.scoped1, t, trip_id=trip), point(other, t, trip_id=trip),
            point(other, t + 1, trip_id=other_trip))  # fmt: skip
    with server.client(tokens.viewer_a_one) as viewer:
        assert viewer.get(f"/tracking/vehicle/{tokens.scoped1}/location").status_code == 200
        assert_error(viewer.get(f"/tracking/vehicle/{other}/location"), 404, "not_found")
        bulk = viewer.post(
            "/tracking/vehicles/bulk", json={"vehicle_ids": [tokens.scoped1, other]}
        ).json()
        assert (list(bulk["locations"]), bulk["missing"]) == ([tokens.scoped1], [other])
        assert {p["vehicle_id"] for p in history(viewer, trip)} == {tokens.scoped1}
        geo = viewer.get(f"/tracking/trip/{trip}/history", params={"format": "geojson"}).json()
        assert geo["properties"]["vehicle_ids"] == [tokens.scoped1]
        gpx = viewer.get(f"/tracking/trip/{trip}/history", params={"format": "gpx"}).text
        assert [p.find(f"{GPX}extensions/{TT}vehicle").text for p in trkpts(gpx)] == [
            tokens.scoped1
        ]
        assert_error(viewer.get(f"/tracking/trip/{other_trip}/history"), 404, "not_found")


# --- trip history -----------------------------------------------------------------------------


def test_history_pages_cover_the_trip_once_in_device_time_order(a: httpx.Client, uid: str) -> None:
    """GIVEN 35 points of two vehicles posted newest first, some at the same instant
    WHEN read 7 at a time THEN the pages hold every point once, ordered by (time, vehicle)."""
    t = now_ms() - HOUR_MS
    trip = f"H-{uid}"
    pts = [point(f"HA-{uid}", t + 1000 * i, trip_id=trip, lat=i / 100) for i in range(25)]
    pts += [point(f"HB-{uid}", t + 2000 * i, trip_id=trip, lat=i / 100) for i in range(10)]
    post_ok(a, *reversed(pts))
    pages = history_pages(a, trip, limit=7)
    assert [page["count"] for page in pages] == [7, 7, 7, 7, 7]
    seen = [(p["timestamp_ms"], p["vehicle_id"], p["lat"]) for pg in pages for p in pg["points"]]
    expected = sorted((p["timestamp"], p["vehicle_id"], p["lat"]) for p in pts)
    assert seen == expected
    assert len(pages) == 5  # exactly full last page: no empty extra page


def test_history_pages_split_points_of_the_same_instant_by_vehicle(
    a: httpx.Client, uid: str
) -> None:
    """Five vehicles at the same instant, read two at a time: ties are ordered by vehicle id and
    a page boundary inside the tie loses nothing."""
    t = now_ms() - 5000
    trip = f"TIE-{uid}"
    vehicles = [f"TIE{i}-{uid}" for i in (3, 1, 4, 0, 2)]
    post_ok(a, *(point(v, t, trip_id=trip) for v in vehicles))
    pages = history_pages(a, trip, limit=2)
    assert [[p["vehicle_id"] for p in page["points"]] for page in pages] == [
        [f"TIE0-{uid}", f"TIE1-{uid}"],
        [f"TIE2-{uid}", f"TIE3-{uid}"],
        [f"TIE4-{uid}"],
    ]


def test_history_time_window(a: httpx.Client, uid: str) -> None:
    """`from` is inclusive, `to` exclusive, both as epoch ms or ISO-8601, with pagination."""
    t = now_ms() // 1000 * 1000 - HOUR_MS
    trip = f"W-{uid}"
    post_ok(a, *(point(f"W-{uid}", t + 1000 * i, trip_id=trip) for i in range(20)))

    def stamps(**params: object) -> list[int]:
        return [(p["timestamp_ms"] - t) // 1000 for p in history(a, trip, **params)]

    assert stamps(**{"from": t + 5000, "to": t + 10_000}) == [5, 6, 7, 8, 9]
    assert stamps(**{"from": _iso(t + 5000), "to": _iso(t + 10_000)}) == [5, 6, 7, 8, 9]
    iso_offset = _iso(t + 15_000).replace("Z", "+00:00")
    assert stamps(**{"from": iso_offset}) == [15, 16, 17, 18, 19]
    assert stamps(to=t + 3000) == [0, 1, 2]
    assert stamps(**{"from": t + 4000, "to": t + 16_000, "limit": 5}) == list(range(4, 16))
    empty = a.get(f"/tracking/trip/{trip}/history", params={"from": t + 100_000})
    assert empty.status_code == 200
    assert empty.json() == {
        "trip_id": trip, "count": 0, "points": [], "next_cursor": None, "distance_m": 0.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage!"},
        {"cursor": "W10"},
        {"cursor": "x" * 600},
        {"limit": 0},
        {"limit": 10_001},
        {"limit": "ten"},
        {"from": "soon"},
        {"to": "2026-11-24T10:00:00"},
        {"format": "kml"},
        {"from": "\u00b2"},  # str.isdigit() is True for it; int() is not
    ],
    ids=[
        "cursor-garbage",
        "cursor-empty-list",
        "cursor-long",
        "limit-0",
        "limit-10001",
        "limit-text",
        "from-text",
        "to-no-offset",
        "format-kml",
        "from-superscript-digit",
    ],
)
def test_history_bad_parameters_are_400(a: httpx.Client, uid: str, params: dict) -> None:
    trip = f"E-{uid}"
    post_ok(a, point(f"E-{uid}", now_ms() - 1000, trip_id=trip))
    r = a.get(f"/tracking/trip/{trip}/history", params=params)
    assert r.status_code == 400, (params, r.text)
    assert r.json()["error"]["code"] in ("bad_request", "validation_error")


def _cursor(raw: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


def test_a_forged_cursor_out_of_range_is_400(a: httpx.Client, uid: str) -> None:
    """A well-formed cursor holding a time beyond int64 is refused, not a server error."""
    trip = f"FC-{uid}"
    post_ok(a, point(f"FC-{uid}", now_ms() - 1000, trip_id=trip))
    r = a.get(f"/tracking/trip/{trip}/history", params={"cursor": _cursor([2**64 - 1, "x"])})
    assert_error(r, 400, "bad_request")


@pytest.mark.parametrize(
    "params",
    [{"from": "9" * 20}, {"to": "-" + "9" * 20}, {"from": "-1"}, {"to": "1969-12-31T23:59:59Z"}],
    ids=["from-huge", "to-huge-negative", "from-negative", "to-1969"],
)
def test_out_of_range_times_are_400(a: httpx.Client, uid: str, params: dict[str, str]) -> None:
    """A `from`/`to` beyond int64 (or before 1970) is a client error, not a server error."""
    trip = f"OR-{uid}"
    post_ok(a, point(f"OR-{uid}", now_ms() - 1000, trip_id=trip))
    assert_error(a.get(f"/tracking/trip/{trip}/history", params=params), 400, "bad_request")


def test_a_cursor_of_a_page_stays_valid(a: httpx.Client, uid: str) -> None:
    """Reading with the same cursor twice gives the same page (cursors are positions)."""
    trip = f"CV-{uid}"
    t = now_ms() - 10_000
    post_ok(a, *(point(f"CV-{uid}", t + i, trip_id=trip) for i in range(5)))
    first = a.get(f"/tracking/trip/{trip}/history", params={"limit": 2}).json()
    cursor = first["next_cursor"]
    again = [
        a.get(f"/tracking/trip/{trip}/history", params={"limit": 2, "cursor": cursor}).json()
        for _ in range(2)
    ]
    assert again[0] == again[1]
    assert [p["timestamp_ms"] for p in again[0]["points"]] == [t + 2, t + 3]


def test_history_of_an_unknown_or_foreign_trip_is_404(
    a: httpx.Client, b: httpx.Client, uid: str
) -> None:
    post_ok(a, point(f"E-{uid}", now_ms() - 1000, trip_id=f"ET-{uid}"))
    assert_error(a.get(f"/tracking/trip/NONE-{uid}/history"), 404, "not_found")
    for fmt in ("json", "geojson", "gpx"):
        r = b.get(f"/tracking/trip/ET-{uid}/history", params={"format": fmt})
        assert_error(r, 404, "not_found")
    assert_error(a.get("/tracking/trip/bad!trip/history"), 400, "bad_request")


def test_an_unknown_trip_is_404_even_with_a_time_window(
    a: httpx.Client, b: httpx.Client, uid: str
) -> None:
    """A time window does not turn an unknown (or foreign) trip into an empty 200; a known trip
    with nothing in the window is an empty 200."""
    trip = f"UW-{uid}"
    post_ok(a, point(f"UW-{uid}", now_ms() - 1000, trip_id=trip))
    for params in ({"from": 0}, {"to": now_ms()}):
        assert_error(a.get(f"/tracking/trip/NONE-{uid}/history", params=params), 404, "not_found")
        assert_error(b.get(f"/tracking/trip/{trip}/history", params=params), 404, "not_found")
    r = a.get(f"/tracking/trip/{trip}/history", params={"to": 1000})
    assert r.status_code == 200 and r.json()["points"] == []


def test_history_as_geojson(a: httpx.Client, uid: str) -> None:
    """A LineString Feature with [lng, lat] coordinates and per-point property arrays."""
    t = now_ms() - 60_000
    trip, v = f"F-{uid}", f"F-{uid}"
    post_ok(a, *(point(v, t + 1000 * i, trip_id=trip, lat=10 + i, lng=70 + i, speed=36,
                       heading=90 + i, accuracy=3, altitude=5 if i else None)
                 for i in range(3)))  # fmt: skip
    geo = a.get(f"/tracking/trip/{trip}/history", params={"format": "geojson"})
    assert geo.status_code == 200
    assert geo.headers["content-type"].startswith("application/geo+json")
    feature = geo.json()
    assert feature["type"] == "Feature"
    assert feature["geometry"] == {
        "type": "LineString",
        "coordinates": [[70, 10], [71, 11], [72, 12]],
    }
    assert feature["properties"] == {
        "trip_id": trip,
        "count": 3,
        "next_cursor": None,
        "vehicle_ids": [v, v, v],
        "timestamps": [_iso(t), _iso(t + 1000), _iso(t + 2000)],
        "speeds": [36.0, 36.0, 36.0],
        "headings": [90.0, 91.0, 92.0],
        "accuracies": [3.0, 3.0, 3.0],
        "altitudes": [None, 5.0, 5.0],
    }
    page = a.get(f"/tracking/trip/{trip}/history", params={"format": "geojson", "limit": 2})
    cursor = page.json()["properties"]["next_cursor"]
    assert cursor and page.headers["X-Next-Cursor"] == cursor
    rest = a.get(
        f"/tracking/trip/{trip}/history", params={"format": "geojson", "cursor": cursor}
    ).json()
    assert rest["geometry"]["coordinates"] == [[72, 12]]


def test_history_as_gpx(a: httpx.Client, uid: str) -> None:
    """GPX 1.1: trkpt lat/lon/ele/time in order, speed in m/s, next cursor in X-Next-Cursor."""
    t = now_ms() - 60_000
    trip = f"X-{uid}"
    post_ok(a, *(point(f"X-{uid}", t + 1000 * i, trip_id=trip, lat=10 + i, lng=70 + i, speed=36,
                       altitude=5) for i in range(3)))  # fmt: skip
    gpx = a.get(f"/tracking/trip/{trip}/history", params={"format": "gpx", "limit": 2})
    assert gpx.status_code == 200
    assert gpx.headers["content-type"].startswith("application/gpx+xml")
    pts = trkpts(gpx.text)
    assert ET.fromstring(gpx.text).find(f"{GPX}trk/{GPX}name").text == trip
    assert [(float(p.get("lat")), float(p.get("lon"))) for p in pts] == [(10, 70), (11, 71)]
    assert [p.find(f"{GPX}time").text for p in pts] == [_iso(t), _iso(t + 1000)]
    assert [p.find(f"{GPX}ele").text for p in pts] == ["5.0", "5.0"]
    assert float(pts[0].find(f"{GPX}extensions/{TT}speed").text) == pytest.approx(10.0)
    cursor = gpx.headers["X-Next-Cursor"]
    rest = a.get(f"/tracking/trip/{trip}/history", params={"format": "gpx", "cursor": cursor})
    assert [float(p.get("lat")) for p in trkpts(rest.text)] == [12.0]
    assert "X-Next-Cursor" not in rest.headers


# --- tenancy ----------------------------------------------------------------------------------


def test_two_fleets_may_use_the_same_trip_id_and_never_see_each_other(
    server: Server, tokens: Tokens, a: httpx.Client, b: httpx.Client, uid: str
) -> None:
    """GIVEN fleets A and B each posting their own vehicle under the same trip id
    THEN on every read endpoint and format each fleet's tokens see only their own fleet's data."""
    t = now_ms() - 5000
    trip, va, vb = f"SHARED-{uid}", f"FA-{uid}", f"FB-{uid}"
    post_ok(a, *(point(va, t + i, trip_id=trip, lat=1) for i in range(3)))
    post_ok(b, *(point(vb, t + i, trip_id=trip, lat=2) for i in range(2)))
    with server.client(tokens.viewer_a) as viewer, server.client(tokens.dispatcher_a) as disp:
        for own, mine, theirs, n in ((a, va, vb, 3), (viewer, va, vb, 3), (disp, va, vb, 3),
                                     (b, vb, va, 2)):  # fmt: skip
            assert own.get(f"/tracking/vehicle/{mine}/location").status_code == 200
            assert_error(own.get(f"/tracking/vehicle/{theirs}/location"), 404, "not_found")
            bulk = own.post("/tracking/vehicles/bulk", json={"vehicle_ids": [mine, theirs]}).json()
            assert (list(bulk["locations"]), bulk["missing"]) == ([mine], [theirs])
            assert [p["vehicle_id"] for p in history(own, trip)] == [mine] * n
            geo = own.get(f"/tracking/trip/{trip}/history", params={"format": "geojson"}).json()
            assert geo["properties"]["vehicle_ids"] == [mine] * n
            gpx = own.get(f"/tracking/trip/{trip}/history", params={"format": "gpx"}).text
            assert [p.find(f"{GPX}extensions/{TT}vehicle").text for p in trkpts(gpx)] == [mine] * n
            assert theirs not in gpx


def _iso(ms: int) -> str:
    """How the server writes a time: ISO-8601 UTC with milliseconds and a Z."""
    return (
        dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")[:-6]
        + "Z"
    )


def _ms(iso: str) -> int:
    return round(dt.datetime.fromisoformat(iso).timestamp() * 1000)

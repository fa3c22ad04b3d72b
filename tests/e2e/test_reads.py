"""Current location, bulk locations and trip history through the real server, across fleets."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest

from tests.e2e.conftest import Server, Tokens, now_ms, point

GPX = "{http://www.topografix.com/GPX/1/1}"


def post(client: httpx.Client, *points: dict[str, object]) -> None:
    r = client.post("/tracking/gps", json={"updates": list(points)})
    assert r.status_code == 200 and not r.json()["rejected"], r.text


def test_location_has_every_field(a: httpx.Client, uid: str) -> None:
    t = now_ms() - 2000
    v = f"L-{uid}"
    post(a, point(v, t, speed=3, heading=12.5, accuracy=4, altitude=100, trip_id="TL",
                  driver_id="D1", engine_status=False))  # fmt: skip
    loc = a.get(f"/tracking/vehicle/{v}/location").json()
    assert loc["vehicle_id"] == v
    assert (loc["lat"], loc["lng"], loc["speed"], loc["heading"]) == (18.52, 73.85, 3.0, 12.5)
    assert (loc["accuracy"], loc["altitude"]) == (4.0, 100.0)
    assert loc["timestamp_ms"] == t
    assert loc["timestamp"].endswith("Z")
    assert loc["received_at"].endswith("Z")
    assert 1.5 < loc["age_s"] < 60
    assert loc["status"] == "stopped"
    assert (loc["trip_id"], loc["driver_id"], loc["engine_status"]) == ("TL", "D1", False)
    post(a, point(v, t + 1, speed=50))
    assert a.get(f"/tracking/vehicle/{v}/location").json()["status"] == "moving"


def test_location_errors(a: httpx.Client, b: httpx.Client, uid: str) -> None:
    assert a.get(f"/tracking/vehicle/NOPE-{uid}/location").status_code == 404
    assert a.get("/tracking/vehicle/bad%20id/location").status_code == 400
    v = f"STALE-{uid}"
    post(a, point(v, now_ms() - 25 * 3_600_000))  # accepted: within retention
    r = a.get(f"/tracking/vehicle/{v}/location")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    post(b, point(f"BV-{uid}", now_ms()))
    assert a.get(f"/tracking/vehicle/BV-{uid}/location").status_code == 404


def test_bulk_locations(a: httpx.Client, b: httpx.Client, uid: str) -> None:
    t = now_ms() - 1000
    post(a, point(f"K1-{uid}", t, lat=1), point(f"K2-{uid}", t, lat=2))
    post(b, point(f"KB-{uid}", t))
    ids = [f"K1-{uid}", f"K2-{uid}", f"KB-{uid}", f"K9-{uid}"]
    r = a.post("/tracking/vehicles/bulk", json={"vehicle_ids": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(body["locations"]) == [f"K1-{uid}", f"K2-{uid}"]
    assert body["locations"][f"K2-{uid}"]["lat"] == 2.0
    assert body["missing"] == [f"KB-{uid}", f"K9-{uid}"]


@pytest.mark.parametrize("ids", [[], [f"V{i}" for i in range(101)], ["bad id"], "V1"])
def test_bulk_rejects_bad_requests(a: httpx.Client, ids: object) -> None:
    r = a.post("/tracking/vehicles/bulk", json={"vehicle_ids": ids})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "validation_error"


def test_a_vehicle_limited_viewer_sees_only_its_vehicle(
    server: Server, tokens: Tokens, a: httpx.Client
) -> None:
    t = now_ms() - 1000
    post(
        a, point("SCOPED-1", t, trip_id="SCOPE-TRIP"), point("UNSCOPED-1", t, trip_id="SCOPE-TRIP")
    )
    with server.client(tokens.viewer_a_one) as viewer:
        assert viewer.get("/tracking/vehicle/SCOPED-1/location").status_code == 200
        assert viewer.get("/tracking/vehicle/UNSCOPED-1/location").status_code == 404
        bulk = viewer.post(
            "/tracking/vehicles/bulk", json={"vehicle_ids": ["SCOPED-1", "UNSCOPED-1"]}
        ).json()
        assert list(bulk["locations"]) == ["SCOPED-1"]
        hist = viewer.get("/tracking/trip/SCOPE-TRIP/history").json()
        assert {p["vehicle_id"] for p in hist["points"]} == {"SCOPED-1"}


def test_history_pages_cover_the_trip_once_in_device_time_order(a: httpx.Client, uid: str) -> None:
    t = now_ms() - 3_600_000
    trip = f"H-{uid}"
    # Two vehicles, posted out of order, some at the same instant.
    pts = [point(f"HA-{uid}", t + 1000 * i, trip_id=trip, lat=i / 100) for i in range(25)]
    pts += [point(f"HB-{uid}", t + 2000 * i, trip_id=trip, lat=i / 100) for i in range(10)]
    post(a, *reversed(pts))
    seen: list[tuple[int, str]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        body = a.get(f"/tracking/trip/{trip}/history", params=params).json()
        pages += 1
        seen += [(p["timestamp_ms"], p["vehicle_id"]) for p in body["points"]]
        assert body["count"] == len(body["points"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 20
    assert len(seen) == 35
    assert seen == sorted(seen)
    assert len(set(seen)) == 35
    window = a.get(
        f"/tracking/trip/{trip}/history", params={"from": t + 5000, "to": t + 10_000}
    ).json()
    assert {p["timestamp_ms"] for p in window["points"]} == {t + 5000, t + 6000, t + 7000,
                                                             t + 8000, t + 9000}  # fmt: skip
    iso_from = a.get(
        f"/tracking/trip/{trip}/history", params={"from": window["points"][0]["timestamp"]}
    )
    assert iso_from.json()["points"][0]["timestamp_ms"] == t + 5000


def test_history_errors(a: httpx.Client, b: httpx.Client, uid: str) -> None:
    post(a, point(f"E-{uid}", now_ms() - 1000, trip_id=f"ET-{uid}"))
    assert a.get(f"/tracking/trip/NONE-{uid}/history").status_code == 404
    assert b.get(f"/tracking/trip/ET-{uid}/history").status_code == 404
    for params in ({"cursor": "garbage!"}, {"limit": 0}, {"limit": 10_001}, {"from": "soon"},
                   {"format": "kml"}):  # fmt: skip
        r = a.get(f"/tracking/trip/ET-{uid}/history", params=params)
        assert r.status_code == 400, (params, r.text)


def test_history_as_geojson_and_gpx(a: httpx.Client, b: httpx.Client, uid: str) -> None:
    t = now_ms() - 60_000
    trip = f"F-{uid}"
    post(a, *(point(f"F-{uid}", t + 1000 * i, trip_id=trip, lat=10 + i, lng=70 + i, speed=36,
                    altitude=5) for i in range(3)))  # fmt: skip
    geo = a.get(f"/tracking/trip/{trip}/history", params={"format": "geojson"})
    assert geo.headers["content-type"].startswith("application/geo+json")
    feature = geo.json()
    assert feature["type"] == "Feature"
    assert feature["geometry"] == {
        "type": "LineString",
        "coordinates": [[70, 10], [71, 11], [72, 12]],
    }
    assert feature["properties"]["speeds"] == [36.0, 36.0, 36.0]
    assert len(feature["properties"]["timestamps"]) == 3

    gpx = a.get(f"/tracking/trip/{trip}/history", params={"format": "gpx", "limit": 2})
    assert gpx.headers["content-type"].startswith("application/gpx+xml")
    root = ET.fromstring(gpx.text)
    assert root.tag == f"{GPX}gpx" and root.get("version") == "1.1"
    trkpts = root.findall(f"{GPX}trk/{GPX}trkseg/{GPX}trkpt")
    assert [float(p.get("lat")) for p in trkpts] == [10.0, 11.0]
    assert [float(p.get("lon")) for p in trkpts] == [70.0, 71.0]
    assert trkpts[0].find(f"{GPX}time").text.endswith("Z")
    assert trkpts[0].find(f"{GPX}ele").text == "5.0"
    cursor = gpx.headers["X-Next-Cursor"]
    rest = a.get(f"/tracking/trip/{trip}/history", params={"format": "gpx", "cursor": cursor})
    assert len(ET.fromstring(rest.text).findall(f"{GPX}trk/{GPX}trkseg/{GPX}trkpt")) == 1
    assert "X-Next-Cursor" not in rest.headers
    for fmt in ("json", "geojson", "gpx"):
        assert b.get(f"/tracking/trip/{trip}/history", params={"format": fmt}).status_code == 404

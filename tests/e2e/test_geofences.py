"""Geofence management through the real server: shapes, rules, validation, tenancy, paging."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Server, Tokens

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[73.0, 18.0], [73.1, 18.0], [73.1, 18.1], [73.0, 18.1], [73.0, 18.0]]],
}


def make(client: httpx.Client, **body: object) -> httpx.Response:
    return client.post("/geofences", json=body)


def test_create_read_replace_delete(a: httpx.Client, uid: str) -> None:
    r = make(a, name=f"Depot {uid}", type="circular", center={"lat": 18.52, "lng": 73.85},
             radius_m=300, rules={"stop_allowed": True, "min_dwell_s": 30})  # fmt: skip
    assert r.status_code == 201, r.text
    fence = r.json()
    assert fence["geofence_id"].startswith("gf_")
    assert fence["geometry"] == {"type": "Point", "coordinates": [73.85, 18.52]}
    assert fence["rules"]["stop_allowed"] is True and fence["rules"]["alert_on_entry"] is True
    fid = fence["geofence_id"]
    assert a.get(f"/geofences/{fid}").json() == fence
    replaced = a.put(f"/geofences/{fid}", json={"name": "Depot moved", "type": "polygon",
                                                "geometry": SQUARE, "active": False})  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["type"] == "polygon" and replaced.json()["active"] is False
    assert replaced.json()["created_at"] == fence["created_at"]
    assert a.delete(f"/geofences/{fid}").status_code == 204
    assert a.get(f"/geofences/{fid}").status_code == 404
    assert a.delete(f"/geofences/{fid}").status_code == 404


def test_every_kind_and_rule_is_accepted(a: httpx.Client, uid: str) -> None:
    corridor = make(a, name=f"NH48 {uid}", type="corridor", width_m=200, geometry={
        "type": "LineString", "coordinates": [[73.85, 18.52], [73.0, 19.0], [72.88, 19.07]]},
        rules={"speed_limit_kmh": 60, "alert_on_entry": False})  # fmt: skip
    assert corridor.status_code == 201, corridor.text
    holed = {"type": "Polygon", "coordinates": [
        SQUARE["coordinates"][0],
        [[73.04, 18.04], [73.06, 18.04], [73.06, 18.06], [73.04, 18.06], [73.04, 18.04]],
    ]}  # fmt: skip
    city = make(a, name=f"No-entry {uid}", type="polygon", geometry=holed,
                rules={"restricted": True, "restricted_hours": [["08:00", "22:00"]],
                       "vehicle_ids": ["MH12AB1234"]})  # fmt: skip
    assert city.status_code == 201, city.text
    multi = {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]}
    assert make(a, name=f"M {uid}", type="polygon", geometry=multi).status_code == 201


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"type": "circular", "center": {"lat": 18.5, "lng": 73.8}, "radius_m": 0}, "radius"),
        ({"type": "circular", "center": {"lat": 18.5, "lng": 73.8}, "radius_m": -10}, "radius"),
        ({"type": "circular", "center": {"lat": 95, "lng": 73.8}, "radius_m": 10}, "range"),
        ({"type": "circular", "radius_m": 10}, "centre"),
        (
            {
                "type": "polygon",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[73.0, 18.0], [73.1, 18.0], [73.1, 18.1], [73.0, 18.1]]],
                },
            },
            "closed",
        ),
        (
            {
                "type": "polygon",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                },
            },
            "Self-intersection",
        ),
        ({"type": "polygon", "geometry": {"type": "LineString", "coordinates": []}}, "Polygon"),
        (
            {
                "type": "polygon",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], *[[1, i / 20_000] for i in range(10_001)], [0, 0]]],
                },
            },
            "at most",
        ),
        (
            {
                "type": "corridor",
                "geometry": {"type": "LineString", "coordinates": [[73, 18], [74, 18]]},
            },
            "width_m",
        ),
        (
            {
                "type": "corridor",
                "width_m": 100,
                "geometry": {"type": "LineString", "coordinates": [[73, 18]]},
            },
            "at least 2",
        ),
    ],
)
def test_unusable_shapes_are_422_with_the_reason(a: httpx.Client, body: dict, reason: str) -> None:
    r = make(a, name="bad", **body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "unprocessable" and reason in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "hexagon", "geometry": SQUARE},
        {"name": "", "type": "polygon", "geometry": SQUARE},
        {"type": "polygon", "geometry": SQUARE, "rules": {"speed_limit_kmh": -5}},
        {"type": "polygon", "geometry": SQUARE, "rules": {"restricted_hours": [["25:00", "x"]]}},
        {"type": "polygon", "geometry": SQUARE, "rules": {"flying": True}},
        {"type": "polygon", "geometry": SQUARE, "colour": "red"},
    ],
)
def test_malformed_requests_are_400(a: httpx.Client, body: dict) -> None:
    assert a.post("/geofences", json={"name": "x", **body}).status_code == 400


def test_listing_filters_and_pages(a: httpx.Client, uid: str) -> None:
    for i in range(5):
        make(a, name=f"List {uid} {i}", type="polygon", geometry=SQUARE, active=i % 2 == 0)
    seen, cursor = [], None
    for _ in range(10):
        params: dict[str, object] = {"name": uid, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = a.get("/geofences", params=params).json()
        seen += [f["name"] for f in page["geofences"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"List {uid} {i}" for i in range(5)]
    active = a.get("/geofences", params={"name": uid, "active": "true"}).json()["geofences"]
    assert len(active) == 3
    assert a.get("/geofences", params={"name": uid, "type": "circular"}).json()["geofences"] == []
    assert a.get("/geofences", params={"cursor": "%%%"}).status_code == 400


def test_fences_belong_to_their_fleet_and_viewers_only_read(
    server: Server, tokens: Tokens, a: httpx.Client, b: httpx.Client, uid: str
) -> None:
    fid = make(a, name=f"Mine {uid}", type="polygon", geometry=SQUARE).json()["geofence_id"]
    assert b.get(f"/geofences/{fid}").status_code == 404
    assert b.put(f"/geofences/{fid}", json={"name": "x", "type": "polygon",
                                            "geometry": SQUARE}).status_code == 404  # fmt: skip
    assert b.delete(f"/geofences/{fid}").status_code == 404
    assert all(f["geofence_id"] != fid for f in b.get("/geofences").json()["geofences"])
    with server.client(tokens.viewer_a) as viewer:
        assert viewer.get(f"/geofences/{fid}").status_code == 200
        assert make(viewer, name="v", type="polygon", geometry=SQUARE).status_code == 403
        assert viewer.delete(f"/geofences/{fid}").status_code == 403
    assert httpx.get(server.url + "/geofences").status_code == 401

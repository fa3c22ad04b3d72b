"""Trips and delivery milestones through the real server: the whole life of a trip, the order
rules, the position check, listings, changes, tenancy and the live milestone push."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.conftest import (
    Server,
    assert_error,
    create_token,
    now_ms,
    post_ok,
    provide_pod,
    wait_for,
)
from tests.e2e.test_live import ask, next_message, ws
from trucktrack.domain.trips import Trip
from trucktrack.simulation import destination

PICKUP = (18.5204, 73.8567)  # Pune
DELIVERY = (18.6298, 73.7997)  # Pimpri, ~14 km north-west
ORDER = [
    "trip_started", "reached_pickup", "loading_started", "loading_completed", "in_transit",
    "reached_delivery", "unloading_started", "unloading_completed", "trip_completed",
]  # fmt: skip


def trip_body(uid: str, **extra: Any) -> dict[str, Any]:
    return {
        "trip_id": f"T-{uid}",
        "booking_id": f"B-{uid}",
        "vehicle_id": f"V-{uid}",
        "driver_id": f"D-{uid}",
        "pickup": {"lat": PICKUP[0], "lng": PICKUP[1], "name": "Pune depot"},
        "delivery": {"lat": DELIVERY[0], "lng": DELIVERY[1], "name": "Pimpri plant"},
        "planned_start": "2026-11-25T06:00:00+05:30",
        "planned_route": {
            "type": "LineString",
            "coordinates": [[PICKUP[1], PICKUP[0]], [73.83, 18.57], [DELIVERY[1], DELIVERY[0]]],
        },
        **extra,
    }


def fix(vehicle: str, where: tuple[float, float], ts: int, **extra: Any) -> dict[str, Any]:
    return {"vehicle_id": vehicle, "lat": where[0], "lng": where[1], "timestamp": ts, **extra}


def milestone(c: httpx.Client, trip: str, name: str, **extra: Any) -> httpx.Response:
    return c.post("/delivery/milestone", json={"trip_id": trip, "milestone": name, **extra})


@pytest.fixture
def fleet(server: Server, uid: str) -> Iterator[tuple[str, httpx.Client]]:
    token = create_token(server.data_dir, f"trips-{uid}", "admin")
    with server.client(token) as client:
        yield token, client


def test_a_trip_from_plan_to_completion(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    vehicle, trip_id = f"V-{uid}", f"T-{uid}"
    r = c.post("/trips", json=trip_body(uid))
    assert r.status_code == 201, r.text
    trip = r.json()
    assert trip["status"] == "planned" and trip["next_milestones"] == ["trip_started"]
    assert trip["planned_start"] == "2026-11-25T00:30:00.000Z"
    planned = trip["planned_route"]
    assert planned["source"] == "given" and planned["vertices"] == 3
    assert 13 < planned["distance_km"] < 20
    geo = c.get(planned["href"])
    assert geo.status_code == 200 and geo.headers["content-type"] == "application/geo+json"
    assert geo.json()["geometry"]["coordinates"][0] == [PICKUP[1], PICKUP[0]]
    # The object store holds it compressed at the spec's key, in the fleet's folder.
    stored = server.data_dir / "objects" / f"trips-{uid}" / "routes" / "planned" / trip_id
    (file,) = stored.glob("v1-*.geojson.gz")
    assert file.read_bytes()[:2] == b"\x1f\x8b"

    t0 = now_ms() - 3_600_000
    post_ok(c, fix(vehicle, PICKUP, t0 - 60_000))  # before the trip: not attributed
    assert milestone(c, trip_id, "trip_started", timestamp=t0).status_code == 201
    # Points without a trip_id while the trip is active belong to it.
    track = [destination(*PICKUP, 330, 600 * i) for i in range(10)]
    post_ok(c, *(fix(vehicle, p, t0 + 60_000 * (i + 1), speed=40) for i, p in enumerate(track)))
    history = c.get(f"/tracking/trip/{trip_id}/history").json()
    assert history["count"] == 10
    # reached_pickup is checked against the truck's newest position (within 500 m).
    post_ok(c, fix(vehicle, PICKUP, t0 + 700_000))
    r = milestone(c, trip_id, "reached_pickup", timestamp=t0 + 710_000)
    assert r.status_code == 201, r.text
    assert r.json()["recorded"]["distance_to_place_m"] < 1
    for name in ("loading_started", "loading_completed", "in_transit"):
        assert milestone(c, trip_id, name, timestamp=t0 + 800_000).status_code == 201
    post_ok(c, fix(vehicle, destination(*DELIVERY, 0, 300), t0 + 2_000_000))
    r = milestone(c, trip_id, "reached_delivery", timestamp=t0 + 2_000_000, lat=18.63, lng=73.8)
    assert r.status_code == 201, r.text
    assert 290 < r.json()["recorded"]["distance_to_place_m"] < 310
    for name in ("unloading_started", "unloading_completed"):
        assert milestone(c, trip_id, name, timestamp=t0 + 2_100_000).status_code == 201
    # The default POD policy: a signature (or OTP) and a photo before the trip completes.
    r = milestone(c, trip_id, "trip_completed", timestamp=t0 + 2_200_000)
    assert assert_error(r, 409, "conflict")["details"] == [{"missing": ["otp or signature",
                                                                        "photo"]}]  # fmt: skip
    provide_pod(c, trip_id)
    r = milestone(c, trip_id, "trip_completed", timestamp=t0 + 2_200_000, note="all good")
    assert r.status_code == 201 and r.json()["status"] == "completed"
    assert r.json()["next_milestones"] == []

    done = c.get(f"/trips/{trip_id}").json()
    assert [m["milestone"] for m in done["milestones"]] == ORDER
    assert done["milestones"][5]["lat"] == 18.63
    assert done["milestones"][-1]["note"] == "all good"
    assert done["started_at"] is not None and done["ended_at"] is not None
    actual = done["actual_route"]
    assert actual["source"] == "recorded" and actual["vertices"] == 12
    coords = c.get(actual["href"]).json()["geometry"]["coordinates"]
    assert coords[0] == pytest.approx([track[0][1], track[0][0]])
    # After completion, points of the vehicle are no longer the trip's.
    post_ok(c, fix(vehicle, PICKUP, t0 + 2_300_000))
    assert c.get(f"/tracking/trip/{trip_id}/history").json()["count"] == 12


def test_milestones_keep_their_order(fleet: tuple[str, httpx.Client], uid: str) -> None:
    _, c = fleet
    trip_id = f"T-{uid}"
    assert c.post("/trips", json=trip_body(uid)).status_code == 201
    r = milestone(c, trip_id, "loading_started")
    body = assert_error(r, 409, "conflict")
    assert body["details"] == [{"allowed_next": ["trip_started"]}]
    t0 = now_ms() - 60_000
    first = milestone(c, trip_id, "trip_started", timestamp=t0)
    assert first.status_code == 201
    again = milestone(c, trip_id, "trip_started", timestamp=t0 + 5000)  # a retry
    assert again.status_code == 200 and again.json()["repeated"] is True
    assert again.json()["recorded"] == first.json()["recorded"]
    assert assert_error(milestone(c, trip_id, "trip_completed"), 409, "conflict")["details"] == [
        {"allowed_next": ["reached_pickup"]}
    ]
    # Earlier than the milestone before it: out of order in time.
    r = milestone(c, trip_id, "reached_pickup", timestamp=t0 - 1000, override=True)
    assert "before trip_started" in assert_error(r, 409, "conflict")["message"]
    r = milestone(c, trip_id, "reached_pickup", timestamp=now_ms() + 3_600_000)
    assert_error(r, 422, "unprocessable")
    assert len(c.get(f"/trips/{trip_id}").json()["milestones"]) == 1


def test_milestone_times_and_notes_that_cannot_be_right(
    fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    trip_id = f"T-{uid}"
    assert c.post("/trips", json=trip_body(uid)).status_code == 201
    # Seconds sent for milliseconds: January 1970, before 2000.
    r = milestone(c, trip_id, "trip_started", timestamp=now_ms() // 1000)
    assert "before 2000" in assert_error(r, 422, "unprocessable")["message"]
    # More than 24 h (TRUCKTRACK_MILESTONE_BACKDATE_H) before the trip was created.
    r = milestone(c, trip_id, "trip_started", timestamp=now_ms() - 25 * 3_600_000)
    assert "before the trip was created" in assert_error(r, 422, "unprocessable")["message"]
    # A note of at most 500 characters.
    t0 = now_ms() - 23 * 3_600_000  # a trip entered after it began: allowed
    r = milestone(c, trip_id, "trip_started", timestamp=t0, note="n" * 501)
    assert_error(r, 400, "validation_error")
    assert c.get(f"/trips/{trip_id}").json()["milestones"] == []
    r = milestone(c, trip_id, "trip_started", timestamp=t0, note="n" * 500)
    assert r.status_code == 201 and r.json()["recorded"]["note"] == "n" * 500
    # Out of order in time: before the previous milestone.
    r = milestone(c, trip_id, "reached_pickup", timestamp=t0 - 1, override=True)
    assert_error(r, 409, "conflict")


def test_planned_arrival_before_planned_start_is_refused(
    fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    trip_id = f"T-{uid}"
    early = {"planned_arrival": "2026-11-25T05:59:00+05:30"}  # a minute before planned_start
    r = c.post("/trips", json=trip_body(uid, **early))
    assert (
        "planned_arrival is before planned_start" in assert_error(r, 400, "bad_request")["message"]
    )
    assert c.post("/trips", json=trip_body(uid)).status_code == 201
    assert_error(c.patch(f"/trips/{trip_id}", json=early), 400, "bad_request")
    r = c.patch(f"/trips/{trip_id}", json={"planned_start": "2026-11-25T09:00:00+05:30"})
    assert r.status_code == 200  # no arrival planned yet
    later = {"planned_arrival": "2026-11-25T08:00:00+05:30"}  # before the new start
    assert_error(c.patch(f"/trips/{trip_id}", json=later), 400, "bad_request")
    both = {"planned_start": "2026-11-25T07:00:00+05:30", **later}
    r = c.patch(f"/trips/{trip_id}", json=both)
    assert r.status_code == 200 and r.json()["planned_arrival"] == "2026-11-25T02:30:00.000Z"


def test_reaching_a_place_is_checked_against_the_truck(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    vehicle, trip_id = f"V-{uid}", f"T-{uid}"
    assert c.post("/trips", json=trip_body(uid)).status_code == 201
    t0 = now_ms() - 60_000
    assert milestone(c, trip_id, "trip_started", timestamp=t0).status_code == 201
    # No position at all.
    r = milestone(c, trip_id, "reached_pickup")
    assert "no position" in assert_error(r, 422, "unprocessable")["message"]
    # 2 km away: refused with the distance.
    post_ok(c, fix(vehicle, destination(*PICKUP, 180, 2000), t0 + 1000))
    body = assert_error(milestone(c, trip_id, "reached_pickup"), 422, "unprocessable")
    assert 1990 < body["details"][0]["distance_m"] < 2010 and body["details"][0]["radius_m"] == 500
    # A dispatcher may not override; an admin may, and it is recorded.
    dispatcher = create_token(server.data_dir, f"trips-{uid}", "dispatcher")
    with server.client(dispatcher) as d:
        assert_error(milestone(d, trip_id, "reached_pickup", override=True), 403, "forbidden")
    r = milestone(c, trip_id, "reached_pickup", override=True, note="GPS box faulty")
    assert r.status_code == 201, r.text
    recorded = r.json()["recorded"]
    assert recorded["override"] is True and recorded["distance_to_place_m"] > 1990
    assert recorded["note"] == "GPS box faulty"


def test_listing_by_vehicle_and_booking(fleet: tuple[str, httpx.Client], uid: str) -> None:
    _, c = fleet
    vehicle = f"V-{uid}"
    for i in range(5):
        body = trip_body(uid, trip_id=f"T{i}-{uid}", planned_start=1_800_000_000_000 + i * 1000)
        if i == 4:
            body["booking_id"] = f"OTHER-{uid}"
        assert c.post("/trips", json=body).status_code == 201
    listed = c.get(f"/vehicles/{vehicle}/trips", params={"limit": 2}).json()
    assert [t["trip_id"] for t in listed["trips"]] == [f"T0-{uid}", f"T1-{uid}"]
    rest = c.get(f"/vehicles/{vehicle}/trips", params={"cursor": listed["next_cursor"]}).json()
    assert [t["trip_id"] for t in rest["trips"]] == [f"T{i}-{uid}" for i in (2, 3, 4)]
    assert rest["next_cursor"] is None
    window = c.get(
        f"/vehicles/{vehicle}/trips",
        params={"from": 1_800_000_001_000, "to": "2027-01-15T08:00:03Z"},
    ).json()
    assert [t["trip_id"] for t in window["trips"]] == [f"T{i}-{uid}" for i in (1, 2)]
    booked = c.get(f"/bookings/B-{uid}/trips").json()
    assert [t["trip_id"] for t in booked["trips"]] == [f"T{i}-{uid}" for i in range(4)]
    assert c.get(f"/bookings/NOPE-{uid}/trips").json() == {"trips": [], "next_cursor": None}
    assert_error(c.get(f"/vehicles/{vehicle}/trips", params={"from": "yesterday"}), 400,
                 "bad_request")  # fmt: skip
    assert_error(c.get(f"/vehicles/{vehicle}/trips", params={"cursor": "junk"}), 400,
                 "bad_request")  # fmt: skip


def test_allowed_changes_and_cancelling(fleet: tuple[str, httpx.Client], uid: str) -> None:
    _, c = fleet
    trip_id = f"T-{uid}"
    assert c.post("/trips", json=trip_body(uid)).status_code == 201
    r = c.patch(f"/trips/{trip_id}", json={"driver_id": f"D2-{uid}", "vehicle_id": f"W-{uid}"})
    assert r.status_code == 200 and r.json()["driver_id"] == f"D2-{uid}"
    assert r.json()["vehicle_id"] == f"W-{uid}"
    r = c.patch(f"/trips/{trip_id}", json={"planned_route": {"type": "LineString", "coordinates":
                                            [[73.85, 18.52], [73.80, 18.63]]}})  # fmt: skip
    assert r.json()["planned_route"]["vertices"] == 2
    assert_error(c.patch(f"/trips/{trip_id}", json={"trip_id": "x"}), 400, "validation_error")
    assert_error(c.patch(f"/trips/{trip_id}", json={"status": "completed"}), 400,
                 "validation_error")  # fmt: skip
    assert milestone(c, trip_id, "trip_started").status_code == 201
    r = c.patch(f"/trips/{trip_id}", json={"vehicle_id": f"V-{uid}"})
    assert "before trip_started" in assert_error(r, 409, "conflict")["message"]
    r = c.patch(f"/trips/{trip_id}", json={"status": "cancelled"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["next_milestones"] == []
    assert_error(milestone(c, trip_id, "reached_pickup"), 409, "conflict")
    assert_error(c.patch(f"/trips/{trip_id}", json={"driver_id": "x"}), 409, "conflict")
    assert_error(c.patch(f"/trips/NOPE-{uid}", json={"driver_id": "x"}), 404, "not_found")


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"pickup": None}, 400),
        ({"pickup": {"lat": 91, "lng": 73}}, 400),
        ({"delivery": {"lat": 18.5}}, 400),
        ({"trip_id": "../etc"}, 400),
        ({"trip_id": ".."}, 400),
        ({"trip_id": "x" * 129}, 400),
        ({"vehicle_id": ""}, 400),
        ({"planned_start": "tomorrow"}, 400),
        ({"planned_route": {"type": "Polygon", "coordinates": []}}, 400),
        ({"planned_route": {"type": "LineString", "coordinates": [[73.8, 18.5]]}}, 422),
        ({"planned_route": {"type": "LineString", "coordinates": [[200, 18.5], [1, 1]]}}, 422),
        ({"planned_route": {"type": "LineString", "coordinates": [["a", 1], [1, 1]]}}, 400),
        ({"unknown": 1}, 400),
    ],
)
def test_bad_trips_are_refused(
    fleet: tuple[str, httpx.Client], uid: str, change: dict[str, Any], status: int
) -> None:
    _, c = fleet
    body = {k: v for k, v in {**trip_body(uid), **change}.items() if v is not None}
    r = c.post("/trips", json=body)
    assert r.status_code == status, r.text
    assert "error" in r.json()
    assert c.get(f"/trips/T-{uid}").status_code == 404


def test_duplicates_oversized_and_malformed(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    assert c.post("/trips", json=trip_body(uid)).status_code == 201
    assert_error(c.post("/trips", json=trip_body(uid)), 409, "conflict")
    r = c.post("/trips", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    huge = trip_body(uid, trip_id=f"H-{uid}")
    huge["planned_route"]["coordinates"] = [[73.8 + i * 1e-6, 18.5] for i in range(400_000)]
    assert c.post("/trips", json=huge).status_code == 413
    many = trip_body(uid, trip_id=f"M-{uid}")
    many["planned_route"]["coordinates"] = [[73.8 + i * 1e-6, 18.5] for i in range(20_001)]
    assert_error(c.post("/trips", json=many), 422, "unprocessable")
    r = c.post("/delivery/milestone", json={"trip_id": f"T-{uid}", "milestone": "arrived"})
    assert_error(r, 400, "validation_error")
    assert_error(c.post("/delivery/milestone", json={"milestone": "trip_started"}), 400,
                 "validation_error")  # fmt: skip
    r = milestone(c, f"T-{uid}", "trip_started", lat=18.5)
    assert_error(r, 400, "bad_request")
    assert_error(milestone(c, f"NOPE-{uid}", "trip_started"), 404, "not_found")
    # A trip named by a path-like id never reaches the store or the disk: the id check refuses
    # it (400), or, for an encoded slash (decoded before routing), no route matches (404).
    for bad in ("%2E%2E", "%2e", "x" * 129, "semi;colon"):
        r = c.get(f"/trips/{bad}")
        details = assert_error(r, 400, "validation_error")["details"]
        assert [(d["key"], d["source"]) for d in details] == [("trip_id", "path")], bad
    body = assert_error(c.get("/trips/a%2Fb"), 404, "not_found")
    assert body["message"] == "Not Found"  # no route, not "no trip 'a/b'"


def test_trips_stay_in_their_fleet(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    trip_id, vehicle = f"T-{uid}", f"V-{uid}"
    assert c.post("/trips", json=trip_body(uid)).status_code == 201
    other = create_token(server.data_dir, f"other-{uid}", "admin")
    viewer = create_token(server.data_dir, f"trips-{uid}", "viewer")
    device = create_token(server.data_dir, f"trips-{uid}", "device", vehicle)
    stranger = create_token(server.data_dir, f"trips-{uid}", "device", f"X-{uid}")
    with (
        server.client(other) as o,
        server.client(viewer) as v,
        server.client(device) as d,
        server.client(stranger) as s,
        server.client(None) as anon,
    ):
        assert_error(o.get(f"/trips/{trip_id}"), 404, "not_found")
        assert_error(milestone(o, trip_id, "trip_started"), 404, "not_found")
        assert_error(o.patch(f"/trips/{trip_id}", json={"driver_id": "x"}), 404, "not_found")
        assert o.get(f"/vehicles/{vehicle}/trips").json()["trips"] == []
        assert o.get(f"/bookings/B-{uid}/trips").json()["trips"] == []
        assert_error(o.get(f"/trips/{trip_id}/route/planned"), 404, "not_found")
        # Another fleet cannot plan trips for this fleet's truck once it has reported.
        post_ok(c, fix(vehicle, PICKUP, now_ms()))
        r = o.post("/trips", json=trip_body(uid, trip_id=f"O-{uid}"))
        assert_error(r, 403, "forbidden")
        assert v.get(f"/trips/{trip_id}").status_code == 200
        assert_error(v.post("/trips", json=trip_body(uid, trip_id=f"V2-{uid}")), 403, "forbidden")
        assert_error(milestone(v, trip_id, "trip_started"), 403, "forbidden")
        # The driver's phone (a device token for the truck) records milestones; others' not.
        assert_error(milestone(s, trip_id, "trip_started"), 404, "not_found")
        assert milestone(d, trip_id, "trip_started").status_code == 201
        assert_error(d.patch(f"/trips/{trip_id}", json={"driver_id": "x"}), 403, "forbidden")
        assert_error(anon.get(f"/trips/{trip_id}"), 401, "unauthenticated")
        assert_error(milestone(anon, trip_id, "reached_pickup"), 401, "unauthenticated")


def test_a_vehicle_is_on_one_trip_at_a_time(fleet: tuple[str, httpx.Client], uid: str) -> None:
    _, c = fleet
    assert c.post("/trips", json=trip_body(uid)).status_code == 201
    assert c.post("/trips", json=trip_body(uid, trip_id=f"T2-{uid}")).status_code == 201
    assert milestone(c, f"T-{uid}", "trip_started").status_code == 201
    r = milestone(c, f"T2-{uid}", "trip_started")
    assert f"still on trip 'T-{uid}'" in assert_error(r, 409, "conflict")["message"]


def test_milestones_are_pushed_to_the_trips_followers(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    trip_id = f"T-{uid}"
    assert c.post("/trips", json=trip_body(uid)).status_code == 201
    with ws(server, token) as conn:
        assert ask(conn, action="track_trip", trip_id=trip_id)["type"] == "snapshot"
        assert milestone(c, trip_id, "trip_started").status_code == 201
        pushed = next_message(conn)
        assert pushed["type"] == "milestone" and pushed["milestone"] == "trip_started"
        assert pushed["trip_id"] == trip_id and pushed["status"] == "active"


def test_entering_the_places_geofence_records_reaching_it(
    fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    vehicle, trip_id = f"V-{uid}", f"T-{uid}"
    fence = c.post("/geofences", json={"name": "depot", "type": "circular", "radius_m": 300,
                   "center": {"lat": PICKUP[0], "lng": PICKUP[1]}}).json()  # fmt: skip
    body = trip_body(uid, auto_milestones=True)
    body["pickup"]["geofence_id"] = fence["geofence_id"]
    assert c.post("/trips", json=body).status_code == 201
    t0 = now_ms() - 600_000
    post_ok(c, fix(vehicle, destination(*PICKUP, 180, 3000), t0 - 1000))
    assert milestone(c, trip_id, "trip_started", timestamp=t0).status_code == 201
    post_ok(c, *(fix(vehicle, destination(*PICKUP, 180, 3000 - 400 * i), t0 + 30_000 * i,
                     speed=40) for i in range(1, 9)))  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        trip = c.get(f"/trips/{trip_id}").json()
        if len(trip["milestones"]) == 2:
            break
        time.sleep(0.2)
    reached = trip["milestones"][1]
    assert reached["milestone"] == "reached_pickup" and reached["recorded_by"] == "geofence"
    assert reached["distance_to_place_m"] <= 300


def test_a_point_naming_another_trucks_trip_is_refused(
    fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    trip_id, mine, other = f"T-{uid}", f"V-{uid}", f"W-{uid}"
    assert c.post("/trips", json=trip_body(uid)).status_code == 201
    t0 = now_ms() - 600_000
    assert milestone(c, trip_id, "trip_started", timestamp=t0).status_code == 201
    track = [destination(*PICKUP, 330, 600 * i) for i in range(3)]
    far = destination(*PICKUP, 90, 20_000)  # 20 km east: far off the planned route
    # GIVEN a batch with the trip's own fixes and one from another truck tagged with its trip
    r = c.post("/tracking/gps", json={"updates": [
        fix(mine, track[0], t0 + 60_000),
        fix(other, far, t0 + 90_000, trip_id=trip_id, speed=50),
        fix(mine, track[1], t0 + 120_000, trip_id=trip_id),
        fix(other, far, t0 + 150_000, trip_id=f"ADHOC-{uid}"),  # unknown ids stay allowed
        fix(mine, track[2], t0 + 180_000),
    ]})  # fmt: skip
    # THEN only that point is refused, by its index, and the others are stored
    assert r.status_code == 200, r.text
    assert r.json()["processed"] == 4
    assert r.json()["rejected"] == [
        {"index": 1, "reason": f"trip {trip_id!r} is not a trip of {other!r}"}
    ]
    history = c.get(f"/tracking/trip/{trip_id}/history").json()
    assert [p["vehicle_id"] for p in history["points"]] == [mine] * 3
    assert c.get(f"/tracking/trip/ADHOC-{uid}/history").json()["count"] == 1
    # AND the trip's distance and alerts know nothing of the other truck
    deadline = time.monotonic() + 10
    distance = 0.0
    while distance == 0.0 and time.monotonic() < deadline:
        distance = c.get(f"/trips/{trip_id}").json()["distance_km"]
        time.sleep(0.2)
    assert 1.0 < distance < 1.5
    assert c.get("/alerts", params={"trip_id": trip_id}).json()["alerts"] == []


def test_a_lost_actual_route_is_made_again(tmp_path: Path) -> None:
    """As if the process died after trip_completed was stored but before the actual route
    was: the monitor's sweep (with the summary) writes it, and so does reading it."""
    server = Server(tmp_path / "data", env={"TRUCKTRACK_TRIP_MONITOR_INTERVAL_S": "0.2"}).start()
    try:
        with server.client(create_token(server.data_dir, "lost", "admin")) as c:
            uid = "lost"
            trip_id, vehicle = f"T-{uid}", f"V-{uid}"
            assert c.post("/trips", json=trip_body(uid)).status_code == 201
            t0 = now_ms() - 3_600_000
            done = t0 + 600_000
            assert milestone(c, trip_id, "trip_started", timestamp=t0).status_code == 201
            track = [destination(*PICKUP, 330, 600 * i) for i in range(4)]
            post_ok(c, *(fix(vehicle, p, t0 + 60_000 * (i + 1)) for i, p in enumerate(track)))
            post_ok(c, fix(vehicle, DELIVERY, done))  # at the completion instant: included
            for name in ORDER[1:-1]:
                r = milestone(c, trip_id, name, timestamp=done, override=True)
                assert r.status_code == 201, r.text
            provide_pod(c, trip_id)
            assert milestone(c, trip_id, "trip_completed", timestamp=done).status_code == 201
            actual = c.get(f"/trips/{trip_id}").json()["actual_route"]
            assert actual["vertices"] == 5
            coords = c.get(actual["href"]).json()["geometry"]["coordinates"]
            assert coords[-1] == [DELIVERY[1], DELIVERY[0]]
            stored = server.data_dir / "objects" / "lost" / "routes" / "actual"
            file = stored / trip_id / "track.geojson.gz"
            wait_for(lambda: summary_stored(server), what="the summary")

            # GIVEN the trip completed but neither its actual route nor its summary stored
            path = server.data_dir / "trucktrack.db"
            with closing(sqlite3.connect(path, timeout=30)) as db, db:
                (body,) = db.execute("SELECT body FROM trips WHERE trip_id = ?",
                                     [trip_id]).fetchone()  # fmt: skip
                trip = msgspec.msgpack.decode(body, type=Trip)
                lost = msgspec.structs.replace(trip, actual_route=None)
                db.execute("UPDATE trips SET body = ? WHERE trip_id = ?",
                           [msgspec.msgpack.encode(lost), trip_id])  # fmt: skip
                db.execute("DELETE FROM trip_summaries")
            file.unlink()
            # THEN the monitor's sweep writes it again, with the trip's reference
            assert wait_for(lambda: c.get(f"/trips/{trip_id}").json()["actual_route"],
                            what="the actual route made again") == actual  # fmt: skip
            assert file.exists()
            # AND a file lost on its own is made again when read
            file.unlink()
            r = c.get(actual["href"])
            assert r.status_code == 200 and r.json()["geometry"]["coordinates"] == coords
            assert file.exists()
    finally:
        server.stop()


def summary_stored(server: Server) -> bool:
    with closing(sqlite3.connect(server.data_dir / "trucktrack.db", timeout=30)) as db:
        return db.execute("SELECT count(*) FROM trip_summaries").fetchone()[0] == 1


def test_a_patch_losing_the_race_leaves_the_trips_route_alone(
    server: Server, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    token, c = fleet
    trip_id = f"T-{uid}"
    assert c.post("/trips", json=trip_body(uid)).status_code == 201

    def route(n: int) -> dict[str, Any]:  # n vertices: which PATCH wrote it shows
        line = [[73.80 + 0.01 * i, 18.50 + 0.01 * i] for i in range(n)]
        return {"planned_route": {"type": "LineString", "coordinates": line}}

    # WHEN eight PATCHes of different routes race for the same version
    def patch(n: int) -> int:
        with server.client(token) as own:
            return own.patch(f"/trips/{trip_id}", json=route(n)).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(patch, range(2, 10)))
    assert set(codes) <= {200, 409} and 200 in codes, codes
    # THEN the trip's route is the one its reference says, and the losers' files are gone
    trip = c.get(f"/trips/{trip_id}").json()
    coords = c.get(trip["planned_route"]["href"]).json()["geometry"]["coordinates"]
    assert len(coords) == trip["planned_route"]["vertices"]
    stored = server.data_dir / "objects" / f"trips-{uid}" / "routes" / "planned" / trip_id
    assert len(list(stored.glob("*.geojson.gz"))) == 1
    # AND a duplicate create with another route changes nothing
    r = c.post("/trips", json={**trip_body(uid), **route(12)})
    assert_error(r, 409, "conflict")
    assert c.get(trip["planned_route"]["href"]).json()["geometry"]["coordinates"] == coords


def test_a_made_up_id_a_feature_route_and_a_long_id(
    fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    body = trip_body(uid)
    del body["trip_id"]
    line = body["planned_route"]
    body["planned_route"] = {"type": "Feature", "geometry": line, "properties": {"name": "x"}}
    # GIVEN no trip_id and the route as a GeoJSON Feature
    r = c.post("/trips", json=body)
    assert r.status_code == 201, r.text
    made = r.json()
    # THEN the server makes the id up, and the route is the Feature's line
    assert re.fullmatch(r"trip_[0-9a-f]{16}", made["trip_id"]), made["trip_id"]
    assert c.get(f"/trips/{made['trip_id']}").json()["booking_id"] == f"B-{uid}"
    route = c.get(made["planned_route"]["href"]).json()
    assert route["geometry"] == line and made["planned_route"]["vertices"] == 3
    assert_error(c.post("/trips", json={**body, "planned_route": {"type": "Feature",
                 "geometry": {"type": "Point", "coordinates": [73.8, 18.5]}}}), 400,
                 "bad_request")  # fmt: skip
    # AND the longest id (128 characters) keeps its routes too
    long_id = "L" * 128
    r = c.post("/trips", json=trip_body(uid, trip_id=long_id))
    assert r.status_code == 201, r.text
    assert c.get(f"/trips/{long_id}/route/planned").json()["geometry"] == line


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is installed by make test")
def test_over_mqtt_a_fix_naming_another_trucks_trip_is_refused_too(tmp_path: Path) -> None:
    from tests.e2e.test_mqtt import Broker, device, mqtt_server, publish, wait_subscribed

    broker = Broker(tmp_path / "broker").start()
    server, admin = mqtt_server(tmp_path / "data", broker)
    server.start()
    dev = None
    try:
        wait_subscribed(server, admin)
        with server.client(admin) as c:
            body = {**trip_body("mq"), "trip_id": "MQ-TRIP", "vehicle_id": "MQ-1"}
            assert c.post("/trips", json=body).status_code == 201
            replies: list[dict[str, Any]] = []
            dev = device(broker, "MQ-2")
            dev.on_message = lambda _c, _u, m: replies.append(json.loads(m.payload))
            dev.subscribe("topic/vehicle/MQ-2/gps/rejected", qos=1)
            time.sleep(0.5)  # the subscription is in place
            t = now_ms() - 60_000
            # GIVEN MQ-2's device tagging one of its fixes with MQ-1's trip
            publish(dev, "topic/vehicle/MQ-2/gps", [
                {"lat": 18.52, "lng": 73.85, "timestamp": t, "trip_id": "MQ-TRIP"},
                {"lat": 18.53, "lng": 73.85, "timestamp": t + 1000},
            ])  # fmt: skip
            # THEN it is refused by index, the other fix stored, the trip's history empty
            wait_for(lambda: replies, what="the rejection reply")
            assert replies == [{"processed": 1, "rejected": [
                {"index": 0, "reason": "trip 'MQ-TRIP' is not a trip of 'MQ-2'"}]}]  # fmt: skip
            assert wait_for(lambda: c.get("/tracking/vehicle/MQ-2/location").status_code == 200)
            history = c.get("/tracking/trip/MQ-TRIP/history")  # no point of the trip at all
            assert_error(history, 404, "not_found")
    finally:
        if dev is not None:
            dev.loop_stop()
        server.stop()
        broker.stop()

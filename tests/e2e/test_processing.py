"""The processors through the real server: fences made over HTTP, a truck's track posted in
batches, and the alerts it must raise, once each, across retries, tenancy and a SIGKILL."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import JsonReceiver, Server, create_token, metric, now_ms, wait_for
from trucktrack.simulation import destination

NAGPUR = (21.1458, 79.0882)
STEP_S = 30


def east(metres: float, north: float = 0.0) -> tuple[float, float]:
    lat, lng = destination(*NAGPUR, 90, metres)
    return destination(lat, lng, 0, north) if north else (lat, lng)


def make_fences(client: httpx.Client) -> dict[str, str]:
    """A depot (stops allowed, 20 min dwell limit) 3 km east, a north-south road corridor at
    9 km, a restricted zone at 14-15 km; returns name -> id."""
    depot = east(3000)
    road_s, road_n = east(9000, -2000), east(9000, 2000)
    zone = [east(14_000, -500), east(15_000, -500), east(15_000, 500), east(14_000, 500)]
    ring = [[lng, lat] for lat, lng in [*zone, zone[0]]]
    bodies = {
        "depot": {"type": "circular", "center": {"lat": depot[0], "lng": depot[1]},
                  "radius_m": 300, "rules": {"stop_allowed": True, "max_dwell_min": 20}},
        "road": {"type": "corridor", "width_m": 40, "geometry": {
            "type": "LineString", "coordinates": [[road_s[1], road_s[0]], [road_n[1], road_n[0]]]}},
        "zone": {"type": "polygon", "geometry": {"type": "Polygon", "coordinates": [ring]},
                 "rules": {"restricted": True, "alert_on_exit": False}},
    }  # fmt: skip
    ids = {}
    for name, body in bodies.items():
        r = client.post("/geofences", json={"name": name, **body})
        assert r.status_code == 201, r.text
        ids[name] = r.json()["geofence_id"]
    return ids


LEGS = [(6, 60), (70, 0), (4, 60), (1, 120), (3, 60), (5, 100), (3, 60), (64, 0), (8, 60)]
"""(fixes, km/h), one fix every 30 s."""


def track(vehicle: str, start_ms: int) -> list[dict[str, Any]]:
    """Drives east at 60 km/h into the depot, stays 35 min, leaves, has one 120 km/h spike,
    then 2.5 min at 100 km/h, passes the road corridor between two fixes, stops 32 min on the
    highway, then drives into the restricted zone. One fix every 30 s."""
    x, ts, points = 0.0, start_ms, []
    for fixes, speed in LEGS:
        for _ in range(fixes):
            x += speed / 3.6 * STEP_S
            ts += STEP_S * 1000
            lat, lng = east(x)
            points.append({"vehicle_id": vehicle, "lat": lat, "lng": lng, "speed": speed,
                           "timestamp": ts, "trip_id": f"trip-{vehicle}"})  # fmt: skip
    return points


EXPECTED = [
    ("geofence_entry", "depot"),
    ("dwell_exceeded", "depot"),
    ("geofence_exit", "depot"),
    ("speeding", None),
    ("geofence_entry", "road"),
    ("geofence_exit", "road"),
    ("unexpected_stop", None),
    ("geofence_entry", "zone"),
    ("restricted_area", "zone"),
]


def post_all(client: httpx.Client, points: list[dict[str, Any]], size: int = 20) -> None:
    for i in range(0, len(points), size):
        r = client.post("/tracking/gps", json={"updates": points[i : i + size]})
        assert r.status_code == 200 and r.json()["rejected"] == [], r.text


def alerts_of(client: httpx.Client, vehicle: str) -> list[dict[str, Any]]:
    r = client.get("/alerts", params={"vehicle_id": vehicle, "limit": 1000})
    assert r.status_code == 200, r.text
    return list(r.json()["alerts"])


def summary(alerts: list[dict[str, Any]], ids: dict[str, str]) -> list[tuple[str, str | None]]:
    """(type, fence name) in time order; alerts of the same instant in a fixed order."""
    names = {v: k for k, v in ids.items()}
    assert [a["timestamp_ms"] for a in alerts] == sorted(a["timestamp_ms"] for a in alerts)
    rank = {e: n for n, e in enumerate(EXPECTED)}
    found = [(a["timestamp_ms"], (a["type"], names.get(a["geofence_id"]))) for a in alerts]
    return [e for _, e in sorted(found, key=lambda f: (f[0], rank.get(f[1], -1)))]


def test_a_track_raises_each_alert_once_even_when_retried(server: Server, uid: str) -> None:
    token = create_token(server.data_dir, f"proc-{uid}", "admin")
    vehicle = f"MH31-{uid}"
    with server.client(token) as c:
        ids = make_fences(c)
        points = track(vehicle, now_ms() - 3 * 3_600_000)
        post_all(c, points)
        post_all(c, points[100:140], size=7)  # a retry, cut differently
        post_all(c, points[::-1][:30])  # late copies, newest first
        alerts = alerts_of(c, vehicle)
        assert summary(alerts, ids) == EXPECTED
        by_type = {a["type"]: a for a in alerts}
        assert by_type["speeding"]["details"]["max_speed_kmh"] == 100
        assert by_type["speeding"]["severity"] == "warning"
        assert by_type["restricted_area"]["severity"] == "critical"
        assert by_type["unexpected_stop"]["details"]["duration_s"] > 1800
        assert all(a["trip_id"] == f"trip-{vehicle}" for a in alerts)
        entry_road = next(a for a in alerts if a["geofence_id"] == ids["road"])
        assert entry_road["details"]["crossed_between_fixes"] is True
        assert c.get("/alerts", params={"type": "speeding", "vehicle_id": vehicle}).json()[
            "alerts"
        ] == [by_type["speeding"]]
        stops = c.get(f"/tracking/vehicle/{vehicle}/stops").json()
        assert [(s["authorised"], s["ended_at"] is not None) for s in stops["stops"]] == [
            (True, True), (False, True),
        ]  # fmt: skip
        assert [round(s["duration_s"] / 60) for s in stops["stops"]] == [35, 32]
        depot = stops["stops"][0]
        assert depot["trip_id"] == f"trip-{vehicle}" and abs(depot["lat"] - east(3000)[0]) < 0.005
        one = c.get(f"/tracking/vehicle/{vehicle}/stops", params={"limit": 1}).json()
        assert one["stops"] == stops["stops"][:1] and one["next_cursor"]
        rest = c.get(f"/tracking/vehicle/{vehicle}/stops",
                     params={"limit": 1, "cursor": one["next_cursor"]}).json()  # fmt: skip
        assert rest["stops"] == stops["stops"][1:] and rest["next_cursor"] is None
        # From the first fix on (500 m from the start), the spike's kilometre included.
        travelled = sum(speed / 3.6 * STEP_S * n for n, speed in LEGS) - 500

        def distance_reached() -> bool:
            r = c.get(f"/tracking/trip/trip-{vehicle}/history", params={"limit": 1})
            published = r.json()["distance_m"]
            return abs(published - travelled) < 1  # type: ignore[no-any-return]

        wait_for(distance_reached, 10, "the trip's filtered distance to be published")
        text = c.get("/metrics").text
        assert metric(text, 'geofence_violations_total{type="restricted_area"}') >= 1
        assert metric(text, 'alerts_total{type="unexpected_stop"}') >= 1
        assert metric(text, "gps_processing_lag_seconds_count") >= 1


def test_stops_of_unknown_or_foreign_vehicles_are_404(server: Server, uid: str) -> None:
    mine = create_token(server.data_dir, f"stops-{uid}", "admin")
    other = create_token(server.data_dir, f"stops2-{uid}", "admin")
    vehicle = f"TN09-{uid}"
    with server.client(mine) as c, server.client(other) as o:
        post_all(c, track(vehicle, now_ms() - 3 * 3_600_000)[:3])
        assert c.get(f"/tracking/vehicle/{vehicle}/stops").json()["stops"] == []
        assert o.get(f"/tracking/vehicle/{vehicle}/stops").status_code == 404
        assert c.get(f"/tracking/vehicle/NOPE-{uid}/stops").status_code == 404
        assert (
            c.get(f"/tracking/vehicle/{vehicle}/stops", params={"since": "soon"}).status_code == 400
        )
        assert (
            c.get(f"/tracking/vehicle/{vehicle}/stops", params={"cursor": "zz"}).status_code == 400
        )
        assert c.get(f"/tracking/vehicle/{vehicle}/stops", params={"limit": 0}).status_code == 400
    with server.client(None) as anonymous:
        assert anonymous.get(f"/tracking/vehicle/{vehicle}/stops").status_code == 401


def test_fences_of_one_fleet_never_touch_another_fleets_trucks(server: Server, uid: str) -> None:
    owner = create_token(server.data_dir, f"fenced-{uid}", "admin")
    other = create_token(server.data_dir, f"other-{uid}", "admin")
    vehicle = f"KA01-{uid}"
    with server.client(owner) as mine, server.client(other) as theirs:
        make_fences(mine)
        post_all(theirs, track(vehicle, now_ms() - 3 * 3_600_000))
        kinds = {a["type"] for a in alerts_of(theirs, vehicle)}
        assert kinds == {"speeding", "unexpected_stop"}  # no fence alert of another fleet
        assert alerts_of(mine, vehicle) == []


def test_a_fence_drawn_around_a_parked_truck_raises_no_entry(server: Server, uid: str) -> None:
    token = create_token(server.data_dir, f"parked-{uid}", "admin")
    vehicle = f"GJ05-{uid}"
    start = now_ms() - 3_600_000
    here = east(3000)
    parked = [{"vehicle_id": vehicle, "lat": here[0], "lng": here[1], "speed": 0,
               "timestamp": start + i * 30_000} for i in range(6)]  # fmt: skip
    with server.client(token) as c:
        post_all(c, parked[:3])
        make_fences(c)
        post_all(c, parked[3:])
        assert alerts_of(c, vehicle) == []


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    with JsonReceiver() as r:
        yield r


def test_sigkill_mid_track_loses_and_repeats_no_alert(
    tmp_path: Path, receiver: JsonReceiver
) -> None:
    """The snapshot interval is an hour, so after the kill the processors' state can only come
    back by replaying the journal: the last snapshot has the truck outside the depot, so a
    state not brought up to date would raise the depot entry again."""
    env = {
        "TRUCKTRACK_WEBHOOK_URL": f"{receiver.url}/hook",
        "TRUCKTRACK_PROCESSOR_SNAPSHOT_S": "3600",
    }
    server = Server(tmp_path / "data", env=env).start()
    try:
        token = create_token(server.data_dir, "crash", "admin")
        points = track("CRASH-1", now_ms() - 3 * 3_600_000)
        with server.client(token) as c:
            ids = make_fences(c)
            post_all(c, points[:3])
            # A fence change makes the processors save their state (truck outside the depot).
            far = {"type": "circular", "center": {"lat": 10, "lng": 77}, "radius_m": 50}
            assert c.post("/geofences", json={"name": "far", **far}).status_code == 201
            post_all(c, points[3:60])  # into the depot, stopped, dwell limit passed
        server.kill()
        server.start()
        with server.client(token) as c:
            post_all(c, points[50:])  # the client retries from where it was unsure
            alerts = alerts_of(c, "CRASH-1")
            assert summary(alerts, ids) == EXPECTED
            wait_for(lambda: len({a["alert_id"] for a in receiver.bodies()}) == len(alerts),
                     timeout_s=20, what="every alert at the webhook")  # fmt: skip
            assert {a["alert_id"] for a in receiver.bodies()} == {a["alert_id"] for a in alerts}
        time.sleep(0.5)
    finally:
        server.stop()


def test_with_processors_off_points_are_stored_and_raise_nothing(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"TRUCKTRACK_PROCESSORS": "false"}).start()
    try:
        token = create_token(server.data_dir, "quiet", "admin")
        with server.client(token) as c:
            make_fences(c)
            points = track("QUIET-1", now_ms() - 3 * 3_600_000)
            post_all(c, points)
            assert alerts_of(c, "QUIET-1") == []
            assert c.get("/tracking/vehicle/QUIET-1/stops").json()["stops"] == []
            history = c.get("/tracking/trip/trip-QUIET-1/history", params={"limit": 1}).json()
            assert history["distance_m"] == 0.0
            assert (
                c.get("/tracking/vehicle/QUIET-1/location").json()["timestamp_ms"]
                == (points[-1]["timestamp"])
            )
    finally:
        server.stop()


def test_an_unreadable_processor_state_does_not_stop_ingest(tmp_path: Path) -> None:
    server = Server(tmp_path / "data").start()
    try:
        token = create_token(server.data_dir, "broken", "admin")
        points = track("BROKEN-1", now_ms() - 3 * 3_600_000)
        with server.client(token) as c:
            post_all(c, points[:20])
        server.stop()
        db = sqlite3.connect(server.data_dir / "trucktrack.db")
        with db:
            db.execute("UPDATE stream_snapshot SET body = x'c1c1c1'")
        db.close()
        server.start()
        with server.client(token) as c:
            post_all(c, points[20:])
            assert len(history_of(c, "trip-BROKEN-1")) == len(points)
            assert "starting from scratch" in server.log.read_text()
            kinds = {a["type"] for a in alerts_of(c, "BROKEN-1")}
            assert "unexpected_stop" in kinds  # processing goes on from the restart
    finally:
        server.stop()


def history_of(client: httpx.Client, trip: str) -> list[dict[str, Any]]:
    r = client.get(f"/tracking/trip/{trip}/history", params={"limit": 10_000})
    assert r.status_code == 200, r.text
    return list(r.json()["points"])

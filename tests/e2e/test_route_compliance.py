"""Route compliance through the real server: a truck on an active trip leaves its planned route,
comes back, then drives the wrong way; each raises one alert, retries raise none, and the trip
shows where it stands (progress along the route, ETA)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, create_token, metric, now_ms, post_ok, wait_for
from trucktrack.simulation import destination

START = (20.0, 78.0)
END = destination(*START, 90, 50_000)  # a straight 50 km road due east
STEP_S, STEP_M = 10, 167  # 60 km/h


class Drive:
    """A truck's fixes, one every 10 s, each 167 m on from the last along a bearing."""

    def __init__(self, vehicle: str, t0: int) -> None:
        self.vehicle, self.ts, self.at = vehicle, t0, START
        self.fixes: list[dict[str, Any]] = []

    def go(self, bearing: float, steps: int) -> Drive:
        for _ in range(steps):
            self.ts += STEP_S * 1000
            self.at = destination(*self.at, bearing, STEP_M)
            self.fixes.append({"vehicle_id": self.vehicle, "lat": self.at[0], "lng": self.at[1],
                               "timestamp": self.ts, "speed": 60, "heading": bearing})  # fmt: skip
        return self


@pytest.fixture
def fleet(server: Server, uid: str) -> Iterator[tuple[str, httpx.Client]]:
    token = create_token(server.data_dir, f"route-{uid}", "admin")
    with server.client(token) as client:
        yield token, client


def start_trip(c: httpx.Client, uid: str, t0: int, arrival: int) -> str:
    trip_id = f"RC-{uid}"
    line = [[START[1], START[0]], [END[1], END[0]]]
    body = {"trip_id": trip_id, "vehicle_id": f"RV-{uid}",
            "pickup": {"lat": START[0], "lng": START[1]}, "delivery": {"lat": END[0],
            "lng": END[1]}, "planned_arrival": arrival,
            "planned_route": {"type": "LineString", "coordinates": line}}  # fmt: skip
    assert c.post("/trips", json=body).status_code == 201
    r = c.post("/delivery/milestone", json={"trip_id": trip_id, "milestone": "trip_started",
                                            "timestamp": t0})  # fmt: skip
    assert r.status_code == 201
    return trip_id


def route_alerts(c: httpx.Client, trip_id: str) -> list[str]:
    alerts = c.get("/alerts", params={"trip_id": trip_id}).json()["alerts"]
    return [a["type"] for a in sorted(alerts, key=lambda a: a["timestamp"])]


def test_off_route_back_and_wrong_way_raise_one_alert_each(
    admin_metrics: httpx.Client, fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    t0 = now_ms() - 7_200_000
    trip_id = start_trip(c, uid, t0, arrival=t0 + 3_600_000)
    before = metric(admin_metrics.get("/metrics").text, "route_deviation_incidents_total")
    drive = Drive(f"RV-{uid}", t0).go(90, 20)
    post_ok(c, *drive.fixes)

    def progress() -> dict[str, Any] | None:
        p: dict[str, Any] | None = c.get(f"/trips/{trip_id}").json()["progress"]
        return p if p is not None and p["along_route_km"] > 3 else None

    p = wait_for(progress, what="the trip's progress")
    assert p["along_route_km"] == pytest.approx(20 * STEP_M / 1000, abs=0.05)
    assert p["remaining_km"] == pytest.approx(50 - 20 * STEP_M / 1000, abs=0.05)
    assert p["off_route_m"] < 5 and p["deviating"] is False and p["wrong_direction"] is False
    assert p["speed_kmh"] > 30 and p["eta"] is not None and p["delay_min"] is not None

    # Off the road northwards to 6 km away, on for a minute: one route_deviation alert.
    n = len(drive.fixes)
    drive.go(0, 42)
    post_ok(c, *drive.fixes[n:])
    assert wait_for(lambda: route_alerts(c, trip_id) == ["route_deviation"],
                    what="route_deviation")  # fmt: skip
    off = c.get("/alerts", params={"trip_id": trip_id}).json()["alerts"][0]
    assert off["severity"] == "warning" and off["details"]["distance_m"] > 5000
    assert wait_for(lambda: (progress() or {}).get("deviating"), what="deviating progress")
    # Back to the road, then the wrong way along it for 1.5 km.
    n = len(drive.fixes)
    drive.go(180, 42).go(270, 9)
    post_ok(c, *drive.fixes[n:])
    expected = ["route_deviation", "back_on_route", "wrong_direction"]
    assert wait_for(lambda: route_alerts(c, trip_id) == expected, what="three alerts")
    # A retry of everything, and the whole trip posted again, raise nothing new.
    again = c.post("/tracking/gps", json={"updates": drive.fixes}).json()
    assert again["duplicates"] == len(drive.fixes)
    assert route_alerts(c, trip_id) == expected
    after = metric(admin_metrics.get("/metrics").text, "route_deviation_incidents_total")
    assert after == before + 1


def test_the_deviating_share_is_of_the_active_trips_on_a_route(tmp_path: Path) -> None:
    """Own server: the share is over every fleet's active trips. Trip progress, which the share
    is counted from, is published with each processor snapshot: every second here, not 10."""
    server = Server(tmp_path / "data", env={"TRUCKTRACK_PROCESSOR_SNAPSHOT_S": "1"}).start()
    try:
        token = create_token(server.data_dir, "share", "admin")
        t0 = now_ms() - 7_200_000
        with server.client(token) as c:
            on, off = (start_trip(c, name, t0, arrival=t0 + 3_600_000) for name in ("on", "off"))
            # GIVEN two active trips on a planned route: one keeps to it, one leaves it
            post_ok(c, *Drive("RV-on", t0).go(90, 62).fixes)
            post_ok(c, *Drive("RV-off", t0).go(90, 20).go(0, 42).fixes)
            assert wait_for(lambda: route_alerts(c, off) == ["route_deviation"])
            assert route_alerts(c, on) == []

            def share() -> float:
                return metric(c.get("/metrics").text, "route_deviation_share")

            # THEN half of them deviate
            assert wait_for(lambda: share() == 0.5, what="a share of 0.5")
            # AND once the deviating trip is cancelled, none do
            r = c.patch(f"/trips/{off}", json={"status": "cancelled"})
            assert r.status_code == 200
            assert wait_for(lambda: share() == 0.0, what="a share of 0")
    finally:
        server.stop()


@pytest.fixture
def admin_metrics(server: Server, tokens: Any) -> Iterator[httpx.Client]:
    with server.client(tokens.admin_a) as client:
        yield client


def test_a_trip_without_a_planned_route_is_not_checked(
    fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    trip_id = f"NR-{uid}"
    body = {"trip_id": trip_id, "vehicle_id": f"NV-{uid}", "pickup": {"lat": 20, "lng": 78},
            "delivery": {"lat": 20, "lng": 78.5}}  # fmt: skip
    assert c.post("/trips", json=body).status_code == 201
    t0 = now_ms() - 3_600_000
    c.post("/delivery/milestone", json={"trip_id": trip_id, "milestone": "trip_started",
                                        "timestamp": t0})  # fmt: skip
    post_ok(c, *Drive(f"NV-{uid}", t0).go(0, 60).fixes)
    assert c.get(f"/tracking/trip/{trip_id}/history").json()["count"] == 60
    assert c.get(f"/trips/{trip_id}").json()["progress"] is None
    assert route_alerts(c, trip_id) == []


def test_a_crash_mid_deviation_raises_no_second_alert(tmp_path: Path) -> None:
    """SIGKILL while a truck is off route: after the restart the processors resume from their
    snapshot and journal, so going on off route raises nothing and coming back raises one."""
    server = Server(tmp_path / "data", env={"TRUCKTRACK_PROCESSOR_SNAPSHOT_S": "3600"}).start()
    try:
        token = create_token(server.data_dir, "crash", "admin")
        t0 = now_ms() - 7_200_000
        drive = Drive("RV-crash", t0).go(90, 10).go(0, 40)
        with server.client(token) as c:
            trip_id = start_trip(c, "crash", t0, arrival=t0 + 3_600_000)
            post_ok(c, *drive.fixes)
            assert wait_for(lambda: route_alerts(c, trip_id) == ["route_deviation"])
        server.kill()
        server.start()
        n = len(drive.fixes)
        drive.go(0, 5).go(180, 45)
        with server.client(token) as c:
            post_ok(c, *drive.fixes[n:])
            expected = ["route_deviation", "back_on_route"]
            assert wait_for(lambda: route_alerts(c, trip_id) == expected, what="back on route")
    finally:
        server.stop()


def test_a_new_route_for_an_active_trip_is_followed(
    fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    t0 = now_ms() - 7_200_000
    trip_id = start_trip(c, uid, t0, arrival=t0 + 3_600_000)
    drive = Drive(f"RV-{uid}", t0).go(90, 30)  # 5 km east along the 50 km road
    post_ok(c, *drive.fixes)

    def progress() -> dict[str, Any] | None:
        p: dict[str, Any] | None = c.get(f"/trips/{trip_id}").json()["progress"]
        return p if p is not None and p["along_route_km"] > 4 else None

    assert wait_for(progress)["remaining_km"] == pytest.approx(45, abs=0.1)
    # WHEN the dispatcher re-plans it: the same start, but north after 5 km, 20 km in all
    turn = destination(*START, 90, 5000)
    north = destination(*turn, 0, 15_000)
    line = [[START[1], START[0]], [turn[1], turn[0]], [north[1], north[0]]]
    r = c.patch(f"/trips/{trip_id}", json={"planned_route": {"type": "LineString",
                                                             "coordinates": line}})  # fmt: skip
    assert r.status_code == 200 and r.json()["planned_route"]["vertices"] == 3
    # THEN the truck turning north follows the new route: no deviation, 20 km less 7 km to go
    n = len(drive.fixes)
    drive.go(0, 12)  # 2 km north
    post_ok(c, *drive.fixes[n:])

    def on_new_route() -> dict[str, Any] | None:
        p = progress()
        return p if p is not None and p["remaining_km"] < 15 else None

    p = wait_for(on_new_route, what="progress on the new route")
    assert p["remaining_km"] == pytest.approx(13, abs=0.2)
    assert p["deviating"] is False and route_alerts(c, trip_id) == []

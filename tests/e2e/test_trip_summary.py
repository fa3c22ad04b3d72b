"""Trip summaries, vehicle profiles and the Parquet export through the real server.

A whole trip is driven: planned due north from a pickup to a delivery 11.1 km away, with a
stop at the depot (an authorised fence), a speeding spell, a 2 km detour east, a GPS jump, a
poor fix, an unauthorised stop and a long wait at the delivery. Its summary is checked against
figures worked out by hand (along a meridian a degree of latitude is R * pi / 180 metres; a fix
x degrees of longitude east of a north-south route is x * that * cos(lat) from it).

Completing a trip goes through `complete_trip`, which first provides the proof of delivery
the default policy asks for.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from tests.e2e.conftest import (
    Server,
    assert_error,
    create_token,
    now_ms,
    post_ok,
    provide_pod,
    run_cli,
    wait_for,
)
from trucktrack.domain.geo import EARTH_RADIUS_M, distance_m

M = EARTH_RADIUS_M * math.pi / 180  # metres per degree of latitude
PICKUP, DELIVERY = (20.0, 78.0), (20.1, 78.0)
AT = {
    "trip_started": 0, "reached_pickup": 600, "loading_started": 900,
    "loading_completed": 2700, "in_transit": 3000, "reached_delivery": 6000,
    "unloading_started": 6300, "unloading_completed": 7500, "trip_completed": 7800,
}  # fmt: skip


def drive(t0: int, vehicle: str) -> list[dict[str, Any]]:
    """The trip's fixes (every 10 s while moving, every 60 s while parked)."""
    fixes: list[dict[str, Any]] = []

    def at(s: float, lat: float, lng: float, speed: float, **extra: Any) -> None:
        fixes.append({"vehicle_id": vehicle, "timestamp": t0 + int(s * 1000), "lat": lat,
                      "lng": lng, "speed": speed, **extra})  # fmt: skip

    for k in range(30):  # 0-290 s: from 0.01 deg south of the pickup, 13 km/h
        at(10 * k, 19.99 + k * 0.01 / 30, 78.0, 13)
    for s in range(300, 3001, 60):  # parked at the depot; the engine off 900-2700 s
        at(s, 20.0, 78.0, 0, engine_status=not 900 <= s < 2700)
    for k in range(1, 21):  # 3010-3200 s: north at 60 km/h
        at(3000 + 10 * k, 20.0 + 0.0015 * k, 78.0, 60)
    for k in range(1, 7):  # 3210-3260 s: 100 km/h
        at(3200 + 10 * k, 20.03 + 0.0025 * k, 78.0, 100)
    for k in range(1, 5):  # 3270-3300 s: 45 km/h, to 20.05
        at(3260 + 10 * k, 20.045 + 0.00125 * k, 78.0, 45)
    at(3305, 21.0, 78.0, 150)  # a GPS jump: not trusted
    at(3315, 20.05, 78.001, 150, accuracy=500)  # a poor fix: not trusted
    for k in range(1, 21):  # 3310-3500 s: 0.02 deg east
        at(3300 + 10 * k, 20.05, 78.0 + 0.001 * k, 40)
    for k in range(1, 21):  # 3510-3700 s: 0.02 deg north
        at(3500 + 10 * k, 20.05 + 0.001 * k, 78.02, 40)
    for k in range(1, 21):  # 3710-3900 s: back west to the route
        at(3700 + 10 * k, 20.07, 78.02 - 0.001 * k, 40)
    for k in range(1, 11):  # 3910-4000 s: north, stopping at 20.08
        at(3900 + 10 * k, 20.07 + 0.001 * k, 78.0, 40 if k < 10 else 0)
    for s in range(4060, 5000, 60):  # an unauthorised stop, 4000-5000 s
        at(s, 20.08, 78.0, 0)
    for k in range(1, 21):  # 5000-5190 s: on to the delivery place
        at(4990 + 10 * k, 20.08 + 0.001 * k, 78.0, 40 if k < 20 else 0)
    for s in range(5250, 7801, 60):  # waiting and unloading there to the end
        at(s, 20.1, 78.0, 0)
    return fixes


# The figures by hand.
EAST = 20 * distance_m(20.05, 78.0, 20.05, 78.001)  # along the parallel, step by step
WEST = 20 * distance_m(20.07, 78.0, 20.07, 78.001)
TOTAL = 0.11 * M + EAST + WEST  # 0.01 + 0.05 + 0.02 + 0.01 + 0.02 deg north, and the detour
FIRST_LEG = 0.01 * M  # before loading: empty
# Off route (over 500 m): the first 17 fixes south of the pickup ((30 - k) * 0.01 / 30 deg),
# the detour's fixes from 5 steps east on, and its west leg until 4 steps from the route.
OUTSIDE = 16.5 * FIRST_LEG / 30 + 15.5 * EAST / 20 + 0.02 * M + 15.5 * WEST / 20
STOPS = [(300, 3010, "pickup", "to_pickup", True), (4000, 5000, None, "in_transit", False),
         (5190, 7800, "delivery", "in_transit", False)]  # fmt: skip
IDLE_S = (900 - 300) + (3010 - 2700) + 600 + 600  # engine on at the depot; else 10 min a stop


def milestone(c: httpx.Client, trip: str, name: str, t0: int) -> None:
    ts = t0 + AT[name] * 1000
    r = c.post("/delivery/milestone", json={"trip_id": trip, "milestone": name, "timestamp": ts})
    assert r.status_code == 201, r.text


def complete_trip(c: httpx.Client, trip_id: str, t0: int) -> None:
    """trip_completed, after the proof of delivery the default policy asks for (a signature
    and a photo)."""
    provide_pod(c, trip_id)
    milestone(c, trip_id, "trip_completed", t0)


@pytest.fixture
def fleet(server: Server, uid: str) -> Iterator[tuple[str, httpx.Client]]:
    name = f"sum-{uid}"
    with server.client(create_token(server.data_dir, name, "admin")) as client:
        yield name, client


def run_trip(c: httpx.Client, uid: str, *, payload_t: float | None = 16.0) -> tuple[str, int]:
    """Plan, drive and complete the trip; returns its id and start time."""
    trip_id, vehicle = f"ST-{uid}", f"SV-{uid}"
    t0 = now_ms() - 4 * 3_600_000
    depot = {"name": f"depot-{uid}", "type": "circular", "radius_m": 300,
             "center": {"lat": PICKUP[0], "lng": PICKUP[1]},
             "rules": {"stop_allowed": True}}  # fmt: skip
    assert c.post("/geofences", json=depot).status_code == 201
    body = {"trip_id": trip_id, "vehicle_id": vehicle,
            "pickup": {"lat": PICKUP[0], "lng": PICKUP[1]},
            "delivery": {"lat": DELIVERY[0], "lng": DELIVERY[1]},
            "planned_start": t0 - 300_000, "planned_arrival": t0 + 5_400_000,
            "planned_route": {"type": "LineString",
                              "coordinates": [[PICKUP[1], PICKUP[0]], [DELIVERY[1], DELIVERY[0]]]},
            **({"payload_t": payload_t} if payload_t is not None else {})}  # fmt: skip
    r = c.post("/trips", json=body)
    assert r.status_code == 201, r.text
    fixes = sorted(drive(t0, vehicle), key=lambda f: f["timestamp"])
    milestone(c, trip_id, "trip_started", t0)
    # The reached_* milestones check the truck's newest position: post up to each first.
    done = -1
    for until, names in ((600, ["reached_pickup", "loading_started", "loading_completed",
                                "in_transit"]),
                         (6000, ["reached_delivery", "unloading_started", "unloading_completed"]),
                         (7800, [])):  # fmt: skip
        post_ok(c, *(f for f in fixes if done < (f["timestamp"] - t0) / 1000 <= until))
        done = until
        for name in names:
            milestone(c, trip_id, name, t0)
    # Before completion there is no summary yet.
    assert_error(c.get(f"/trips/{trip_id}/summary"), 409, "conflict")
    complete_trip(c, trip_id, t0)
    return trip_id, t0


def test_a_completed_trip_is_summarised_as_worked_out_by_hand(
    fleet: tuple[str, httpx.Client], uid: str
) -> None:
    _, c = fleet
    r = c.put(f"/vehicles/SV-{uid}/profile",
              json={"vehicle_class": "tractor_trailer", "km_per_l": 4.0})  # fmt: skip
    assert r.status_code == 200, r.text
    trip_id, t0 = run_trip(c, uid)
    r = c.get(f"/trips/{trip_id}/summary")
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["points"], s["trusted_points"]) == (len(drive(t0, "x")), len(drive(t0, "x")) - 2)

    d = s["distance"]
    assert d["total_km"] == pytest.approx(TOTAL / 1000, abs=0.002)
    assert d["planned_km"] == pytest.approx(0.1 * M / 1000, abs=0.001)
    assert d["actual_minus_planned_km"] == pytest.approx((TOTAL - 0.1 * M) / 1000, abs=0.002)
    assert d["within_route_share"] == pytest.approx((TOTAL - OUTSIDE) / TOTAL, abs=1e-4)
    assert d["max_deviation_m"] == pytest.approx(0.02 * M * math.cos(math.radians(20.05)), abs=0.1)
    assert (d["max_deviation_lat"], d["max_deviation_lng"]) == pytest.approx((20.05, 78.02))
    assert d["laden_km"] == pytest.approx((TOTAL - FIRST_LEG) / 1000, abs=0.002)
    # The same filter as the processors: the trip's own distance agrees.
    assert wait_for(
        lambda: abs(c.get(f"/trips/{trip_id}").json()["distance_km"] - d["total_km"]) < 0.002,
        what="the trip's distance",
    )

    t = s["time"]
    assert t["phases"] == {
        "to_pickup_s": 600, "pickup_wait_s": 300, "loading_s": 1800, "after_loading_s": 300,
        "in_transit_s": 3000, "delivery_wait_s": 300, "unloading_s": 1200,
        "after_unloading_s": 300,
    }  # fmt: skip
    stopped = sum(end - start for start, end, *_ in STOPS)
    assert (t["total_s"], t["stopped_s"], t["driving_s"]) == (7800, stopped, 7800 - stopped)
    assert (t["at_pickup_s"], t["at_delivery_s"]) == (2400, 1800)
    assert (t["start_delay_s"], t["arrival_delay_s"]) == (300, 600)

    st = s["stops"]
    assert (st["count"], st["authorised"], st["unauthorised"]) == (3, 1, 2)
    assert st["longest_s"] == 2710
    got = [(x["duration_s"], x["place"], x["phase"], x["authorised"]) for x in st["stops"]]
    assert got == [(end - start, place, phase, ok) for start, end, place, phase, ok in STOPS]

    sp = s["speeding"]
    assert sp["count"] == 1 and sp["max_speed_kmh"] == 100  # the jump's 150 is not trusted
    spell = sp["spells"][0]
    assert (spell["duration_s"], spell["max_speed_kmh"], spell["limit_kmh"]) == (60, 100, 80)

    f = s["fuel"]
    # A tractor-trailer at 4.0 km/l (its profile), 2.5 l/h idling, 32 t capacity: 16 t of
    # payload takes 0.3 * 16 / 32 = 15% off, 3.4 km/l laden.
    litres = FIRST_LEG / 1000 / 4.0 + (TOTAL - FIRST_LEG) / 1000 / 3.4 + IDLE_S / 3600 * 2.5
    assert f["litres"] == pytest.approx(litres, abs=0.01)
    assert (f["idle_s"], f["idle_basis"], f["km_per_l_laden"]) == (IDLE_S, "mixed", 3.4)
    assert (f["profile_source"], f["payload_source"]) == ("vehicle", "trip")
    assert f["profile"]["vehicle_class"] == "tractor_trailer"


def test_summary_errors_and_tenancy(
    fleet: tuple[str, httpx.Client], b: httpx.Client, uid: str
) -> None:
    _, c = fleet
    assert_error(c.get("/trips/nope/summary"), 404, "not_found")
    body = {"trip_id": f"P-{uid}", "vehicle_id": f"PV-{uid}", "pickup": {"lat": 20, "lng": 78},
            "delivery": {"lat": 20.1, "lng": 78}}  # fmt: skip
    assert c.post("/trips", json=body).status_code == 201
    error = assert_error(c.get(f"/trips/P-{uid}/summary"), 409, "conflict")
    assert "planned" in error["message"] and error["details"] == [{"status": "planned"}]
    trip_id, _ = run_trip(c, uid, payload_t=None)
    assert c.get(f"/trips/{trip_id}/summary").status_code == 200
    assert_error(b.get(f"/trips/{trip_id}/summary"), 404, "not_found")  # another fleet's


def test_a_lost_summary_is_made_again_by_the_monitor_and_on_read(tmp_path: Path, uid: str) -> None:
    env = {"TRUCKTRACK_TRIP_MONITOR_INTERVAL_S": "0.2", "TRUCKTRACK_PROCESSOR_SNAPSHOT_S": "1"}
    srv = Server(tmp_path / "data", env=env).start()
    try:
        with srv.client(create_token(srv.data_dir, "lost", "admin")) as c:
            trip_id, _ = run_trip(c, uid)
            db = srv.data_dir / "trucktrack.db"

            def stored() -> int | None:
                with closing(sqlite3.connect(db, timeout=30)) as conn:
                    row = conn.execute("SELECT computed_at FROM trip_summaries").fetchone()
                return None if row is None else int(row[0])

            def lose() -> None:
                with closing(sqlite3.connect(db, timeout=30)) as conn, conn:
                    conn.execute("DELETE FROM trip_summaries")

            first = wait_for(stored, what="the summary made on completion")
            # As if the process had died before storing it: the monitor's sweep makes it again.
            lose()
            assert wait_for(stored, what="the summary made again") > first
            lose()
            r = c.get(f"/trips/{trip_id}/summary")  # or made on the first read
            assert r.status_code == 200 and r.json()["stops"]["count"] == 3
    finally:
        srv.stop()


# --- vehicle profiles ---------------------------------------------------------------------


def test_vehicle_profile_is_validated_and_kept_per_fleet(
    server: Server, fleet: tuple[str, httpx.Client], b: httpx.Client, uid: str
) -> None:
    name, c = fleet
    vehicle = f"PV-{uid}"
    url = f"/vehicles/{vehicle}/profile"
    error = assert_error(c.get(url), 404, "not_found")
    assert "hcv" in error["message"]  # the default class applies
    r = c.put(url, json={"vehicle_class": "mcv", "km_per_l": 8, "payload_t": 5})
    assert r.status_code == 200, r.text
    p = r.json()
    assert (p["vehicle_class"], p["km_per_l"], p["idle_l_per_h"]) == ("mcv", 8, None)
    assert p["effective"] == {
        "vehicle_class": "mcv", "km_per_l": 8.0, "idle_l_per_h": 1.0, "capacity_t": 8.0,
        "payload_t": 5.0, "load_sensitivity": 0.3,
    }  # fmt: skip
    assert c.get(url).json() == p
    bad_bodies = [
        {}, {"vehicle_class": None}, {"vehicle_class": "rocket"},  # missing, malformed
        {"vehicle_class": "lcv", "colour": 1},  # an unknown field
        {"vehicle_class": "lcv", "km_per_l": "fast"}, {"vehicle_class": "lcv", "km_per_l": 0},
        {"vehicle_class": "mcv", "km_per_l": 60}, {"vehicle_class": "hcv", "idle_l_per_h": -1},
        {"vehicle_class": "hcv", "capacity_t": 0}, {"vehicle_class": "hcv", "load_sensitivity": 2},
    ]  # fmt: skip
    for bad in bad_bodies:
        assert_error(c.put(url, json=bad), 400, "validation_error")
    r = c.put(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    error = assert_error(c.put(url, json={"vehicle_class": "lcv", "payload_t": 3}), 400,
                         "bad_request")  # fmt: skip
    assert "capacity" in error["message"]
    assert c.get(url).json()["vehicle_class"] == "mcv"  # nothing changed
    # Another fleet neither sees nor changes it; a viewer reads, only editors write.
    assert_error(b.get(url), 404, "not_found")
    post_ok(c, {"vehicle_id": vehicle, "lat": 20, "lng": 78})  # the vehicle is now fleet A's
    assert_error(b.put(url, json={"vehicle_class": "lcv"}), 403, "forbidden")
    with server.client(create_token(server.data_dir, name, "viewer")) as viewer:
        assert viewer.get(url).status_code == 200
        assert_error(viewer.put(url, json={"vehicle_class": "lcv"}), 403, "forbidden")
    assert c.delete(url).status_code == 204
    assert_error(c.get(url), 404, "not_found")
    assert_error(c.delete(url), 404, "not_found")


# --- the Parquet export -------------------------------------------------------------------


def test_export_writes_readable_parquet_with_matching_counts(
    server: Server, fleet: tuple[str, httpx.Client], tmp_path: Path, uid: str
) -> None:
    name, c = fleet
    trip_id, t0 = run_trip(c, uid)
    assert c.get(f"/trips/{trip_id}/summary").status_code == 200
    out = tmp_path / "export"
    args = ["export", "--data-dir", str(server.data_dir), "--fleet", name, "--out", str(out),
            "--from", str(t0 - 3_600_000), "--to", str(t0 + 3 * 3_600_000)]  # fmt: skip
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    points = pq.read_table(out / "points").to_pylist()  # a Hive-partitioned dataset
    assert len(points) == len(drive(t0, "x"))
    assert {p["trip_id"] for p in points} == {trip_id}
    trips = pq.read_table(out / "trips.parquet").to_pylist()
    assert [t["trip_id"] for t in trips] == [trip_id]
    assert round(trips[0]["trip_completed_at"].timestamp() * 1000) == t0 + 7_800_000
    assert len(trips[0]["milestones"]) == 9 and trips[0]["payload_t"] == 16
    api_alerts = c.get("/alerts", params={"limit": 1000}).json()["alerts"]
    alerts = pq.read_table(out / "alerts.parquet").to_pylist()
    assert sorted(a["alert_id"] for a in alerts) == sorted(a["alert_id"] for a in api_alerts)
    assert "speeding" in {a["type"] for a in alerts}
    summaries = pq.read_table(out / "summaries.parquet").to_pylist()
    assert len(summaries) == 1 and summaries[0]["stop_count"] == 3
    assert summaries[0]["total_km"] == pytest.approx(TOTAL / 1000, abs=0.002)
    assert len(summaries[0]["stops"]) == 3
    manifest = (out / "manifest.json").read_text()
    assert f'"points": {len(points)}' in manifest
    assert not [p for p in out.rglob(".*")]  # no temporary files left

    # Bad arguments: a clear message and a non-zero exit.
    base = ["export", "--data-dir", str(server.data_dir), "--out", str(tmp_path / "new")]
    for extra, words in (
        (["--from", "yesterday", "--to", "2026-01-01"], "--from 'yesterday'"),
        (["--from", "2026-01-02", "--to", "2026-01-01"], "before --to"),
        (["--from", "2026-01-01T00:00:00", "--to", "2026-01-02"], "offset"),
    ):
        done = run_cli(*base, *extra)
        assert done.returncode == 2 and words in done.stderr, done.stderr
    done = run_cli(*args)  # the folder is not empty now
    assert done.returncode == 2 and "not empty" in done.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = run_cli("export", "--data-dir", str(server.data_dir), "--out", str(blocker / "sub"),
                   "--from", "2026-01-01", "--to", "2026-01-02")  # fmt: skip
    assert done.returncode == 2 and "cannot create" in done.stderr
    done = run_cli("export", "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"),
                   "--from", "2026-01-01", "--to", "2026-01-02")  # fmt: skip
    assert done.returncode == 2 and "no trucktrack database" in done.stderr

"""A viewer token limited to trips (a shipper following one delivery) sees only those trips."""

from __future__ import annotations

import json

from tests.e2e.conftest import Server, create_token, now_ms, post_ok, run_cli
from tests.e2e.test_live import ask, at, next_message, nothing_within, ws


def test_a_shipper_sees_its_trip_and_nothing_else(server: Server, uid: str) -> None:
    admin = create_token(server.data_dir, f"ship-{uid}", "admin")
    mine, other = f"MINE-{uid}", f"OTHER-{uid}"
    shipper = run_cli(
        "token", "create", "--data-dir", str(server.data_dir), "--fleet", f"ship-{uid}",
        "--role", "viewer", "--trip", mine,
    )  # fmt: skip
    assert shipper.returncode == 0, shipper.stderr
    token = shipper.stdout.strip().splitlines()[-1]
    truck = f"TRK-{uid}"
    t = now_ms() - 600_000
    with server.client(admin) as a, server.client(token) as s:
        post_ok(a, *({**at(truck, 100 * i, trip_id=mine), "timestamp": t + i * 1000}
                     for i in range(5)))  # fmt: skip
        assert s.get(f"/tracking/vehicle/{truck}/location").status_code == 200  # on my trip
        post_ok(a, {**at(truck, 600, trip_id=other), "timestamp": t + 10_000})
        assert s.get(f"/tracking/trip/{mine}/history").json()["count"] == 5
        assert s.get(f"/tracking/trip/{other}/history").status_code == 404
        assert s.get(f"/tracking/vehicle/{truck}/location").status_code == 404  # on another
        bulk = s.post("/tracking/vehicles/bulk", json={"vehicle_ids": [truck]}).json()
        assert bulk == {"locations": {}, "missing": [truck]}
        for trip, ts in ((mine, t + 2000), (other, t + 11_000)):
            r = a.post("/tracking/emergency", json={"vehicle_id": truck, "trip_id": trip,
                                                    "timestamp": ts})  # fmt: skip
            assert r.status_code == 201
        alerts = s.get("/alerts", params={"vehicle_id": truck}).json()["alerts"]
        assert [x["trip_id"] for x in alerts] == [mine]
        assert s.get("/geofences").status_code == 403
        r = s.post("/tracking/gps", json={"updates": [at(truck, trip_id=mine)]})
        assert r.status_code == 403
        assert s.post("/tracking/emergency", json={"vehicle_id": truck}).status_code == 403

    with server.client(admin) as a, ws(server, token) as conn:
        assert ask(conn, action="track_trip", trip_id=mine)["vehicles"] == []  # now on other
        denied = ask(conn, action="track_trip", trip_id=other)
        assert denied["type"] == "error" and denied["error"]["code"] == "forbidden"
        assert ask(conn, action="track", vehicle_ids=[truck])["vehicles"] == []
        post_ok(a, {**at(truck, 700, trip_id=other), "timestamp": t + 20_000})
        assert nothing_within(conn, 1.2)
        post_ok(a, {**at(truck, 800, trip_id=mine), "timestamp": t + 30_000})
        update = next_message(conn)
        assert update["type"] == "location_update"
        assert json.dumps(update).count(truck) == 1


def test_only_viewer_tokens_can_be_limited_to_trips(server: Server) -> None:
    out = run_cli(
        "token", "create", "--data-dir", str(server.data_dir), "--fleet", "f",
        "--role", "dispatcher", "--trip", "T1",
    )  # fmt: skip
    assert out.returncode == 2 and "only a viewer" in out.stderr
    bad = run_cli(
        "token", "create", "--data-dir", str(server.data_dir), "--fleet", "f",
        "--role", "viewer", "--trip", "bad trip!",
    )  # fmt: skip
    assert bad.returncode == 2 and "bad trip ids" in bad.stderr


def test_a_shipper_reads_its_trip_record_and_no_other(server: Server, uid: str) -> None:
    fleet = f"shiptrip-{uid}"
    admin = create_token(server.data_dir, fleet, "admin")
    mine, other = f"MINE-{uid}", f"OTHER-{uid}"
    out = run_cli("token", "create", "--data-dir", str(server.data_dir), "--fleet", fleet,
                  "--role", "viewer", "--trip", mine)  # fmt: skip
    shipper = out.stdout.strip().splitlines()[-1]
    place = {"lat": 18.5, "lng": 73.8}
    with server.client(admin) as a, server.client(shipper) as s:
        for trip in (mine, other):
            body = {"trip_id": trip, "vehicle_id": f"V-{uid}", "booking_id": f"B-{uid}",
                    "pickup": place, "delivery": place}  # fmt: skip
            assert a.post("/trips", json=body).status_code == 201
        assert s.get(f"/trips/{mine}").status_code == 200
        assert s.get(f"/trips/{other}").status_code == 404
        listed = s.get(f"/bookings/B-{uid}/trips").json()["trips"]
        assert [t["trip_id"] for t in listed] == [mine]
        r = s.post("/delivery/milestone", json={"trip_id": mine, "milestone": "trip_started"})
        assert r.status_code == 403

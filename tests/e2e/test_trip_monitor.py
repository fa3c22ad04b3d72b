"""The trip monitor finds a truck that stopped and went silent (own server: short thresholds)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.conftest import Server, create_token, now_ms, post_ok


def test_a_silent_stopped_truck_raises_one_unexpected_stop(tmp_path: Path) -> None:
    env = {
        "TRUCKTRACK_TRIP_MONITOR_INTERVAL_S": "0.5",
        "TRUCKTRACK_UNEXPECTED_STOP_MIN": "0.1",  # 6 s
        "TRUCKTRACK_STOP_MIN_S": "1",
    }
    server = Server(tmp_path / "data", env=env).start()
    try:
        token = create_token(server.data_dir, "mon", "admin")
        with server.client(token) as c:
            for trip, vehicle in (("MT-1", "MV-1"), ("MT-2", "MV-2")):
                body = {"trip_id": trip, "vehicle_id": vehicle, "pickup": {"lat": 18.5,
                        "lng": 73.8}, "delivery": {"lat": 18.6, "lng": 73.9}}  # fmt: skip
                assert c.post("/trips", json=body).status_code == 201
            t0 = now_ms() - 3000
            r = c.post("/delivery/milestone", json={"trip_id": "MT-1", "milestone":
                                                    "trip_started", "timestamp": t0})  # fmt: skip
            assert r.status_code == 201
            # Both trucks stop (2 s of slow fixes, then silence); only MV-1 is on a trip.
            for vehicle in ("MV-1", "MV-2"):
                post_ok(c, *({"vehicle_id": vehicle, "lat": 18.55, "lng": 73.85, "speed": 0,
                              "timestamp": t0 + 1000 * i} for i in range(1, 4)))  # fmt: skip
            deadline = time.monotonic() + 20
            found: list[dict[str, object]] = []
            while not found and time.monotonic() < deadline:
                found = c.get("/alerts", params={"type": "unexpected_stop"}).json()["alerts"]
                time.sleep(0.3)
            assert [a["vehicle_id"] for a in found] == ["MV-1"]
            alert = found[0]
            assert alert["trip_id"] == "MT-1" and alert["details"]["found_by"] == "monitor"
            assert alert["details"]["stopped_since"] == t0 + 1000
            time.sleep(1.5)  # more sweeps: still one alert
            again = c.get("/alerts", params={"type": "unexpected_stop"}).json()["alerts"]
            assert len(again) == 1
    finally:
        server.stop()


def test_a_truck_gone_silent_on_a_trip_raises_signal_lost_then_restored(tmp_path: Path) -> None:
    env = {"TRUCKTRACK_TRIP_MONITOR_INTERVAL_S": "0.3", "TRUCKTRACK_SIGNAL_LOST_MIN": "0.05"}  # 3 s
    server = Server(tmp_path / "data", env=env).start()
    try:
        token = create_token(server.data_dir, "sig", "admin")
        with server.client(token) as c:
            for trip, vehicle in (("ST-1", "SV-1"), ("ST-2", "SV-2")):
                body = {"trip_id": trip, "vehicle_id": vehicle, "pickup": {"lat": 18.5,
                        "lng": 73.8}, "delivery": {"lat": 18.6, "lng": 73.9}}  # fmt: skip
                assert c.post("/trips", json=body).status_code == 201
            t0 = now_ms() - 5000
            r = c.post("/delivery/milestone", json={"trip_id": "ST-1", "milestone":
                                                    "trip_started", "timestamp": t0})  # fmt: skip
            assert r.status_code == 201
            # GIVEN both trucks driving, then silent; only SV-1 is on an active trip
            for vehicle in ("SV-1", "SV-2"):
                post_ok(c, *({"vehicle_id": vehicle, "lat": 18.5 + 0.002 * i, "lng": 73.8,
                              "speed": 60, "timestamp": t0 + 1000 * i}
                             for i in range(1, 4)))  # fmt: skip

            def alerts(kind: str) -> list[dict[str, object]]:
                found: list[dict[str, object]] = c.get("/alerts", params={"type": kind}).json()[
                    "alerts"
                ]
                return found

            deadline = time.monotonic() + 20
            lost: list[dict[str, object]] = []
            while not lost and time.monotonic() < deadline:
                lost = alerts("signal_lost")
                time.sleep(0.2)
            # THEN one signal_lost for the truck on the trip, naming its last fix
            assert [(a["vehicle_id"], a["trip_id"]) for a in lost] == [("SV-1", "ST-1")]
            assert lost[0]["details"]["last_fix_at"] == t0 + 3000  # type: ignore[index]
            assert lost[0]["severity"] == "warning"
            time.sleep(1.5)  # more sweeps: still one
            assert len(alerts("signal_lost")) == 1 and alerts("signal_restored") == []
            # WHEN fixes resume, one signal_restored follows
            resumed = now_ms()
            post_ok(c, {"vehicle_id": "SV-1", "lat": 18.51, "lng": 73.8, "speed": 50,
                        "timestamp": resumed})  # fmt: skip
            deadline = time.monotonic() + 20
            restored: list[dict[str, object]] = []
            while not restored and time.monotonic() < deadline:
                restored = alerts("signal_restored")
                time.sleep(0.2)
            assert [a["trip_id"] for a in restored] == ["ST-1"]
            assert restored[0]["details"]["silent_since"] == t0 + 3000  # type: ignore[index]
            assert restored[0]["details"]["gap_s"] == (resumed - t0 - 3000) / 1000  # type: ignore[index]
        # AND after a restart no silence is raised twice: the one since `resumed` once
        server.stop()
        server.start()
        with server.client(token) as c:
            time.sleep(1.0)  # the truck is silent again: a new silence, a new alert
            deadline = time.monotonic() + 20
            lost = []
            while len(lost) < 2 and time.monotonic() < deadline:
                lost = c.get("/alerts", params={"type": "signal_lost"}).json()["alerts"]
                time.sleep(0.2)
            assert [a["details"]["last_fix_at"] for a in lost] == [t0 + 3000, resumed]
            time.sleep(1.0)
            assert len(c.get("/alerts", params={"type": "signal_lost"}).json()["alerts"]) == 2
    finally:
        server.stop()

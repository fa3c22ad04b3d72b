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

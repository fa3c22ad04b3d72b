"""The truck simulator: deterministic, inside India, as fast as it says, stopping sometimes."""

from __future__ import annotations

import math

from trucktrack.simulation import LAT_MAX, LAT_MIN, LNG_MAX, LNG_MIN, TruckSimulator, destination

T0 = 1_795_000_000_000


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    )
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def bearing(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lng2 - lng1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360


def test_same_seed_same_tracks() -> None:
    a, b = TruckSimulator(20, seed=5), TruckSimulator(20, seed=5)
    for k in range(10):
        assert a.step(10, T0 + k * 10_000) == b.step(10, T0 + k * 10_000)
    assert TruckSimulator(20, seed=6).step(10, T0) != TruckSimulator(20, seed=5).step(10, T0)


def test_points_are_plausible_truck_fixes() -> None:
    sim = TruckSimulator(50, seed=2)
    prev = {p["vehicle_id"]: p for p in sim.step(10, T0)}
    assert sorted(prev)[:2] == ["TRK-00001", "TRK-00002"]
    stops = 0
    for k in range(1, 400):
        for p in sim.step(10, T0 + k * 10_000):
            q = prev[p["vehicle_id"]]
            assert (
                LAT_MIN - 0.5 < p["lat"] < LAT_MAX + 0.5
                and LNG_MIN - 0.5 < p["lng"] < LNG_MAX + 0.5
            )
            assert p["timestamp"] > q["timestamp"]
            assert 0 <= p["speed"] <= 90 and 0 <= p["heading"] < 360
            moved = haversine_m(q["lat"], q["lng"], p["lat"], p["lng"])
            assert moved <= p["speed"] / 3.6 * 10 + 1  # never faster than its own speed
            if p["speed"] > 20:
                assert abs(moved - p["speed"] / 3.6 * 10) < 5
                diff = abs(bearing(q["lat"], q["lng"], p["lat"], p["lng"]) - p["heading"]) % 360
                assert min(diff, 360 - diff) < 50  # turns at junctions bend it a little
            stops += p["speed"] == 0 and q["speed"] == 0
            prev[p["vehicle_id"]] = p
    assert stops > 0


def test_timestamps_increase_even_if_the_clock_does_not() -> None:
    sim = TruckSimulator(3)
    first = sim.step(1, T0)
    second = sim.step(1, T0)
    assert all(b["timestamp"] == a["timestamp"] + 1 for a, b in zip(first, second, strict=True))


def test_destination_goes_the_right_way() -> None:
    lat, lng = destination(18.5, 73.8, 90, 1000)
    assert abs(haversine_m(18.5, 73.8, lat, lng) - 1000) < 0.5
    assert abs(bearing(18.5, 73.8, lat, lng) - 90) < 0.1

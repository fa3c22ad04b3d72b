"""The trip summary and the fuel model on a synthetic trip whose figures are worked out by
hand: along a meridian a degree of latitude is R * pi / 180 metres exactly (haversine), and a
fix's distance east of a north-south route is its longitude offset times that times cos(lat)."""

from __future__ import annotations

import asyncio
import math

import msgspec
import numpy as np
import pytest

from tests.fakes import FakeSummaryStore
from trucktrack.domain import filters
from trucktrack.domain.alerts import Alert, AlertType, Severity
from trucktrack.domain.compliance import nearest_on_route
from trucktrack.domain.fuel import (
    CLASS_DEFAULTS,
    VehicleClass,
    VehicleProfile,
    check_profile,
    estimate,
)
from trucktrack.domain.geo import EARTH_RADIUS_M, distance_m
from trucktrack.domain.stops import Stop
from trucktrack.domain.summary import (
    SummaryRules,
    TrackColumns,
    distances_to_route,
    spells_from_alerts,
    summarise,
    trusted_fixes,
)
from trucktrack.domain.trips import ORDER, MilestoneRecord, Place, RouteRef, Trip, TripStatus
from trucktrack.services.summaries import RETRY_FAILED_MS, SummaryService

M = EARTH_RADIUS_M * math.pi / 180  # metres per degree of latitude
T0 = 1_795_000_000_000
ROUTE = [(78.0, 20.0), (78.0, 20.1)]  # (lng, lat): 11.12 km due north
PICKUP, DELIVERY = Place(20.0, 78.0), Place(20.1, 78.0)
# The nine milestones, seconds after T0.
AT = dict(zip(ORDER, (0, 600, 900, 2700, 3000, 6000, 6300, 7500, 7800), strict=True))

# (seconds after T0, lat, lng, speed, accuracy, engine)
FIXES = [
    (-100, 19.99, 78.0, 0, 10, None),  # before trip_started: left out
    (0, 19.99, 78.0, 30, 10, None),  # 0.01 deg south of the route's start: 1111.95 m off
    (300, 20.0, 78.0, 30, 10, None),
    (600, 20.0, 78.0, 0, 10, True),  # at the pickup until 3000
    (1200, 20.0, 78.0, 0, 10, False),
    (1800, 20.0, 78.0, 0, 10, None),  # unknown: the engine stays off
    (2400, 20.0, 78.0, 0, 10, True),
    (3000, 20.0, 78.0, 0, 10, True),
    (3300, 20.02, 78.0, 60, 10, None),
    (3600, 20.04, 78.0, 95, 10, None),  # speeding from here (limit 80) ...
    (3660, 20.045, 78.0, 100, 10, None),
    (3720, 20.05, 78.0, 70, 10, None),  # ... to here
    (3800, 21.0, 78.0, 150, 10, None),  # a GPS jump (105 km in 80 s): not trusted
    (3850, 20.05, 78.01, 60, 500, None),  # accuracy 500 m: not trusted
    (3900, 20.05, 78.02, 60, 10, None),  # a detour 0.02 deg east
    (4200, 20.07, 78.02, 60, 10, None),
    (4500, 20.07, 78.0, 60, 10, None),  # back on the route
    (4800, 20.08, 78.0, 0, 10, None),  # an unauthorised stop until 5700
    (5100, 20.08, 78.0, 0, 10, None),
    (5400, 20.08, 78.0, 0, 10, None),
    (5700, 20.09, 78.0, 50, 10, None),
    (6000, 20.1, 78.0, 0, 10, None),  # at the delivery place to the end
    (6600, 20.1, 78.0, 0, 10, False),
    (7200, 20.1, 78.0, 0, 10, True),
    (7800, 20.1, 78.0, 0, 10, None),
    (7900, 20.1, 78.0, 0, 10, None),  # after trip_completed: left out
]


def ms(seconds: float) -> int:
    return T0 + int(seconds * 1000)


def the_trip(payload_t: float | None = 10.0) -> Trip:
    return Trip(
        fleet_id="f",
        trip_id="T1",
        vehicle_id="V1",
        pickup=PICKUP,
        delivery=DELIVERY,
        status=TripStatus.COMPLETED,
        planned_start=ms(-300),
        planned_arrival=ms(5400),
        milestones=tuple(MilestoneRecord(m, ms(s), ms(s), "tok") for m, s in AT.items()),
        planned_route=RouteRef("routes/planned/T1.geojson.gz", "given", 0.1 * M, 2),
        started_at=ms(0),
        ended_at=ms(7800),
        payload_t=payload_t,
    )


def track() -> TrackColumns:
    rows = list(zip(*FIXES, strict=True))
    engine = [np.nan if e is None else float(e) for e in rows[5]]
    return TrackColumns(
        np.array([ms(s) for s in rows[0]]), np.array(rows[1], float), np.array(rows[2], float),
        np.array(rows[3], float), np.array(rows[4], float), np.array(engine),
    )  # fmt: skip


STOPS = [
    Stop("V1", None, ms(-1000), ms(-500), 19.99, 78.0, 500, False),  # before the trip
    Stop("V1", None, ms(-600), ms(200), 19.99, 78.0, 800, False),  # into its first 200 s
    Stop("V1", "T1", ms(600), ms(3300), 20.0, 78.0, 2700, True),  # the depot: authorised
    Stop("V1", "T1", ms(4800), ms(5700), 20.08, 78.0, 900, False),
    Stop("V1", "T1", ms(6000), None, 20.1, 78.0, 120, False),  # still open at the end
]
SPEEDING = Alert(
    alert_id="al_1", fleet_id="f", type=AlertType.SPEEDING, severity=Severity.WARNING,
    vehicle_id="V1", ts=ms(3660), lat=20.045, lng=78.0, trip_id="T1",
    details={"since": ms(3600), "max_speed_kmh": 100.0, "limit_kmh": 80.0, "duration_s": 60.0},
    dedupe_key="speeding:V1:x",
)  # fmt: skip


def summary(payload_t: float | None = 10.0):  # type: ignore[no-untyped-def]
    return summarise(
        the_trip(payload_t), track(), planned_route=ROUTE, stops=STOPS,
        speeding=spells_from_alerts([SPEEDING]), fuel=CLASS_DEFAULTS[VehicleClass.HCV],
        fuel_source="default", computed_at=ms(9000),
    )  # fmt: skip


# By hand: the east and west legs of the detour (along parallels, haversine), the rest along
# the meridian.
EAST = distance_m(20.05, 78.0, 20.05, 78.02)
WEST = distance_m(20.07, 78.02, 20.07, 78.0)
NORTH_DEG = 0.01 + 0.02 + 0.02 + 0.005 + 0.005 + 0.02 + 0.01 + 0.01 + 0.01
TOTAL = NORTH_DEG * M + EAST + WEST
FIRST_LEG = 0.01 * M  # 0 -> 300 s, before loading: empty


def test_distance_is_over_trusted_fixes_and_laden_after_loading() -> None:
    s = summary()
    assert s.points == 24 and s.trusted_points == 22
    assert s.distance.total_m == pytest.approx(TOTAL, abs=1e-6)
    assert s.distance.laden_m == pytest.approx(TOTAL - FIRST_LEG, abs=1e-6)
    assert s.distance.planned_m == pytest.approx(0.1 * M)


def test_share_within_500_m_and_the_largest_deviation() -> None:
    s = summary().distance
    # Off route: the first fix (1111.95 m south of the start) and the two detour fixes
    # (2.09 km east). A step with one end off counts half, with both ends off not at all.
    outside = FIRST_LEG / 2 + EAST / 2 + 0.02 * M + WEST / 2
    assert s.within_route_share == pytest.approx((TOTAL - outside) / TOTAL, abs=1e-9)
    assert s.max_deviation_m == pytest.approx(0.02 * M * math.cos(math.radians(20.05)), abs=1e-6)
    assert (s.max_deviation_ts, s.max_deviation_lat, s.max_deviation_lng) == (
        ms(3900), 20.05, 78.02
    )  # fmt: skip


def test_time_phases_tile_the_trip_and_delays_are_against_the_plan() -> None:
    t = summary().time
    assert t.phases == {
        "to_pickup": 600, "pickup_wait": 300, "loading": 1800, "after_loading": 300,
        "in_transit": 3000, "delivery_wait": 300, "unloading": 1200, "after_unloading": 300,
    }  # fmt: skip
    assert sum(v for v in t.phases.values() if v) == t.total_s == 7800
    assert t.at_pickup_s == 2400 and t.at_delivery_s == 1800
    assert t.stopped_s == 200 + 2700 + 900 + 1800 and t.driving_s == 7800 - t.stopped_s
    assert t.arrived_ts == ms(6000)
    assert t.start_delay_s == 300 and t.arrival_delay_s == 600


def test_stops_are_clipped_to_the_trip_with_place_and_phase() -> None:
    s = summary().stops
    assert (s.count, s.total_s, s.longest_s, s.authorised, s.unauthorised) == (4, 5600, 2700, 1, 3)
    got = [(x.started_ts, x.ended_ts, x.duration_s, x.place, x.phase, x.authorised)
           for x in s.stops]  # fmt: skip
    assert got == [
        (ms(0), ms(200), 200, None, "to_pickup", False),
        (ms(600), ms(3300), 2700, "pickup", "pickup_wait", True),
        (ms(4800), ms(5700), 900, None, "in_transit", False),
        (ms(6000), ms(7800), 1800, "delivery", "delivery_wait", False),
    ]
    # Engine-on time: reported where the device says (at the pickup on 600-1200 and
    # 2400-3300; at the delivery 7200-7800), else the first 10 minutes (assumed).
    assert [(x.idle_s, x.engine_known) for x in s.stops] == [
        (200, False), (1500, True), (600, False), (600, True)
    ]  # fmt: skip


def test_speeding_spell_is_followed_to_the_first_fix_under_the_limit() -> None:
    s = summary().speeding
    assert s.count == 1 and s.max_speed_kmh == 100  # the jump's 150 km/h is not trusted
    spell = s.spells[0]
    assert (spell.started_ts, spell.alerted_ts, spell.ended_ts) == (ms(3600), ms(3660), ms(3720))
    assert spell.duration_s == 120 and spell.max_speed_kmh == 100 and spell.limit_kmh == 80


def test_fuel_litres_from_the_documented_model() -> None:
    f = summary().fuel
    # HCV defaults: 5.0 km/l empty, 1.8 l/h idling, 20 t capacity, 30% less at full load.
    # A 10 t payload: factor 1 - 0.3 * 10 / 20 = 0.85, so 4.25 km/l laden.
    idle_s = 200 + 1500 + 600 + 600
    litres = FIRST_LEG / 1000 / 5.0 + (TOTAL - FIRST_LEG) / 1000 / 4.25 + idle_s / 3600 * 1.8
    assert f.litres == pytest.approx(litres, abs=1e-9)
    assert f.idle_litres == pytest.approx(2900 / 3600 * 1.8)
    assert (f.idle_s, f.idle_basis, f.payload_source, f.profile_source) == (
        2900, "mixed", "trip", "default"
    )  # fmt: skip
    assert f.km_per_l_laden == pytest.approx(4.25) and f.payload_factor == pytest.approx(0.85)
    # No payload on the trip nor in the profile: a full load (factor 0.7).
    assert summary(payload_t=None).fuel.km_per_l_laden == pytest.approx(3.5)


def test_a_vehicle_profile_overrides_the_class_defaults() -> None:
    p = VehicleProfile(fleet_id="f", vehicle_id="V1", vehicle_class=VehicleClass.MCV,
                       km_per_l=8.0, payload_t=4.0)  # fmt: skip
    fuel = p.effective()
    assert (fuel.km_per_l, fuel.idle_l_per_h, fuel.capacity_t, fuel.payload_t) == (8, 1, 8, 4)
    e = estimate(fuel, empty_km=10, laden_km=34, idle_s=1800, idle_basis="assumed",
                 trip_payload_t=None, profile_source="vehicle")  # fmt: skip
    # 4 t of 8: factor 0.85, 6.8 km/l laden; half an hour idling at 1 l/h.
    assert e.litres == pytest.approx(10 / 8 + 34 / 6.8 + 0.5)
    assert e.payload_source == "vehicle"
    # Overloaded counts as full; a usual payload over the capacity is refused.
    over = estimate(fuel, empty_km=0, laden_km=10, idle_s=0, idle_basis="none",
                    trip_payload_t=20, profile_source="vehicle")  # fmt: skip
    assert over.payload_factor == pytest.approx(0.7)
    with pytest.raises(ValueError, match=r"over capacity_t 2\.5"):
        check_profile(VehicleProfile(fleet_id="f", vehicle_id="V",
                                     vehicle_class=VehicleClass.LCV, payload_t=3))  # fmt: skip


def test_distances_to_route_match_the_naive_reference() -> None:
    rng = np.random.default_rng(7)
    vertices = np.cumsum(rng.normal(0, 0.01, (300, 2)), axis=0) + np.array([78.0, 20.0])
    vertices[50] = vertices[49]  # a repeated vertex
    # Fixes far from it (beyond the 1 km fast path) and near it (within).
    lat = np.r_[20 + rng.normal(0, 0.2, 1000), vertices[:, 1] + rng.normal(0, 0.003, 300)]
    lng = np.r_[78 + rng.normal(0, 0.2, 1000), vertices[:, 0] + rng.normal(0, 0.003, 300)]
    got = distances_to_route(vertices, lat, lng)
    want = [nearest_on_route(vertices, a, b).distance_m for a, b in zip(lat, lng, strict=True)]
    assert np.allclose(got, want, rtol=0, atol=1e-6)
    one_point = distances_to_route([(78.0, 20.0), (78.0, 20.0)], np.array([20.01]), np.array([78]))
    assert one_point[0] == pytest.approx(0.01 * M)


def test_trusted_fixes_follow_the_reference_filter() -> None:
    rng = np.random.default_rng(3)
    n = 500
    ts = np.cumsum(rng.integers(1, 30_000, n)) + T0
    ts[100] = ts[99]  # a repeat
    lat = 20 + np.cumsum(rng.normal(0, 0.001, n))
    lng = 78 + np.cumsum(rng.normal(0, 0.001, n))
    lat[rng.integers(0, n, 10)] += 1.0  # GPS jumps
    acc = np.where(rng.random(n) < 0.05, 250.0, 10.0)
    cols = TrackColumns(ts, lat, lng, np.zeros(n), acc, np.full(n, np.nan))
    fixes = [filters.TrackFix(int(t), float(a), float(b), float(c))
             for t, a, b, c in zip(ts, lat, lng, acc, strict=True)]  # fmt: skip
    _, verdicts = filters.step(filters.FilterState(), fixes, filters.FilterRules())
    assert trusted_fixes(cols, filters.FilterRules()).tolist() == [v is None for v in verdicts]


def test_a_trip_without_points_route_or_stops_still_summarises() -> None:
    trip = the_trip()
    empty = TrackColumns(*(np.zeros(0, t) for t in (np.int64, float, float, float, float, float)))
    lcv = CLASS_DEFAULTS[VehicleClass.LCV]
    s = summarise(trip, empty, planned_route=None, stops=[], speeding=[], fuel=lcv,
                  fuel_source="default", computed_at=0)  # fmt: skip
    assert s.distance.total_m == 0 and s.distance.within_route_share is None
    assert s.stops.count == 0 and s.fuel.litres == 0 and s.fuel.idle_basis == "none"
    assert s.time.driving_s == 7800


def test_the_sweep_makes_missing_summaries_and_backs_off_a_failing_trip() -> None:
    trips = [msgspec.structs.replace(the_trip(), trip_id=f"T{i:02}", ended_at=ms(7800 + i))
             for i in range(25)]  # fmt: skip
    store = FakeSummaryStore(trips)

    class Trips:  # the actual route is written with the summary: here there is none to write
        async def ensure_actual_route(self, trip: Trip) -> Trip:
            return trip

    service = SummaryService(
        store, Trips(), None, None, None, None, None,  # type: ignore[arg-type]
        rules=SummaryRules(), default_class=VehicleClass.HCV, backfill_days=30,
    )  # fmt: skip
    empty = TrackColumns(*(np.zeros(0, t) for t in (np.int64, float, float, float, float, float)))

    def compute(trip: Trip, now: int):  # type: ignore[no-untyped-def]
        if trip.trip_id == "T00":
            raise RuntimeError("a broken trip")
        return summarise(trip, empty, planned_route=None, stops=[], speeding=[],
                         fuel=CLASS_DEFAULTS[VehicleClass.HCV], fuel_source="default",
                         computed_at=now)  # fmt: skip

    service.compute = compute  # type: ignore[method-assign]
    now = ms(10_000)
    assert asyncio.run(service.fill_missing(now, limit=20)) == 19  # T00 failed, 19 made
    assert asyncio.run(service.fill_missing(now + 60_000, limit=20)) == 5  # T00 left alone
    assert len(store.summaries) == 24 and store.get("f", "T00") is None
    assert asyncio.run(service.fill_missing(now + RETRY_FAILED_MS + 1, limit=20)) == 0

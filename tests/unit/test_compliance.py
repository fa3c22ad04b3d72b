"""Route compliance: the vectorised checker against the naive reference, and its alerts.

Routes are built from legs (bearing, km) out of Pune; trucks are placed on a route by
chainage, then moved sideways (off route) or given a heading. Distances are checked against
`nearest_on_route` (every segment for every fix); alerts are checked fix by fix.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from trucktrack.domain.compliance import (
    ComplianceBatch,
    ComplianceChecker,
    ComplianceEventKind,
    ComplianceRules,
    ComplianceState,
    RouteCatalog,
    eta_ms,
    nearest_on_route,
    route_segments,
    vertex_chainage,
)
from trucktrack.domain.geo import distance_m
from trucktrack.simulation import destination

PUNE = (18.5204, 73.8567)
T0 = 1_795_000_000_000
S = 1000
STARTED, ENDED = ComplianceEventKind.DEVIATION_STARTED, ComplianceEventKind.DEVIATION_ENDED
WRONG, RIGHT = (
    ComplianceEventKind.WRONG_DIRECTION_STARTED,
    ComplianceEventKind.WRONG_DIRECTION_ENDED,
)
Row = tuple[int, int, float, float, float, float]  # trip, ts, lat, lng, speed, heading


def route(legs: list[tuple[float, float]], start: tuple[float, float] = PUNE,
          step_m: float = 1000.0) -> np.ndarray:  # fmt: skip
    """(lng, lat) vertices: legs of (bearing, km) with a vertex every `step_m`."""
    lat, lng = start
    out = [(lng, lat)]
    for bearing, km in legs:
        steps = max(1, round(km * 1000 / step_m))
        for _ in range(steps):
            lat, lng = destination(lat, lng, bearing, km * 1000 / steps)
            out.append((lng, lat))
    return np.array(out)


def place(vertices: np.ndarray, chainage: float, side_m: float = 0.0) -> tuple[float, float, float]:
    """(lat, lng, route bearing) at `chainage` along the route, `side_m` to its right."""
    chain = vertex_chainage(vertices)
    i = int(np.clip(np.searchsorted(chain, chainage, "right") - 1, 0, len(vertices) - 2))
    f = (chainage - chain[i]) / max(chain[i + 1] - chain[i], 1e-9)
    (lng0, lat0), (lng1, lat1) = vertices[i], vertices[i + 1]
    lat, lng = lat0 + f * (lat1 - lat0), lng0 + f * (lng1 - lng0)
    x = (lng1 - lng0) * math.cos(math.radians(lat))
    bearing = math.degrees(math.atan2(x, lat1 - lat0)) % 360
    if side_m:
        lat, lng = destination(lat, lng, bearing + 90, side_m)
    return lat, lng, bearing


def batch(rows: list[Row]) -> ComplianceBatch:
    return ComplianceBatch.of(*zip(*rows, strict=True))


def kinds(result_events: list) -> list[ComplianceEventKind]:  # type: ignore[type-arg]
    return [e.kind for e in result_events]


def drive(vertices: np.ndarray, trip: int = 1, *, kmh: float = 60.0, every_s: float = 30.0,
          n: int, c0: float = 0.0, t0: int = T0, side=lambda i: 0.0, backwards: bool = False,
          heading=None) -> list[Row]:  # type: ignore[no-untyped-def]  # fmt: skip
    """Fixes of a truck moving along the route (or back along it), `side(i)` metres off it."""
    rows = []
    for i in range(n):
        c = c0 + (-1 if backwards else 1) * kmh / 3.6 * every_s * i
        lat, lng, bearing = place(vertices, c, side(i))
        h = (bearing + (180 if backwards else 0)) % 360 if heading is None else heading(i)
        rows.append((trip, t0 + round(i * every_s * S), lat, lng, kmh, h))
    return rows


STRAIGHT = route([(0, 100)])  # 100 km due north, a vertex every km
ON_ROUTE_M = ComplianceRules().on_route_m


# --- the fast path agrees with the naive reference -----------------------------------------


def random_route(rng: random.Random) -> np.ndarray:
    """A highway-like polyline: gentle bends, long and short segments, some repeated points."""
    lat, lng = rng.uniform(12, 28), rng.uniform(72, 86)
    heading = rng.uniform(0, 360)
    out = [(lng, lat)]
    for _ in range(rng.randint(20, 250)):
        heading += rng.gauss(0, 6)
        step = math.exp(rng.uniform(math.log(20), math.log(3000)))
        if rng.random() < 0.02:
            step = 0.0  # a repeated vertex
        lat, lng = destination(lat, lng, heading, step)
        out.append((lng, lat))
    return np.array(out)


def random_drive(rng: random.Random, trip: int, vertices: np.ndarray) -> list[Row]:
    """Along the route with GPS noise, some detours off it, some GPS gaps, a few reversals."""
    length = vertex_chainage(vertices)[-1]
    c, ts, side, rows = rng.uniform(0, length / 3), T0 + rng.randint(0, 60) * S, 0.0, []
    detour = 0
    for _ in range(rng.randint(30, 120)):
        dt = rng.choice((5, 10, 30, 60))
        kmh = rng.uniform(20, 90)
        ts += dt * S
        c += kmh / 3.6 * dt * (-1 if rng.random() < 0.05 else 1)
        if rng.random() < 0.03:
            c += rng.uniform(5_000, 30_000)  # the device was silent for a while
        if detour == 0 and rng.random() < 0.05:
            detour = rng.randint(3, 15)
        if detour:
            detour -= 1
            side = min(side + rng.uniform(500, 3000), 12_000) * (1 if detour else 0)
        c = min(max(c, 0.0), length)
        lat, lng, bearing = place(vertices, c, side + rng.gauss(0, 10))
        rows.append((trip, ts, lat, lng, kmh, (bearing + rng.gauss(0, 10)) % 360))
    return rows


def elsewhere_m(vertices: np.ndarray, chain: np.ndarray, lat: float, lng: float, c: float) -> float:
    """Distance from the fix to the route, leaving out the part within 300 m of chainage `c`."""
    lo = int(np.searchsorted(chain, c - 300)) - 1
    hi = int(np.searchsorted(chain, c + 300, "right"))
    parts = [vertices[: lo + 1]] if lo >= 1 else []
    parts += [vertices[hi:]] if hi <= len(vertices) - 2 else []
    return min((nearest_on_route(p, lat, lng).distance_m for p in parts), default=math.inf)


def test_distances_and_chainage_agree_with_the_naive_reference() -> None:
    rng = random.Random(5)
    checker = ComplianceChecker()
    routes = {trip: random_route(rng) for trip in range(40)}
    rows: list[Row] = []
    for trip, vertices in routes.items():
        checker.plan(trip, vertices)
        rows += random_drive(rng, trip, vertices)
    rows.sort(key=lambda r: r[1])
    checked = compared = near = same_place = 0
    for a in range(0, len(rows), 400):  # several fixes per trip per batch
        part = rows[a : a + 400]
        result = checker.check(batch(part))
        for i, (trip, _, lat, lng, _, _) in enumerate(part):
            if not result.checked[i]:
                continue
            checked += 1
            vertices = routes[trip]
            chain = vertex_chainage(vertices)
            ref = nearest_on_route(vertices, lat, lng, chain)
            d, c = result.distance_m[i], result.chainage_m[i]
            assert result.remaining_m[i] == pytest.approx(chain[-1] - c, abs=1.0)
            # The match is the nearest point, but for near-ties broken towards where the truck
            # should be: at most `chainage_penalty` metres further per metre of chainage away.
            there = distance_m(lat, lng, *place(vertices, c)[:2])
            slack = 1.0 + 5e-4 * ref.distance_m
            assert there <= ref.distance_m + 0.1 * abs(c - ref.chainage_m) + slack, (trip, i)
            on_route = ref.distance_m <= ON_ROUTE_M
            near += on_route
            same_place += on_route and abs(c - ref.chainage_m) <= 1.0
            if on_route:  # searched in a window: near, but which part of the route is near?
                other = elsewhere_m(vertices, chain, lat, lng, ref.chainage_m)
                if other < ref.distance_m + 200:
                    continue  # the route passes near itself here: either leg is a fair match
            compared += 1
            assert d == pytest.approx(ref.distance_m, abs=1.0, rel=5e-4), (trip, i)
    assert checked > 2000 and compared > 0.95 * checked and same_place > 0.98 * near


def test_distances_at_5_km_are_true_to_half_a_metre_across_india() -> None:
    checker = ComplianceChecker()
    rows, truth = [], []
    for trip, lat in enumerate((8.5, 20.0, 32.0)):
        checker.plan(trip, [(77.0, lat)] * 2)  # a point route: the distance is to that point
        for k, bearing in enumerate(range(0, 360, 15)):
            fix = destination(lat, 77.0, bearing, 5000)
            rows.append((trip, T0 + k, *fix, 50.0, math.nan))
            truth.append(distance_m(lat, 77.0, *fix))
    result = checker.check(batch(rows))
    assert result.distance_m.tolist() == pytest.approx(truth, abs=0.5)


def test_trucks_keeping_to_their_routes_raise_nothing() -> None:
    """No false alarms: random routes driven forward with GPS noise, stops, speed changes,
    headings of moving and parked trucks, and gaps when a device was silent for a while."""
    rng = random.Random(13)
    checker = ComplianceChecker()
    rows: list[Row] = []
    for trip in range(30):
        vertices = random_route(rng)
        checker.plan(trip, vertices)
        length = vertex_chainage(vertices)[-1]
        c, ts = 0.0, T0
        for _ in range(100):
            dt = rng.choice((5, 10, 30, 60, 600 if rng.random() < 0.03 else 30))
            kmh = 0.0 if rng.random() < 0.1 else rng.uniform(20, 90)
            c, ts = min(c + kmh / 3.6 * dt, length), ts + dt * S
            lat, lng, bearing = place(vertices, c, rng.gauss(0, 10))
            heading = rng.uniform(0, 360) if kmh == 0 else (bearing + rng.gauss(0, 15)) % 360
            rows.append((trip, ts, lat, lng, kmh, heading))
    rows.sort(key=lambda r: r[1])
    events = [
        e for a in range(0, len(rows), 250) for e in checker.check(batch(rows[a : a + 250])).events
    ]
    assert events == []


def test_one_batch_or_many_give_the_same_results_and_events() -> None:
    rng = random.Random(8)
    routes = {trip: random_route(rng) for trip in range(10)}
    rows = sorted((r for t, v in routes.items() for r in random_drive(rng, t, v)),
                  key=lambda r: r[1])  # fmt: skip
    outcomes = []
    for size in (len(rows), 37, 1):
        checker = ComplianceChecker()
        for trip, vertices in routes.items():
            checker.plan(trip, vertices)
        distances, events = [], []
        for a in range(0, len(rows), size):
            result = checker.check(batch(rows[a : a + size]))
            distances += result.distance_m.tolist()
            events += [(e.kind, e.trip, e.ts, e.since) for e in result.events]
        outcomes.append((distances, sorted(events)))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert outcomes[0][1], "the random drives should raise something"


# --- route deviation ------------------------------------------------------------------------


def test_one_alert_when_a_deviation_starts_and_one_when_the_truck_is_back() -> None:
    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    offset = {i: 8000.0 for i in range(20, 60)} | {i: 4500.0 + 700 * (i % 2) for i in range(30, 40)}
    rows = drive(STRAIGHT, n=100, side=lambda i: offset.get(i, 0.0))
    result = checker.check(batch(rows))
    assert kinds(result.events) == [STARTED, ENDED]
    started, ended = result.events
    assert started.ts == rows[21][1] and started.since == rows[20][1] and started.point == 21
    assert started.details["distance_m"] == pytest.approx(8000, abs=3)
    assert ended.ts == rows[61][1] and ended.since == rows[20][1]
    assert ended.details["max_distance_m"] == pytest.approx(8000, abs=3)
    assert ended.details["duration_s"] == (61 - 20) * 30
    assert result.distance_m[25] == pytest.approx(8000, abs=3)
    assert not checker.state.deviating[1]


def test_no_flapping_at_either_boundary() -> None:
    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    # Around 5 km, one fix over and one under: never two over in a row, never an alert.
    rows = drive(STRAIGHT, n=60, side=lambda i: 4900.0 + 200 * (i % 2))
    assert checker.check(batch(rows)).events == []
    # Deviating, then around 4 km: not back until two fixes in a row are within it.
    wobble = drive(STRAIGHT, n=60, t0=T0 + 3_600_000, c0=20_000,
                   side=lambda i: 9000.0 if i < 3 else 3900.0 + 200 * (i % 2))  # fmt: skip
    assert kinds(checker.check(batch(wobble)).events) == [STARTED]
    back = drive(STRAIGHT, n=3, t0=T0 + 7_200_000, c0=40_000, side=lambda i: 3000.0)
    result = checker.check(batch(back))
    assert kinds(result.events) == [ENDED] and result.events[0].point == 1


def test_a_single_far_fix_is_not_a_deviation_and_a_1hz_device_needs_30_s() -> None:
    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    rows = drive(STRAIGHT, n=10, side=lambda i: 7000.0 if i == 5 else 0.0)
    assert checker.check(batch(rows)).events == []
    fast = drive(STRAIGHT, n=60, every_s=1, t0=T0 + 600_000, c0=10_000, side=lambda i: 7000.0)
    result = checker.check(batch(fast))
    assert kinds(result.events) == [STARTED] and result.events[0].point == 30


# --- wrong direction ------------------------------------------------------------------------


def test_going_backwards_along_the_route_is_wrong_direction_until_it_goes_forward() -> None:
    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    ahead = drive(STRAIGHT, n=41, every_s=30)  # 0 -> 20 km
    back = drive(STRAIGHT, n=11, kmh=72, c0=20_000, t0=T0 + 1_230_000, backwards=True)
    again = drive(STRAIGHT, n=20, kmh=72, c0=14_000, t0=T0 + 1_560_000)
    result = checker.check(batch(ahead + back + again))
    assert kinds(result.events) == [WRONG, RIGHT]
    wrong, right = result.events
    # 600 m back per fix: 1200 m lost at the third fix going back, before the heading check
    # (120 s against: 5 fixes) would say so; the furthest point was the last one ahead.
    assert wrong.point == 41 + 2 and wrong.since == ahead[-1][1]
    assert wrong.details["backwards"] is True and wrong.details["heading"] is False
    assert wrong.details["lost_m"] == pytest.approx(1200)
    # Forward again from 14 km: 600 m of progress ends it at the second fix.
    assert right.point == 41 + 11 + 1 and right.details["regained_m"] == pytest.approx(600)
    assert right.since == wrong.since
    assert not checker.state.wrong[1]


def test_heading_against_the_route_for_two_minutes_is_wrong_direction() -> None:
    checker = ComplianceChecker(ComplianceRules(backwards_m=1e9))  # the heading alone
    checker.plan(1, STRAIGHT)
    ahead = drive(STRAIGHT, n=31, every_s=10)  # 0 -> 5 km
    back = drive(STRAIGHT, n=20, every_s=10, c0=5000, t0=T0 + 310_000, backwards=True)
    result = checker.check(batch(ahead + back))
    assert kinds(result.events) == [WRONG]
    (wrong,) = result.events
    assert wrong.point == 31 + 12 and wrong.since == back[0][1]  # 12 x 10 s against
    assert wrong.details["heading"] is True and wrong.details["heading_off_deg"] == pytest.approx(
        180, abs=1
    )


def test_a_parked_truck_and_gps_noise_are_not_wrong_direction() -> None:
    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    rng = random.Random(3)
    rows = drive(STRAIGHT, n=20, side=lambda i: rng.gauss(0, 15),
                 heading=lambda i: (rng.gauss(0, 40) + (180 if i == 7 else 0)) % 360)  # fmt: skip
    parked = []
    for i in range(240):  # two hours at a dhaba: jitter, random headings
        lat, lng, _ = place(STRAIGHT, 9500 + rng.gauss(0, 20), rng.gauss(0, 20))
        parked.append((1, T0 + 600_000 + i * 30_000, lat, lng, rng.uniform(0, 4),
                       rng.uniform(0, 360)))  # fmt: skip
    result = checker.check(batch(rows + parked))
    assert result.events == [] and result.checked.all()


@pytest.mark.parametrize("gap_m", [40.0, 300.0, 2000.0])
def test_a_u_shaped_route_driven_correctly_raises_nothing(gap_m: float) -> None:
    """Up one side of a valley and back down the other, the legs `gap_m` apart (40 m: the two
    carriageways of a divided highway), with GPS noise: no snapping to the other leg."""
    u = route([(0, 20), (90, gap_m / 1000), (180, 20)], step_m=250)
    checker = ComplianceChecker()
    checker.plan(1, u)
    rng = random.Random(int(gap_m))
    n = int((40_000 + gap_m) // 500)
    rows = drive(u, n=n, side=lambda i: rng.gauss(0, 8))
    result = checker.check(batch(rows))
    assert result.events == []
    assert np.all(np.diff(result.chainage_m) > 0)
    length = vertex_chainage(u)[-1]
    assert result.remaining_m[-1] == pytest.approx(length - 500 * (n - 1), abs=30)
    assert result.distance_m.max() < 40


def test_an_out_and_back_route_on_the_same_road_follows_the_truck() -> None:
    road = route([(45, 15), (225, 15)], step_m=500)
    checker = ComplianceChecker()
    checker.plan(1, road)
    result = checker.check(batch(drive(road, n=60, every_s=30)))
    assert result.events == []
    assert np.all(np.diff(result.chainage_m) > 0) and result.remaining_m[-1] < 600


def test_on_a_dense_route_the_window_follows_the_truck() -> None:
    """A vertex every 20 m: 750 m between fixes is 37 segments, past a 16-segment window
    around the last match; the window is where the truck should be by now instead."""
    dense = route([(30, 15), (60, 15)], step_m=20)
    checker = ComplianceChecker()
    checker.plan(1, dense)
    result = checker.check(batch(drive(dense, n=38, kmh=90)))
    assert result.chainage_m.tolist() == pytest.approx([750.0 * i for i in range(38)], abs=1)
    assert result.events == [] and checker.whole_route_searches == 1  # the first fix only


def test_a_trip_first_seen_mid_route_matches_where_the_truck_is() -> None:
    """A serpentine: five 30 km legs 1 km apart. A first fix on the last leg (70 km along) is
    1 km from the leg before; a match near the route wins over one near the start."""
    snake = route([(90, 30), (0, 1), (270, 30), (0, 1), (90, 30)])
    checker = ComplianceChecker()
    checker.plan(1, snake)
    result = checker.check(batch(drive(snake, n=10, c0=70_000)))
    assert result.chainage_m.tolist() == pytest.approx(
        [70_000 + 500 * i for i in range(10)], abs=20
    )
    assert result.events == []


def test_a_truck_between_two_legs_of_a_u_turn_is_not_going_backwards() -> None:
    """Legs 900 m apart, the other leg 2 x 15 km further along. 600 m off its own leg the
    truck is 300 m from the other one (off both): it stays matched to its own leg. 60 m from
    the other one it is on that one, for two fixes: the match jumps there and back, and a
    jump is no progress lost."""
    u = route([(0, 20), (90, 0.9), (180, 20)], step_m=250)
    checker = ComplianceChecker()
    checker.plan(1, u)
    rows = drive(u, n=20, side=lambda i: 600.0 if 5 <= i < 15 else 0.0)
    result = checker.check(batch(rows))
    assert result.events == [] and result.chainage_m[10] == pytest.approx(5000, abs=30)

    checker = ComplianceChecker()
    checker.plan(1, u)
    rows = drive(u, n=20, side=lambda i: 840.0 if i in (10, 11) else 0.0)
    result = checker.check(batch(rows))
    assert result.events == []
    assert result.chainage_m[10] > 25_000 and result.chainage_m[12] == pytest.approx(6000, abs=30)
    assert not checker.state.wrong[1]


# --- retries, restarts ----------------------------------------------------------------------


def test_retries_duplicates_and_late_fixes_change_nothing() -> None:
    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    rows = drive(STRAIGHT, n=40, side=lambda i: 8000.0 if i >= 10 else 0.0)
    first = checker.check(batch(rows[:25]))
    assert kinds(first.events) == [STARTED]
    before = checker.state.to_bytes()
    again = checker.check(batch(rows[:25]))  # the whole batch retried
    assert again.events == [] and not again.checked.any()
    assert checker.state.to_bytes() == before
    mixed = [rows[25], rows[25], rows[3], rows[26], rows[24]]  # a duplicate and two late ones
    result = checker.check(batch(mixed))
    assert result.checked.tolist() == [True, False, False, True, False]
    assert np.isnan(result.distance_m[[1, 2, 4]]).all() and result.eta_ts[2] == -1


def test_a_snapshot_taken_mid_deviation_raises_no_duplicate_after_a_restart() -> None:
    rows = drive(STRAIGHT, n=60, side=lambda i: 8000.0 if 10 <= i < 40 else 0.0)
    whole = ComplianceChecker()
    whole.plan(1, STRAIGHT)
    expected = whole.check(batch(rows)).events

    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    early = checker.check(batch(rows[:20])).events
    saved = checker.state.to_bytes()
    restarted = ComplianceChecker(state=ComplianceState.from_bytes(saved))
    restarted.plan(1, STRAIGHT)  # the caller re-plans active trips: same route, same progress
    late = restarted.check(batch(rows[15:])).events  # replaying a few fixes too
    assert kinds(early) == [STARTED] and kinds(late) == [ENDED]
    assert [(e.kind, e.ts, e.since, e.details) for e in early + late] == [
        (e.kind, e.ts, e.since, e.details) for e in expected
    ]
    assert ComplianceState.from_bytes(restarted.state.to_bytes()).to_bytes() == (
        restarted.state.to_bytes()
    )


def test_a_new_route_restarts_the_matching_and_keeps_the_open_deviation() -> None:
    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    off = drive(STRAIGHT, n=5, c0=30_000, side=lambda i: 9000.0)
    assert kinds(checker.check(batch(off)).events) == [STARTED]
    lat, lng, _ = place(STRAIGHT, 30_000, 9000.0)
    detour = route([(0, 60)], start=(lat, lng))  # re-planned from where the truck is
    checker.plan(1, detour)
    assert checker.state.segment[1] == -1 and checker.state.deviating[1]
    rows = drive(detour, n=5, t0=T0 + 600_000)
    result = checker.check(batch(rows))
    assert kinds(result.events) == [ENDED] and result.chainage_m[-1] == pytest.approx(2000, abs=2)


# --- routes ---------------------------------------------------------------------------------


def test_routes_are_added_and_removed_cheaply_and_compacted() -> None:
    rng = random.Random(2)
    checker = ComplianceChecker()
    routes = {}
    for trip in range(300):
        routes[trip] = route([(rng.uniform(0, 360), 250)], start=(rng.uniform(12, 28),
                             rng.uniform(72, 86)), step_m=500)  # fmt: skip
        checker.plan(trip, routes[trip])
    catalog = checker.routes
    assert len(catalog) == 300 and catalog.used == 300 * 500
    for trip in range(0, 300, 3):
        checker.finish(trip)
        del routes[trip]
    assert len(catalog) == 200 and catalog.dead == 100 * 500  # only tombstones so far
    for trip in range(1, 300, 3):
        checker.finish(trip)
        del routes[trip]
    assert catalog.used - catalog.dead == 100 * 500  # compacted once half was dead:
    assert catalog.used < 150 * 500 and catalog.dead < 50 * 500
    checker.plan(1, routes[2])  # a slot reused by a new trip
    routes[1] = routes[2]
    rows = []
    for trip, vertices in routes.items():
        lat, lng, _ = place(vertices, rng.uniform(0, 200_000), rng.uniform(-3000, 3000))
        rows.append((trip, T0, lat, lng, 50.0, math.nan))
    result = checker.check(batch(rows))
    for i, (trip, _, lat, lng, _, _) in enumerate(rows):
        ref = nearest_on_route(routes[trip], lat, lng)
        assert result.distance_m[i] == pytest.approx(ref.distance_m, abs=1.0)
        assert result.chainage_m[i] == pytest.approx(ref.chainage_m, abs=1.0)
    fingerprint = catalog.fingerprint[2]
    used = catalog.used
    assert checker.routes.put(2, routes[2]) == fingerprint and catalog.used == used


def test_degenerate_routes() -> None:
    checker = ComplianceChecker()
    two = route([(90, 10)], step_m=10_000)  # 2 vertices
    repeated = np.repeat(route([(90, 10)], step_m=2000), 3, axis=0)  # every vertex thrice
    point = np.array([[73.8567, 18.5204]] * 4)  # every vertex the same place
    for trip, vertices in enumerate((two, repeated, point)):
        checker.plan(trip, vertices)
    assert checker.routes.count[[0, 1, 2]].tolist() == [1, 5, 1]
    rows = [(trip, T0 + k * 60_000, *place(two, 1000.0 * k, 300)[:2], 60.0, 90.0)
            for k in range(6) for trip in range(3)]  # fmt: skip
    result = checker.check(batch(rows))
    assert result.checked.all() and result.events == []
    for i, (trip, _, lat, lng, _, _) in enumerate(rows):
        vertices = (two, repeated, point)[trip]
        ref = nearest_on_route(vertices, lat, lng)
        assert result.distance_m[i] == pytest.approx(ref.distance_m, abs=1.0)
        assert result.chainage_m[i] == pytest.approx(ref.chainage_m, abs=1.0)
    assert result.remaining_m[2::3].tolist() == [0.0] * 6  # a point route: always arrived
    for bad in ([(73.8, 18.5)], [(73.8, 18.5), (math.nan, 18.6)], [(73.8, 95.0), (73.8, 18.5)]):
        with pytest.raises(ValueError):
            checker.plan(4, bad)
    assert 4 not in checker.routes
    assert np.isnan(route_segments(point)[0, 6])  # no bearing: heading checks are off there


def test_bad_fixes_and_trips_without_a_route_are_not_checked() -> None:
    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    lat, lng, _ = place(STRAIGHT, 5000)
    rows = [
        (1, T0, math.nan, lng, 50.0, 0.0),
        (1, T0 + 1, lat, math.inf, 50.0, 0.0),
        (1, T0 + 2, 91.0, lng, 50.0, 0.0),
        (2, T0 + 3, lat, lng, 50.0, 0.0),  # no route planned
        (-1, T0 + 4, lat, lng, 50.0, 0.0),
        (1, T0 + 5, lat, lng, math.nan, math.nan),  # unknown speed and heading: fine
    ]
    result = checker.check(batch(rows))
    assert result.checked.tolist() == [False] * 5 + [True]
    assert checker.state.last_ts[1] == T0 + 5  # the bad ones did not move the clock
    checker.finish(1)
    assert not checker.check(batch(drive(STRAIGHT, n=3, t0=T0 + 60_000))).checked.any()
    assert checker.progress(1) is None
    assert not checker.check(ComplianceBatch.of([], [], [], [])).checked.any()


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError):
        ComplianceRules(deviation_m=3000)  # under back_on_route_m
    with pytest.raises(ValueError):
        ComplianceRules(chainage_penalty=1.5)


# --- ETA ------------------------------------------------------------------------------------


def test_eta_from_the_remaining_distance_and_the_recent_speed() -> None:
    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    rows = drive(STRAIGHT, n=41, kmh=60, every_s=60)  # 1 km a minute, up to 40 km
    result = checker.check(batch(rows))
    assert result.remaining_m[-1] == pytest.approx(60_000, abs=1)
    assert result.eta_ts[-1] == rows[-1][1] + 3_600_000  # 60 km at 60 km/h
    progress = checker.progress(1)
    assert progress is not None and progress.speed_kmh == pytest.approx(60)
    assert progress.eta_ts == rows[-1][1] + 3_600_000
    assert progress.route_length_m == pytest.approx(100_000)

    # Parked at 40 km: the recent speed decays (15 min time constant) and the ETA grows, until
    # under 5 km/h (60 * exp(-t / 900) < 5 after 2,237 s) there is none.
    lat, lng, _ = place(STRAIGHT, 40_000)
    stop = [(1, rows[-1][1] + m * 60_000, lat, lng, 0.0, math.nan) for m in range(1, 61)]
    result = checker.check(batch(stop))
    at_10 = 60 * math.exp(-600 / 900)
    assert result.eta_ts[9] == stop[9][1] + round(60_000 / (at_10 / 3.6) * 1000)
    assert result.eta_ts[36] > 0 and result.eta_ts[37] == -1
    assert checker.progress(1).eta_ts is None  # type: ignore[union-attr]

    rules = ComplianceRules(eta_fallback_speed_kmh=40)
    assert eta_ms(60_000, 2.0, T0, rules) == T0 + 5_400_000  # stopped: the planned 40 km/h
    assert eta_ms(60_000, None, T0, rules) == T0 + 5_400_000  # no speed yet
    assert eta_ms(60_000, None, T0, ComplianceRules()) is None
    assert eta_ms(-5.0, 50.0, T0, rules) == T0  # past the end: arrived


def test_a_first_fix_with_no_speed_has_no_eta() -> None:
    checker = ComplianceChecker()
    checker.plan(1, STRAIGHT)
    lat, lng, _ = place(STRAIGHT, 1000)
    result = checker.check(batch([(1, T0, lat, lng, math.nan, math.nan)]))
    assert result.eta_ts.tolist() == [-1] and result.remaining_m[0] == pytest.approx(99_000)


def test_the_catalog_alone() -> None:
    catalog = RouteCatalog()
    assert catalog.put(5, STRAIGHT) == catalog.put(5, STRAIGHT.copy())
    assert 5 in catalog and 4 not in catalog and len(catalog) == 1
    assert catalog.length[5] == pytest.approx(vertex_chainage(STRAIGHT)[-1], rel=1e-6)
    catalog.remove(5)
    catalog.remove(5)
    assert len(catalog) == 0 and catalog.dead == 100
    catalog.compact()
    assert catalog.used == 0

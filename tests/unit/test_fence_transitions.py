"""Enter, exit and cross events from membership, on hand-made tracks with known answers."""

from __future__ import annotations

import datetime as dt

import numpy as np

from trucktrack.domain.fence_transitions import (
    FenceTerms,
    Fix,
    MembershipState,
    Transition,
    step,
)
from trucktrack.domain.geofence import GeofenceIndex, circle, corridor, polygon
from trucktrack.simulation import destination

PUNE = (18.5204, 73.8567)
T0 = 1_795_000_000_000
S = 1000


def track(*metres_east: float, every_s: int = 10, start: int = T0) -> list[Fix]:
    """Fixes along a line going east from 1 km west of Pune, one every `every_s` seconds."""
    fixes = []
    for i, m in enumerate(metres_east):
        lat, lng = destination(PUNE[0], PUNE[1], 90, m - 1000)
        fixes.append(Fix(start + i * every_s * S, lat, lng))
    return fixes


def run(index: GeofenceIndex, fixes: list[Fix], state: MembershipState | None = None,
        dwell: dict[str, int] | None = None, active: frozenset[str] | None = None,
        terms: dict[str, FenceTerms] | None = None, version: int = 0):  # type: ignore[no-untyped-def]  # fmt: skip
    state = state or MembershipState(last_ts=T0 - 1, known_version=0)
    ids = active if active is not None else frozenset(index.fence_ids)
    fences = {f: FenceTerms(version, min_dwell_ms=(dwell or {}).get(f, 0)) for f in ids}
    fences.update(terms or {})
    lat = np.array([f.lat for f in fixes])
    lng = np.array([f.lng for f in fixes])
    prev = fixes[:1] + fixes[:-1]  # each fix's segment starts at the fix before it
    crossed = index.crossed(
        np.array([p.lng for p in prev]), np.array([p.lat for p in prev]), lng, lat
    )
    return step(
        state, fixes, index.containing(lng, lat), crossed,
        fences, version, dt.timezone(dt.timedelta(hours=5, minutes=30)),
    )  # fmt: skip


DEPOT = GeofenceIndex([("depot", circle(PUNE[0], PUNE[1], 300))])


def test_driving_through_a_circle_enters_then_exits() -> None:
    state, events = run(DEPOT, track(0, 500, 900, 1000, 1100, 1500, 2000))
    assert [(e.kind, e.fence_id) for e in events] == [
        (Transition.ENTER, "depot"), (Transition.EXIT, "depot"),
    ]  # fmt: skip
    assert events[0].ts == T0 + 20 * S and events[1].ts == T0 + 50 * S
    assert state.inside == {} and state.pending == {}


def test_a_flapping_edge_is_debounced() -> None:
    # Around the fence edge (700 m from the start): in, out, in, out, each for 10 s only.
    flaps = track(600, 710, 690, 710, 690, 650, every_s=10)
    _, events = run(DEPOT, flaps, dwell={"depot": 30 * S})
    assert events == []
    held = track(600, 710, 800, 900, 1000, 1000, every_s=10)
    _, events = run(DEPOT, held, dwell={"depot": 30 * S})
    assert [(e.kind, e.ts) for e in events] == [(Transition.ENTER, T0 + 10 * S)]


def test_a_sparse_fix_jumping_over_a_corridor_is_a_cross() -> None:
    lat0, lng0 = destination(PUNE[0], PUNE[1], 0, -5000)
    lat1, lng1 = destination(PUNE[0], PUNE[1], 0, 5000)
    road = GeofenceIndex([("road", corridor([[lng0, lat0], [lng1, lat1]], 100))])
    _, events = run(road, track(0, 2000))  # 2 km apart, the road in between
    assert [(e.kind, e.fence_id) for e in events] == [(Transition.CROSS, "road")]


def test_retries_and_late_fixes_change_nothing() -> None:
    fixes = track(0, 500, 900, 1000)
    state, events = run(DEPOT, fixes)
    assert [e.kind for e in events] == [Transition.ENTER]
    again, repeat = run(DEPOT, fixes, state)
    assert repeat == [] and again == state


def test_a_new_fence_around_a_parked_truck_is_not_an_entry() -> None:
    parked = track(1000, 1000, 1000)
    empty = GeofenceIndex([])
    state, _ = run(empty, parked[:1], MembershipState(last_ts=T0 - 1))
    state, events = run(DEPOT, parked[1:], state, version=1)
    assert events == [] and "depot" in state.inside
    state, events = run(DEPOT, track(1000, 2000, start=T0 + 60 * S), state, version=1)
    assert [e.kind for e in events] == [Transition.EXIT]


def test_a_deleted_fence_ends_without_an_exit() -> None:
    state, _ = run(DEPOT, track(0, 1000))
    assert "depot" in state.inside
    state, events = run(DEPOT, track(2000, start=T0 + 60 * S), state, active=frozenset())
    assert events == [] and state.inside == {}


def test_a_fence_that_existed_before_the_last_fix_gives_a_real_entry() -> None:
    state, _ = run(GeofenceIndex([]), track(0), MembershipState(last_ts=T0 - 1), version=0)
    # The depot is created (version 1) while the truck is outside; it then drives in.
    state, _ = run(DEPOT, track(100, start=T0 + 10 * S), state, version=1)
    state, events = run(DEPOT, track(1000, start=T0 + 20 * S), state, version=1)
    assert [e.kind for e in events] == [Transition.ENTER]


# A day-time no-entry window (08:00-20:00 IST) and one past midnight; T0 is 16:36 IST.
DAY = FenceTerms(restricted=True, windows=((8 * 60, 20 * 60),))
NIGHT = FenceTerms(restricted=True, windows=((20 * 60, 6 * 60),))


def test_entering_a_restricted_zone_in_its_hours_is_one_violation_per_visit() -> None:
    fixes = track(0, 500, 900, 1000, 1000, 1100, 1500, 2000, 1000, 1000)
    _, events = run(DEPOT, fixes, terms={"depot": DAY})
    kinds = [(e.kind, e.ts) for e in events]
    assert kinds == [
        (Transition.ENTER, T0 + 20 * S), (Transition.RESTRICTED, T0 + 20 * S),
        (Transition.EXIT, T0 + 60 * S),
        (Transition.ENTER, T0 + 80 * S), (Transition.RESTRICTED, T0 + 80 * S),
    ]  # fmt: skip
    _, events = run(DEPOT, fixes, terms={"depot": NIGHT})
    assert Transition.RESTRICTED not in [e.kind for e in events]


def test_passing_through_a_restricted_corridor_between_fixes_is_a_violation() -> None:
    lat0, lng0 = destination(PUNE[0], PUNE[1], 0, -5000)
    lat1, lng1 = destination(PUNE[0], PUNE[1], 0, 5000)
    road = GeofenceIndex([("road", corridor([[lng0, lat0], [lng1, lat1]], 100))])
    _, events = run(road, track(0, 2000), terms={"road": FenceTerms(restricted=True)})
    assert [e.kind for e in events] == [Transition.CROSS, Transition.RESTRICTED]


def test_dwelling_too_long_is_reported_once_per_visit() -> None:
    fixes = track(0, 1000, 1000, 1000, 1000, 2000, 1000, 1000, every_s=60)
    terms = {"depot": FenceTerms(max_dwell_ms=150 * S)}
    _, events = run(DEPOT, fixes, terms=terms)
    dwell = [e for e in events if e.kind is Transition.DWELL]
    assert [(e.ts, e.since) for e in dwell] == [(T0 + 240 * S, T0 + 60 * S)]


def test_restricted_hours_are_local_and_may_wrap_past_midnight() -> None:
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))

    def at(hour: int, minute: int) -> int:
        return int(dt.datetime(2026, 11, 18, hour, minute, tzinfo=ist).timestamp() * 1000)

    assert NIGHT.restricted_at(at(23, 0), ist) and NIGHT.restricted_at(at(5, 59), ist)
    assert not NIGHT.restricted_at(at(6, 0), ist) and not NIGHT.restricted_at(at(19, 59), ist)
    assert DAY.restricted_at(at(8, 0), ist) and not DAY.restricted_at(at(20, 0), ist)
    assert FenceTerms(restricted=True).restricted_at(at(3, 0), ist)
    assert not FenceTerms(restricted=False).restricted_at(at(12, 0), ist)


def test_a_polygon_with_a_hole_and_a_corridor_along_the_road() -> None:
    """Entering and leaving a polygon (its hole counts as outside) and a corridor driven along."""

    def ring(half_m: float) -> list[list[float]]:
        corners = [destination(*destination(*PUNE, 0, dy), 90, dx)
                   for dx, dy in ((-half_m, -half_m), (half_m, -half_m), (half_m, half_m),
                                  (-half_m, half_m))]  # fmt: skip
        return [[lng, lat] for lat, lng in [*corners, corners[0]]]

    yard = polygon({"type": "Polygon", "coordinates": [ring(600), ring(200)]})
    west, east = destination(*PUNE, 90, -3000), destination(*PUNE, 90, 3000)
    road = corridor([[west[1], west[0]], [east[1], east[0]]], 60)
    index = GeofenceIndex([("yard", yard), ("road", road)])
    # East along the road, 1 km west of Pune to 1 km east: in the yard, its hole, the yard again.
    _, events = run(index, track(0, 500, 700, 1000, 1300, 1500, 2000, every_s=20))
    got = [(e.kind, e.fence_id, (e.ts - T0) // S) for e in events]
    assert got == [
        (Transition.ENTER, "road", 0),  # on the road from the first fix (it was known before)
        (Transition.ENTER, "yard", 20), (Transition.EXIT, "yard", 60),  # into the hole
        (Transition.ENTER, "yard", 80), (Transition.EXIT, "yard", 120),
    ]  # fmt: skip

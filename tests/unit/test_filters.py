"""The noise filter and filtered distance on a hand-made track with a GPS jump."""

from __future__ import annotations

from trucktrack.domain.filters import Dropped, FilterRules, FilterState, TrackFix, step
from trucktrack.simulation import destination

T0 = 1_795_000_000_000
HERE = (18.5204, 73.8567)


def fix(seconds: int, metres_east: float, accuracy: float = 5.0) -> TrackFix:
    lat, lng = destination(*HERE, 90, metres_east)
    return TrackFix(T0 + seconds * 1000, lat, lng, accuracy)


def test_a_gps_jump_a_repeat_and_a_poor_fix_are_dropped_and_not_counted() -> None:
    track = [
        fix(0, 0),
        fix(30, 500),  # 60 km/h
        fix(30, 500),  # the same fix again
        fix(60, 50_000),  # 49.5 km in 30 s: a jump
        fix(90, 1000, accuracy=500),  # poor accuracy
        fix(120, 1500),
    ]
    state, verdicts = step(FilterState(), track, FilterRules())
    assert verdicts == [None, None, Dropped.REPEAT, Dropped.JUMP, Dropped.POOR_ACCURACY, None]
    assert abs(state.distance_m - 1500) < 1
    assert state.last == track[-1]


def test_distance_accumulates_across_batches_and_ignores_late_fixes() -> None:
    track = [fix(30 * i, 400 * i) for i in range(10)]
    state, _ = step(FilterState(), track[:5], FilterRules())
    state, verdicts = step(state, [track[2], *track[5:]], FilterRules())
    assert verdicts[0] is Dropped.REPEAT
    assert abs(state.distance_m - 3600) < 1

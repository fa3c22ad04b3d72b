"""Stop detection on hand-made tracks: a dhaba stop vs a highway stop, short halts, drift."""

from __future__ import annotations

from trucktrack.domain.geo import distance_m
from trucktrack.domain.stops import StopEventKind, StopFix, StopRules, StopState, step
from trucktrack.simulation import destination

T0 = 1_795_000_000_000
MIN = 60_000
HERE = (18.5204, 73.8567)
RULES = StopRules()


def drive_then_stop(stop_minutes: int, dhaba: bool) -> list[StopFix]:
    fixes = [StopFix(T0 + i * MIN, *destination(*HERE, 90, 1000 * (i - 5)), 60.0) for i in range(5)]
    for m in range(stop_minutes + 1):  # parked, GPS wandering a few metres
        lat, lng = destination(*HERE, (m * 77) % 360, 8)
        fixes.append(StopFix(T0 + (5 + m) * MIN, lat, lng, 0.5, dhaba))
    lat, lng = destination(*HERE, 90, 1500)
    fixes.append(StopFix(T0 + (6 + stop_minutes) * MIN, lat, lng, 50.0))
    return fixes


def kinds(events: list) -> list[StopEventKind]:  # type: ignore[type-arg]
    return [e.kind for e in events]


def test_a_31_minute_stop_on_the_highway_is_unexpected() -> None:
    state, events = step(StopState(), drive_then_stop(31, dhaba=False), RULES)
    assert kinds(events) == [
        StopEventKind.STOP_STARTED, StopEventKind.UNEXPECTED_STOP, StopEventKind.STOP_ENDED,
    ]  # fmt: skip
    started, unexpected, ended = events
    assert started.ts == T0 + 7 * MIN and started.started_ts == T0 + 5 * MIN
    assert unexpected.ts == T0 + 36 * MIN and unexpected.duration_s == 31 * 60
    assert ended.duration_s == 32 * 60 and not ended.authorised
    assert not state.stopped


def test_the_same_stop_at_a_dhaba_is_authorised() -> None:
    _, events = step(StopState(), drive_then_stop(31, dhaba=True), RULES)
    assert kinds(events) == [StopEventKind.STOP_STARTED, StopEventKind.STOP_ENDED]
    assert events[-1].authorised


def test_a_short_halt_is_not_a_stop_and_a_29_minute_one_is_not_unexpected() -> None:
    _, events = step(StopState(), drive_then_stop(1, dhaba=False), RULES)
    assert events == []
    _, events = step(StopState(), drive_then_stop(29, dhaba=False), RULES)
    assert kinds(events) == [StopEventKind.STOP_STARTED, StopEventKind.STOP_ENDED]


def test_state_carries_across_batches_and_late_fixes_are_ignored() -> None:
    fixes = drive_then_stop(31, dhaba=False)
    state, first = step(StopState(), fixes[:20], RULES)
    state, second = step(state, [fixes[3], *fixes[20:]], RULES)  # fixes[3] is late
    whole = step(StopState(), fixes, RULES)[1]
    assert first + second == whole


def test_creeping_in_traffic_beyond_the_radius_is_not_a_stop() -> None:
    fixes = [
        StopFix(T0 + i * MIN, *destination(*HERE, 90, 150 * i), 4.0) for i in range(40)
    ]  # slow, but 150 m a minute
    assert step(StopState(), fixes, RULES)[1] == []


def test_distance() -> None:
    lat, lng = destination(*HERE, 45, 1234)
    assert abs(distance_m(*HERE, lat, lng) - 1234) < 0.5

"""A speed spike is not a violation; sustained speeding is one, reported once."""

from __future__ import annotations

from trucktrack.domain.speeding import SpeedEventKind, SpeedFix, SpeedRules, SpeedState, step

T0 = 1_795_000_000_000


def fixes(*speeds: float, limit: float = 60.0, every_s: int = 10) -> list[SpeedFix]:
    return [SpeedFix(T0 + i * every_s * 1000, v, limit) for i, v in enumerate(speeds)]


def test_a_single_spike_is_not_a_violation() -> None:
    assert step(SpeedState(), fixes(55, 58, 95, 57, 59), SpeedRules())[1] == []


def test_sustained_speeding_is_one_violation_with_its_start_and_maximum() -> None:
    state, events = step(SpeedState(), fixes(55, 70, 75, 82, 71, 68, 50), SpeedRules())
    assert [e.kind for e in events] == [SpeedEventKind.STARTED, SpeedEventKind.ENDED]
    started, ended = events
    assert started.started_ts == T0 + 10_000 and started.ts == T0 + 40_000
    assert ended.max_speed_kmh == 82 and ended.duration_s == 50 and ended.limit_kmh == 60
    assert state.since is None


def test_a_fence_limit_applies_where_it_is_in_force_and_state_carries_over() -> None:
    town = [SpeedFix(T0 + i * 10_000, 45, 40) for i in range(5)]  # 45 in a 40 zone
    state, first = step(SpeedState(), town[:2], SpeedRules())
    state, second = step(state, [town[0], *town[2:]], SpeedRules())  # a late retry is ignored
    assert first == [] and [e.kind for e in second] == [SpeedEventKind.STARTED]
    assert second[0].started_ts == T0

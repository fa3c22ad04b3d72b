"""The milestone order rules and trip windows, on plain records."""

from __future__ import annotations

import msgspec
import pytest

from trucktrack.domain.trips import (
    ORDER,
    Milestone,
    MilestoneRecord,
    MilestoneRefused,
    MilestoneTooEarly,
    MilestoneTooOld,
    Place,
    Trip,
    TripStatus,
    TripWindows,
    check_milestone,
    check_milestone_age,
    is_repeat,
    next_milestones,
    with_milestone,
)

HERE = Place(18.5, 73.8)


def trip(trip_id: str = "t") -> Trip:
    return Trip(fleet_id="f", trip_id=trip_id, vehicle_id="v", pickup=HERE, delivery=HERE)


def advance(t: Trip, milestone: Milestone, ts: int) -> Trip:
    check_milestone(t, milestone, ts)
    return with_milestone(t, MilestoneRecord(milestone, ts, ts, "tok"), ts)


def test_the_nine_milestones_in_order_start_and_end_the_trip() -> None:
    t = trip()
    assert next_milestones(t) == (Milestone.TRIP_STARTED,)
    for i, m in enumerate(ORDER):
        t = advance(t, m, 1000 * i)
        assert t.status is (TripStatus.COMPLETED if m is ORDER[-1] else TripStatus.ACTIVE)
    assert t.started_at == 0 and t.ended_at == 8000 and t.version == 9
    assert next_milestones(t) == ()
    with pytest.raises(MilestoneRefused) as refused:
        check_milestone(t, Milestone.TRIP_STARTED, 9000)
    assert refused.value.allowed == ()


def test_skipping_or_going_back_is_refused_naming_the_next() -> None:
    t = advance(trip(), Milestone.TRIP_STARTED, 0)
    for wrong in (Milestone.LOADING_STARTED, Milestone.TRIP_COMPLETED, Milestone.TRIP_STARTED):
        with pytest.raises(MilestoneRefused) as refused:
            check_milestone(t, wrong, 10)
        assert refused.value.allowed == (Milestone.REACHED_PICKUP,)
    assert is_repeat(t, Milestone.TRIP_STARTED) and not is_repeat(t, Milestone.REACHED_PICKUP)
    with pytest.raises(MilestoneTooEarly):
        check_milestone(t, Milestone.REACHED_PICKUP, -1)


def test_a_cancelled_trip_takes_no_milestone() -> None:
    t = msgspec.structs.replace(trip(), status=TripStatus.CANCELLED)
    assert next_milestones(t) == ()
    with pytest.raises(MilestoneRefused):
        check_milestone(t, Milestone.TRIP_STARTED, 0)


def test_windows_attribute_points_by_time() -> None:
    windows = TripWindows()
    first = advance(advance(trip(trip_id="a"), Milestone.TRIP_STARTED, 100), ORDER[1], 150)
    windows.put(first)
    assert windows.trip_at("f", "v", 99) is None
    assert windows.trip_at("f", "v", 100) == "a" and windows.trip_at("f", "v", 10**12) == "a"
    assert windows.trip_at("g", "v", 120) is None  # another fleet's vehicle of the same name
    assert windows.active() == [("f", "v", "a", 100, 100)]
    done = msgspec.structs.replace(first, ended_at=200, status=TripStatus.COMPLETED)
    windows.put(done)
    second = advance(trip(trip_id="b"), Milestone.TRIP_STARTED, 300)
    windows.put(second)
    assert [windows.trip_at("f", "v", ts) for ts in (150, 250, 300)] == ["a", None, "b"]
    assert windows.active_trip("f", "v") == "b"
    windows.forget_ended_before(250)
    assert windows.trip_at("f", "v", 150) is None and windows.trip_at("f", "v", 400) == "b"
    windows.put(msgspec.structs.replace(second, status=TripStatus.CANCELLED))
    assert windows.trip_at("f", "v", 400) is None and len(windows) == 0


def test_a_milestone_time_before_2000_or_long_before_the_trip_is_too_old() -> None:
    created = 1_764_000_000_000  # 2025-11-24
    t = msgspec.structs.replace(trip(), created_at=created)
    check_milestone_age(t, created - 3_600_000, backdate_ms=3_600_000)  # at the limit
    with pytest.raises(MilestoneTooOld, match="before the trip was created"):
        check_milestone_age(t, created - 3_600_001, backdate_ms=3_600_000)
    with pytest.raises(MilestoneTooOld, match="before 2000"):
        check_milestone_age(msgspec.structs.replace(t, created_at=0), created // 1000, 0)

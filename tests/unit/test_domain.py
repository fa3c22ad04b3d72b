"""Domain rules on plain data: time window, time formats, scopes."""

from __future__ import annotations

import datetime as dt

import pytest

from trucktrack.domain.ingest_rules import DAY_MS, OUT_OF_SCOPE, TimeWindow, scope_reason
from trucktrack.domain.model import Principal, Role
from trucktrack.domain.timefmt import BadTimestamp, day_of, day_start_ms, format_ms, parse_timestamp

NOW = 1_795_000_000_000


def test_time_window_edges() -> None:
    w = TimeWindow(NOW, max_future_s=300, retention_days=30)
    assert w.reason_to_reject(NOW) is None
    assert w.reason_to_reject(NOW + 300_000) is None
    assert "future" in (w.reason_to_reject(NOW + 300_001) or "")
    assert w.reason_to_reject(NOW - 30 * DAY_MS) is None
    assert "retention" in (w.reason_to_reject(NOW - 30 * DAY_MS - 1) or "")
    assert "milliseconds" in (w.reason_to_reject(NOW // 1000) or "")  # epoch seconds by mistake


def test_timestamps_parse_and_format() -> None:
    assert parse_timestamp(NOW) == NOW
    assert parse_timestamp(1.5) == 2
    assert parse_timestamp("2026-11-24T10:00:00.123Z") == 1795514400123
    assert parse_timestamp("2026-11-24T15:30:00.123+05:30") == 1795514400123
    assert format_ms(1795514400123) == "2026-11-24T10:00:00.123Z"
    assert parse_timestamp(format_ms(NOW)) == NOW
    for bad in ("2026-11-24T10:00:00", "tomorrow", "", float("nan"), float("inf")):
        with pytest.raises(BadTimestamp):
            parse_timestamp(bad)


def test_days() -> None:
    day = day_of(1795514400123)
    assert day == dt.date(2026, 11, 24)
    assert day_start_ms(day) == 1795478400000
    assert day_of(day_start_ms(day) - 1) == dt.date(2026, 11, 23)


def test_principal_scope() -> None:
    admin = Principal("f1", Role.ADMIN)
    device = Principal("f1", Role.DEVICE, frozenset({"V1"}))
    viewer = Principal("f1", Role.VIEWER)
    assert admin.may_write_points() and device.may_write_points()
    assert not viewer.may_write_points()
    assert admin.may_see("anything") and device.may_see("V1") and not device.may_see("V2")
    assert scope_reason(admin, "V9", None) is None
    assert scope_reason(admin, "V9", "f1") is None
    assert scope_reason(admin, "V9", "f2") == OUT_OF_SCOPE
    assert scope_reason(device, "V2", None) == OUT_OF_SCOPE

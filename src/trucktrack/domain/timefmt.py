"""Device timestamps: epoch milliseconds or ISO-8601 with an offset, to epoch milliseconds."""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Year 1970 to 9999: anything else is a mistake, and beyond int64 storage would overflow.
MIN_MS = 0
MAX_MS = 253_402_300_799_999


class BadTimestamp(ValueError):
    """A timestamp that cannot be read as a point in time."""


def parse_timestamp(value: int | float | str) -> int:
    """Epoch ms from a number (epoch ms) or an ISO-8601 string that states its offset."""
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise BadTimestamp(f"timestamp {value!r} is not ISO-8601") from exc
        if parsed.tzinfo is None:
            raise BadTimestamp("timestamp must carry a UTC offset (e.g. 'Z' or '+05:30')")
        ms = round(parsed.timestamp() * 1000)
    elif value != value or value in (float("inf"), float("-inf")):
        raise BadTimestamp("timestamp must be a finite number")
    else:
        ms = round(value)
    if not MIN_MS <= ms <= MAX_MS:
        raise BadTimestamp("timestamp is out of range (epoch milliseconds from 1970 to 9999)")
    return ms


def format_ms(ms: int) -> str:
    """ISO-8601 in UTC with milliseconds, e.g. 2026-11-24T10:00:00.000Z."""
    return (
        dt.datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    )


def day_of(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, tz=UTC).date()


def day_start_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)

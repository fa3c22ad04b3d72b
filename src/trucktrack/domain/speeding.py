"""Speed violations: an alert only when speeding is sustained, so one GPS spike is not one.

A pure per-vehicle step. Each fix carries the limit in force there (the vehicle's default or the
lowest `speed_limit_kmh` of the fences it is in). A violation starts once the speed has stayed
over the limit for `min_duration_s` (its time is the first fast fix) and ends at the first fix
back under the limit, with the maximum speed seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import msgspec


class SpeedRules(msgspec.Struct, frozen=True):
    min_duration_s: float = 30.0
    tolerance_kmh: float = 0.0


class SpeedEventKind(StrEnum):
    STARTED = "speeding_started"
    ENDED = "speeding_ended"


class SpeedEvent(msgspec.Struct, frozen=True):
    kind: SpeedEventKind
    ts: int
    started_ts: int
    max_speed_kmh: float
    limit_kmh: float
    duration_s: float


class SpeedFix(msgspec.Struct, frozen=True, array_like=True):
    ts: int
    speed_kmh: float
    limit_kmh: float


class SpeedState(msgspec.Struct):
    last_ts: int = -1
    since: int | None = None
    """First fix of the current spell over the limit."""
    max_speed: float = 0.0
    limit: float = 0.0
    reported: bool = False


def step(
    state: SpeedState, fixes: Sequence[SpeedFix], rules: SpeedRules
) -> tuple[SpeedState, list[SpeedEvent]]:
    s = SpeedState(state.last_ts, state.since, state.max_speed, state.limit, state.reported)
    events: list[SpeedEvent] = []
    for fix in fixes:
        if fix.ts <= s.last_ts:
            continue
        s.last_ts = fix.ts
        if fix.speed_kmh > fix.limit_kmh + rules.tolerance_kmh:
            if s.since is None:
                s.since, s.max_speed, s.limit, s.reported = fix.ts, 0.0, fix.limit_kmh, False
            s.max_speed = max(s.max_speed, fix.speed_kmh)
            s.limit = min(s.limit, fix.limit_kmh)
            held_s = (fix.ts - s.since) / 1000
            if not s.reported and held_s >= rules.min_duration_s:
                s.reported = True
                events.append(
                    SpeedEvent(
                        SpeedEventKind.STARTED, fix.ts, s.since, s.max_speed, s.limit, held_s
                    )
                )
            continue
        if s.since is not None and s.reported:
            held_s = (fix.ts - s.since) / 1000
            events.append(
                SpeedEvent(SpeedEventKind.ENDED, fix.ts, s.since, s.max_speed, s.limit, held_s)
            )
        s.since, s.reported = None, False
    return s, events

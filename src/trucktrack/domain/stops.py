"""Stop detection: a truck is stopped when it stays slow and close to one place long enough.

A pure step over explicit per-vehicle state (Traccar's MotionProcessor has the same shape): a
stop starts once speed stays under `max_speed_kmh` within `radius_m` of where it slowed down for
`min_duration_s`; it ends at the first fix that is fast or outside the radius. A stop outside
every fence where stopping is allowed raises one "unexpected stop" once it passes
`unexpected_after_s` (30 minutes by default, the spec's threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import msgspec

from trucktrack.domain.geo import distance_m


class StopRules(msgspec.Struct, frozen=True):
    max_speed_kmh: float = 5.0
    radius_m: float = 100.0
    min_duration_s: float = 120.0
    unexpected_after_s: float = 1800.0


class StopEventKind(StrEnum):
    STOP_STARTED = "stop_started"
    STOP_ENDED = "stop_ended"
    UNEXPECTED_STOP = "unexpected_stop"


class StopEvent(msgspec.Struct, frozen=True):
    kind: StopEventKind
    ts: int
    lat: float
    lng: float
    started_ts: int
    duration_s: float
    authorised: bool
    """The stop is inside a fence where stopping is allowed (a depot, a dhaba, a fuel station)."""


class StopState(msgspec.Struct):
    """Where and since when the vehicle has been slow, and whether that is a confirmed stop."""

    last_ts: int = -1
    anchor: tuple[int, float, float] | None = None
    """(ts, lat, lng) of the first slow fix of the current slow spell."""
    stopped: bool = False
    authorised: bool = False
    flagged: bool = False


class StopFix(msgspec.Struct, frozen=True, array_like=True):
    ts: int
    lat: float
    lng: float
    speed_kmh: float
    in_stop_allowed_fence: bool = False


def step(
    state: StopState, fixes: Sequence[StopFix], rules: StopRules
) -> tuple[StopState, list[StopEvent]]:
    """Advance one vehicle over its new fixes in device-time order (older ones are ignored)."""
    s = StopState(state.last_ts, state.anchor, state.stopped, state.authorised, state.flagged)
    events: list[StopEvent] = []
    for fix in fixes:
        if fix.ts <= s.last_ts:
            continue
        s.last_ts = fix.ts
        slow = fix.speed_kmh < rules.max_speed_kmh
        near = (
            s.anchor is not None
            and distance_m(s.anchor[1], s.anchor[2], fix.lat, fix.lng) <= rules.radius_m
        )
        if slow and near and s.anchor is not None:
            held_s = (fix.ts - s.anchor[0]) / 1000
            if not s.stopped and held_s >= rules.min_duration_s:
                s.stopped, s.authorised = True, fix.in_stop_allowed_fence
                events.append(_event(StopEventKind.STOP_STARTED, fix.ts, s, held_s))
            if s.stopped:
                s.authorised = s.authorised or fix.in_stop_allowed_fence
                if not s.authorised and not s.flagged and held_s > rules.unexpected_after_s:
                    s.flagged = True
                    events.append(_event(StopEventKind.UNEXPECTED_STOP, fix.ts, s, held_s))
            continue
        if s.stopped and s.anchor is not None:
            held_s = (fix.ts - s.anchor[0]) / 1000
            events.append(_event(StopEventKind.STOP_ENDED, fix.ts, s, held_s))
        s.anchor = (fix.ts, fix.lat, fix.lng) if slow else None
        s.stopped = s.authorised = s.flagged = False
    return s, events


def _event(kind: StopEventKind, ts: int, s: StopState, held_s: float) -> StopEvent:
    assert s.anchor is not None
    started, lat, lng = s.anchor
    return StopEvent(kind, ts, lat, lng, started, held_s, s.authorised)


class Stop(msgspec.Struct, frozen=True):
    """A stop as recorded: open while `ended_ts` is None."""

    vehicle_id: str
    trip_id: str | None
    started_ts: int
    ended_ts: int | None
    lat: float
    lng: float
    duration_s: float
    """So far, for an open stop (as of the last fix that extended it)."""
    authorised: bool

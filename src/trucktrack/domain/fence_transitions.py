"""From fence membership to events: enter, exit and cross, per vehicle, with debounce, plus the
visit rules that need membership over time (restricted hours, dwelling too long).

A pure step over explicit state (as Traccar's GeofenceEventHandler compares old and new sets):
`step(state, fixes, containing, crossed, fences, version) -> (state, events)`. The caller gets
`containing` and `crossed` from `GeofenceIndex` for the whole batch at once, and keeps the state
per vehicle so any worker can resume a vehicle after a restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from enum import StrEnum

import msgspec

RESTRICTED_FLAG, DWELL_FLAG = 1, 2


class Transition(StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    CROSS = "cross"
    """Entered and left between two fixes (a fence passed by a sparse track)."""
    RESTRICTED = "restricted"
    """Inside (or passing through) a restricted fence while its restriction applies."""
    DWELL = "dwell"
    """Inside a fence longer than its `max_dwell_min`."""


class FenceEvent(msgspec.Struct, frozen=True):
    kind: Transition
    fence_id: str
    ts: int
    """When the change was first seen (for a debounced change, not when it was confirmed)."""
    lat: float
    lng: float
    since: int = 0
    """Start of the visit the event belongs to (for a cross or an entry: `ts`)."""


class FenceTerms(msgspec.Struct, frozen=True):
    """What the step needs to know of one active fence."""

    version: int = 0
    """Catalogue generation at which the fence got its current shape: a vehicle whose last fix
    predates it sees the fence for the first time (a baseline, not an entry)."""
    min_dwell_ms: int = 0
    max_dwell_ms: int | None = None
    restricted: bool = False
    windows: tuple[tuple[int, int], ...] | None = None
    """Local minute-of-day [from, to) spans when `restricted` applies (from > to wraps past
    midnight); None: always."""

    def restricted_at(self, ts: int, tz: dt.tzinfo) -> bool:
        if not self.restricted:
            return False
        if self.windows is None:
            return True
        local = dt.datetime.fromtimestamp(ts / 1000, tz)
        minute = local.hour * 60 + local.minute
        return any(
            (start <= minute < end) if start <= end else (minute >= start or minute < end)
            for start, end in self.windows
        )


class MembershipState(msgspec.Struct):
    """One vehicle's fences: where it is inside (since when) and changes awaiting debounce."""

    last_ts: int = -1
    inside: dict[str, int] = {}
    pending: dict[str, tuple[bool, int, float, float]] = {}
    """fence -> (seen inside?, first seen ts, lat, lng) of a change not yet held long enough."""
    known_version: int = -1
    """The catalogue generation at this vehicle's last fix: a fence newer than that is seen
    for the first time, and as for a vehicle's very first fix, the first look is a baseline,
    not an entry (a fence drawn around a parked truck does not report that it entered)."""
    flagged: dict[str, int] = {}
    """fence -> visit rules already reported for the current visit (RESTRICTED_FLAG, ...)."""


class Fix(msgspec.Struct, frozen=True, array_like=True):
    ts: int
    lat: float
    lng: float


def step(
    state: MembershipState,
    fixes: Sequence[Fix],
    containing: Sequence[frozenset[str]],
    crossed: Sequence[frozenset[str]],
    fences: Mapping[str, FenceTerms],
    version: int,
    tz: dt.tzinfo = dt.UTC,
) -> tuple[MembershipState, list[FenceEvent]]:
    """Advance one vehicle over its new fixes, in device-time order.

    `containing[i]`: fences holding fix i; `crossed[i]`: fences the segment from the previous
    fix to fix i touches; `fences`: the active fences (a deleted or deactivated fence's state
    ends without an event); `version`: the catalogue generation now; `tz`: the zone that
    restricted hours are written in. Fixes not newer than the last one seen change nothing.
    """
    inside = {f: t for f, t in state.inside.items() if f in fences}
    pending = {f: p for f, p in state.pending.items() if f in fences}
    flagged = {f: m for f, m in state.flagged.items() if f in inside}
    first_look = state.last_ts < 0
    known = state.known_version
    last_ts = state.last_ts
    events: list[FenceEvent] = []
    for fix, seen, passed in zip(fixes, containing, crossed, strict=True):
        if fix.ts <= last_ts:
            continue
        last_ts = fix.ts
        now = frozenset(f for f in seen if f in fences)
        passed = frozenset(f for f in passed if f in fences)
        if first_look or known < version:
            new = {f for f in now | passed if first_look or fences[f].version > known}
            for fence in now & new:
                if fence not in inside:
                    inside[fence] = fix.ts
            passed = passed - new
            first_look, known = False, version
        for fence in sorted(passed - now - inside.keys()):
            terms = fences[fence]
            if terms.min_dwell_ms:
                continue
            events.append(FenceEvent(Transition.CROSS, fence, fix.ts, fix.lat, fix.lng, fix.ts))
            if terms.restricted_at(fix.ts, tz):
                events.append(
                    FenceEvent(Transition.RESTRICTED, fence, fix.ts, fix.lat, fix.lng, fix.ts)
                )
        for fence in sorted(now | inside.keys() | pending.keys()):
            seen_inside = fence in now
            if seen_inside == (fence in inside):
                pending.pop(fence, None)  # no change, or a flap that did not hold
                continue
            first = pending.get(fence)
            if first is None or first[0] != seen_inside:
                first = (seen_inside, fix.ts, fix.lat, fix.lng)
                pending[fence] = first
            if fix.ts - first[1] >= fences[fence].min_dwell_ms:
                del pending[fence]
                if seen_inside:
                    inside[fence] = first[1]
                    events.append(FenceEvent(Transition.ENTER, fence, *first[1:], first[1]))
                else:
                    since = inside.pop(fence)
                    flagged.pop(fence, None)
                    events.append(FenceEvent(Transition.EXIT, fence, *first[1:], since))
        for fence, since in inside.items():
            terms = fences[fence]
            done = flagged.get(fence, 0)
            if not done & RESTRICTED_FLAG and terms.restricted_at(fix.ts, tz):
                done |= RESTRICTED_FLAG
                events.append(
                    FenceEvent(Transition.RESTRICTED, fence, fix.ts, fix.lat, fix.lng, since)
                )
            if (
                not done & DWELL_FLAG
                and terms.max_dwell_ms is not None
                and fix.ts - since > terms.max_dwell_ms
            ):
                done |= DWELL_FLAG
                events.append(FenceEvent(Transition.DWELL, fence, fix.ts, fix.lat, fix.lng, since))
            if done:
                flagged[fence] = done
    return MembershipState(last_ts, inside, pending, known, flagged), events

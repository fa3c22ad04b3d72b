"""From fence membership to events: enter, exit and cross, per vehicle, with debounce.

A pure step over explicit state (as Traccar's GeofenceEventHandler compares old and new sets):
`step(state, fixes, containing, crossed, ...) -> (state, events)`. The caller gets `containing`
and `crossed` from `GeofenceIndex` for the whole batch at once, and keeps the state per vehicle
so any worker can resume a vehicle after a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

import msgspec


class Transition(StrEnum):
    ENTER = "enter"
    EXIT = "exit"
    CROSS = "cross"
    """Entered and left between two fixes (a fence passed by a sparse track)."""


class FenceEvent(msgspec.Struct, frozen=True):
    kind: Transition
    fence_id: str
    ts: int
    """When the change was first seen (for a debounced change, not when it was confirmed)."""
    lat: float
    lng: float


class MembershipState(msgspec.Struct):
    """One vehicle's fences: where it is inside (since when) and changes awaiting debounce."""

    last_ts: int = -1
    inside: dict[str, int] = {}
    pending: dict[str, tuple[bool, int, float, float]] = {}
    """fence -> (seen inside?, first seen ts, lat, lng) of a change not yet held long enough."""
    known: frozenset[str] = frozenset()
    """The fences that existed at this vehicle's last fix: for a fence created since, as for a
    vehicle's very first fix, the first look is a baseline, not an entry (a fence drawn around
    a parked truck does not report that the truck entered it)."""


class Fix(msgspec.Struct, frozen=True, array_like=True):
    ts: int
    lat: float
    lng: float


def step(
    state: MembershipState,
    fixes: Sequence[Fix],
    containing: Sequence[frozenset[str]],
    crossed: Sequence[frozenset[str]],
    active: frozenset[str],
    min_dwell_ms: Mapping[str, int],
) -> tuple[MembershipState, list[FenceEvent]]:
    """Advance one vehicle over its new fixes, in device-time order.

    `containing[i]`: fences holding fix i; `crossed[i]`: fences the segment from the previous
    fix to fix i touches; `active`: the fences that exist now (a deleted or deactivated fence's
    state ends without an event); `min_dwell_ms`: per fence, how long a change must hold.
    Fixes not newer than the last one seen (retries, late points) change nothing.
    """
    inside = {f: t for f, t in state.inside.items() if f in active}
    pending = {f: p for f, p in state.pending.items() if f in active}
    new = active - state.known if state.last_ts >= 0 else active
    last_ts = state.last_ts
    events: list[FenceEvent] = []
    for fix, seen, passed in zip(fixes, containing, crossed, strict=True):
        if fix.ts <= last_ts:
            continue
        last_ts = fix.ts
        now = seen & active
        if new:
            for fence in now & new:
                inside[fence] = fix.ts
            passed = passed - new
            new = frozenset()
        for fence in (passed & active) - now - inside.keys():
            if not min_dwell_ms.get(fence, 0):
                events.append(FenceEvent(Transition.CROSS, fence, fix.ts, fix.lat, fix.lng))
        for fence in sorted(now | inside.keys() | pending.keys()):
            seen_inside = fence in now
            if seen_inside == (fence in inside):
                pending.pop(fence, None)  # no change, or a flap that did not hold
                continue
            first = pending.get(fence)
            if first is None or first[0] != seen_inside:
                first = (seen_inside, fix.ts, fix.lat, fix.lng)
                pending[fence] = first
            if fix.ts - first[1] >= min_dwell_ms.get(fence, 0):
                del pending[fence]
                kind = Transition.ENTER if seen_inside else Transition.EXIT
                events.append(FenceEvent(kind, fence, first[1], first[2], first[3]))
                if seen_inside:
                    inside[fence] = first[1]
                else:
                    del inside[fence]
    known = active if last_ts != state.last_ts else state.known & active
    return MembershipState(last_ts, inside, pending, known), events

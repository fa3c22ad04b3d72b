"""The GPS noise filter and distance: which fixes to trust, and how far the truck went.

Raw points stay stored as received; this decides which ones feed distance and events. A fix is
dropped when it is not newer than every fix seen before (a retry or a late point: processors
see each vehicle in device-time order), when its accuracy is too poor, or when reaching it from
the last trusted fix would need an implausible speed (a GPS jump). A fix at the same place as
the last one is kept: a parked truck's repeated position is what stop detection needs.
Pure: a step over the last trusted fix, per vehicle.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import msgspec

from trucktrack.domain.geo import distance_m


class FilterRules(msgspec.Struct, frozen=True):
    max_implied_speed_kmh: float = 200.0
    max_accuracy_m: float = 100.0


class Dropped(StrEnum):
    REPEAT = "repeat"
    POOR_ACCURACY = "poor_accuracy"
    JUMP = "jump"


class TrackFix(msgspec.Struct, frozen=True, array_like=True):
    ts: int
    lat: float
    lng: float
    accuracy_m: float = 10.0


class FilterState(msgspec.Struct):
    last: TrackFix | None = None
    """The last trusted fix."""
    distance_m: float = 0.0
    """Filtered distance travelled so far."""
    seen_ts: int = -1
    """The newest device time seen, trusted or not."""


def step(
    state: FilterState, fixes: Sequence[TrackFix], rules: FilterRules
) -> tuple[FilterState, list[Dropped | None]]:
    """Advance over new fixes in device-time order; for each, None (kept) or why it was dropped."""
    last, total, seen = state.last, state.distance_m, state.seen_ts
    verdicts: list[Dropped | None] = []
    for fix in fixes:
        if fix.ts <= seen:
            verdicts.append(Dropped.REPEAT)
            continue
        seen = fix.ts
        if fix.accuracy_m > rules.max_accuracy_m:
            verdicts.append(Dropped.POOR_ACCURACY)
            continue
        if last is not None:
            metres = distance_m(last.lat, last.lng, fix.lat, fix.lng)
            hours = (fix.ts - last.ts) / 3_600_000
            if metres / 1000 / hours > rules.max_implied_speed_kmh:
                verdicts.append(Dropped.JUMP)
                continue
            total += metres
        last = fix
        verdicts.append(None)
    return FilterState(last, total, seen), verdicts

"""Acceptance rules a point must pass beyond its shape: time window and vehicle scope."""

from __future__ import annotations

from trucktrack.domain.model import Principal
from trucktrack.domain.timefmt import DAY_MS


class TimeWindow:
    """The device times we accept: not too far in the future, not older than the retention."""

    __slots__ = ("newest_ms", "oldest_ms")

    def __init__(self, now_ms: int, max_future_s: float, retention_days: float) -> None:
        self.newest_ms = now_ms + int(max_future_s * 1000)
        self.oldest_ms = now_ms - int(retention_days * DAY_MS)

    def reason_to_reject(self, ts: int) -> str | None:
        if ts > self.newest_ms:
            return "timestamp is more than the allowed skew in the future"
        if ts < self.oldest_ms:
            return "timestamp is older than the retention period (epoch milliseconds expected)"
        return None


OUT_OF_SCOPE = "vehicle_id is not in this token's scope"


def scope_reason(principal: Principal, vehicle_id: str, owner: str | None) -> str | None:
    """Why this caller may not write points for this vehicle (owned by fleet `owner`), or None."""
    if not principal.may_see(vehicle_id) or (owner is not None and owner != principal.fleet_id):
        return OUT_OF_SCOPE
    return None

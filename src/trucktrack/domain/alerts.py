"""Alerts: what the processors and the panic button raise, stored once per dedupe key."""

from __future__ import annotations

from enum import StrEnum

import msgspec


class AlertType(StrEnum):
    GEOFENCE_ENTRY = "geofence_entry"
    GEOFENCE_EXIT = "geofence_exit"
    RESTRICTED_AREA = "restricted_area"
    SPEEDING = "speeding"
    DWELL_EXCEEDED = "dwell_exceeded"
    UNEXPECTED_STOP = "unexpected_stop"
    ROUTE_DEVIATION = "route_deviation"
    WRONG_DIRECTION = "wrong_direction"
    PANIC = "panic"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    alert_id: str
    fleet_id: str
    type: AlertType
    severity: Severity
    vehicle_id: str
    ts: int
    """Device time of the fix (or press) that raised it."""
    lat: float | None = None
    lng: float | None = None
    trip_id: str | None = None
    geofence_id: str | None = None
    details: dict[str, object] = {}
    dedupe_key: str
    """The same event seen again (a retried batch, a replay after restart) has the same key."""
    created_at: int = 0
    acknowledged_at: int | None = None
    acknowledged_by: str | None = None

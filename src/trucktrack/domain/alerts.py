"""Alerts: what the processors and the panic button raise, stored once per dedupe key."""

from __future__ import annotations

import hashlib
from enum import StrEnum

import msgspec

from trucktrack.domain.compliance import ComplianceEvent, ComplianceEventKind
from trucktrack.domain.geofence import Geofence
from trucktrack.domain.processing import EventKind, TrackEvent


class AlertType(StrEnum):
    GEOFENCE_ENTRY = "geofence_entry"
    GEOFENCE_EXIT = "geofence_exit"
    RESTRICTED_AREA = "restricted_area"
    SPEEDING = "speeding"
    DWELL_EXCEEDED = "dwell_exceeded"
    UNEXPECTED_STOP = "unexpected_stop"
    ROUTE_DEVIATION = "route_deviation"
    BACK_ON_ROUTE = "back_on_route"
    WRONG_DIRECTION = "wrong_direction"
    SIGNAL_LOST = "signal_lost"
    SIGNAL_RESTORED = "signal_restored"
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


class Subscription(msgspec.Struct, frozen=True):
    """Where one fleet's alerts are POSTed, and the key they are signed with."""

    fleet_id: str
    url: str
    secret: str
    created_at: int
    updated_at: int


def alert_id_for(fleet_id: str, dedupe_key: str) -> str:
    """The same event always gets the same id, so a replay can only find it already stored."""
    return "al_" + hashlib.sha256(f"{fleet_id}\n{dedupe_key}".encode()).hexdigest()[:16]


def alerts_from_event(
    event: TrackEvent,
    *,
    fleet_id: str,
    vehicle_id: str,
    trip_id: str | None,
    fence: Geofence | None,
    created_at: int,
) -> list[Alert]:
    """The alerts a processor event raises (stop start/end and speeding end raise none)."""
    kind, fence_id = event.kind, event.fence_id
    found: list[tuple[AlertType, Severity, str, dict[str, object]]] = []
    named: dict[str, object] = {} if fence is None else {"geofence_name": fence.name}
    rules = fence.rules if fence is not None else None
    crossed = kind is EventKind.CROSS
    if (kind is EventKind.ENTER or crossed) and rules is not None and rules.alert_on_entry:
        extra = {"crossed_between_fixes": True} if crossed else {}
        found.append((AlertType.GEOFENCE_ENTRY, Severity.INFO,
                      f"entry:{vehicle_id}:{fence_id}:{event.ts}", named | extra))  # fmt: skip
    if (kind is EventKind.EXIT or crossed) and rules is not None and rules.alert_on_exit:
        extra = (
            {"crossed_between_fixes": True}
            if crossed
            else {"entered_at": event.since, "inside_s": (event.ts - event.since) / 1000}
        )
        found.append((AlertType.GEOFENCE_EXIT, Severity.INFO,
                      f"exit:{vehicle_id}:{fence_id}:{event.ts}", named | extra))  # fmt: skip
    if kind is EventKind.RESTRICTED:
        found.append((AlertType.RESTRICTED_AREA, Severity.CRITICAL,
                      f"restricted:{vehicle_id}:{fence_id}:{event.since}",
                      named | {"inside_since": event.since}))  # fmt: skip
    if kind is EventKind.DWELL:
        limit = rules.max_dwell_min if rules is not None else None
        found.append((AlertType.DWELL_EXCEEDED, Severity.WARNING,
                      f"dwell:{vehicle_id}:{fence_id}:{event.since}",
                      named | {"inside_since": event.since, "max_dwell_min": limit}))  # fmt: skip
    if kind is EventKind.SPEEDING_STARTED:
        found.append((AlertType.SPEEDING, Severity.WARNING,
                      f"speeding:{vehicle_id}:{event.since}",
                      named | {"since": event.since, **event.details}))  # fmt: skip
    if kind is EventKind.UNEXPECTED_STOP:
        found.append((AlertType.UNEXPECTED_STOP, Severity.WARNING,
                      f"unexpected_stop:{vehicle_id}:{event.since}",
                      {"stopped_since": event.since, **event.details}))  # fmt: skip
    return [
        keyed_alert(
            key,
            type_,
            severity,
            fleet_id=fleet_id,
            vehicle_id=vehicle_id,
            ts=event.ts,
            lat=event.lat,
            lng=event.lng,
            trip_id=trip_id,
            geofence_id=fence_id,
            details=details,
            created_at=created_at,
        )
        for type_, severity, key, details in found
    ]


def keyed_alert(
    key: str,
    type_: AlertType,
    severity: Severity,
    *,
    fleet_id: str,
    vehicle_id: str,
    ts: int,
    lat: float | None,
    lng: float | None,
    trip_id: str | None,
    details: dict[str, object],
    created_at: int,
    geofence_id: str | None = None,
) -> Alert:
    """An alert identified by its dedupe key: the same event always makes the same alert."""
    return Alert(
        alert_id=alert_id_for(fleet_id, key),
        fleet_id=fleet_id,
        type=type_,
        severity=severity,
        vehicle_id=vehicle_id,
        ts=ts,
        lat=lat,
        lng=lng,
        trip_id=trip_id,
        geofence_id=geofence_id,
        details=details,
        dedupe_key=key,
        created_at=created_at,
    )


_COMPLIANCE_ALERTS = {
    ComplianceEventKind.DEVIATION_STARTED: (AlertType.ROUTE_DEVIATION, Severity.WARNING),
    ComplianceEventKind.DEVIATION_ENDED: (AlertType.BACK_ON_ROUTE, Severity.INFO),
    ComplianceEventKind.WRONG_DIRECTION_STARTED: (AlertType.WRONG_DIRECTION, Severity.WARNING),
}


def alerts_from_compliance(
    event: ComplianceEvent, *, fleet_id: str, vehicle_id: str, trip_id: str, created_at: int
) -> list[Alert]:
    """A deviation raises one alert when it starts and one when the truck is back on route;
    going the wrong way one when it starts (its end is only in the trip's progress)."""
    found = _COMPLIANCE_ALERTS.get(event.kind)
    if found is None:
        return []
    type_, severity = found
    return [
        keyed_alert(
            f"{type_.value}:{trip_id}:{event.since}",
            type_,
            severity,
            fleet_id=fleet_id,
            vehicle_id=vehicle_id,
            ts=event.ts,
            lat=event.lat,
            lng=event.lng,
            trip_id=trip_id,
            details={"since": event.since, **event.details},
            created_at=created_at,
        )
    ]

"""Alerts: the panic button, reading alerts back, acknowledging them."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

import msgspec

from trucktrack.domain.alerts import Alert, AlertType, Severity
from trucktrack.domain.ingest_rules import scope_reason
from trucktrack.domain.model import Principal, Role
from trucktrack.errors import Forbidden, NotFound
from trucktrack.metrics import Metrics
from trucktrack.ports import AlertStore, PointLog
from trucktrack.services.cursors import MAX_TIME_MS, decode_time_cursor, encode_cursor
from trucktrack.services.ingest import wall_clock_ms


class AlertPage(msgspec.Struct, frozen=True):
    alerts: list[Alert]
    next_cursor: str | None


class AlertService:
    def __init__(
        self,
        store: AlertStore,
        log: PointLog,
        metrics: Metrics,
        on_alert: Callable[[Sequence[Alert]], None] | None = None,
    ) -> None:
        self._on_alert = on_alert
        self._store = store
        self._log = log
        self._metrics = metrics

    async def raise_emergency(
        self,
        principal: Principal,
        vehicle_id: str,
        *,
        ts: int,
        lat: float | None,
        lng: float | None,
        trip_id: str | None,
        note: str | None,
    ) -> tuple[Alert, bool]:
        """A critical panic alert, stored at once; a repeat of the same press is not new."""
        if not principal.may_write_points():
            raise Forbidden(f"a {principal.role.value} token cannot raise emergencies")
        if scope_reason(principal, vehicle_id, self._log.fleet_of(vehicle_id)) is not None:
            raise Forbidden("vehicle_id is not in this token's scope")
        alert = Alert(
            alert_id="al_" + secrets.token_hex(8),
            fleet_id=principal.fleet_id,
            type=AlertType.PANIC,
            severity=Severity.CRITICAL,
            vehicle_id=vehicle_id,
            ts=ts,
            lat=lat,
            lng=lng,
            trip_id=trip_id,
            details={"note": note} if note else {},
            dedupe_key=f"panic:{vehicle_id}:{ts}",
            created_at=wall_clock_ms(),
        )
        if await self._store.record(alert):
            self._metrics.alerts.labels(alert.type.value).inc()
            if self._on_alert is not None:
                self._on_alert([alert])
            return alert, True
        stored = self._store.list(
            principal.fleet_id, vehicle_id=vehicle_id, trip_id=None, type=AlertType.PANIC.value,
            since_ms=ts, until_ms=ts + 1, after=None, limit=1,
        )  # fmt: skip
        return stored[0], False

    async def record(self, alert: Alert) -> bool:
        """Store an alert raised outside the processors (the trip monitor); once per dedupe
        key, so a monitor run repeated after a restart adds nothing."""
        if not await self._store.record(alert):
            return False
        self._metrics.alerts.labels(alert.type.value).inc()
        if self._on_alert is not None:
            self._on_alert([alert])
        return True

    def list(
        self,
        principal: Principal,
        *,
        vehicle_id: str | None,
        trip_id: str | None,
        type: AlertType | None,
        since_ms: int | None,
        until_ms: int | None,
        cursor: str | None,
        limit: int,
    ) -> AlertPage:
        if vehicle_id is not None and not principal.may_see(vehicle_id):
            return AlertPage([], None)
        alerts: list[Alert] = []
        after = decode_time_cursor(cursor) if cursor else None
        while len(alerts) <= limit:  # a vehicle-limited token skips other vehicles' alerts
            batch = self._store.list(
                principal.fleet_id,
                vehicle_id=vehicle_id,
                trip_id=trip_id,
                type=type.value if type else None,
                since_ms=since_ms or 0,
                until_ms=until_ms or MAX_TIME_MS,
                after=after,
                limit=limit + 1,
            )
            alerts += [a for a in batch if principal.may_see_point(a.vehicle_id, a.trip_id)]
            if len(batch) <= limit:
                break
            after = (batch[-1].ts, batch[-1].alert_id)
        page, more = alerts[:limit], len(alerts) > limit
        return AlertPage(page, encode_cursor([page[-1].ts, page[-1].alert_id]) if more else None)

    async def acknowledge(self, principal: Principal, alert_id: str) -> Alert:
        if principal.role is Role.DEVICE:
            raise Forbidden("a device token cannot acknowledge alerts")
        alert = self._store.get(principal.fleet_id, alert_id)
        if alert is None or not principal.may_see_point(alert.vehicle_id, alert.trip_id):
            raise NotFound(f"no alert {alert_id!r}")
        acked = await self._store.acknowledge(
            principal.fleet_id, alert_id, principal.token_id, wall_clock_ms()
        )
        assert acked is not None
        return acked

"""Alerts: the panic button, reading alerts back, acknowledging them."""

from __future__ import annotations

import asyncio
import hashlib
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

SAME_PRESS_WITHIN_MS = 10 * 60_000
"""A press that carries no device time is known only by its content: the same content from the
same vehicle within this window is the same press (an MQTT QoS 1 redelivery after a reconnect
or a restart, an HTTP retry), not a second emergency. A device that stamps its presses has
each press counted on its own."""


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
        self._untimed = asyncio.Lock()
        """Untimed presses are looked up then recorded one at a time: two copies of one
        message handled at once (a redelivery while the first is in flight) make one alert.
        One process; several would need the store to do it."""

    async def raise_emergency(
        self,
        principal: Principal,
        vehicle_id: str,
        *,
        ts: int | None,
        now_ms: int,
        lat: float | None,
        lng: float | None,
        trip_id: str | None,
        note: str | None,
    ) -> tuple[Alert, bool]:
        """A critical panic alert, stored at once; a repeat of the same press is not new.

        `ts` is the device's press time (the press is known by it); None when the device sent
        none: the press is then known by its content for SAME_PRESS_WITHIN_MS and dated
        `now_ms`."""
        if not principal.may_write_points():
            raise Forbidden(f"a {principal.role.value} token cannot raise emergencies")
        if scope_reason(principal, vehicle_id, self._log.fleet_of(vehicle_id)) is not None:
            raise Forbidden("vehicle_id is not in this token's scope")
        press = (principal.fleet_id, vehicle_id, lat, lng, trip_id, note)
        if ts is not None:
            return await self._record_press(*press, ts=ts, dedupe_key=f"panic:{vehicle_id}:{ts}")
        content = msgspec.json.encode([lat, lng, trip_id, note])
        prefix = f"panic:{vehicle_id}:untimed:{hashlib.sha256(content).hexdigest()[:16]}:"
        async with self._untimed:
            earlier = self._panics(principal.fleet_id, vehicle_id, now_ms - SAME_PRESS_WITHIN_MS,
                                   now_ms + 1, lambda key: key.startswith(prefix))  # fmt: skip
            if earlier is not None:
                return earlier, False
            return await self._record_press(*press, ts=now_ms, dedupe_key=f"{prefix}{now_ms}")

    async def _record_press(
        self, fleet_id: str, vehicle_id: str, lat: float | None, lng: float | None,
        trip_id: str | None, note: str | None, *, ts: int, dedupe_key: str,
    ) -> tuple[Alert, bool]:  # fmt: skip
        alert = Alert(
            alert_id="al_" + secrets.token_hex(8),
            fleet_id=fleet_id,
            type=AlertType.PANIC,
            severity=Severity.CRITICAL,
            vehicle_id=vehicle_id,
            ts=ts,
            lat=lat,
            lng=lng,
            trip_id=trip_id,
            details={"note": note} if note else {},
            dedupe_key=dedupe_key,
            created_at=wall_clock_ms(),
        )
        if await self._store.record(alert):
            self._metrics.alerts.labels(alert.type.value).inc()
            if self._on_alert is not None:
                self._on_alert([alert])
            return alert, True
        stored = self._panics(fleet_id, vehicle_id, ts, ts + 1, dedupe_key.__eq__)
        assert stored is not None
        return stored, False

    def _panics(
        self, fleet_id: str, vehicle_id: str, since_ms: int, until_ms: int,
        matches: Callable[[str], bool],
    ) -> Alert | None:  # fmt: skip
        """The first panic alert of the vehicle in the time range whose dedupe key matches."""
        after = None
        while True:
            batch = self._store.list(
                fleet_id, vehicle_id=vehicle_id, trip_id=None, type=AlertType.PANIC.value,
                since_ms=since_ms, until_ms=until_ms, after=after, limit=100,
            )  # fmt: skip
            found = next((a for a in batch if matches(a.dedupe_key)), None)
            if found is not None or len(batch) < 100:
                return found
            after = (batch[-1].ts, batch[-1].alert_id)

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

"""Alert routes: the panic button (POST /tracking/emergency), GET /alerts, POST /alerts/{id}/ack."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Response, delete, get, post, put
from litestar.params import Parameter

from trucktrack.api.schemas import CheckedRefId, CheckedVehicleId
from trucktrack.api.times import time_param
from trucktrack.bootstrap import Services
from trucktrack.domain.alerts import Alert, AlertType, Severity, Subscription
from trucktrack.domain.model import Principal
from trucktrack.domain.timefmt import BadTimestamp, format_ms, parse_timestamp
from trucktrack.errors import BadRequest
from trucktrack.services.ingest import wall_clock_ms


class EmergencyIn(msgspec.Struct, forbid_unknown_fields=True):
    """A panic button press: the body of POST /tracking/emergency and of an MQTT emergency
    message (whose topic gives `vehicle_id`)."""

    vehicle_id: CheckedVehicleId
    timestamp: int | str | None = None
    """When the button was pressed: epoch ms or ISO-8601 with offset; default now."""
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    lng: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    trip_id: CheckedRefId | None = None
    note: Annotated[str, msgspec.Meta(max_length=500)] | None = None

    def press_time(self, now_ms: int, max_future_s: float) -> int | None:
        """The device's press time in epoch ms (None if it sent none); BadRequest if it is
        malformed or further ahead of `now_ms` than the allowed skew."""
        if self.timestamp is None:
            return None
        try:
            ts = parse_timestamp(self.timestamp)
        except BadTimestamp as exc:
            raise BadRequest(f"`timestamp`: {exc}") from None
        if ts > now_ms + max_future_s * 1000:
            raise BadRequest("`timestamp` is more than the allowed skew in the future")
        return ts


class AlertOut(msgspec.Struct):
    alert_id: str
    type: AlertType
    severity: Severity
    vehicle_id: str
    trip_id: str | None
    geofence_id: str | None
    lat: float | None
    lng: float | None
    timestamp: str
    timestamp_ms: int
    details: dict[str, Any]
    created_at: str
    acknowledged_at: str | None
    acknowledged_by: str | None

    @classmethod
    def of(cls, a: Alert) -> AlertOut:
        return cls(
            alert_id=a.alert_id,
            type=a.type,
            severity=a.severity,
            vehicle_id=a.vehicle_id,
            trip_id=a.trip_id,
            geofence_id=a.geofence_id,
            lat=a.lat,
            lng=a.lng,
            timestamp=format_ms(a.ts),
            timestamp_ms=a.ts,
            details=a.details,
            created_at=format_ms(a.created_at),
            acknowledged_at=None if a.acknowledged_at is None else format_ms(a.acknowledged_at),
            acknowledged_by=a.acknowledged_by,
        )


class AlertListOut(msgspec.Struct):
    alerts: list[AlertOut]
    next_cursor: str | None


@post(
    "/tracking/emergency",
    summary="Panic button: raise a critical alert at once",
    description="201 with the new alert; 200 with the stored one when the same press "
    "(vehicle and timestamp; without a timestamp, the same content within 10 minutes) "
    "arrives again.",
    tags=["alerts"],
)
async def raise_emergency(
    data: EmergencyIn, services: Services, principal: Principal
) -> Response[AlertOut]:
    now = wall_clock_ms()
    ts = data.press_time(now, services.settings.max_future_s)
    alert, new = await services.alerts.raise_emergency(
        principal, data.vehicle_id, ts=ts, now_ms=now, lat=data.lat, lng=data.lng,
        trip_id=data.trip_id, note=data.note,
    )  # fmt: skip
    return Response(AlertOut.of(alert), status_code=201 if new else 200)


@get("/alerts", summary="Alerts of the fleet, oldest first, paginated", tags=["alerts"])
async def list_alerts(
    services: Services,
    principal: Principal,
    vehicle_id: Annotated[str | None, Parameter(max_length=64)] = None,
    trip_id: Annotated[str | None, Parameter(max_length=128)] = None,
    type: AlertType | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
) -> AlertListOut:
    page = services.alerts.list(
        principal,
        vehicle_id=vehicle_id,
        trip_id=trip_id,
        type=type,
        since_ms=time_param(since, "since"),
        until_ms=time_param(until, "until"),
        cursor=cursor,
        limit=limit,
    )
    return AlertListOut([AlertOut.of(a) for a in page.alerts], page.next_cursor)


@post(
    "/alerts/{alert_id:str}/ack", status_code=200, summary="Acknowledge an alert", tags=["alerts"]
)
async def acknowledge_alert(
    alert_id: Annotated[str, Parameter(max_length=64)], services: Services, principal: Principal
) -> AlertOut:
    return AlertOut.of(await services.alerts.acknowledge(principal, alert_id))


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    """Absolute http(s) URL every new alert of the fleet is POSTed to."""
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=256)] | None = None
    """HMAC-SHA256 key for `X-Trucktrack-Signature`; left out, one is made and shown once."""


class WebhookOut(msgspec.Struct):
    url: str
    secret: str | None
    """Only in the reply that made it; never shown again."""
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, sub: Subscription, secret: str | None = None) -> WebhookOut:
        return cls(sub.url, secret, format_ms(sub.created_at), format_ms(sub.updated_at))


@put(
    "/alerts/webhook",
    summary="Set the fleet's alert webhook (admin)",
    description="Every new alert of this fleet is POSTed there instead of the deployment-wide "
    "webhook, signed with this fleet's secret. Replaces the previous one.",
    tags=["alerts"],
)
async def set_webhook(data: WebhookIn, services: Services, principal: Principal) -> WebhookOut:
    done = await services.webhooks.set(principal, data.url, data.secret)
    shown = done.subscription.secret if done.secret_generated else None
    return WebhookOut.of(done.subscription, shown)


@get("/alerts/webhook", summary="The fleet's alert webhook (admin)", tags=["alerts"])
async def get_webhook(services: Services, principal: Principal) -> WebhookOut:
    return WebhookOut.of(services.webhooks.get(principal))


@delete(
    "/alerts/webhook",
    status_code=204,
    summary="Remove the fleet's alert webhook (admin)",
    tags=["alerts"],
)
async def delete_webhook(services: Services, principal: Principal) -> None:
    await services.webhooks.delete(principal)


ALERT_ROUTES = [
    raise_emergency, list_alerts, acknowledge_alert, set_webhook, get_webhook, delete_webhook,
]  # fmt: skip

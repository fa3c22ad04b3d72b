"""Alerts to an HTTP endpoint: JSON body, signed with HMAC-SHA256 so the receiver can trust it.

Headers: `X-Trucktrack-Signature: sha256=<hex of HMAC-SHA256(secret, raw body)>` and
`X-Trucktrack-Delivery: <alert_id>` (the same on every retry: receivers deduplicate on it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import aiohttp
import msgspec

from trucktrack.domain.alerts import Alert
from trucktrack.domain.timefmt import format_ms
from trucktrack.domain.trips import Trip
from trucktrack.ports import WebhookSubscriptions

log = logging.getLogger(__name__)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    """Implements AlertSink: one POST per alert, to the alert's fleet's own webhook if it has
    one, else to the deployment-wide one; anything but a 2xx is a failure."""

    def __init__(
        self,
        url: str,
        secret: str,
        subscriptions: WebhookSubscriptions,
        timeout_s: float = 10.0,
    ) -> None:
        self._url = url
        self._secret = secret
        self._subscriptions = subscriptions
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, alert: Alert) -> None:
        own = self._subscriptions.get(alert.fleet_id)
        url, secret = (own.url, own.secret) if own is not None else (self._url, self._secret)
        if not url:  # the fleet's webhook was removed after the alert was queued
            log.info("alert %s has no webhook to go to any more", alert.alert_id)
            return
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = msgspec.json.encode(alert)
        headers = {
            "Content-Type": "application/json",
            "X-Trucktrack-Signature": signature(secret, body),
            "X-Trucktrack-Delivery": alert.alert_id,
        }
        async with self._session.post(url, data=body, headers=headers) as resp:
            if not 200 <= resp.status < 300:
                raise RuntimeError(f"webhook answered {resp.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class WebhookOtpNotifier:
    """Implements OtpNotifier: POSTs the code, signed, to a gateway the fleet runs (it sends
    the SMS or message). The code is in that body and nowhere else: no log, no API reply."""

    def __init__(self, url: str, secret: str, timeout_s: float = 10.0) -> None:
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    @property
    def configured(self) -> bool:
        return bool(self._url)

    async def send(self, trip: Trip, code: str, expires_at: int) -> None:
        body = msgspec.json.encode(
            {
                "type": "delivery_otp",
                "fleet_id": trip.fleet_id,
                "trip_id": trip.trip_id,
                "booking_id": trip.booking_id,
                "vehicle_id": trip.vehicle_id,
                "consignee": trip.delivery,
                "code": code,
                "expires_at": format_ms(expires_at),
            }
        )
        headers = {"Content-Type": "application/json",
                   "X-Trucktrack-Signature": signature(self._secret, body)}  # fmt: skip
        async with (
            aiohttp.ClientSession(timeout=self._timeout) as session,
            session.post(self._url, data=body, headers=headers) as resp,
        ):
            if not 200 <= resp.status < 300:
                raise RuntimeError(f"the OTP gateway answered {resp.status}")

"""Alerts to an HTTP endpoint: JSON body, signed with HMAC-SHA256 so the receiver can trust it.

Headers: `X-Trucktrack-Signature: sha256=<hex of HMAC-SHA256(secret, raw body)>` and
`X-Trucktrack-Delivery: <alert_id>` (the same on every retry: receivers deduplicate on it).
"""

from __future__ import annotations

import hashlib
import hmac

import aiohttp
import msgspec

from trucktrack.domain.alerts import Alert


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    """Implements AlertSink: one POST per alert; anything but a 2xx is a failure."""

    def __init__(self, url: str, secret: str, timeout_s: float = 10.0) -> None:
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, alert: Alert) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = msgspec.json.encode(alert)
        headers = {
            "Content-Type": "application/json",
            "X-Trucktrack-Signature": signature(self._secret, body),
            "X-Trucktrack-Delivery": alert.alert_id,
        }
        async with self._session.post(self._url, data=body, headers=headers) as resp:
            if not 200 <= resp.status < 300:
                raise RuntimeError(f"webhook answered {resp.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

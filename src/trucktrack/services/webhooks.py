"""A fleet's own alert webhook: set, read (never the secret back), remove. Admin tokens only."""

from __future__ import annotations

import secrets
import urllib.parse

import msgspec

from trucktrack.domain.alerts import Subscription
from trucktrack.domain.model import Principal, Role
from trucktrack.errors import Forbidden, NotFound, Unprocessable
from trucktrack.ports import WebhookSubscriptions
from trucktrack.services.ingest import wall_clock_ms

MAX_URL = 2048


class WebhookSet(msgspec.Struct, frozen=True):
    subscription: Subscription
    secret_generated: bool
    """The caller gave no secret: this one was made, and is shown this once."""


class WebhookService:
    def __init__(self, subscriptions: WebhookSubscriptions) -> None:
        self._subscriptions = subscriptions

    async def set(self, principal: Principal, url: str, secret: str | None) -> WebhookSet:
        _admin(principal)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL:
            raise Unprocessable("url must be an absolute http(s) URL of at most 2048 characters")
        if parts.username or parts.password:
            raise Unprocessable("put no credentials in the url: the signature authenticates")
        now = wall_clock_ms()
        old = self._subscriptions.get(principal.fleet_id)
        subscription = Subscription(
            fleet_id=principal.fleet_id,
            url=url,
            secret=secret or "whsec_" + secrets.token_urlsafe(32),
            created_at=old.created_at if old is not None else now,
            updated_at=now,
        )
        await self._subscriptions.put(subscription)
        return WebhookSet(subscription, secret_generated=not secret)

    def get(self, principal: Principal) -> Subscription:
        _admin(principal)
        found = self._subscriptions.get(principal.fleet_id)
        if found is None:
            raise NotFound("this fleet has no webhook")
        return found

    async def delete(self, principal: Principal) -> None:
        _admin(principal)
        if not await self._subscriptions.delete(principal.fleet_id):
            raise NotFound("this fleet has no webhook")


def _admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden("only an admin token manages the fleet's webhook")

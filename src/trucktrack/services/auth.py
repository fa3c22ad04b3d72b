"""Bearer tokens: issued once in clear, stored as sha256 hashes, resolved to a Principal."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable

from trucktrack.domain.model import Principal, Role
from trucktrack.errors import BadRequest, Unauthenticated
from trucktrack.ports import TokenStore

FLEET_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
VEHICLE_ID = FLEET_ID
TRIP_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
TOKEN_PREFIX = "tt_"
_CACHE_LIMIT = 10_000


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenService:
    """Creates tokens and authenticates callers; a new token works at once, no restart needed."""

    def __init__(self, store: TokenStore, cache_s: float = 10.0) -> None:
        self._store = store
        self._cache_s = cache_s
        self._cache: dict[str, tuple[Principal, float]] = {}

    def create(
        self,
        fleet_id: str,
        role: str,
        vehicles: Iterable[str] | None = None,
        label: str = "",
        trips: Iterable[str] | None = None,
    ) -> str:
        """A new token for `fleet_id` with `role`; returns it in clear (the only time it is)."""
        if not FLEET_ID.fullmatch(fleet_id):
            raise BadRequest("fleet must be 1-64 letters, digits or _ - . :")
        try:
            parsed_role = Role(role)
        except ValueError:
            raise BadRequest(f"role must be one of {', '.join(r.value for r in Role)}") from None
        scope = None
        if vehicles:
            scope = frozenset(vehicles)
            bad = [v for v in scope if not VEHICLE_ID.fullmatch(v)]
            if bad:
                raise BadRequest(f"bad vehicle ids: {', '.join(sorted(bad))}")
        trip_scope = None
        if trips:
            trip_scope = frozenset(trips)
            bad = [t for t in trip_scope if not TRIP_ID.fullmatch(t)]
            if bad:
                raise BadRequest(f"bad trip ids: {', '.join(sorted(bad))}")
            if parsed_role is not Role.VIEWER:
                raise BadRequest("only a viewer token can be limited to trips")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        principal = Principal(
            fleet_id=fleet_id,
            role=parsed_role,
            vehicles=scope,
            token_id=secrets.token_hex(6),
            trips=trip_scope,
        )
        self._store.add(hash_token(token), principal, label)
        return token

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated("missing bearer token")
        key = hash_token(token)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = self._store.find(key)
        if principal is None:
            raise Unauthenticated("invalid or revoked token")
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = (principal, now + self._cache_s)
        return principal

    def device_fleets(self, vehicle_id: str) -> set[str]:
        """The fleets with a live device token limited to this vehicle (MQTT devices)."""
        return self._store.device_fleets(vehicle_id)

    def has_any(self) -> bool:
        return self._store.count() > 0

"""Managing geofences: create, replace, delete, read, list; every shape checked before storing."""

from __future__ import annotations

import secrets

import msgspec

from trucktrack.domain.geofence import BadGeometry, Geofence, fence_shape
from trucktrack.domain.model import Principal, Role
from trucktrack.errors import Forbidden, NotFound, Unprocessable
from trucktrack.ports import GeofenceStore
from trucktrack.services.cursors import decode_cursor, encode_cursor
from trucktrack.services.ingest import wall_clock_ms

EDITORS = frozenset({Role.ADMIN, Role.DISPATCHER})


class GeofencePage(msgspec.Struct, frozen=True):
    fences: list[Geofence]
    next_cursor: str | None


class GeofenceService:
    def __init__(self, store: GeofenceStore) -> None:
        self._store = store

    async def create(self, principal: Principal, draft: Geofence) -> Geofence:
        """Store a new fence for the caller's fleet; the id is made here."""
        _may_edit(principal)
        now = wall_clock_ms()
        fence = msgspec.structs.replace(
            draft,
            geofence_id="gf_" + secrets.token_hex(8),
            fleet_id=principal.fleet_id,
            created_by=principal.token_id,
            created_at=now,
            updated_at=now,
        )
        _check_shape(fence)
        await self._store.put(fence)
        return fence

    async def replace(self, principal: Principal, geofence_id: str, draft: Geofence) -> Geofence:
        _may_edit(principal)
        old = self.get(principal, geofence_id)
        fence = msgspec.structs.replace(
            draft,
            geofence_id=old.geofence_id,
            fleet_id=old.fleet_id,
            created_by=old.created_by,
            created_at=old.created_at,
            updated_at=wall_clock_ms(),
        )
        _check_shape(fence)
        await self._store.put(fence)
        return fence

    async def delete(self, principal: Principal, geofence_id: str) -> None:
        _may_edit(principal)
        if not await self._store.delete(principal.fleet_id, geofence_id):
            raise NotFound(f"no geofence {geofence_id!r}")

    def get(self, principal: Principal, geofence_id: str) -> Geofence:
        _may_read(principal)
        fence = self._store.get(principal.fleet_id, geofence_id)
        if fence is None:
            raise NotFound(f"no geofence {geofence_id!r}")
        return fence

    def list(
        self,
        principal: Principal,
        *,
        active: bool | None,
        kind: str | None,
        name: str | None,
        cursor: str | None,
        limit: int,
    ) -> GeofencePage:
        _may_read(principal)
        after = decode_cursor(cursor, str) if cursor else None
        fences = self._store.list(
            principal.fleet_id, active=active, kind=kind, name=name, after=after, limit=limit + 1
        )
        more = len(fences) > limit
        fences = fences[:limit]
        return GeofencePage(fences, encode_cursor(fences[-1].geofence_id) if more else None)


def _may_read(principal: Principal) -> None:
    if principal.trips is not None:
        raise Forbidden("a token limited to trips cannot read the fleet's geofences")


def _may_edit(principal: Principal) -> None:
    if principal.role not in EDITORS:
        raise Forbidden(f"a {principal.role.value} token cannot change geofences")


def _check_shape(fence: Geofence) -> None:
    try:
        fence_shape(fence)
    except BadGeometry as exc:
        raise Unprocessable(f"invalid geometry: {exc}") from None

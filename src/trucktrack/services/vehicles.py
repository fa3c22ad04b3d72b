"""Vehicle profiles: what a fleet says about each truck for the fuel estimate (its class and,
optionally, its own km/l, idle burn, capacity and usual payload)."""

from __future__ import annotations

import msgspec

from trucktrack.domain.fuel import VehicleClass, VehicleProfile, check_profile
from trucktrack.domain.model import Principal, Role
from trucktrack.errors import BadRequest, Forbidden, NotFound
from trucktrack.ports import PointLog, VehicleProfileStore
from trucktrack.services.ingest import wall_clock_ms

EDITORS = frozenset({Role.ADMIN, Role.DISPATCHER})


class ProfileDraft(msgspec.Struct, frozen=True):
    vehicle_class: VehicleClass
    km_per_l: float | None = None
    idle_l_per_h: float | None = None
    capacity_t: float | None = None
    payload_t: float | None = None
    load_sensitivity: float | None = None


class VehicleProfileService:
    def __init__(
        self, store: VehicleProfileStore, log: PointLog, *, default_class: VehicleClass
    ) -> None:
        self._store = store
        self._log = log
        self._default_class = default_class

    def get(self, principal: Principal, vehicle_id: str) -> VehicleProfile:
        """Every role of the fleet reads (a token limited to trips sees no vehicle records)."""
        found = None
        if principal.may_see(vehicle_id) and principal.trips is None:
            found = self._store.get(principal.fleet_id, vehicle_id)
        if found is None:
            raise NotFound(
                f"vehicle {vehicle_id!r} has no profile (its fuel estimates use the "
                f"{self._default_class.value} defaults)"
            )
        return found

    async def put(
        self, principal: Principal, vehicle_id: str, draft: ProfileDraft
    ) -> VehicleProfile:
        """Create or replace the whole profile (admin and dispatcher tokens)."""
        self._may_edit(principal, vehicle_id)
        profile = VehicleProfile(
            fleet_id=principal.fleet_id,
            vehicle_id=vehicle_id,
            **msgspec.structs.asdict(draft),
            updated_at=wall_clock_ms(),
            updated_by=principal.token_id,
        )
        try:
            check_profile(profile)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        await self._store.put(profile)
        return profile

    async def delete(self, principal: Principal, vehicle_id: str) -> None:
        self._may_edit(principal, vehicle_id)
        if not await self._store.delete(principal.fleet_id, vehicle_id):
            raise NotFound(f"vehicle {vehicle_id!r} has no profile")

    def _may_edit(self, principal: Principal, vehicle_id: str) -> None:
        if principal.role not in EDITORS or principal.trips is not None:
            raise Forbidden(f"a {principal.role.value} token cannot change vehicle profiles")
        if not principal.may_see(vehicle_id):
            raise Forbidden(f"this token may not change {vehicle_id!r}")
        owner = self._log.fleet_of(vehicle_id)
        if owner is not None and owner != principal.fleet_id:
            raise Forbidden(f"vehicle {vehicle_id!r} is not this fleet's")

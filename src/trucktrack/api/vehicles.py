"""Vehicle profiles: PUT/GET/DELETE /vehicles/{id}/profile (the fuel model's figures)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import delete, get, put
from litestar.params import Parameter

from trucktrack.bootstrap import Services
from trucktrack.domain.fuel import (
    Capacity,
    FuelProfile,
    KmPerL,
    LitresPerHour,
    Sensitivity,
    Tonnes,
    VehicleClass,
    VehicleProfile,
)
from trucktrack.domain.model import Principal
from trucktrack.domain.timefmt import format_ms
from trucktrack.services.vehicles import ProfileDraft

VehicleId = Annotated[str, Parameter(max_length=64, pattern=r"^(?!\.{1,2}$)[A-Za-z0-9_.:-]+$")]


class ProfileIn(msgspec.Struct, forbid_unknown_fields=True):
    """The whole profile (a PUT replaces it); figures left out take the class default."""

    vehicle_class: VehicleClass
    km_per_l: KmPerL | None = None
    """Empty, on the highway."""
    idle_l_per_h: LitresPerHour | None = None
    capacity_t: Capacity | None = None
    """Rated payload, tonnes."""
    payload_t: Tonnes | None = None
    """The usual payload when a trip does not give one (at most capacity_t)."""
    load_sensitivity: Sensitivity | None = None
    """Share of km_per_l lost at full payload."""


class ProfileOut(msgspec.Struct):
    vehicle_id: str
    vehicle_class: VehicleClass
    km_per_l: float | None
    idle_l_per_h: float | None
    capacity_t: float | None
    payload_t: float | None
    load_sensitivity: float | None
    effective: FuelProfile
    """What the fuel estimate uses: these figures over the class defaults."""
    updated_at: str
    updated_by: str


def _out(p: VehicleProfile) -> ProfileOut:
    return ProfileOut(
        p.vehicle_id, p.vehicle_class, p.km_per_l, p.idle_l_per_h, p.capacity_t, p.payload_t,
        p.load_sensitivity, p.effective(), format_ms(p.updated_at), p.updated_by,
    )  # fmt: skip


@put(
    "/vehicles/{vehicle_id:str}/profile",
    summary="Set a vehicle's profile for the fuel estimate (admin, dispatcher)",
    tags=["vehicles"],
)
async def put_profile(
    vehicle_id: VehicleId, data: ProfileIn, services: Services, principal: Principal
) -> ProfileOut:
    draft = ProfileDraft(**msgspec.structs.asdict(data))
    return _out(await services.vehicles.put(principal, vehicle_id, draft))


@get("/vehicles/{vehicle_id:str}/profile", summary="A vehicle's profile", tags=["vehicles"])
async def get_profile(
    vehicle_id: VehicleId, services: Services, principal: Principal
) -> ProfileOut:
    return _out(services.vehicles.get(principal, vehicle_id))


@delete(
    "/vehicles/{vehicle_id:str}/profile",
    status_code=204,
    summary="Forget a vehicle's profile (the default class applies again)",
    tags=["vehicles"],
)
async def delete_profile(vehicle_id: VehicleId, services: Services, principal: Principal) -> None:
    await services.vehicles.delete(principal, vehicle_id)


VEHICLE_ROUTES = [put_profile, get_profile, delete_profile]

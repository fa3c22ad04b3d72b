"""Geofence routes: POST/GET /geofences, GET/PUT/DELETE /geofences/{id}."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Router, delete, get, post, put
from litestar.params import Parameter

from trucktrack.bootstrap import Services
from trucktrack.domain.geofence import FenceKind, FenceRules, Geofence
from trucktrack.domain.model import Principal
from trucktrack.domain.timefmt import format_ms


class CenterIn(msgspec.Struct, forbid_unknown_fields=True):
    lat: float
    lng: float


class GeofenceIn(msgspec.Struct, forbid_unknown_fields=True):
    """A fence to create or to replace. Shapes are checked in full (422 with the reason):
    circular needs `center` (or a GeoJSON Point `geometry`) and `radius_m`; polygon a GeoJSON
    Polygon or MultiPolygon `geometry` (holes allowed); corridor a GeoJSON LineString `geometry`
    and `width_m`. Coordinates in GeoJSON are [lng, lat]."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    type: FenceKind
    center: CenterIn | None = None
    radius_m: float | None = None
    geometry: dict[str, Any] | None = None
    width_m: float | None = None
    rules: FenceRules = FenceRules()
    active: bool = True

    def to_draft(self) -> Geofence:
        geometry = self.geometry or {}
        if self.type is FenceKind.CIRCULAR and self.center is not None:
            geometry = {"type": "Point", "coordinates": [self.center.lng, self.center.lat]}
        return Geofence(
            geofence_id="",
            fleet_id="",
            name=self.name,
            kind=self.type,
            geometry=geometry,
            radius_m=self.radius_m,
            width_m=self.width_m,
            rules=self.rules,
            active=self.active,
        )


class GeofenceOut(msgspec.Struct):
    geofence_id: str
    name: str
    type: FenceKind
    geometry: dict[str, Any]
    radius_m: float | None
    width_m: float | None
    rules: FenceRules
    active: bool
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, f: Geofence) -> GeofenceOut:
        return cls(
            geofence_id=f.geofence_id,
            name=f.name,
            type=f.kind,
            geometry=f.geometry,
            radius_m=f.radius_m,
            width_m=f.width_m,
            rules=f.rules,
            active=f.active,
            created_at=format_ms(f.created_at),
            updated_at=format_ms(f.updated_at),
        )


class GeofenceListOut(msgspec.Struct):
    geofences: list[GeofenceOut]
    next_cursor: str | None


FenceId = Annotated[str, Parameter(max_length=64)]


@post("/", status_code=201, summary="Create a geofence")
async def create_geofence(
    data: GeofenceIn, services: Services, principal: Principal
) -> GeofenceOut:
    return GeofenceOut.of(await services.geofences.create(principal, data.to_draft()))


@get("/", summary="List geofences (filter by active, type, name; paginated)")
async def list_geofences(
    services: Services,
    principal: Principal,
    active: bool | None = None,
    type: FenceKind | None = None,
    name: Annotated[str | None, Parameter(max_length=200)] = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=200)] = None,
) -> GeofenceListOut:
    page = services.geofences.list(
        principal,
        active=active,
        kind=type.value if type else None,
        name=name,
        cursor=cursor,
        limit=limit,
    )
    return GeofenceListOut([GeofenceOut.of(f) for f in page.fences], page.next_cursor)


@get("/{geofence_id:str}", summary="One geofence")
async def get_geofence(
    geofence_id: FenceId, services: Services, principal: Principal
) -> GeofenceOut:
    return GeofenceOut.of(services.geofences.get(principal, geofence_id))


@put("/{geofence_id:str}", summary="Replace a geofence")
async def replace_geofence(
    geofence_id: FenceId, data: GeofenceIn, services: Services, principal: Principal
) -> GeofenceOut:
    fence = await services.geofences.replace(principal, geofence_id, data.to_draft())
    return GeofenceOut.of(fence)


@delete("/{geofence_id:str}", status_code=204, summary="Delete a geofence")
async def delete_geofence(geofence_id: FenceId, services: Services, principal: Principal) -> None:
    await services.geofences.delete(principal, geofence_id)


geofence_router = Router(
    path="/geofences",
    route_handlers=[
        create_geofence,
        list_geofences,
        get_geofence,
        replace_geofence,
        delete_geofence,
    ],
    tags=["geofences"],
)

"""Truck routing: POST /routing/calculate (parse, call the routing service, serialise)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import post
from msgspec import Meta

from trucktrack.bootstrap import Services
from trucktrack.domain import routing as r
from trucktrack.domain.model import Principal


class LatLngIn(msgspec.Struct, forbid_unknown_fields=True):
    lat: Annotated[float, Meta(ge=-90, le=90)]
    lng: Annotated[float, Meta(ge=-180, le=180)]

    def to_domain(self) -> r.LatLng:
        return r.LatLng(self.lat, self.lng)


def _positive(bounds: tuple[float, float], description: str) -> Meta:
    return Meta(gt=bounds[0], le=bounds[1], description=description)


class VehicleIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The truck: the route avoids roads whose OSM limits (maxheight, maxwidth, maxlength,
    maxweight, maxaxleload, maxaxles, hazmat=no) it breaks."""

    height_m: Annotated[float, _positive(r.HEIGHT_M, "metres, load included")]
    width_m: Annotated[float, _positive(r.WIDTH_M, "metres")]
    length_m: Annotated[float, _positive(r.LENGTH_M, "metres, trailer included")]
    weight_t: Annotated[float, _positive(r.WEIGHT_T, "gross weight, metric tonnes")]
    axle_load_t: Annotated[float, _positive(r.AXLE_LOAD_T, "heaviest axle, metric tonnes")]
    axles: Annotated[int, Meta(ge=r.MIN_AXLES, le=r.MAX_AXLES)]
    hazmat: bool = False

    def to_domain(self) -> r.TruckProfile:
        return r.TruckProfile(
            height_m=self.height_m,
            width_m=self.width_m,
            length_m=self.length_m,
            weight_t=self.weight_t,
            axle_load_t=self.axle_load_t,
            axles=self.axles,
            hazmat=self.hazmat,
        )


class RouteIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Body of POST /routing/calculate."""

    origin: LatLngIn
    destination: LatLngIn
    vehicle: VehicleIn
    waypoints: Annotated[
        list[LatLngIn],
        Meta(max_length=r.MAX_WAYPOINTS, description="stops in order between origin and end"),
    ] = []
    optimize: r.Optimize = r.Optimize.FASTEST
    avoid_tolls: bool = False
    """Take no toll road if any route for this truck avoids them (else a warning says so)."""
    avoid_ferries: bool = False

    def to_domain(self) -> r.RouteRequest:
        return r.RouteRequest(
            origin=self.origin.to_domain(),
            destination=self.destination.to_domain(),
            waypoints=tuple(p.to_domain() for p in self.waypoints),
            optimize=self.optimize,
            avoid_tolls=self.avoid_tolls,
            avoid_ferries=self.avoid_ferries,
            vehicle=self.vehicle.to_domain(),
        )


class LineStringOut(msgspec.Struct):
    type: Literal["LineString"]
    coordinates: list[tuple[float, float]]
    """[lng, lat] pairs (GeoJSON order), origin first."""


class ManeuverOut(msgspec.Struct):
    instruction: str
    distance_m: float
    duration_s: float
    street_names: list[str]
    lat: float
    lng: float
    """Where the maneuver begins."""


class RouteOut(msgspec.Struct):
    distance_km: float
    duration_min: float
    geometry: LineStringOut
    uses_tolls: bool
    uses_ferries: bool
    maneuvers: list[ManeuverOut]
    warnings: list[str]


def route_out(route: r.Route) -> RouteOut:
    return RouteOut(
        distance_km=round(route.distance_m / 1000, 3),
        duration_min=round(route.duration_s / 60, 1),
        geometry=LineStringOut("LineString", list(route.coordinates)),
        uses_tolls=route.uses_tolls,
        uses_ferries=route.uses_ferries,
        maneuvers=[
            ManeuverOut(
                instruction=m.instruction,
                distance_m=m.distance_m,
                duration_s=m.duration_s,
                street_names=list(m.street_names),
                lat=m.lat,
                lng=m.lng,
            )
            for m in route.maneuvers
        ],
        warnings=list(route.warnings),
    )


@post(
    "/routing/calculate",
    status_code=200,
    summary="A route for a truck",
    description="The fastest (or shortest) legal route for the truck from `origin` through the "
    "`waypoints` to `destination`: distance, duration, a GeoJSON LineString, whether it uses "
    "tolls or ferries, turn-by-turn maneuvers and warnings. 422 when there is none (no road "
    "near a point, or no path this truck may take); 503 when the server has no routing tiles.",
    tags=["routing"],
)
async def calculate_route(data: RouteIn, services: Services, principal: Principal) -> RouteOut:
    del principal  # any token of any fleet may route; asking for it makes the call authenticated
    return route_out(await services.routing.calculate(data.to_domain()))


ROUTING_ROUTES = [calculate_route]

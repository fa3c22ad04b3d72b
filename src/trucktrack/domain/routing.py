"""Truck routing in domain terms: what a route request asks for and what a route is.

No engine here: a `Router` (ports.py) answers a `RouteRequest` with a `Route`. `problems()` checks a
request the same way whoever builds it (the HTTP API, the trips feature), so a bad truck profile
never reaches the engine.
"""

from __future__ import annotations

import enum

import msgspec

from trucktrack.domain.geo import distance_m

MAX_WAYPOINTS = 20
"""Stops between origin and destination; Valhalla's own limit is configured to match."""

# (lowest exclusive, highest inclusive) for each truck dimension: positive, and generous upper
# bounds that only catch unit mistakes (millimetres for metres, kilograms for tonnes).
HEIGHT_M = (0.0, 10.0)
WIDTH_M = (0.0, 10.0)
LENGTH_M = (0.0, 50.0)
WEIGHT_T = (0.0, 200.0)
AXLE_LOAD_T = (0.0, 50.0)
MIN_AXLES = 2
MAX_AXLES = 20

FAR_FROM_ROAD_M = 100.0
"""A route that starts or ends farther than this from the requested point says so."""


class LatLng(msgspec.Struct, frozen=True):
    """A point in WGS84 degrees."""

    lat: float
    lng: float


class Optimize(enum.StrEnum):
    FASTEST = "fastest"
    SHORTEST = "shortest"


class TruckProfile(msgspec.Struct, frozen=True, kw_only=True):
    """The truck a route must be legal for. Defaults are Valhalla's truck defaults (a loaded
    five-axle tractor-trailer)."""

    height_m: float = 4.11
    width_m: float = 2.6
    length_m: float = 21.64
    weight_t: float = 21.77
    """Gross weight, metric tonnes."""
    axle_load_t: float = 9.07
    """Heaviest load on one axle, metric tonnes."""
    axles: int = 5
    hazmat: bool = False
    """Carrying hazardous goods: roads tagged `hazmat=no` are closed to it."""


class RouteRequest(msgspec.Struct, frozen=True, kw_only=True):
    origin: LatLng
    destination: LatLng
    waypoints: tuple[LatLng, ...] = ()
    """Stops visited in this order between origin and destination."""
    optimize: Optimize = Optimize.FASTEST
    avoid_tolls: bool = False
    avoid_ferries: bool = False
    vehicle: TruckProfile = TruckProfile()

    def stops(self) -> list[LatLng]:
        """Every point the route visits, in order."""
        return [self.origin, *self.waypoints, self.destination]


class Maneuver(msgspec.Struct, frozen=True, kw_only=True):
    """One turn-by-turn step: what to do where it begins, and how far it then goes."""

    instruction: str
    distance_m: float
    duration_s: float
    street_names: tuple[str, ...] = ()
    lat: float
    lng: float
    """Where the maneuver begins."""


class Route(msgspec.Struct, frozen=True, kw_only=True):
    coordinates: tuple[tuple[float, float], ...]
    """The path as (lng, lat) pairs, GeoJSON order, origin first."""
    distance_m: float
    duration_s: float
    uses_tolls: bool
    uses_ferries: bool
    maneuvers: tuple[Maneuver, ...]
    warnings: tuple[str, ...] = ()


def _out_of(value: float, bounds: tuple[float, float]) -> bool:
    low, high = bounds
    return not (low < value <= high)  # also true for NaN


def problems(request: RouteRequest) -> list[str]:
    """Everything wrong with a request, one message per problem; empty when it can be routed."""
    found: list[str] = []
    named = [("origin", request.origin), ("destination", request.destination)]
    named += [(f"waypoints[{i}]", p) for i, p in enumerate(request.waypoints)]
    for name, p in named:
        if not -90 <= p.lat <= 90:
            found.append(f"{name}.lat must be between -90 and 90")
        if not -180 <= p.lng <= 180:
            found.append(f"{name}.lng must be between -180 and 180")
    if len(request.waypoints) > MAX_WAYPOINTS:
        found.append(f"at most {MAX_WAYPOINTS} waypoints")
    v = request.vehicle
    for field, value, bounds, unit in (
        ("height_m", v.height_m, HEIGHT_M, "m"),
        ("width_m", v.width_m, WIDTH_M, "m"),
        ("length_m", v.length_m, LENGTH_M, "m"),
        ("weight_t", v.weight_t, WEIGHT_T, "t"),
        ("axle_load_t", v.axle_load_t, AXLE_LOAD_T, "t"),
    ):
        if _out_of(value, bounds):
            found.append(f"vehicle.{field} must be above 0 and at most {bounds[1]:g} {unit}")
    if not MIN_AXLES <= v.axles <= MAX_AXLES:
        found.append(f"vehicle.axles must be {MIN_AXLES} to {MAX_AXLES}")
    if v.axle_load_t > v.weight_t:
        found.append("vehicle.axle_load_t cannot exceed vehicle.weight_t")
    return found


def far_from_road(request: RouteRequest, route: Route) -> list[str]:
    """Warnings for a route that starts or ends well away from the requested points (the engine
    starts from the nearest road this truck may use)."""
    if not route.coordinates:
        return []
    warnings: list[str] = []
    for name, wanted, (lng, lat) in (
        ("origin", request.origin, route.coordinates[0]),
        ("destination", request.destination, route.coordinates[-1]),
    ):
        gap = distance_m(wanted.lat, wanted.lng, lat, lng)
        if gap > FAR_FROM_ROAD_M:
            warnings.append(
                f"the {name} is {gap:.0f} m from the nearest road this truck may use; "
                f"the route {'starts' if name == 'origin' else 'ends'} there"
            )
    return warnings

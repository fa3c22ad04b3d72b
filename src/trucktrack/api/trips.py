"""Trip routes: POST/GET/PATCH /trips, the vehicle-trips and booking-tracking listings, the
trips' routes as GeoJSON, and POST /delivery/milestone."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, get, patch, post
from litestar.params import Parameter

from trucktrack.api.summaries import SummaryOut, summary_out
from trucktrack.api.times import time_param
from trucktrack.bootstrap import Services
from trucktrack.domain.compliance import TripProgress
from trucktrack.domain.model import Principal
from trucktrack.domain.timefmt import BadTimestamp, format_ms, parse_timestamp
from trucktrack.domain.trips import (
    Milestone,
    MilestoneRecord,
    Place,
    RouteRef,
    Trip,
    next_milestones,
)
from trucktrack.errors import BadRequest
from trucktrack.services.trips import (
    Coordinates,
    MilestoneRequest,
    TripChanges,
    TripDraft,
)

SafeId = Annotated[str, msgspec.Meta(pattern=r"^(?!\.{1,2}$)[A-Za-z0-9_.:-]{1,128}$")]
VehicleId = Annotated[str, msgspec.Meta(pattern=r"^(?!\.{1,2}$)[A-Za-z0-9_.:-]{1,64}$")]
Lat = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Lng = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Text = Annotated[str, msgspec.Meta(max_length=500)]
Time = int | str
Payload = Annotated[float, msgspec.Meta(ge=0, le=200)]


class PlaceIn(msgspec.Struct, forbid_unknown_fields=True):
    lat: Lat
    lng: Lng
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    address: Text | None = None
    geofence_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    contact_name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    contact_phone: Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9 ()-]{5,20}$")] | None = None

    def to_place(self) -> Place:
        return Place(
            self.lat,
            self.lng,
            self.name,
            self.address,
            self.geofence_id,
            self.contact_name,
            self.contact_phone,
        )


class TripIn(msgspec.Struct, forbid_unknown_fields=True):
    """A trip to plan. `planned_route` is a GeoJSON LineString (or a Feature holding one),
    `"compute"` to have the router plan it for `truck`, or absent."""

    vehicle_id: VehicleId
    pickup: PlaceIn
    delivery: PlaceIn
    trip_id: SafeId | None = None
    booking_id: SafeId | None = None
    driver_id: SafeId | None = None
    planned_start: Time | None = None
    planned_arrival: Time | None = None
    planned_route: dict[str, Any] | Literal["compute"] | None = None
    truck: dict[str, Any] | None = None
    auto_milestones: bool = False
    payload_t: Payload | None = None
    """Tonnes carried (the fuel estimate); default: the vehicle profile's usual payload."""


class TripPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Allowed changes: ids of the booking and driver, planned times, the vehicle (before
    trip_started), the pickup / delivery place (before reaching it), the planned route, the
    automatic milestones, and `status: "cancelled"` (while open)."""

    booking_id: SafeId | None = None
    driver_id: SafeId | None = None
    vehicle_id: VehicleId | None = None
    planned_start: Time | None = None
    planned_arrival: Time | None = None
    pickup: PlaceIn | None = None
    delivery: PlaceIn | None = None
    planned_route: dict[str, Any] | Literal["compute"] | None = None
    truck: dict[str, Any] | None = None
    auto_milestones: bool | None = None
    status: Literal["cancelled"] | None = None
    payload_t: Payload | None = None


class MilestoneIn(msgspec.Struct, forbid_unknown_fields=True):
    trip_id: SafeId
    milestone: Milestone
    timestamp: Time | None = None
    lat: Lat | None = None
    lng: Lng | None = None
    note: Text | None = None
    override: bool = False
    """Admin only: record reached_* although the truck's position does not confirm it."""


class RouteRefOut(msgspec.Struct):
    href: str
    source: str
    distance_km: float
    vertices: int
    duration_min: float | None


class MilestoneOut(msgspec.Struct):
    milestone: Milestone
    timestamp: str
    recorded_at: str
    recorded_by: str
    lat: float | None
    lng: float | None
    note: str | None
    distance_to_place_m: float | None
    override: bool


class ProgressOut(msgspec.Struct):
    """Where an active trip stands on its planned route, as of `as_of` (the processors publish
    it with every snapshot: every 10 s by default)."""

    as_of: str | None
    route_km: float
    along_route_km: float | None
    remaining_km: float | None
    off_route_m: float | None
    speed_kmh: float | None
    """Recent speed along the route (a mean over about 15 minutes)."""
    eta: str | None
    """Arrival at the route's end at the recent speed; null while stopped or before moving."""
    delay_min: float | None
    """ETA minus the planned arrival (negative: early); null without both."""
    deviating: bool
    wrong_direction: bool


class TripOut(msgspec.Struct):
    trip_id: str
    booking_id: str | None
    vehicle_id: str
    driver_id: str | None
    status: str
    pickup: Place
    delivery: Place
    planned_start: str | None
    planned_arrival: str | None
    started_at: str | None
    ended_at: str | None
    milestones: list[MilestoneOut]
    next_milestones: list[Milestone]
    distance_km: float
    """Filtered distance driven on the trip so far (updated every processor snapshot)."""
    planned_route: RouteRefOut | None
    actual_route: RouteRefOut | None
    auto_milestones: bool
    created_at: str
    updated_at: str
    progress: ProgressOut | None = None
    payload_t: float | None = None


class TripListOut(msgspec.Struct):
    trips: list[TripOut]
    next_cursor: str | None


class MilestoneReply(msgspec.Struct):
    trip_id: str
    status: str
    repeated: bool
    """True when this repeated the trip's last milestone: nothing changed."""
    recorded: MilestoneOut
    next_milestones: list[Milestone]


def _time(value: Time | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except BadTimestamp as exc:
        raise BadRequest(f"`{name}`: {exc}") from None


def _line(value: dict[str, Any] | str | None) -> tuple[Coordinates | None, bool]:
    """A posted planned route: (coordinates, compute?)."""
    if value is None:
        return None, False
    if value == "compute":
        return None, True
    assert isinstance(value, dict)
    geometry = value.get("geometry") if value.get("type") == "Feature" else value
    if not isinstance(geometry, dict) or geometry.get("type") != "LineString":
        raise BadRequest("planned_route must be a GeoJSON LineString (or Feature) or 'compute'")
    try:
        coords = msgspec.convert(geometry.get("coordinates"), list[tuple[float, float]])
    except msgspec.ValidationError as exc:
        raise BadRequest(f"planned_route coordinates must be [lng, lat] pairs: {exc}") from None
    return coords, False


def _route_out(trip: Trip, ref: RouteRef | None, which: str) -> RouteRefOut | None:
    if ref is None:
        return None
    return RouteRefOut(
        href=f"/trips/{trip.trip_id}/route/{which}",
        source=ref.source,
        distance_km=round(ref.distance_m / 1000, 3),
        vertices=ref.vertices,
        duration_min=None if ref.duration_s is None else round(ref.duration_s / 60, 1),
    )


def _ms(value: int | None) -> str | None:
    return None if value is None else format_ms(value)


def milestone_out(r: MilestoneRecord) -> MilestoneOut:
    return MilestoneOut(
        r.milestone, format_ms(r.ts), format_ms(r.recorded_at), r.recorded_by, r.lat, r.lng,
        r.note, r.distance_to_place_m, r.override,
    )  # fmt: skip


def _km(metres: float | None) -> float | None:
    return None if metres is None else round(metres / 1000, 3)


def progress_out(trip: Trip, p: TripProgress | None) -> ProgressOut | None:
    if p is None:
        return None
    delay = None
    if p.eta_ts is not None and trip.planned_arrival is not None:
        delay = round((p.eta_ts - trip.planned_arrival) / 60_000, 1)
    return ProgressOut(
        as_of=_ms(p.last_ts),
        route_km=round(p.route_length_m / 1000, 3),
        along_route_km=_km(p.chainage_m),
        remaining_km=_km(p.remaining_m),
        off_route_m=None if p.distance_m is None else round(p.distance_m, 1),
        speed_kmh=None if p.speed_kmh is None else round(p.speed_kmh, 1),
        eta=_ms(p.eta_ts),
        delay_min=delay,
        deviating=p.deviating,
        wrong_direction=p.wrong_direction,
    )


def trip_out(trip: Trip, distance_m: float | None, progress: TripProgress | None = None) -> TripOut:
    return TripOut(
        trip_id=trip.trip_id,
        booking_id=trip.booking_id,
        vehicle_id=trip.vehicle_id,
        driver_id=trip.driver_id,
        status=trip.status.value,
        pickup=trip.pickup,
        delivery=trip.delivery,
        planned_start=_ms(trip.planned_start),
        planned_arrival=_ms(trip.planned_arrival),
        started_at=_ms(trip.started_at),
        ended_at=_ms(trip.ended_at),
        milestones=[milestone_out(r) for r in trip.milestones],
        next_milestones=list(next_milestones(trip)),
        distance_km=round((distance_m or 0.0) / 1000, 3),
        planned_route=_route_out(trip, trip.planned_route, "planned"),
        actual_route=_route_out(trip, trip.actual_route, "actual"),
        auto_milestones=trip.auto_milestones,
        created_at=format_ms(trip.created_at),
        updated_at=format_ms(trip.updated_at),
        progress=progress_out(trip, progress),
        payload_t=trip.payload_t,
    )


def _out(services: Services, principal: Principal, trip: Trip) -> TripOut:
    return trip_out(
        trip,
        services.movement.trip_distance_m(principal, trip.trip_id),
        services.trips.progress(trip),
    )


TripId = Annotated[str, Parameter(max_length=128, pattern=r"^(?!\.{1,2}$)[A-Za-z0-9_.:-]+$")]
Id64 = Annotated[str, Parameter(max_length=64, pattern=r"^(?!\.{1,2}$)[A-Za-z0-9_.:-]+$")]


@post("/trips", status_code=201, summary="Plan a trip", tags=["trips"])
async def create_trip(data: TripIn, services: Services, principal: Principal) -> TripOut:
    route, compute = _line(data.planned_route)
    draft = TripDraft(
        vehicle_id=data.vehicle_id,
        pickup=data.pickup.to_place(),
        delivery=data.delivery.to_place(),
        trip_id=data.trip_id,
        booking_id=data.booking_id,
        driver_id=data.driver_id,
        planned_start=_time(data.planned_start, "planned_start"),
        planned_arrival=_time(data.planned_arrival, "planned_arrival"),
        route=route,
        compute_route=compute,
        truck=data.truck,
        auto_milestones=data.auto_milestones,
        payload_t=data.payload_t,
    )
    return _out(services, principal, await services.trips.create(principal, draft))


@get("/trips/{trip_id:str}", summary="A trip: status, milestones, distance, routes", tags=["trips"])
async def get_trip(trip_id: TripId, services: Services, principal: Principal) -> TripOut:
    return _out(services, principal, services.trips.get(principal, trip_id))


@patch("/trips/{trip_id:str}", summary="Change a trip (allowed fields only)", tags=["trips"])
async def change_trip(
    trip_id: TripId, data: TripPatch, services: Services, principal: Principal
) -> TripOut:
    route, compute = _line(data.planned_route)
    changes = TripChanges(
        booking_id=data.booking_id,
        driver_id=data.driver_id,
        vehicle_id=data.vehicle_id,
        planned_start=_time(data.planned_start, "planned_start"),
        planned_arrival=_time(data.planned_arrival, "planned_arrival"),
        pickup=data.pickup.to_place() if data.pickup else None,
        delivery=data.delivery.to_place() if data.delivery else None,
        route=route,
        compute_route=compute,
        truck=data.truck,
        auto_milestones=data.auto_milestones,
        cancel=data.status == "cancelled",
        payload_t=data.payload_t,
    )
    return _out(services, principal, await services.trips.change(principal, trip_id, changes))


@get(
    "/trips/{trip_id:str}/route/{which:str}",
    summary="A trip's planned or actual route (GeoJSON Feature)",
    tags=["trips"],
)
async def trip_route(
    trip_id: TripId,
    which: Annotated[str, Parameter(pattern="^(planned|actual)$")],
    services: Services,
    principal: Principal,
) -> Response[bytes]:
    feature = await services.trips.route(principal, trip_id, which)
    return Response(msgspec.json.encode(feature), media_type="application/geo+json")


@get(
    "/vehicles/{vehicle_id:str}/trips",
    summary="A vehicle's trips by start time (the spec's vehicle-trips index)",
    description="`from`/`to` bound the start (actual, else planned, else creation) time, epoch "
    "ms or ISO-8601; paginated with `cursor`.",
    tags=["trips"],
)
async def vehicle_trips(
    vehicle_id: Id64,
    services: Services,
    principal: Principal,
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
) -> TripListOut:
    page = services.trips.for_vehicle(
        principal, vehicle_id, from_ms=time_param(from_, "from"), to_ms=time_param(to, "to"),
        cursor=cursor, limit=limit,
    )  # fmt: skip
    return TripListOut([_out(services, principal, t) for t in page.trips], page.next_cursor)


@get(
    "/bookings/{booking_id:str}/trips",
    summary="A booking's trips (the spec's booking-tracking index)",
    tags=["trips"],
)
async def booking_trips(
    booking_id: TripId,
    services: Services,
    principal: Principal,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
) -> TripListOut:
    page = services.trips.for_booking(principal, booking_id, cursor=cursor, limit=limit)
    return TripListOut([_out(services, principal, t) for t in page.trips], page.next_cursor)


@post(
    "/delivery/milestone",
    summary="Record a delivery milestone",
    description="Milestones come in the spec's order (trip_started, reached_pickup, "
    "loading_started, loading_completed, in_transit, reached_delivery, unloading_started, "
    "unloading_completed, trip_completed): 201 when recorded, 200 with `repeated: true` for a "
    "repeat of the last one, 409 naming the allowed next one otherwise. reached_pickup and "
    "reached_delivery need the truck's newest position within the configured radius of the "
    "place (422 otherwise; an admin may send `override: true`, which is recorded).",
    tags=["trips"],
)
async def record_milestone(
    data: MilestoneIn, services: Services, principal: Principal
) -> Response[bytes]:
    if (data.lat is None) != (data.lng is None):
        raise BadRequest("give both lat and lng, or neither")
    request = MilestoneRequest(
        milestone=data.milestone,
        ts=_time(data.timestamp, "timestamp"),
        lat=data.lat,
        lng=data.lng,
        note=data.note,
        override=data.override,
    )
    outcome = await services.trips.record_milestone(principal, data.trip_id, request)
    reply = MilestoneReply(
        trip_id=outcome.trip.trip_id,
        status=outcome.trip.status.value,
        repeated=outcome.repeated,
        recorded=milestone_out(outcome.record),
        next_milestones=list(next_milestones(outcome.trip)),
    )
    return Response(
        msgspec.json.encode(reply),
        status_code=200 if outcome.repeated else 201,
        media_type="application/json",
    )


@get(
    "/trips/{trip_id:str}/summary",
    summary="A completed trip's summary: distance, route, time, stops, speeding, fuel",
    description="Made when the trip completes (and at the first read if it could not be "
    "then). 409 while the trip is planned, active or cancelled; 404 for an unknown trip.",
    tags=["trips"],
)
async def trip_summary(trip_id: TripId, services: Services, principal: Principal) -> SummaryOut:
    return summary_out(await services.summaries.get(principal, trip_id))


TRIP_ROUTES = [
    create_trip,
    get_trip,
    change_trip,
    trip_route,
    vehicle_trips,
    booking_trips,
    record_milestone,
    trip_summary,
]

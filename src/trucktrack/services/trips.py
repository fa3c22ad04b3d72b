"""Trips: create, read, list, change, and record delivery milestones in their order.

The service also keeps which trip each vehicle is on (`TripWindows`) so that points sent
without a trip_id are attributed to it, and stores the planned and actual routes in the object
store under the spec's keys (`routes/planned/{trip_id}/v{version}-{nonce}.geojson.gz`, one per
write, and `routes/actual/{trip_id}/track.geojson.gz`: gzip-compressed GeoJSON Features).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence

import msgspec
import numpy as np

from trucktrack.domain.alerts import Alert, AlertType
from trucktrack.domain.compliance import TripProgress
from trucktrack.domain.geo import distance_m, distances_m
from trucktrack.domain.model import GpsPoint, Principal, Role
from trucktrack.domain.routing import LatLng, RouteRequest, TruckProfile
from trucktrack.domain.trips import (
    AT_PLACE,
    OPEN,
    Milestone,
    MilestoneRecord,
    MilestoneRefused,
    MilestoneTooEarly,
    MilestoneTooOld,
    Place,
    RouteRef,
    Trip,
    TripStatus,
    TripWindows,
    check_milestone,
    check_milestone_age,
    is_repeat,
    next_milestones,
    place_for,
    with_milestone,
)
from trucktrack.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RoutingNotConfigured,
    Unprocessable,
)
from trucktrack.ports import CurrentLocations, ObjectStore, PointLog, TripStore
from trucktrack.services.cursors import decode_time_cursor, encode_cursor
from trucktrack.services.ingest import wall_clock_ms
from trucktrack.services.routing import RoutingService
from trucktrack.services.tracking import TrackingService

log = logging.getLogger(__name__)

EDITORS = frozenset({Role.ADMIN, Role.DISPATCHER})
MILESTONE_WRITERS = frozenset({Role.ADMIN, Role.DISPATCHER, Role.DEVICE})
MAX_ROUTE_VERTICES = 20_000
TRIP_VEHICLE_CACHE = 100_000
"""Trip ids whose vehicle the attribution remembers (emptied when full)."""
Coordinates = list[tuple[float, float]]
"""A line as (lng, lat) pairs, GeoJSON order."""


class TripDraft(msgspec.Struct, frozen=True):
    """What a caller asks for; the service fills in the rest."""

    vehicle_id: str
    pickup: Place
    delivery: Place
    trip_id: str | None = None
    booking_id: str | None = None
    driver_id: str | None = None
    planned_start: int | None = None
    planned_arrival: int | None = None
    route: Coordinates | None = None
    compute_route: bool = False
    truck: dict[str, object] | None = None
    """The truck's profile for a computed route (height_m, weight_t, ...)."""
    auto_milestones: bool = False
    payload_t: float | None = None


class TripChanges(msgspec.Struct, frozen=True):
    """A PATCH: only the fields given change, and only while the trip allows it."""

    booking_id: str | None = None
    driver_id: str | None = None
    vehicle_id: str | None = None
    planned_start: int | None = None
    planned_arrival: int | None = None
    pickup: Place | None = None
    delivery: Place | None = None
    route: Coordinates | None = None
    compute_route: bool = False
    truck: dict[str, object] | None = None
    auto_milestones: bool | None = None
    cancel: bool = False
    payload_t: float | None = None


class MilestoneRequest(msgspec.Struct, frozen=True):
    milestone: Milestone
    ts: int | None = None
    lat: float | None = None
    lng: float | None = None
    note: str | None = None
    override: bool = False


class MilestoneOutcome(msgspec.Struct, frozen=True):
    trip: Trip
    record: MilestoneRecord
    repeated: bool


class TripPage(msgspec.Struct, frozen=True):
    trips: list[Trip]
    next_cursor: str | None


class TripService:
    def __init__(
        self,
        store: TripStore,
        objects: ObjectStore,
        current: CurrentLocations,
        log_: PointLog,
        tracking: TrackingService,
        *,
        milestone_radius_m: float,
        position_max_age_s: float,
        late_points_h: float,
        max_future_s: float,
        milestone_backdate_h: float,
        routing: RoutingService | None = None,
        on_milestone: Callable[[Trip, MilestoneRecord], None] | None = None,
    ) -> None:
        self._store = store
        self._objects = objects
        self._current = current
        self._log = log_
        self._tracking = tracking
        self._radius_m = milestone_radius_m
        self._max_age_ms = int(position_max_age_s * 1000)
        self._late_ms = int(late_points_h * 3_600_000)
        self._max_future_ms = int(max_future_s * 1000)
        self._backdate_ms = int(milestone_backdate_h * 3_600_000)
        self._routing = routing
        self._on_milestone = on_milestone
        self.windows = TripWindows()
        self.completion_check: Callable[[Trip], list[str]] | None = None
        """What still keeps the trip from completing (the POD policy), in words."""
        self.after_milestone: list[Callable[[Trip, Milestone], Awaitable[None]]] = []
        """Run in the background after a milestone is stored (e.g. sending the delivery OTP)."""
        self._background: set[asyncio.Task[None]] = set()
        self._trip_vehicles: dict[tuple[str, str], str | None] = {}

    def load(self, now_ms: int) -> None:
        """Learn which trips vehicles are on (at start-up)."""
        for trip in self._store.open_or_ended_since(now_ms - self._late_ms):
            self.windows.put(trip)

    def forget_finished(self, now_ms: int) -> None:
        """Stop attributing late points to trips that ended long ago (run by the monitor)."""
        self.windows.forget_ended_before(now_ms - self._late_ms)

    # --- attribution --------------------------------------------------------------------------
    def attribute(
        self, fleet_id: str, points: Sequence[GpsPoint]
    ) -> tuple[list[GpsPoint], list[tuple[int, str]]]:
        """Points without a trip_id get the trip their vehicle was on at their time. A point
        naming a trip of another vehicle is refused: (kept points, [(position, reason)])."""
        windows = self.windows
        kept: list[GpsPoint] = []
        refused: list[tuple[int, str]] = []
        for i, p in enumerate(points):
            if p.trip_id is None:
                if len(windows):
                    trip_id = windows.trip_at(fleet_id, p.vehicle_id, p.ts)
                    if trip_id is not None:
                        p = msgspec.structs.replace(p, trip_id=trip_id)
            else:
                owner = self._vehicle_of(fleet_id, p.trip_id)
                if owner is not None and owner != p.vehicle_id:
                    refused.append((i, f"trip {p.trip_id!r} is not a trip of {p.vehicle_id!r}"))
                    continue
            kept.append(p)
        return kept, refused

    def _vehicle_of(self, fleet_id: str, trip_id: str) -> str | None:
        """The vehicle of a planned trip (None: no such trip, an ad-hoc id), cached: every
        trip is created and changed through this service."""
        key = (fleet_id, trip_id)
        try:
            return self._trip_vehicles[key]
        except KeyError:
            pass
        if len(self._trip_vehicles) >= TRIP_VEHICLE_CACHE:
            self._trip_vehicles.clear()
        trip = self._store.get(fleet_id, trip_id)
        vehicle = None if trip is None else trip.vehicle_id
        self._trip_vehicles[key] = vehicle
        return vehicle

    # --- reading ------------------------------------------------------------------------------
    def get(self, principal: Principal, trip_id: str) -> Trip:
        trip = self._store.get(principal.fleet_id, trip_id)
        if trip is None or not _may_see(principal, trip):
            raise NotFound(f"no trip {trip_id!r}")
        return trip

    def for_vehicle(
        self,
        principal: Principal,
        vehicle_id: str,
        *,
        from_ms: int | None,
        to_ms: int | None,
        cursor: str | None,
        limit: int,
    ) -> TripPage:
        if not principal.may_see(vehicle_id):
            return TripPage([], None)
        after = decode_time_cursor(cursor) if cursor else None
        found = self._store.for_vehicle(
            principal.fleet_id, vehicle_id, from_ms=from_ms, to_ms=to_ms, after=after,
            limit=limit + 1,
        )  # fmt: skip
        return _page(principal, found, limit, _when)

    def for_booking(
        self, principal: Principal, booking_id: str, *, cursor: str | None, limit: int
    ) -> TripPage:
        after = decode_time_cursor(cursor) if cursor else None
        found = self._store.for_booking(
            principal.fleet_id, booking_id, after=after, limit=limit + 1
        )
        return _page(principal, found, limit, lambda t: t.created_at)

    def progress(self, trip: Trip) -> TripProgress | None:
        """Where an active trip stands on its planned route (None before its first fix)."""
        if trip.status is not TripStatus.ACTIVE or trip.planned_route is None:
            return None
        return self._store.progress(trip.fleet_id, trip.trip_id)

    async def route(self, principal: Principal, trip_id: str, which: str) -> dict[str, object]:
        """The planned or actual route as a GeoJSON Feature (a completed trip's actual route
        is made now if it was lost)."""
        trip = self.get(principal, trip_id)
        data = None
        if which == "actual":
            trip, data = await self._actual_route(trip)
        elif trip.planned_route is not None:
            data = await asyncio.to_thread(self._objects.get, trip.fleet_id, trip.planned_route.key)
        if data is None:
            raise NotFound(f"trip {trip_id!r} has no {which} route")
        feature: dict[str, object] = msgspec.json.decode(gzip.decompress(data))
        return feature

    async def ensure_actual_route(self, trip: Trip) -> Trip:
        """A completed trip's actual route, written again if trip_completed was stored but
        the route was not (the process died, the write failed, the file went missing)."""
        trip, _ = await self._actual_route(trip)
        return trip

    async def _actual_route(self, trip: Trip) -> tuple[Trip, bytes | None]:
        ref = trip.actual_route
        data = None if ref is None else await asyncio.to_thread(
            self._objects.get, trip.fleet_id, ref.key
        )  # fmt: skip
        if data is None and trip.status is TripStatus.COMPLETED:
            trip, data = await self._record_actual_route(trip)
        return trip, data

    # --- writing ------------------------------------------------------------------------------
    async def create(self, principal: Principal, draft: TripDraft) -> Trip:
        _may_edit(principal, draft.vehicle_id)
        _check_plan(draft.planned_start, draft.planned_arrival)
        self._check_vehicle(principal, draft.vehicle_id)
        now = wall_clock_ms()
        trip = Trip(
            fleet_id=principal.fleet_id,
            trip_id=draft.trip_id or "trip_" + secrets.token_hex(8),
            vehicle_id=draft.vehicle_id,
            pickup=draft.pickup,
            delivery=draft.delivery,
            booking_id=draft.booking_id,
            driver_id=draft.driver_id,
            planned_start=draft.planned_start,
            planned_arrival=draft.planned_arrival,
            auto_milestones=draft.auto_milestones,
            payload_t=draft.payload_t,
            created_at=now,
            updated_at=now,
            created_by=principal.token_id,
            version=1,
        )
        if self._store.get(trip.fleet_id, trip.trip_id) is not None:
            raise Conflict(f"trip {trip.trip_id!r} already exists")
        if draft.route is not None or draft.compute_route:
            trip = await self._with_route(trip, draft.route, draft.compute_route, draft.truck)
        if not await self._store.create(trip):
            await self._discard_route(trip, trip.planned_route)
            raise Conflict(f"trip {trip.trip_id!r} already exists")
        self._trip_vehicles[(trip.fleet_id, trip.trip_id)] = trip.vehicle_id
        return trip

    async def change(self, principal: Principal, trip_id: str, changes: TripChanges) -> Trip:
        trip = self.get(principal, trip_id)
        _may_edit(principal, trip.vehicle_id)
        done = {r.milestone for r in trip.milestones}
        if trip.status not in OPEN:
            raise Conflict(f"the trip is {trip.status.value}: it can no longer change")
        updates: dict[str, object] = {}
        for name in ("booking_id", "driver_id", "planned_start", "planned_arrival", "payload_t"):
            value = getattr(changes, name)
            if value is not None:
                updates[name] = value
        if changes.auto_milestones is not None:
            updates["auto_milestones"] = changes.auto_milestones
        _check_plan(
            trip.planned_start if changes.planned_start is None else changes.planned_start,
            trip.planned_arrival if changes.planned_arrival is None else changes.planned_arrival,
        )
        if changes.vehicle_id is not None and changes.vehicle_id != trip.vehicle_id:
            if trip.status is not TripStatus.PLANNED:
                raise Conflict("the vehicle can only change before trip_started")
            _may_edit(principal, changes.vehicle_id)
            self._check_vehicle(principal, changes.vehicle_id)
            updates["vehicle_id"] = changes.vehicle_id
        if changes.pickup is not None:
            if Milestone.REACHED_PICKUP in done:
                raise Conflict("the pickup place can only change before reached_pickup")
            updates["pickup"] = changes.pickup
        if changes.delivery is not None:
            if Milestone.REACHED_DELIVERY in done:
                raise Conflict("the delivery place can only change before reached_delivery")
            updates["delivery"] = changes.delivery
        if changes.cancel:
            updates["status"] = TripStatus.CANCELLED
            updates["ended_at"] = wall_clock_ms()
        if not updates and changes.route is None and not changes.compute_route:
            return trip
        changed = msgspec.structs.replace(
            trip, **updates, updated_at=wall_clock_ms(), version=trip.version + 1
        )
        if changes.route is not None or changes.compute_route:
            changed = await self._with_route(
                changed, changes.route, changes.compute_route, changes.truck
            )
        if not await self._store.update(changed, trip.version):
            if changed.planned_route is not trip.planned_route:
                await self._discard_route(changed, changed.planned_route)
            raise Conflict("the trip changed meanwhile; read it again and retry")
        if changed.planned_route is not trip.planned_route:
            await self._discard_route(trip, trip.planned_route)  # the route it replaced
        self._trip_vehicles[(changed.fleet_id, changed.trip_id)] = changed.vehicle_id
        self.windows.put(changed)
        return changed

    async def record_milestone(
        self, principal: Principal, trip_id: str, request: MilestoneRequest
    ) -> MilestoneOutcome:
        if principal.role not in MILESTONE_WRITERS or principal.trips is not None:
            raise Forbidden(f"a {principal.role.value} token cannot record milestones")
        if request.override and principal.role is not Role.ADMIN:
            raise Forbidden("only an admin token may override the position check")
        now = wall_clock_ms()
        ts = now if request.ts is None else request.ts
        if ts > now + self._max_future_ms:
            raise Unprocessable("timestamp is in the future")
        for _ in range(5):  # a concurrent change to the same trip: read it again
            trip = self.get(principal, trip_id)
            if not principal.may_see(trip.vehicle_id):
                raise NotFound(f"no trip {trip_id!r}")
            if is_repeat(trip, request.milestone):
                assert trip.last is not None
                return MilestoneOutcome(trip, trip.last, repeated=True)
            try:
                check_milestone_age(trip, ts, self._backdate_ms)
            except MilestoneTooOld as exc:
                raise Unprocessable(str(exc)) from None
            try:
                check_milestone(trip, request.milestone, ts)
            except MilestoneRefused as exc:
                raise Conflict(
                    str(exc),
                    [{"allowed_next": [m.value for m in exc.allowed]}],
                ) from None
            except MilestoneTooEarly as exc:
                raise Conflict(str(exc), [{"allowed_next": [request.milestone.value]}]) from None
            if request.milestone is Milestone.TRIP_COMPLETED and self.completion_check:
                lacking = self.completion_check(trip)
                if lacking:
                    raise Conflict(
                        f"proof of delivery is missing: {'; '.join(lacking)}",
                        [{"missing": lacking}],
                    )
            if request.milestone is Milestone.TRIP_STARTED:
                other = self.windows.active_trip(trip.fleet_id, trip.vehicle_id)
                if other is not None and other != trip.trip_id:
                    raise Conflict(f"vehicle {trip.vehicle_id!r} is still on trip {other!r}")
            distance, override = self._position_check(trip, request, ts)
            record = MilestoneRecord(
                milestone=request.milestone,
                ts=ts,
                recorded_at=now,
                recorded_by=principal.token_id,
                lat=request.lat,
                lng=request.lng,
                note=request.note,
                distance_to_place_m=distance,
                override=override,
            )
            changed = with_milestone(trip, record, now)
            if await self._store.update(changed, trip.version):
                break
        else:
            raise Conflict("the trip keeps changing; retry")
        self.windows.put(changed)
        if request.milestone is Milestone.TRIP_COMPLETED:
            changed, _ = await self._record_actual_route(changed)
        self._announce(changed, record)
        return MilestoneOutcome(changed, record, repeated=False)

    def _announce(self, trip: Trip, record: MilestoneRecord) -> None:
        if self._on_milestone is not None:
            self._on_milestone(trip, record)
        for hook in self.after_milestone:
            task = asyncio.create_task(hook(trip, record.milestone))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def handle_alerts(self, alerts: Sequence[Alert]) -> None:
        """Record reached_pickup / reached_delivery when a truck on a trip that asks for it
        enters the place's geofence (the processors' entry alerts)."""
        for alert in alerts:
            if alert.type is not AlertType.GEOFENCE_ENTRY or alert.geofence_id is None:
                continue
            trip_id = self.windows.active_trip(alert.fleet_id, alert.vehicle_id)
            trip = None if trip_id is None else self._store.get(alert.fleet_id, trip_id)
            if trip is None or not trip.auto_milestones:
                continue
            for milestone in next_milestones(trip):
                place = place_for(trip, milestone)
                if place is None or place.geofence_id != alert.geofence_id:
                    continue
                try:
                    await self._record_from_fence(trip, milestone, alert)
                except Exception:
                    log.exception("could not record %s for trip %s", milestone, trip.trip_id)

    async def _record_from_fence(self, trip: Trip, milestone: Milestone, alert: Alert) -> None:
        now = wall_clock_ms()
        place = place_for(trip, milestone)
        assert place is not None
        distance = None
        if alert.lat is not None and alert.lng is not None:
            distance = distance_m(alert.lat, alert.lng, place.lat, place.lng)
        record = MilestoneRecord(
            milestone=milestone, ts=alert.ts, recorded_at=now, recorded_by="geofence",
            lat=alert.lat, lng=alert.lng, note=f"entered geofence {alert.geofence_id}",
            distance_to_place_m=distance,
        )  # fmt: skip
        try:
            check_milestone(trip, milestone, alert.ts)
        except (MilestoneRefused, MilestoneTooEarly):
            return
        changed = with_milestone(trip, record, now)
        if await self._store.update(changed, trip.version):
            self.windows.put(changed)
            self._announce(changed, record)

    # --- helpers --------------------------------------------------------------------------------
    def _check_vehicle(self, principal: Principal, vehicle_id: str) -> None:
        owner = self._log.fleet_of(vehicle_id)
        if owner is not None and owner != principal.fleet_id:
            raise Forbidden(f"vehicle {vehicle_id!r} is not this fleet's")

    def _position_check(
        self, trip: Trip, request: MilestoneRequest, ts: int
    ) -> tuple[float | None, bool]:
        """For reached_*: the truck's newest point must be near the place (distance, override)."""
        place = place_for(trip, request.milestone)
        if place is None:
            return None, False
        point = self._current.get(trip.fleet_id, trip.vehicle_id)
        which = AT_PLACE[request.milestone]
        if point is None or point.ts < ts - self._max_age_ms:
            if request.override:
                return None, True
            raise Unprocessable(
                f"no position of {trip.vehicle_id!r} from the last "
                f"{self._max_age_ms // 60000} minutes confirms {request.milestone.value}",
                [{"position_ts": None if point is None else point.ts}],
            )
        distance = round(distance_m(point.lat, point.lng, place.lat, place.lng), 1)
        if distance <= self._radius_m:
            return distance, False
        if request.override:
            return distance, True
        raise Unprocessable(
            f"the truck is {distance:.0f} m from the {which} place; {request.milestone.value} "
            f"needs it within {self._radius_m:.0f} m (an admin may override)",
            [{"distance_m": distance, "radius_m": self._radius_m}],
        )

    async def _with_route(
        self, trip: Trip, route: Coordinates | None, compute: bool, truck: dict[str, object] | None
    ) -> Trip:
        duration_s: float | None = None
        if route is not None and compute:
            raise BadRequest("give a planned route or ask to compute one, not both")
        if route is None:
            if self._routing is None:
                raise RoutingNotConfigured("routing is not configured: give the planned route")
            planned = await self._routing.calculate(_route_request(trip, truck))
            route, duration_s = [tuple(c) for c in planned.coordinates], planned.duration_s
            source = "computed"
        else:
            source = "given"
        check_line(route)
        # A key of its own for every write: a request that then loses (a duplicate create, a
        # PATCH losing the version race) never overwrites the route a trip refers to.
        key = f"routes/planned/{trip.trip_id}/v{trip.version}-{secrets.token_hex(4)}.geojson.gz"
        ref = RouteRef(key, source, line_length_m(route), len(route), duration_s)
        body = line_feature(route, {"trip_id": trip.trip_id, "kind": "planned", "source": source})
        await asyncio.to_thread(self._objects.put, trip.fleet_id, key, body)
        return msgspec.structs.replace(trip, planned_route=ref)

    async def _discard_route(self, trip: Trip, ref: RouteRef | None) -> None:
        """Delete a planned route no trip refers to (any more); a failure only leaves a file."""
        if ref is None:
            return
        try:
            await asyncio.to_thread(self._objects.delete, trip.fleet_id, ref.key)
        except Exception:
            log.exception("could not delete %s of trip %s", ref.key, trip.trip_id)

    async def _record_actual_route(self, trip: Trip) -> tuple[Trip, bytes | None]:
        """Store the track the truck drove, from trip_started to trip_completed (the same
        bytes every time for the same points, so writing it again is harmless)."""
        try:
            coords = await asyncio.to_thread(self._actual_coordinates, trip)
            if len(coords) < 2:
                return trip, None
            key = f"routes/actual/{trip.trip_id}/track.geojson.gz"
            body = line_feature(coords, {"trip_id": trip.trip_id, "kind": "actual"})
            await asyncio.to_thread(self._objects.put, trip.fleet_id, key, body)
            ref = RouteRef(key, "recorded", line_length_m(coords), len(coords))
            if trip.actual_route == ref:  # only the file was lost
                return trip, body
            changed = msgspec.structs.replace(trip, actual_route=ref, version=trip.version + 1)
            if await self._store.update(changed, trip.version):
                return changed, body
            return trip, body
        except Exception:
            log.exception("could not store the actual route of trip %s", trip.trip_id)
        return trip, None

    def _actual_coordinates(self, trip: Trip) -> Coordinates:
        reader = Principal(fleet_id=trip.fleet_id, role=Role.ADMIN, token_id="trips")
        coords: Coordinates = []
        cursor = None
        end = None if trip.ended_at is None else trip.ended_at + 1  # trip_completed's time included
        while True:
            try:
                page = self._tracking.trip_history(
                    reader, trip.trip_id, from_ms=trip.started_at, to_ms=end, cursor=cursor,
                    limit=10_000,
                )  # fmt: skip
            except NotFound:  # no points at all
                return coords
            coords.extend((p.lng, p.lat) for p in page.points if p.vehicle_id == trip.vehicle_id)
            cursor = page.next_cursor
            if cursor is None:
                return coords


def _route_request(trip: Trip, truck: dict[str, object] | None) -> RouteRequest:
    """From the pickup to the delivery place, for the trip's truck (Valhalla's default truck,
    a loaded five-axle tractor-trailer, for what the caller leaves out)."""
    unknown = sorted(set(truck or {}) - set(TruckProfile.__struct_fields__))
    if unknown:
        raise BadRequest(f"truck: unknown fields {', '.join(unknown)}")
    try:
        profile = msgspec.convert(truck or {}, TruckProfile)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"truck: {exc}") from None
    return RouteRequest(
        origin=LatLng(trip.pickup.lat, trip.pickup.lng),
        destination=LatLng(trip.delivery.lat, trip.delivery.lng),
        vehicle=profile,
    )


def check_line(coords: Coordinates) -> None:
    if not 2 <= len(coords) <= MAX_ROUTE_VERTICES:
        raise Unprocessable(f"a route needs 2 to {MAX_ROUTE_VERTICES} positions")
    for i, (lng, lat) in enumerate(coords):
        if not (-180 <= lng <= 180 and -90 <= lat <= 90):
            raise Unprocessable(f"route position {i} is not a [lng, lat] in range")


def line_length_m(coords: Coordinates) -> float:
    line = np.asarray(coords, dtype=np.float64)
    if len(line) < 2:
        return 0.0
    steps = distances_m(line[:-1, 1], line[:-1, 0], line[1:, 1], line[1:, 0])
    return round(float(steps.sum()), 1)


def line_feature(coords: Coordinates, properties: dict[str, object]) -> bytes:
    """A GeoJSON LineString Feature, gzip-compressed (what the object store keeps)."""
    feature = {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [list(c) for c in coords]},
        "properties": properties,
    }
    return gzip.compress(msgspec.json.encode(feature), mtime=0)


def _check_plan(start: int | None, arrival: int | None) -> None:
    if start is not None and arrival is not None and arrival < start:
        raise BadRequest("planned_arrival is before planned_start")


def _may_see(principal: Principal, trip: Trip) -> bool:
    return principal.may_see(trip.vehicle_id) and principal.may_see_trip(trip.trip_id)


def _may_edit(principal: Principal, vehicle_id: str) -> None:
    if principal.role not in EDITORS or principal.trips is not None:
        raise Forbidden(f"a {principal.role.value} token cannot create or change trips")
    if not principal.may_see(vehicle_id):
        raise Forbidden(f"this token may not plan trips for {vehicle_id!r}")


def _when(trip: Trip) -> int:
    return next(t for t in (trip.started_at, trip.planned_start, trip.created_at) if t is not None)


def _page(
    principal: Principal, found: list[Trip], limit: int, position: Callable[[Trip], int]
) -> TripPage:
    more = len(found) > limit
    found = found[:limit]
    cursor = encode_cursor([position(found[-1]), found[-1].trip_id]) if more else None
    return TripPage([t for t in found if _may_see(principal, t)], cursor)

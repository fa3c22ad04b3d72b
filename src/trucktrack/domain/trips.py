"""Trips and their delivery milestones: the order rules as pure functions over records.

A trip moves one booking with one truck and driver from a pickup to a delivery place. Its nine
milestones (the spec's mark-delivery-milestone list) come in a fixed order; the trip is planned
until `trip_started`, active until `trip_completed`, and may be cancelled before that.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

import msgspec


class Milestone(StrEnum):
    TRIP_STARTED = "trip_started"
    REACHED_PICKUP = "reached_pickup"
    LOADING_STARTED = "loading_started"
    LOADING_COMPLETED = "loading_completed"
    IN_TRANSIT = "in_transit"
    REACHED_DELIVERY = "reached_delivery"
    UNLOADING_STARTED = "unloading_started"
    UNLOADING_COMPLETED = "unloading_completed"
    TRIP_COMPLETED = "trip_completed"


ORDER: tuple[Milestone, ...] = tuple(Milestone)
AT_PLACE = {Milestone.REACHED_PICKUP: "pickup", Milestone.REACHED_DELIVERY: "delivery"}
"""Milestones checked against the truck's real position: the place it must be near."""


class TripStatus(StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


OPEN = frozenset({TripStatus.PLANNED, TripStatus.ACTIVE})


class Place(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    lat: float
    lng: float
    name: str | None = None
    address: str | None = None
    geofence_id: str | None = None
    """A fence around the place: entering it records reached_* when the trip asks for it."""
    contact_name: str | None = None
    contact_phone: str | None = None
    """Who receives the delivery OTP (handed to the OTP notifier)."""


class RouteRef(msgspec.Struct, frozen=True):
    """Where a route's geometry is kept (the object store key) and what it amounts to."""

    key: str
    source: str
    """given (posted with the trip), computed (by the router) or recorded (the actual track)."""
    distance_m: float
    vertices: int
    duration_s: float | None = None


class MilestoneRecord(msgspec.Struct, frozen=True):
    milestone: Milestone
    ts: int
    """When it happened (device or dispatcher time), epoch ms."""
    recorded_at: int
    recorded_by: str
    """The token id that recorded it, or `geofence` when the truck entering the place did."""
    lat: float | None = None
    lng: float | None = None
    note: str | None = None
    distance_to_place_m: float | None = None
    """For reached_*: how far the truck's real position was from the place."""
    override: bool = False
    """An admin recorded it although the truck's position did not confirm it."""


class Trip(msgspec.Struct, frozen=True):
    fleet_id: str
    trip_id: str
    vehicle_id: str
    pickup: Place
    delivery: Place
    status: TripStatus = TripStatus.PLANNED
    booking_id: str | None = None
    driver_id: str | None = None
    planned_start: int | None = None
    planned_arrival: int | None = None
    milestones: tuple[MilestoneRecord, ...] = ()
    planned_route: RouteRef | None = None
    actual_route: RouteRef | None = None
    auto_milestones: bool = False
    """Record reached_pickup / reached_delivery when the truck enters the place's geofence."""
    created_at: int = 0
    updated_at: int = 0
    created_by: str = ""
    started_at: int | None = None
    ended_at: int | None = None
    version: int = 0
    """Bumped by every change: stores refuse a write based on an older version."""
    payload_t: float | None = None
    """Tonnes carried from loading to unloading (the fuel estimate); None: not said."""

    @property
    def last(self) -> MilestoneRecord | None:
        return self.milestones[-1] if self.milestones else None


class MilestoneRefused(Exception):
    """The milestone does not fit the trip now; `allowed` names what would."""

    def __init__(self, message: str, allowed: tuple[Milestone, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class MilestoneTooEarly(Exception):
    """Its time is before the milestone it follows."""


class MilestoneTooOld(Exception):
    """Its time cannot be right: before 2000 (seconds sent for milliseconds) or long before
    the trip was even planned."""


EARLIEST_MS = 946_684_800_000
"""2000-01-01T00:00:00Z: no milestone is older (a time in seconds reads as January 1970)."""


def next_milestones(trip: Trip) -> tuple[Milestone, ...]:
    """What may be recorded next: the one after the last (nothing once the trip is over)."""
    if trip.status not in OPEN:
        return ()
    done = len(trip.milestones)
    return ORDER[done : done + 1]


def is_repeat(trip: Trip, milestone: Milestone) -> bool:
    """A retry of the last milestone: answered with the stored record, nothing changes."""
    last = trip.last
    return last is not None and last.milestone is milestone


def check_milestone(trip: Trip, milestone: Milestone, ts: int) -> None:
    """Raise unless `milestone` at `ts` may follow what the trip has."""
    allowed = next_milestones(trip)
    if milestone not in allowed:
        if trip.status not in OPEN:
            raise MilestoneRefused(f"the trip is {trip.status.value}", ())
        raise MilestoneRefused(
            f"{milestone.value} cannot follow "
            f"{trip.last.milestone.value if trip.last else 'nothing'}; next is "
            f"{', '.join(m.value for m in allowed)}",
            allowed,
        )
    last = trip.last
    if last is not None and ts < last.ts:
        raise MilestoneTooEarly(
            f"{milestone.value} at {ts} is before {last.milestone.value} at {last.ts}"
        )


def check_milestone_age(trip: Trip, ts: int, backdate_ms: int) -> None:
    """Raise MilestoneTooOld when `ts` is before 2000 or more than `backdate_ms` before the
    trip was created (a trip may be entered a little after it began, not a year)."""
    if ts < EARLIEST_MS:
        raise MilestoneTooOld(
            f"timestamp {ts} is before 2000: epoch milliseconds expected (not seconds)"
        )
    if ts < trip.created_at - backdate_ms:
        raise MilestoneTooOld(
            f"timestamp {ts} is more than {backdate_ms / 3_600_000:g} h before the trip "
            f"was created ({trip.created_at})"
        )


def with_milestone(trip: Trip, record: MilestoneRecord, now_ms: int) -> Trip:
    """The trip after a checked milestone: status, start and end follow the milestones."""
    status, started, ended = trip.status, trip.started_at, trip.ended_at
    if record.milestone is Milestone.TRIP_STARTED:
        status, started = TripStatus.ACTIVE, record.ts
    elif record.milestone is Milestone.TRIP_COMPLETED:
        status, ended = TripStatus.COMPLETED, record.ts
    return msgspec.structs.replace(
        trip,
        milestones=(*trip.milestones, record),
        status=status,
        started_at=started,
        ended_at=ended,
        updated_at=now_ms,
        version=trip.version + 1,
    )


def place_for(trip: Trip, milestone: Milestone) -> Place | None:
    which = AT_PLACE.get(milestone)
    if which is None:
        return None
    return trip.pickup if which == "pickup" else trip.delivery


class ActiveTrip(NamedTuple):
    fleet_id: str
    vehicle_id: str
    trip_id: str
    started_at: int
    """trip_started's time (device or dispatcher time, maybe back-dated)."""
    watched_from: int
    """When trip_started was recorded (wall clock): fixes are expected from then on."""


class TripWindows:
    """Which trip a vehicle's point belongs to, by its time: the windows between trip_started
    and trip_completed (open while active). Points that name no trip are attributed with it."""

    def __init__(self) -> None:
        self._by_vehicle: dict[tuple[str, str], list[tuple[int, int | None, str]]] = {}
        self._watched_from: dict[tuple[str, str], int] = {}

    def put(self, trip: Trip) -> None:
        key = (trip.fleet_id, trip.vehicle_id)
        windows = [w for w in self._by_vehicle.get(key, []) if w[2] != trip.trip_id]
        self._watched_from.pop((trip.fleet_id, trip.trip_id), None)
        if trip.started_at is not None and trip.status is not TripStatus.CANCELLED:
            windows.append((trip.started_at, trip.ended_at, trip.trip_id))
            windows.sort()
            if trip.ended_at is None:
                recorded = trip.milestones[0].recorded_at if trip.milestones else 0
                self._watched_from[(trip.fleet_id, trip.trip_id)] = max(recorded, trip.started_at)
        if windows:
            self._by_vehicle[key] = windows
        else:
            self._by_vehicle.pop(key, None)

    def forget_ended_before(self, ts: int) -> None:
        for key, windows in list(self._by_vehicle.items()):
            kept = [w for w in windows if w[1] is None or w[1] >= ts]
            if kept:
                self._by_vehicle[key] = kept
            else:
                del self._by_vehicle[key]

    def trip_at(self, fleet_id: str, vehicle_id: str, ts: int) -> str | None:
        for start, end, trip_id in reversed(self._by_vehicle.get((fleet_id, vehicle_id), ())):
            if start <= ts and (end is None or ts <= end):
                return trip_id
        return None

    def active_trip(self, fleet_id: str, vehicle_id: str) -> str | None:
        for _, end, trip_id in self._by_vehicle.get((fleet_id, vehicle_id), ()):
            if end is None:
                return trip_id
        return None

    def active(self) -> list[ActiveTrip]:
        """Every trip under way."""
        return [
            ActiveTrip(
                fleet, vehicle, trip_id, start, self._watched_from.get((fleet, trip_id), start)
            )
            for (fleet, vehicle), windows in self._by_vehicle.items()
            for start, end, trip_id in windows
            if end is None
        ]

    def __len__(self) -> int:
        return len(self._by_vehicle)

"""Domain records: a GPS point, an ingest outcome and a caller, independent of transport."""

from __future__ import annotations

import enum

import msgspec


class GpsPoint(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One accepted fix of one vehicle. Unique by (fleet_id, vehicle_id, ts)."""

    fleet_id: str
    vehicle_id: str
    ts: int
    """Device time, epoch milliseconds (UTC)."""
    lat: float
    lng: float
    speed: float
    """km/h"""
    heading: float
    """degrees clockwise from north, [0, 360)"""
    accuracy: float
    """metres"""
    altitude: float | None
    trip_id: str | None
    driver_id: str | None
    engine_status: bool | None
    received_at: int
    """Server time the point arrived, epoch milliseconds."""


class Role(enum.StrEnum):
    ADMIN = "admin"
    DISPATCHER = "dispatcher"
    VIEWER = "viewer"
    DEVICE = "device"


WRITER_ROLES = frozenset({Role.ADMIN, Role.DISPATCHER, Role.DEVICE})


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: a fleet, a role and, optionally, the only vehicles the token may touch."""

    fleet_id: str
    role: Role
    vehicles: frozenset[str] | None = None
    token_id: str = ""
    trips: frozenset[str] | None = None
    """A viewer limited to trips (a shipper following a delivery) sees only their points."""

    def may_write_points(self) -> bool:
        return self.role in WRITER_ROLES and self.trips is None

    def may_see(self, vehicle_id: str) -> bool:
        return self.vehicles is None or vehicle_id in self.vehicles

    def may_see_trip(self, trip_id: str | None) -> bool:
        return self.trips is None or (trip_id is not None and trip_id in self.trips)

    def may_see_point(self, vehicle_id: str, trip_id: str | None) -> bool:
        return self.may_see(vehicle_id) and self.may_see_trip(trip_id)


class Rejection(msgspec.Struct, frozen=True):
    """A point of a batch that was not stored, by its index in the batch."""

    index: int
    reason: str


class IngestResult(msgspec.Struct, frozen=True):
    processed: int
    duplicates: int
    rejected: list[Rejection]


class AppendOutcome(msgspec.Struct, frozen=True):
    """What the point log did with one batch: how many new rows, and which points it refused."""

    inserted: int
    duplicates: int
    rejected: list[Rejection] = []

"""The ports: small Protocols the services need, implemented by adapters (SQLite, Parquet, AWS)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Protocol

from trucktrack.domain.alerts import Alert, Subscription
from trucktrack.domain.compliance import TripProgress
from trucktrack.domain.fuel import VehicleProfile
from trucktrack.domain.geofence import Geofence
from trucktrack.domain.model import AppendOutcome, GpsPoint, Principal
from trucktrack.domain.pod import OtpChallenge, PodPolicy, PodRecord
from trucktrack.domain.routing import Route, RouteRequest
from trucktrack.domain.stops import Stop
from trucktrack.domain.summary import TripSummary
from trucktrack.domain.trips import Trip


class PointLog(Protocol):
    """The durable log of every accepted point plus each vehicle's newest one (the hot tier)."""

    async def append(self, fleet_id: str, points: Sequence[GpsPoint]) -> AppendOutcome:
        """Store the points durably before returning; duplicates by (vehicle, ts) are skipped.

        A vehicle id belongs to the first fleet that reports it; points for a vehicle of another
        fleet come back in `rejected`, by their index in `points`.
        """
        ...

    def fleet_of(self, vehicle_id: str) -> str | None:
        """The fleet that owns a vehicle id, if any has reported it yet."""
        ...

    def trip_points(
        self,
        fleet_id: str,
        trip_id: str,
        *,
        from_ms: int,
        to_ms: int,
        after: tuple[int, str] | None,
        limit: int,
        vehicles: frozenset[str] | None,
    ) -> list[GpsPoint]:
        """Up to `limit` points of a trip in (ts, vehicle_id) order, strictly after `after`."""
        ...

    def days_before(self, cutoff_ms: int) -> list[dt.date]:
        """The UTC days that hold points older than `cutoff_ms`."""
        ...

    def iter_points_between(
        self, from_ms: int, to_ms: int, chunk: int = 50_000
    ) -> Iterator[list[GpsPoint]]:
        """Every point with from_ms <= ts < to_ms, all fleets, in chunks (to move a day cold)."""
        ...

    async def delete_between(self, from_ms: int, to_ms: int) -> int:
        """Delete every point with from_ms <= ts < to_ms; returns how many."""
        ...

    async def delete_points(self, points: Sequence[GpsPoint]) -> int:
        """Delete exactly these points (by key), e.g. once they are safe in the cold tier."""
        ...


class CurrentLocations(Protocol):
    """Each vehicle's newest point by device time."""

    def get(self, fleet_id: str, vehicle_id: str) -> GpsPoint | None: ...

    def get_many(self, fleet_id: str, vehicle_ids: Sequence[str]) -> dict[str, GpsPoint]: ...

    def in_area(
        self, fleet_id: str, west: float, south: float, east: float, north: float, *,
        newer_than_ms: int, cell_deg: float | None, limit: int,
    ) -> list[GpsPoint]:  # fmt: skip
        """Current locations newer than `newer_than_ms` inside a box (west > east crosses the
        antimeridian), newest first; with `cell_deg`, only the newest of each grid cell of that
        size (as `domain.live.Area.cell` numbers them), thinned before the limit."""
        ...

    def on_trip(self, fleet_id: str, trip_id: str) -> list[GpsPoint]:
        """Current locations whose newest point belongs to the trip."""
        ...

    def count_newer_than(self, ts_ms: int) -> int:
        """How many vehicles (all fleets) reported a point newer than `ts_ms`."""
        ...

    async def forget_older_than(self, ts_ms: int) -> int:
        """Drop current locations whose point is older than `ts_ms` (retention)."""
        ...


class ColdPointStore(Protocol):
    """Older days of points, compressed and partitioned by day (the cold tier)."""

    def write_day(self, day: dt.date, points: Sequence[GpsPoint]) -> None:
        """Add points to a day's partition atomically (all or nothing)."""
        ...

    def trip_points(
        self,
        fleet_id: str,
        trip_id: str,
        *,
        from_ms: int,
        to_ms: int,
        after: tuple[int, str] | None,
        limit: int,
        vehicles: frozenset[str] | None,
    ) -> list[GpsPoint]: ...

    def days(self) -> list[dt.date]: ...

    def stored_keys(self, fleet_id: str, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of these (vehicle_id, ts) the cold tier holds for the fleet."""
        ...

    def drop_days_before(self, day: dt.date) -> list[dt.date]:
        """Delete whole day partitions older than `day`; returns the days dropped."""
        ...


class TokenStore(Protocol):
    """Bearer tokens, kept only as hashes."""

    def add(self, token_hash: str, principal: Principal, label: str) -> None: ...

    def find(self, token_hash: str) -> Principal | None: ...

    def device_fleets(self, vehicle_id: str) -> set[str]: ...

    def count(self) -> int: ...


class GeofenceStore(Protocol):
    """Fences by (fleet, id)."""

    async def put(self, fence: Geofence) -> None:
        """Create or replace."""
        ...

    async def delete(self, fleet_id: str, geofence_id: str) -> bool: ...

    def get(self, fleet_id: str, geofence_id: str) -> Geofence | None: ...

    def list(
        self,
        fleet_id: str,
        *,
        active: bool | None,
        kind: str | None,
        name: str | None,
        after: str | None,
        limit: int,
    ) -> list[Geofence]:
        """Fences in id order after `after`, filtered; `name` matches a substring."""
        ...


class AlertStore(Protocol):
    async def record(self, alert: Alert) -> bool:
        """Store unless an alert with the same (fleet, dedupe_key) exists; True if new."""
        ...

    async def acknowledge(self, fleet_id: str, alert_id: str, by: str, at_ms: int) -> Alert | None:
        """Mark acknowledged (idempotent); None if there is no such alert."""
        ...

    def get(self, fleet_id: str, alert_id: str) -> Alert | None: ...

    def list(
        self,
        fleet_id: str,
        *,
        vehicle_id: str | None,
        trip_id: str | None,
        type: str | None,
        since_ms: int,
        until_ms: int,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Alert]:
        """Alerts in (ts, alert_id) order, strictly after `after`."""
        ...


class AlertOutbox(Protocol):
    """Alerts waiting for delivery to the configured sinks, with their retry schedule."""

    def due(self, now_ms: int, limit: int) -> list[tuple[int, Alert, int]]:
        """(seq, alert, attempts so far) of the deliveries due now, oldest first."""
        ...

    def backlog(self) -> int: ...

    async def delivered(self, seq: int) -> None: ...

    async def failed(self, seq: int, attempts: int, next_ms: int, error: str) -> None: ...


class WebhookSubscriptions(Protocol):
    """Each fleet's own alert webhook (at most one per fleet)."""

    def get(self, fleet_id: str) -> Subscription | None: ...

    async def put(self, subscription: Subscription) -> None: ...

    async def delete(self, fleet_id: str) -> bool: ...


class AlertSink(Protocol):
    """Somewhere alerts go (a webhook now; SNS later). `send` raises when delivery failed."""

    async def send(self, alert: Alert) -> None: ...

    async def close(self) -> None: ...


class StopLog(Protocol):
    """The stops the stop detector recorded."""

    def stops(
        self, fleet_id: str, vehicle_id: str, *, since_ms: int, until_ms: int, after: int | None,
        limit: int,
    ) -> list[Stop]:  # fmt: skip
        """A vehicle's stops that started in [since, until), in start order, after `after`."""
        ...

    def open_stop(self, fleet_id: str, vehicle_id: str) -> Stop | None:
        """The vehicle's stop that has not ended yet, if it is stopped."""
        ...

    def during(self, fleet_id: str, vehicle_id: str, from_ms: int, to_ms: int) -> list[Stop]:
        """A vehicle's stops overlapping [from_ms, to_ms) (one that began before included),
        in start order."""
        ...


class Odometer(Protocol):
    """Filtered distance travelled, as the processors last published it."""

    def trip_m(self, fleet_id: str, trip_id: str) -> float | None: ...


class ObjectStore(Protocol):
    """Files by key, kept apart per fleet (a folder here, an S3 prefix on AWS)."""

    def put(self, fleet_id: str, key: str, data: bytes) -> None:
        """Store durably (replacing what the key held); returns once it is on disk."""
        ...

    def get(self, fleet_id: str, key: str) -> bytes | None: ...

    def delete(self, fleet_id: str, key: str) -> bool: ...


class TripStore(Protocol):
    async def create(self, trip: Trip) -> bool:
        """False when the fleet already has a trip with that id."""
        ...

    async def update(self, trip: Trip, expected_version: int) -> bool:
        """False when the stored trip is no longer at `expected_version` (a concurrent change)."""
        ...

    def get(self, fleet_id: str, trip_id: str) -> Trip | None: ...

    def for_vehicle(
        self,
        fleet_id: str,
        vehicle_id: str,
        *,
        from_ms: int | None,
        to_ms: int | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Trip]:
        """By start (actual, else planned, else creation) time, then id."""
        ...

    def for_booking(
        self, fleet_id: str, booking_id: str, *, after: tuple[int, str] | None, limit: int
    ) -> list[Trip]:
        """By creation time, then id."""
        ...

    def open_or_ended_since(self, ts_ms: int) -> list[Trip]: ...

    def progress(self, fleet_id: str, trip_id: str) -> TripProgress | None:
        """Where the trip stands on its planned route, as the processors last published it."""
        ...

    def deviating_share(self) -> float:
        """Of the active trips under way on a planned route, the share off route now."""
        ...


class SummaryStore(Protocol):
    """Completed trips' summaries, one per trip."""

    async def put(self, summary: TripSummary) -> None:
        """Create or replace."""
        ...

    def get(self, fleet_id: str, trip_id: str) -> TripSummary | None: ...

    def missing(self, ended_since_ms: int, limit: int) -> list[Trip]:
        """Completed trips (every fleet) that ended after `ended_since_ms` with no summary, or
        one of an older summary version, oldest first."""
        ...


class VehicleProfileStore(Protocol):
    """Each fleet's vehicle profiles (the fuel model's figures)."""

    async def put(self, profile: VehicleProfile) -> None: ...

    def get(self, fleet_id: str, vehicle_id: str) -> VehicleProfile | None: ...

    async def delete(self, fleet_id: str, vehicle_id: str) -> bool: ...


class Router(Protocol):
    """Truck routes over a road network. Blocking and CPU-bound: call it off the event loop."""

    def route(self, request: RouteRequest) -> Route:
        """The route for the request's truck; raises `Unroutable` when there is none (no road
        near a point, no legal path) and `RoutingNotConfigured` when the map cannot be read."""
        ...

    def close(self) -> None: ...


class PodStore(Protocol):
    """Proof-of-delivery records (files live in the ObjectStore), OTPs and policies."""

    async def add(self, record: PodRecord, verified: OtpChallenge | None = None) -> None:
        """Store the record (and, in the same transaction, the challenge an OTP verified)."""
        ...

    def for_trip(self, fleet_id: str, trip_id: str) -> list[PodRecord]: ...

    def get(self, pod_id: str) -> PodRecord | None: ...

    async def put_challenge(self, challenge: OtpChallenge) -> None: ...

    def challenge(self, fleet_id: str, trip_id: str) -> OtpChallenge | None: ...

    async def put_policy(self, fleet_id: str, policy: PodPolicy) -> None: ...

    def policy(self, fleet_id: str) -> PodPolicy | None:
        """None when the fleet never set one (the default applies)."""
        ...


class OtpNotifier(Protocol):
    """Gets a delivery's one-time code to the consignee (SMS gateway, WhatsApp, e-mail...)."""

    @property
    def configured(self) -> bool: ...

    async def send(self, trip: Trip, code: str, expires_at: int) -> None:
        """Raises when the code could not be handed over."""
        ...

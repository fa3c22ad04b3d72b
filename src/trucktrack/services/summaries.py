"""Trip summaries: made when a trip completes (the spec's trip-completed rule), read back by
GET /trips/{id}/summary.

Event-driven: `on_milestone` starts the work when trip_completed is recorded. It reads the
trip's points (both tiers), stops, speeding alerts, planned route and the vehicle's profile in
a thread, summarises (domain/summary.py) and stores the result. Nothing is lost if the process
dies before the summary is stored: reading the summary of a completed trip without one makes
it then, and `fill_missing` (run by the trip monitor's loop) makes every missing one.
"""

from __future__ import annotations

import asyncio
import gzip
import logging

import msgspec

from trucktrack.domain.alerts import Alert, AlertType
from trucktrack.domain.fuel import CLASS_DEFAULTS, FuelProfile, VehicleClass
from trucktrack.domain.model import GpsPoint, Principal, Role
from trucktrack.domain.stops import Stop
from trucktrack.domain.summary import (
    SUMMARY_VERSION,
    SummaryRules,
    TrackColumns,
    TripSummary,
    spells_from_alerts,
    summarise,
)
from trucktrack.domain.trips import Milestone, MilestoneRecord, Trip, TripStatus
from trucktrack.errors import Conflict, NotFound
from trucktrack.ports import ObjectStore, StopLog, SummaryStore, VehicleProfileStore
from trucktrack.services.alerts import AlertService
from trucktrack.services.ingest import wall_clock_ms
from trucktrack.services.tracking import TrackingService
from trucktrack.services.trips import TripService

log = logging.getLogger(__name__)
RETRY_FAILED_MS = 3_600_000
"""A trip whose summary failed is left alone this long by the sweep (so it neither fills the
log every minute nor holds up the others); reading the summary still tries at once."""


class SummaryService:
    def __init__(
        self,
        store: SummaryStore,
        trips: TripService,
        tracking: TrackingService,
        stops: StopLog,
        alerts: AlertService,
        profiles: VehicleProfileStore,
        objects: ObjectStore,
        *,
        rules: SummaryRules,
        default_class: VehicleClass,
        backfill_days: float,
    ) -> None:
        self._store = store
        self._trips = trips
        self._tracking = tracking
        self._stops = stops
        self._alerts = alerts
        self._profiles = profiles
        self._objects = objects
        self._rules = rules
        self._default_class = default_class
        self._backfill_ms = int(backfill_days * 86_400_000)
        self._running: dict[tuple[str, str], asyncio.Task[TripSummary]] = {}
        self._failed: dict[tuple[str, str], int] = {}

    async def get(self, principal: Principal, trip_id: str) -> TripSummary:
        """A completed trip's summary (made now if it has none yet); 409 before completion."""
        trip = self._trips.get(principal, trip_id)
        if trip.status is not TripStatus.COMPLETED:
            raise Conflict(
                f"trip {trip_id!r} is {trip.status.value}: its summary is made when it completes",
                [{"status": trip.status.value}],
            )
        found = await asyncio.to_thread(self._store.get, trip.fleet_id, trip.trip_id)
        if found is not None and found.version == SUMMARY_VERSION:
            return found
        return await self.make(trip)

    def on_milestone(self, trip: Trip, record: MilestoneRecord) -> None:
        """Called as each milestone is recorded: trip_completed starts the summary."""
        if record.milestone is Milestone.TRIP_COMPLETED:
            self._start(trip).add_done_callback(_log_failure)

    async def make(self, trip: Trip) -> TripSummary:
        """Summarise a completed trip and store it (one run per trip at a time: a second
        caller waits for the first; a caller that goes away does not stop it)."""
        return await asyncio.shield(self._start(trip))

    async def fill_missing(self, now_ms: int, limit: int = 20) -> int:
        """Make the summaries that completed trips (within the retention) lack, oldest first;
        returns how many were made."""
        self._failed = {k: t for k, t in self._failed.items() if t > now_ms - RETRY_FAILED_MS}
        missing = await asyncio.to_thread(
            self._store.missing, now_ms - self._backfill_ms, limit + len(self._failed)
        )
        todo = [t for t in missing if (t.fleet_id, t.trip_id) not in self._failed][:limit]
        made = 0
        for trip in todo:
            key = (trip.fleet_id, trip.trip_id)
            try:
                await self.make(trip)
                made += 1
            except Exception:
                self._failed[key] = now_ms
                log.exception("could not summarise trip %s of %s", trip.trip_id, trip.fleet_id)
        return made

    def _start(self, trip: Trip) -> asyncio.Task[TripSummary]:
        key = (trip.fleet_id, trip.trip_id)
        task = self._running.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._make(trip))
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        return task

    async def _make(self, trip: Trip) -> TripSummary:
        trip = await self._trips.ensure_actual_route(trip)  # lost with the summary, if at all
        summary = await asyncio.to_thread(self.compute, trip, wall_clock_ms())
        await self._store.put(summary)
        return summary

    def compute(self, trip: Trip, now_ms: int) -> TripSummary:
        """Read everything the summary needs and summarise (blocking: run it in a thread)."""
        assert trip.started_at is not None and trip.ended_at is not None
        start, end = trip.started_at, trip.ended_at + 1  # trip_completed's own time included
        reader = Principal(fleet_id=trip.fleet_id, role=Role.ADMIN, token_id="summaries")
        points = [
            p for p in self._points(reader, trip, start, end) if p.vehicle_id == trip.vehicle_id
        ]
        stops: list[Stop] = self._stops.during(trip.fleet_id, trip.vehicle_id, start, end)
        fuel, source = self._fuel_profile(trip)
        return summarise(
            trip,
            TrackColumns.of_points(points),
            planned_route=self._planned_route(trip),
            stops=stops,
            speeding=spells_from_alerts(self._speeding(reader, trip, start, end)),
            fuel=fuel,
            fuel_source=source,
            computed_at=now_ms,
            rules=self._rules,
        )

    def _points(self, reader: Principal, trip: Trip, start: int, end: int) -> list[GpsPoint]:
        points: list[GpsPoint] = []
        cursor = None
        while True:
            try:
                page = self._tracking.trip_history(
                    reader, trip.trip_id, from_ms=start, to_ms=end, cursor=cursor, limit=10_000
                )
            except NotFound:  # no points at all (or none kept any more)
                return points
            points.extend(page.points)
            cursor = page.next_cursor
            if cursor is None:
                return points

    def _speeding(self, reader: Principal, trip: Trip, start: int, end: int) -> list[Alert]:
        found: list[Alert] = []
        cursor = None
        while True:
            page = self._alerts.list(
                reader, vehicle_id=trip.vehicle_id, trip_id=trip.trip_id,
                type=AlertType.SPEEDING, since_ms=start, until_ms=end, cursor=cursor, limit=1000,
            )  # fmt: skip
            found.extend(page.alerts)
            cursor = page.next_cursor
            if cursor is None:
                return found

    def _planned_route(self, trip: Trip) -> list[tuple[float, float]] | None:
        ref = trip.planned_route
        data = None if ref is None else self._objects.get(trip.fleet_id, ref.key)
        if data is None:
            return None
        feature = msgspec.json.decode(gzip.decompress(data))
        coords: list[tuple[float, float]] = msgspec.convert(
            feature["geometry"]["coordinates"], list[tuple[float, float]]
        )
        return coords

    def _fuel_profile(self, trip: Trip) -> tuple[FuelProfile, str]:
        profile = self._profiles.get(trip.fleet_id, trip.vehicle_id)
        if profile is None:
            return CLASS_DEFAULTS[self._default_class], "default"
        return profile.effective(), "vehicle"


def _log_failure(task: asyncio.Task[TripSummary]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not summarise a completed trip", exc_info=task.exception())

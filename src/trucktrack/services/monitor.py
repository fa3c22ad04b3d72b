"""The trip monitor: a scheduled sweep over active trips (the spec's monitor-route-compliance,
run every minute by EventBridge there, by a loop here).

Every point of an active trip is already checked as it arrives; what no point can reveal is a
truck that went silent. Two checks by the wall clock:

- A truck whose stop detector has an open stop outside every `stop_allowed` fence, longer than
  the unexpected-stop threshold, raises the `unexpected_stop` alert the processors would raise
  at its next point: the same dedupe key, so whichever comes first is the only one.
- A truck nothing was received from for longer than the signal-lost threshold (moving or not)
  raises `signal_lost`, keyed by the trip and its last fix's time: one per silence, however
  often the sweep runs or the server restarts. When a newer fix arrives, `signal_restored`
  follows (keyed the same way). Which trips are silent is kept in memory and learnt again by
  the first sweep after a restart (its repeat of `signal_lost` is a no-op); a truck that
  resumed while the server was down gets no `signal_restored`.
"""

from __future__ import annotations

from collections import defaultdict

from trucktrack.domain.alerts import AlertType, Severity, keyed_alert
from trucktrack.domain.model import GpsPoint
from trucktrack.domain.trips import ActiveTrip
from trucktrack.ports import CurrentLocations, StopLog
from trucktrack.services.alerts import AlertService
from trucktrack.services.trips import TripService

READ_CHUNK = 500
"""Current locations read per query (SQLite's bound-parameter limit)."""


class TripMonitor:
    def __init__(
        self,
        trips: TripService,
        stops: StopLog,
        alerts: AlertService,
        current: CurrentLocations,
        *,
        unexpected_stop_s: float,
        signal_lost_s: float,
    ) -> None:
        self._trips = trips
        self._stops = stops
        self._alerts = alerts
        self._current = current
        self._unexpected_ms = int(unexpected_stop_s * 1000)
        self._signal_lost_ms = int(signal_lost_s * 1000)
        self._silent: dict[tuple[str, str], int] = {}
        """(fleet, trip) of the trucks gone silent -> the time of their last fix then."""

    async def run_once(self, now_ms: int) -> int:
        """Check every active trip once; returns how many new alerts it raised."""
        self._trips.forget_finished(now_ms)
        active = self._trips.windows.active()
        by_fleet: dict[str, list[str]] = defaultdict(list)
        for trip in active:
            by_fleet[trip.fleet_id].append(trip.vehicle_id)
        newest: dict[tuple[str, str], GpsPoint] = {}
        for fleet_id, vehicles in by_fleet.items():
            for i in range(0, len(vehicles), READ_CHUNK):
                found = self._current.get_many(fleet_id, vehicles[i : i + READ_CHUNK])
                newest.update(((fleet_id, v), p) for v, p in found.items())
        raised = 0
        still_silent: dict[tuple[str, str], int] = {}
        for trip in active:
            point = newest.get((trip.fleet_id, trip.vehicle_id))
            raised += await self._check_stop(trip.fleet_id, trip.vehicle_id, trip.trip_id, now_ms)
            raised += await self._check_signal(trip, point, now_ms, still_silent)
        self._silent = still_silent  # trips no longer active are forgotten
        return raised

    async def _check_stop(self, fleet_id: str, vehicle_id: str, trip_id: str, now_ms: int) -> int:
        stop = self._stops.open_stop(fleet_id, vehicle_id)
        if stop is None or stop.authorised or now_ms - stop.started_ts < self._unexpected_ms:
            return 0
        alert = keyed_alert(
            f"unexpected_stop:{vehicle_id}:{stop.started_ts}",
            AlertType.UNEXPECTED_STOP,
            Severity.WARNING,
            fleet_id=fleet_id,
            vehicle_id=vehicle_id,
            ts=now_ms,
            lat=stop.lat,
            lng=stop.lng,
            trip_id=trip_id,
            details={
                "stopped_since": stop.started_ts,
                "duration_s": (now_ms - stop.started_ts) / 1000,
                "found_by": "monitor",
            },
            created_at=now_ms,
        )
        return await self._alerts.record(alert)

    async def _check_signal(
        self,
        trip: ActiveTrip,
        point: GpsPoint | None,
        now_ms: int,
        still_silent: dict[tuple[str, str], int],
    ) -> int:
        """signal_lost once the truck has been silent too long, signal_restored at its next fix.
        Silence counts from its newest point's arrival, at the earliest from when trip_started
        was recorded (a back-dated start does not make a truck silent at once)."""
        fleet_id, vehicle_id, trip_id = trip.fleet_id, trip.vehicle_id, trip.trip_id
        key = (fleet_id, trip_id)
        lost_at = self._silent.get(key)
        heard_at = max(trip.watched_from, 0 if point is None else point.received_at)
        if point is not None and point.ts < trip.started_at:
            point = None  # its newest fix is from before the trip
        last_ts = trip.started_at if point is None else point.ts
        if lost_at is not None and last_ts > lost_at:
            assert point is not None
            restored = keyed_alert(
                f"signal_restored:{trip_id}:{lost_at}",
                AlertType.SIGNAL_RESTORED,
                Severity.INFO,
                fleet_id=fleet_id, vehicle_id=vehicle_id, ts=point.ts, lat=point.lat,
                lng=point.lng, trip_id=trip_id, created_at=now_ms,
                details={"silent_since": lost_at, "gap_s": (point.ts - lost_at) / 1000,
                         "found_by": "monitor"},
            )  # fmt: skip
            return await self._alerts.record(restored)
        if now_ms - heard_at <= self._signal_lost_ms:
            return 0
        still_silent[key] = last_ts
        if lost_at == last_ts:
            return 0  # already raised for this silence
        lost = keyed_alert(
            f"signal_lost:{trip_id}:{last_ts}",
            AlertType.SIGNAL_LOST,
            Severity.WARNING,
            fleet_id=fleet_id, vehicle_id=vehicle_id, ts=now_ms,
            lat=None if point is None else point.lat, lng=None if point is None else point.lng,
            trip_id=trip_id, created_at=now_ms,
            details={"last_fix_at": None if point is None else point.ts,
                     "silent_s": (now_ms - heard_at) / 1000, "found_by": "monitor"},
        )  # fmt: skip
        return await self._alerts.record(lost)

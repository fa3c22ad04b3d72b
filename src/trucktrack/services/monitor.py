"""The trip monitor: a scheduled sweep over active trips (the spec's monitor-route-compliance,
run every minute by EventBridge there, by a loop here).

Every point of an active trip is already checked as it arrives; what no point can reveal is a
truck that went silent. A truck whose stop detector has an open stop outside every
`stop_allowed` fence, longer than the unexpected-stop threshold by the wall clock, raises the
`unexpected_stop` alert the processors would raise at its next point: the same dedupe key, so
whichever comes first is the only one.
"""

from __future__ import annotations

from trucktrack.domain.alerts import AlertType, Severity, keyed_alert
from trucktrack.ports import StopLog
from trucktrack.services.alerts import AlertService
from trucktrack.services.trips import TripService


class TripMonitor:
    def __init__(
        self,
        trips: TripService,
        stops: StopLog,
        alerts: AlertService,
        *,
        unexpected_stop_s: float,
    ) -> None:
        self._trips = trips
        self._stops = stops
        self._alerts = alerts
        self._unexpected_ms = int(unexpected_stop_s * 1000)

    async def run_once(self, now_ms: int) -> int:
        """Check every active trip once; returns how many new alerts it raised."""
        self._trips.forget_finished(now_ms)
        raised = 0
        for fleet_id, vehicle_id, trip_id in self._trips.windows.active():
            stop = self._stops.open_stop(fleet_id, vehicle_id)
            if stop is None or stop.authorised or now_ms - stop.started_ts < self._unexpected_ms:
                continue
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
            raised += await self._alerts.record(alert)
        return raised

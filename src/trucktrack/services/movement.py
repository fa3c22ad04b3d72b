"""What the processors recorded about how vehicles moved: stops and filtered distance."""

from __future__ import annotations

import msgspec

from trucktrack.domain.model import Principal
from trucktrack.domain.stops import Stop
from trucktrack.errors import NotFound
from trucktrack.ports import Odometer, PointLog, StopLog
from trucktrack.services.cursors import MAX_TIME_MS, decode_cursor, encode_cursor


class StopPage(msgspec.Struct, frozen=True):
    stops: list[Stop]
    next_cursor: str | None


class MovementService:
    def __init__(self, stops: StopLog, odometer: Odometer, log: PointLog) -> None:
        self._stops = stops
        self._odometer = odometer
        self._log = log

    def stops(
        self,
        principal: Principal,
        vehicle_id: str,
        *,
        since_ms: int | None,
        until_ms: int | None,
        cursor: str | None,
        limit: int,
    ) -> StopPage:
        """A vehicle's stops in start order (404 for a vehicle this caller cannot see)."""
        if not principal.may_see(vehicle_id) or self._log.fleet_of(vehicle_id) != (
            principal.fleet_id
        ):
            raise NotFound(f"no vehicle {vehicle_id!r}")
        after = decode_cursor(cursor, int) if cursor else None
        found = self._stops.stops(
            principal.fleet_id,
            vehicle_id,
            since_ms=since_ms or 0,
            until_ms=until_ms or MAX_TIME_MS,
            after=after,
            limit=limit + 1,
        )
        page, more = found[:limit], len(found) > limit
        cursor = encode_cursor(page[-1].started_ts) if more else None
        return StopPage([s for s in page if principal.may_see_trip(s.trip_id)], cursor)

    def trip_distance_m(self, principal: Principal, trip_id: str) -> float | None:
        """The trip's filtered distance so far (published every processor snapshot)."""
        return self._odometer.trip_m(principal.fleet_id, trip_id)

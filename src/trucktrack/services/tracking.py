"""Reading positions back: current location, many at once, and a trip's history across tiers."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import msgspec

from trucktrack.domain.model import GpsPoint, Principal
from trucktrack.domain.timefmt import HOUR_MS
from trucktrack.errors import NotFound
from trucktrack.ports import ColdPointStore, CurrentLocations, PointLog
from trucktrack.services.cursors import MAX_TIME_MS, decode_time_cursor, encode_cursor


class TripHistoryPage(msgspec.Struct, frozen=True):
    points: list[GpsPoint]
    next_cursor: str | None


class TrackingService:
    """Current locations (with the spec's 24 h TTL) and trip history spanning hot and cold tiers."""

    def __init__(
        self,
        current: CurrentLocations,
        log: PointLog,
        cold: ColdPointStore,
        *,
        location_ttl_h: float,
    ) -> None:
        self._current = current
        self._log = log
        self._cold = cold
        self._ttl_ms = int(location_ttl_h * HOUR_MS)

    def location(self, principal: Principal, vehicle_id: str, now_ms: int) -> GpsPoint:
        point = None
        if principal.may_see(vehicle_id):
            point = self._current.get(principal.fleet_id, vehicle_id)
        if point is not None and not principal.may_see_trip(point.trip_id):
            point = None  # a trip-limited viewer sees the truck only while on its trip
        if point is None or point.ts < now_ms - self._ttl_ms:
            raise NotFound(f"no current location for vehicle {vehicle_id!r}")
        return point

    def locations(
        self, principal: Principal, vehicle_ids: Sequence[str], now_ms: int
    ) -> tuple[dict[str, GpsPoint], list[str]]:
        """Current locations of up to 100 vehicles; the ones not known (or stale) are `missing`."""
        wanted = list(dict.fromkeys(v for v in vehicle_ids if principal.may_see(v)))
        found = self._current.get_many(principal.fleet_id, wanted)
        fresh = {
            v: p
            for v, p in found.items()
            if p.ts >= now_ms - self._ttl_ms and principal.may_see_trip(p.trip_id)
        }
        missing = [v for v in dict.fromkeys(vehicle_ids) if v not in fresh]
        return fresh, missing

    def _trip_exists(self, principal: Principal, trip_id: str) -> bool:
        """Whether the trip has any point this caller may see, in either tier."""
        query = dict(from_ms=0, to_ms=MAX_TIME_MS, after=None, limit=1, vehicles=principal.vehicles)
        return bool(
            self._log.trip_points(principal.fleet_id, trip_id, **query)  # type: ignore[arg-type]
            or self._cold.trip_points(principal.fleet_id, trip_id, **query)  # type: ignore[arg-type]
        )

    def trip_history(
        self,
        principal: Principal,
        trip_id: str,
        *,
        from_ms: int | None,
        to_ms: int | None,
        cursor: str | None,
        limit: int,
    ) -> TripHistoryPage:
        """One page of a trip's points in device-time order, merged from both tiers."""
        if not principal.may_see_trip(trip_id):
            raise NotFound(f"no points for trip {trip_id!r}")
        after = decode_time_cursor(cursor) if cursor else None
        query = dict(
            from_ms=from_ms if from_ms is not None else 0,
            to_ms=to_ms if to_ms is not None else MAX_TIME_MS,
            after=after,
            limit=limit + 1,
            vehicles=principal.vehicles,
        )
        hot = self._log.trip_points(principal.fleet_id, trip_id, **query)  # type: ignore[arg-type]
        cold = self._cold.trip_points(principal.fleet_id, trip_id, **query)  # type: ignore[arg-type]
        merged: list[GpsPoint] = []
        last: tuple[int, str] | None = None
        for point in heapq.merge(cold, hot, key=lambda p: (p.ts, p.vehicle_id)):
            key = (point.ts, point.vehicle_id)
            if key == last:  # a point still in both tiers while a day is being moved
                continue
            last = key
            merged.append(point)
            if len(merged) > limit:
                break
        page, more = merged[:limit], len(merged) > limit
        if not page and after is None and not self._trip_exists(principal, trip_id):
            raise NotFound(f"no points for trip {trip_id!r}")
        return TripHistoryPage(
            page, encode_cursor([page[-1].ts, page[-1].vehicle_id]) if more else None
        )

"""What a dispatcher's live map is sent: a vehicle's view, what changed since the last message,
and how a map viewport is thinned at low zoom. Pure."""

from __future__ import annotations

from typing import Annotated

import msgspec

from trucktrack.domain.model import GpsPoint

View = dict[str, object]
FULL_DETAIL_ZOOM = 13
"""From this zoom on every vehicle in the viewport is sent; below it, one per map cell."""
CELLS_PER_TILE = 8
"""Cells across one 256-pixel map tile when thinning: about one vehicle per 32 pixels."""


def view_of(p: GpsPoint) -> View:
    """The fields a live map shows for a vehicle."""
    return {
        "vehicle_id": p.vehicle_id,
        "lat": p.lat,
        "lng": p.lng,
        "speed": p.speed,
        "heading": p.heading,
        "accuracy": p.accuracy,
        "timestamp_ms": p.ts,
        "trip_id": p.trip_id,
        "driver_id": p.driver_id,
        "engine_status": p.engine_status,
    }


def delta(before: View | None, now: View) -> View:
    """`now` less the fields unchanged since `before` (vehicle and time are always sent)."""
    if before is None:
        return dict(now)
    return {
        k: v
        for k, v in now.items()
        if k in ("vehicle_id", "timestamp_ms") or before.get(k, ...) != v
    }


Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]


class Area(msgspec.Struct, frozen=True):
    """A map viewport: west, south, east, north (west > east crosses the antimeridian)."""

    west: float
    south: float
    east: float
    north: float
    zoom: int

    def contains(self, lat: float, lng: float) -> bool:
        if not self.south <= lat <= self.north:
            return False
        if self.west <= self.east:
            return self.west <= lng <= self.east
        return lng >= self.west or lng <= self.east

    def cell(self, lat: float, lng: float) -> tuple[int, int] | None:
        """The thinning cell of a position; None at zooms shown in full detail."""
        if self.zoom >= FULL_DETAIL_ZOOM:
            return None
        size = 360.0 / (2**self.zoom) / CELLS_PER_TILE
        return int((lng + 180.0) // size), int((lat + 90.0) // size)

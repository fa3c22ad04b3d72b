"""What a dispatcher's live map is sent: a vehicle's view, what changed since the last message,
how a map viewport is thinned at low zoom, and which vehicles an area shows. Pure."""

from __future__ import annotations

from typing import Annotated

import msgspec

from trucktrack.domain.model import GpsPoint

View = dict[str, object]
FULL_DETAIL_ZOOM = 13
"""From this zoom on every vehicle in the viewport is sent; below it, one per map cell."""
CELLS_PER_TILE = 8
"""Cells across one 256-pixel map tile when thinning: about one vehicle per 32 pixels."""
CELL_HOLD_MS = 10 * 60_000
"""A vehicle keeps its thinning cell against newcomers while its newest fix is at most this much
older than theirs; a holder silent for longer (parked, switched off) gives the cell up to the
vehicle that reports, so a stale marker never hides a moving truck."""


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

    @property
    def cell_deg(self) -> float | None:
        """The side of a thinning cell in degrees; None at zooms shown in full detail."""
        if self.zoom >= FULL_DETAIL_ZOOM:
            return None
        return 360.0 / (2**self.zoom) / CELLS_PER_TILE

    def cell(self, lat: float, lng: float) -> tuple[int, int] | None:
        """The thinning cell of a position; None at zooms shown in full detail.

        Division then truncation (both sums are >= 0), exactly as the store's SQL computes it,
        so the snapshot's pick per cell and the live updates agree on every boundary."""
        size = self.cell_deg
        if size is None:
            return None
        return int((lng + 180.0) / size), int((lat + 90.0) / size)


class AreaView:
    """Which vehicles one client's map area shows: inside the viewport and, below full detail,
    one per cell (membership); `offer` reports who enters and who leaves (transitions)."""

    def __init__(self, area: Area) -> None:
        self.area = area
        self.shown: dict[str, int] = {}
        """Vehicles the area shows, with the time of the newest fix taken for each."""
        self._cells: dict[tuple[int, int], str] = {}
        self._cell_of: dict[str, tuple[int, int]] = {}

    def offer(self, vehicle_id: str, lat: float, lng: float, ts: int) -> tuple[bool, list[str]]:
        """A vehicle's new fix: (whether the area shows it, the vehicles that leave the area).

        A fix older than the one the area shows for the vehicle changes nothing."""
        seen = self.shown.get(vehicle_id)
        if seen is not None and ts <= seen:
            return True, []
        if not self.area.contains(lat, lng):
            return False, self._leave(vehicle_id)
        cell = self.area.cell(lat, lng)
        left: list[str] = []
        if cell is not None:
            holder = self._cells.get(cell)
            if holder is not None and holder != vehicle_id:
                if ts - self.shown[holder] < CELL_HOLD_MS:  # the cell is taken: hidden
                    return False, self._leave(vehicle_id)
                left = self._leave(holder)  # a silent holder gives the cell up
            old = self._cell_of.get(vehicle_id)
            if old is not None and old != cell:
                del self._cells[old]
            self._cells[cell] = vehicle_id
            self._cell_of[vehicle_id] = cell
        self.shown[vehicle_id] = ts
        return True, left

    def _leave(self, vehicle_id: str) -> list[str]:
        if self.shown.pop(vehicle_id, None) is None:
            return []
        cell = self._cell_of.pop(vehicle_id, None)
        if cell is not None:
            del self._cells[cell]
        return [vehicle_id]

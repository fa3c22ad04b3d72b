"""Geofence shapes and membership: which fences contain a point, which a segment crosses.

Membership is kept apart from transitions (as Traccar's GeofenceHandler and tile38's fence.go
do): `GeofenceIndex` answers "which fences" for whole arrays of points at once through a shapely
STRtree, never by looping over fences per point. Shapes are in WGS84 lng/lat; circles and
corridors are built as polygons from metric sizes with a local equirectangular projection, which
is accurate to well under 1% for the sizes fences have (metres to tens of kilometres).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated

import msgspec
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from trucktrack.domain.geo import EARTH_RADIUS_M

MAX_VERTICES = 10_000
CIRCLE_SEGMENTS = 64


class BadGeometry(ValueError):
    """A fence shape that cannot be used, with the reason."""


class FenceKind(StrEnum):
    CIRCULAR = "circular"
    POLYGON = "polygon"
    CORRIDOR = "corridor"


HourMinute = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class FenceRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a fence means for the trucks near it."""

    alert_on_entry: bool = True
    alert_on_exit: bool = True
    restricted: bool = False
    """Being inside is a violation (e.g. a city no-entry zone for trucks)."""
    restricted_hours: list[tuple[HourMinute, HourMinute]] | None = None
    """Local [from, to] "HH:MM" windows when `restricted` applies; None: always."""
    speed_limit_kmh: Annotated[float, msgspec.Meta(gt=0, le=300)] | None = None
    stop_allowed: bool = False
    """Depots, dhabas, fuel stations: stops inside are authorised."""
    max_dwell_min: Annotated[float, msgspec.Meta(gt=0)] | None = None
    min_dwell_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 0.0
    """Debounce: a change of inside/outside must hold this long before it counts."""
    vehicle_ids: list[str] | None = None
    trip_ids: list[str] | None = None


class Geofence(msgspec.Struct, frozen=True, kw_only=True):
    """A fence as stored: GeoJSON geometry in [lng, lat], sizes in metres."""

    geofence_id: str
    fleet_id: str
    name: str
    kind: FenceKind
    geometry: dict[str, object]
    """Circular: a GeoJSON Point (the centre); polygon: Polygon or MultiPolygon; corridor:
    LineString."""
    radius_m: float | None = None
    width_m: float | None = None
    rules: FenceRules = FenceRules()
    active: bool = True
    created_by: str = ""
    created_at: int = 0
    updated_at: int = 0


def fence_shape(fence: Geofence) -> BaseGeometry:
    """The fence's area as a shapely geometry; BadGeometry says what is wrong with it."""
    geometry = fence.geometry
    if fence.kind is FenceKind.CIRCULAR:
        coords = geometry.get("coordinates") if geometry.get("type") == "Point" else None
        if not isinstance(coords, list) or len(coords) != 2:
            raise BadGeometry("a circular fence needs a GeoJSON Point centre [lng, lat]")
        if fence.radius_m is None:
            raise BadGeometry("a circular fence needs radius_m")
        try:
            lng, lat = float(coords[0]), float(coords[1])
        except (TypeError, ValueError):
            raise BadGeometry("the centre must be [lng, lat] numbers") from None
        return circle(lat, lng, fence.radius_m)
    if fence.kind is FenceKind.CORRIDOR:
        if geometry.get("type") != "LineString":
            raise BadGeometry("a corridor needs a GeoJSON LineString")
        if fence.width_m is None:
            raise BadGeometry("a corridor needs width_m")
        line = geometry.get("coordinates")
        if not isinstance(line, list):
            raise BadGeometry("a LineString needs a list of [lng, lat] positions")
        try:
            return corridor(line, fence.width_m)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, BadGeometry):
                raise
            raise BadGeometry("a LineString needs a list of [lng, lat] positions") from None
    return polygon(geometry)


def _check_lng_lat(coords: np.ndarray) -> None:
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise BadGeometry("coordinates must be [lng, lat] pairs")
    if not np.isfinite(coords).all():
        raise BadGeometry("coordinates must be finite numbers")
    if (np.abs(coords[:, 0]) > 180).any() or (np.abs(coords[:, 1]) > 90).any():
        raise BadGeometry("coordinates out of range: lng in [-180, 180], lat in [-90, 90]")


def _to_local(coords: np.ndarray, lat0: float, lng0: float) -> np.ndarray:
    """lng/lat degrees to metres east/north of (lat0, lng0)."""
    k = math.pi / 180 * EARTH_RADIUS_M
    return np.column_stack(
        ((coords[:, 0] - lng0) * k * math.cos(math.radians(lat0)), (coords[:, 1] - lat0) * k)
    )


def _from_local(xy: np.ndarray, lat0: float, lng0: float) -> np.ndarray:
    k = math.pi / 180 * EARTH_RADIUS_M
    return np.column_stack(
        (xy[:, 0] / (k * math.cos(math.radians(lat0))) + lng0, xy[:, 1] / k + lat0)
    )


def circle(lat: float, lng: float, radius_m: float) -> BaseGeometry:
    """A circular fence as a 64-sided polygon around (lat, lng)."""
    if not (math.isfinite(radius_m) and radius_m > 0):
        raise BadGeometry("radius must be a positive number of metres")
    if radius_m > 500_000:
        raise BadGeometry("radius must be at most 500 km")
    _check_lng_lat(np.array([[lng, lat]], dtype=float))
    angles = np.linspace(0, 2 * math.pi, CIRCLE_SEGMENTS, endpoint=False)
    xy = np.column_stack((np.cos(angles), np.sin(angles))) * radius_m
    return shapely.Polygon(_from_local(xy, lat, lng))


def corridor(line: Sequence[Sequence[float]], width_m: float) -> BaseGeometry:
    """A corridor: every point within width/2 of a GeoJSON LineString ([lng, lat] pairs)."""
    coords = np.asarray(line, dtype=float)
    _check_lng_lat(coords)
    if len(coords) < 2:
        raise BadGeometry("a corridor needs a line of at least 2 points")
    if len(coords) > MAX_VERTICES:
        raise BadGeometry(f"a corridor line may have at most {MAX_VERTICES} points")
    if not (math.isfinite(width_m) and 0 < width_m <= 50_000):
        raise BadGeometry("width must be between 0 and 50 km")
    lat0, lng0 = float(coords[:, 1].mean()), float(coords[:, 0].mean())
    band = shapely.LineString(_to_local(coords, lat0, lng0)).buffer(width_m / 2, quad_segs=8)
    return shapely.Polygon(_from_local(np.asarray(band.exterior.coords), lat0, lng0))


def polygon(geojson: dict[str, object]) -> BaseGeometry:
    """A GeoJSON Polygon or MultiPolygon (holes allowed), checked for validity."""
    kind = geojson.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        raise BadGeometry("geometry must be a GeoJSON Polygon or MultiPolygon")
    rings = geojson.get("coordinates")
    polygons = [rings] if kind == "Polygon" else rings
    if not isinstance(polygons, list) or not polygons:
        raise BadGeometry("coordinates must be a list of linear rings")
    parts = []
    vertices = 0
    for rings_of_one in polygons:
        if not isinstance(rings_of_one, list) or not rings_of_one:
            raise BadGeometry("a polygon needs at least an outer ring")
        arrays = []
        for ring in rings_of_one:
            try:
                coords = np.asarray(ring, dtype=float)
            except (TypeError, ValueError):
                raise BadGeometry("a ring must be a list of [lng, lat] pairs") from None
            _check_lng_lat(coords)
            if len(coords) < 4:
                raise BadGeometry("a linear ring needs at least 4 positions")
            if not np.array_equal(coords[0], coords[-1]):
                raise BadGeometry("a linear ring must be closed (first position = last)")
            vertices += len(coords)
            arrays.append(coords)
        parts.append(shapely.Polygon(arrays[0], arrays[1:]))
    if vertices > MAX_VERTICES:
        raise BadGeometry(f"a polygon may have at most {MAX_VERTICES} vertices")
    shape = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    if not shape.is_valid:
        raise BadGeometry(f"invalid polygon: {shapely.is_valid_reason(shape)}")
    return shape


class GeofenceIndex:
    """All active fences in one STRtree; queries take arrays of points or segments."""

    def __init__(self, fences: Sequence[tuple[str, BaseGeometry]]) -> None:
        self.fence_ids = np.array([fid for fid, _ in fences], dtype=object)
        self.shapes = np.array([shape for _, shape in fences], dtype=object)
        shapely.prepare(self.shapes)
        self._tree = shapely.STRtree(self.shapes)

    def query(self, geometries: np.ndarray) -> np.ndarray:
        """(geometry index, fence index) pairs of every fence each geometry touches."""
        pairs: np.ndarray = self._tree.query(geometries, predicate="intersects")
        return pairs

    def containing(self, lng: np.ndarray, lat: np.ndarray) -> list[frozenset[str]]:
        """For each point, the ids of the fences that contain it (boundary counts as inside)."""
        points = shapely.points(np.asarray(lng, dtype=float), np.asarray(lat, dtype=float))
        return self._group(len(points), self._tree.query(points, predicate="intersects"))

    def crossed(
        self, lng0: np.ndarray, lat0: np.ndarray, lng1: np.ndarray, lat1: np.ndarray
    ) -> list[frozenset[str]]:
        """For each segment between two consecutive fixes, the fences it touches: catches a
        fence passed between two sparse fixes (a corridor jumped over, a small depot)."""
        coords = np.stack(
            [np.column_stack((lng0, lat0)), np.column_stack((lng1, lat1))], axis=1
        ).astype(float)
        segments = shapely.linestrings(coords)
        return self._group(len(segments), self._tree.query(segments, predicate="intersects"))

    def _group(self, n: int, pairs: np.ndarray) -> list[frozenset[str]]:
        found: list[frozenset[str]] = [frozenset()] * n
        if pairs.shape[1] == 0:
            return found
        order = np.argsort(pairs[0], kind="stable")
        items, fences = pairs[0][order], pairs[1][order]
        starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
        ends = np.r_[starts[1:], len(items)]
        for start, end in zip(starts, ends, strict=True):
            found[items[start]] = frozenset(self.fence_ids[fences[start:end]])
        return found

    def naive_containing(self, lng: np.ndarray, lat: np.ndarray) -> list[frozenset[str]]:
        """The spec's sample approach (every fence tested for every point), for comparison."""
        out = []
        for x, y in zip(lng, lat, strict=True):
            point = shapely.Point(float(x), float(y))
            out.append(
                frozenset(
                    fid
                    for fid, shape in zip(self.fence_ids, self.shapes, strict=True)
                    if shape.intersects(point)
                )
            )
        return out

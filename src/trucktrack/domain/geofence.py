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
from typing import Annotated, Any

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
    """All active fences; queries take whole arrays of points or segments.

    Two ways to the same answer. `point_pairs`/`segment_pairs` (the processors' hot path)
    find candidates in a uniform grid over the fences' bounding boxes with numpy alone, then
    test only those exactly against the prepared shapes: no shapely object is made per point.
    `containing`/`crossed` ask a shapely STRtree, the plain reference the tests compare with.
    """

    def __init__(self, fences: Sequence[tuple[str, BaseGeometry]]) -> None:
        self.fence_ids = np.array([fid for fid, _ in fences], dtype=object)
        self.shapes = np.array([shape for _, shape in fences], dtype=object)
        shapely.prepare(self.shapes)
        self._tree = shapely.STRtree(self.shapes)
        self._grid = _Grid(shapely.bounds(self.shapes).reshape(-1, 4))

    def point_pairs(self, lng: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """(point index, fence index) of every fence containing each point (boundary counts)."""
        at, fence = self._grid.candidates(lng, lat, lng, lat)
        if len(at):
            hit = shapely.intersects_xy(self.shapes[fence], lng[at], lat[at])
            at, fence = at[hit], fence[hit]
        return np.vstack((at, fence))

    def segment_pairs(
        self, lng0: np.ndarray, lat0: np.ndarray, lng1: np.ndarray, lat1: np.ndarray
    ) -> np.ndarray:
        """(segment index, fence index) of every fence each segment touches."""
        at, fence, long = self._grid.candidates(
            np.minimum(lng0, lng1), np.minimum(lat0, lat1),
            np.maximum(lng0, lng1), np.maximum(lat0, lat1), long_ones=True,
        )  # fmt: skip
        if len(at):
            lines = shapely.linestrings(
                np.stack((np.column_stack((lng0[at], lat0[at])),
                          np.column_stack((lng1[at], lat1[at]))), axis=1)
            )  # fmt: skip
            hit = shapely.intersects(self.shapes[fence], lines)
            at, fence = at[hit], fence[hit]
        if len(long):  # segments spanning many grid cells (a long gap between fixes)
            far = self.crossed_pairs(lng0[long], lat0[long], lng1[long], lat1[long])
            at, fence = np.r_[at, long[far[0]]], np.r_[fence, far[1]]
        return np.vstack((at, fence))

    def crossed_pairs(
        self, lng0: np.ndarray, lat0: np.ndarray, lng1: np.ndarray, lat1: np.ndarray
    ) -> np.ndarray:
        """`segment_pairs` through the STRtree."""
        coords = np.stack(
            [np.column_stack((lng0, lat0)), np.column_stack((lng1, lat1))], axis=1
        ).astype(float)
        pairs: np.ndarray = self._tree.query(shapely.linestrings(coords), predicate="intersects")
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
        return self._group(len(lng0), self.crossed_pairs(lng0, lat0, lng1, lat1))

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


class _Grid:
    """Fence bounding boxes bucketed in square cells (about twice the typical fence's size),
    as sorted cell keys with the fences of each: a point's candidates are one lookup."""

    MAX_CELLS = 4_000_000  # cells across the covered area, at most

    def __init__(self, bounds: np.ndarray) -> None:
        self.bounds = bounds
        if not len(bounds):
            self.size, self.x0, self.y0, self.columns = 1.0, 0.0, 0.0, 1
            self.keys = self.starts = self.fences = np.zeros(0, dtype=np.int64)
            return
        extent = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
        self.x0, self.y0 = float(bounds[:, 0].min()), float(bounds[:, 1].min())
        width = float(bounds[:, 2].max()) - self.x0
        height = float(bounds[:, 3].max()) - self.y0
        size = max(2 * float(np.median(extent)), 1e-4)
        size = max(size, math.sqrt(max(width * height, 1e-12) / self.MAX_CELLS))
        self.size = size
        self.columns = int(height / size) + 2
        ix0, iy0 = self._cell(bounds[:, 0], bounds[:, 1])
        ix1, iy1 = self._cell(bounds[:, 2], bounds[:, 3])
        spans_x, spans_y = ix1 - ix0 + 1, iy1 - iy0 + 1
        counts = spans_x * spans_y
        fence = np.repeat(np.arange(len(bounds)), counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        key = (np.repeat(ix0, counts) + offset // np.repeat(spans_y, counts)) * self.columns + (
            np.repeat(iy0, counts) + offset % np.repeat(spans_y, counts)
        )
        order = np.argsort(key, kind="stable")
        key, self.fences = key[order], fence[order]
        first = np.r_[True, key[1:] != key[:-1]]
        self.keys = key[first]
        self.starts = np.r_[np.flatnonzero(first), len(key)]

    def _cell(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ix = np.floor((np.asarray(x, dtype=float) - self.x0) / self.size).astype(np.int64)
        iy = np.floor((np.asarray(y, dtype=float) - self.y0) / self.size).astype(np.int64)
        return ix, iy

    def candidates(
        self,
        minx: np.ndarray,
        miny: np.ndarray,
        maxx: np.ndarray,
        maxy: np.ndarray,
        long_ones: bool = False,
    ) -> Any:
        """(item, fence) pairs whose bounding boxes overlap, for boxes of at most 2x2 cells;
        with `long_ones`, also the indexes of larger boxes, left to the caller."""
        empty = np.zeros(0, dtype=np.int64)
        n = len(minx)
        if not len(self.keys) or not n:
            return (empty, empty, empty) if long_ones else (empty, empty)
        ix0, iy0 = self._cell(minx, miny)
        ix1, iy1 = self._cell(maxx, maxy)
        small = (ix1 - ix0 <= 1) & (iy1 - iy0 <= 1)
        items = np.arange(n)
        if long_ones:
            long = items[~small]
            items = items[small]
            ix0, iy0, ix1, iy1 = ix0[small], iy0[small], ix1[small], iy1[small]
        # Up to four cells per box; a repeated cell is dropped before the lookup.
        cx = np.concatenate((ix0, ix1, ix0, ix1))
        cy = np.concatenate((iy0, iy0, iy1, iy1))
        item = np.tile(items, 4)
        keep = np.r_[np.ones(len(items), bool), ix1 != ix0, iy1 != iy0, (ix1 != ix0) & (iy1 != iy0)]
        inside = keep & (cx >= 0) & (cy >= 0) & (cy < self.columns)
        cx, cy, item = cx[inside], cy[inside], item[inside]
        key = cx * self.columns + cy
        slot = np.searchsorted(self.keys, key)
        slot = np.minimum(slot, len(self.keys) - 1)
        found = self.keys[slot] == key
        item, slot = item[found], slot[found]
        counts = self.starts[slot + 1] - self.starts[slot]
        item = np.repeat(item, counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        fence = self.fences[np.repeat(self.starts[slot], counts) + offset]
        b = self.bounds[fence]
        overlap = (
            (b[:, 0] <= maxx[item]) & (b[:, 2] >= minx[item])
            & (b[:, 1] <= maxy[item]) & (b[:, 3] >= miny[item])
        )  # fmt: skip
        item, fence = item[overlap], fence[overlap]
        if len(item) and len(cx) > len(items):  # a fence met in two cells of one box: once
            pair = np.unique(item * len(self.bounds) + fence)
            item, fence = pair // len(self.bounds), pair % len(self.bounds)
        return (item, fence, long) if long_ones else (item, fence)

"""Fence shapes and the spatial index, on plain data with known answers."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import shapely

from trucktrack.benchmarks.geofence import _fences
from trucktrack.domain.geofence import (
    BadGeometry,
    GeofenceIndex,
    circle,
    corridor,
    fence_shape,
    polygon,
)
from trucktrack.simulation import destination

PUNE = (18.5204, 73.8567)  # lat, lng


def at(bearing: float, metres: float, origin: tuple[float, float] = PUNE) -> tuple[float, float]:
    lat, lng = destination(origin[0], origin[1], bearing, metres)
    return lng, lat


def inside(index: GeofenceIndex, *lng_lat: tuple[float, float]) -> list[frozenset[str]]:
    arr = np.array(lng_lat)
    return index.containing(arr[:, 0], arr[:, 1])


def test_a_circle_holds_what_is_within_its_radius_in_metres() -> None:
    index = GeofenceIndex([("depot", circle(PUNE[0], PUNE[1], 500))])
    for bearing in (0, 45, 90, 200, 300):
        near, far = at(bearing, 495), at(bearing, 505)
        assert inside(index, near, far) == [frozenset({"depot"}), frozenset()]


def test_a_corridor_holds_points_within_half_its_width() -> None:
    start, end = at(90, 0), at(90, 20_000)  # a 20 km road going east
    road = corridor([start, end], width_m=200)
    index = GeofenceIndex([("nh48", road)])
    mid = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
    beside = destination(mid[1], mid[0], 0, 95)
    off = destination(mid[1], mid[0], 0, 110)
    assert inside(index, mid, (beside[1], beside[0]), (off[1], off[0])) == [
        frozenset({"nh48"}), frozenset({"nh48"}), frozenset(),
    ]  # fmt: skip


def test_polygons_with_holes_and_multipolygons() -> None:
    outer = [[73.0, 18.0], [74.0, 18.0], [74.0, 19.0], [73.0, 19.0], [73.0, 18.0]]
    hole = [[73.4, 18.4], [73.6, 18.4], [73.6, 18.6], [73.4, 18.6], [73.4, 18.4]]
    far = [[80.0, 10.0], [80.1, 10.0], [80.1, 10.1], [80.0, 10.0]]
    index = GeofenceIndex([
        ("city", polygon({"type": "Polygon", "coordinates": [outer, hole]})),
        ("two", polygon({"type": "MultiPolygon", "coordinates": [[outer], [far]]})),
    ])  # fmt: skip
    got = inside(index, (73.2, 18.2), (73.5, 18.5), (80.07, 10.02), (75.0, 18.5))
    assert got == [frozenset({"city", "two"}), frozenset({"two"}), frozenset({"two"}), frozenset()]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: circle(18.5, 73.8, 0), "radius"),
        (lambda: circle(18.5, 73.8, -5), "radius"),
        (lambda: circle(18.5, 73.8, math.nan), "radius"),
        (lambda: circle(95, 73.8, 100), "range"),
        (lambda: corridor([[73.0, 18.0]], 100), "at least 2"),
        (lambda: corridor([[73.0, 18.0], [73.1, 18.0]], 0), "width"),
        (lambda: corridor([[73.0, 18.0], [190.0, 18.0]], 100), "range"),
        (lambda: polygon({"type": "Point", "coordinates": [1, 2]}), "Polygon"),
        (
            lambda: polygon({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
            "closed",
        ),
        (lambda: polygon({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}), "4"),
        (
            lambda: polygon(
                {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
            ),
            "Self-intersection",
        ),
        (lambda: polygon({"type": "Polygon", "coordinates": [[["a", 0]]]}), "lng, lat"),
        (
            lambda: polygon(
                {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], *[[1, i / 20_000] for i in range(10_001)], [0, 0]]],
                }
            ),
            "at most",
        ),
    ],
)
def test_bad_shapes_are_refused_with_a_reason(make, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadGeometry, match=reason):
        make()


def test_a_sparse_fix_that_jumps_over_a_corridor_crosses_it() -> None:
    road = corridor([at(0, -10_000), at(0, 10_000)], width_m=100)  # a road going north
    index = GeofenceIndex([("road", road), ("elsewhere", circle(10.0, 80.0, 1000))])
    west, east = at(270, 2_000), at(90, 2_000)  # two fixes 4 km apart, either side of the road
    assert inside(index, west, east) == [frozenset(), frozenset()]
    crossed = index.crossed(
        np.array([west[0], west[0]]), np.array([west[1], west[1]]),
        np.array([east[0], west[0] - 0.01]), np.array([east[1], west[1]]),
    )  # fmt: skip
    assert crossed == [frozenset({"road"}), frozenset()]


def test_the_index_agrees_with_testing_every_fence() -> None:
    rng = random.Random(4)
    fences = []
    for i in range(300):
        lat, lng = rng.uniform(18, 19), rng.uniform(73, 74)
        if i % 2:
            fences.append((f"c{i}", circle(lat, lng, rng.uniform(200, 5000))))
        else:
            end = destination(lat, lng, rng.uniform(0, 360), rng.uniform(1000, 10_000))
            fences.append((f"r{i}", corridor([[lng, lat], [end[1], end[0]]], 300)))
    index = GeofenceIndex(fences)
    lng = np.array([rng.uniform(73, 74) for _ in range(2000)])
    lat = np.array([rng.uniform(18, 19) for _ in range(2000)])
    fast = index.containing(lng, lat)
    assert fast == index.naive_containing(lng, lat)
    assert sum(map(len, fast)) > 100  # the comparison is about something


def test_an_empty_index_finds_nothing() -> None:
    assert GeofenceIndex([]).containing(np.array([73.0]), np.array([18.0])) == [frozenset()]


def test_grid_pairs_equal_the_strtree_pairs() -> None:
    """The processors' grid path and the STRtree find exactly the same fences, for points
    inside, outside and beyond every fence, short segments and long jumps."""
    fences = _fences(600, random.Random(5))
    index = GeofenceIndex([(f.geofence_id, fence_shape(f)) for f in fences])
    rng = np.random.default_rng(5)
    lat0, lng0 = rng.uniform(5, 35, 20_000), rng.uniform(65, 92, 20_000)
    near = shapely.get_coordinates(shapely.centroid(index.shapes))  # half of them by a fence
    pick = rng.integers(0, len(near), 10_000)
    lng0[:10_000] = near[pick, 0] + rng.normal(0, 0.02, 10_000)
    lat0[:10_000] = near[pick, 1] + rng.normal(0, 0.02, 10_000)
    step = rng.choice([0.001, 0.01, 0.3, 5.0], 20_000)  # metres to hundreds of km
    lat1, lng1 = lat0 + rng.normal(0, 1, 20_000) * step, lng0 + rng.normal(0, 1, 20_000) * step

    def as_set(pairs: np.ndarray) -> set[tuple[int, int]]:
        return set(zip(pairs[0].tolist(), pairs[1].tolist(), strict=True))

    tree_points = index._tree.query(shapely.points(lng0, lat0), predicate="intersects")
    assert as_set(index.point_pairs(lng0, lat0)) == as_set(tree_points)
    assert index.point_pairs(lng0, lat0).shape[1] > 100
    grid = index.segment_pairs(lng0, lat0, lng1, lat1)
    assert as_set(grid) == as_set(index.crossed_pairs(lng0, lat0, lng1, lat1))
    assert grid.shape[1] == len(as_set(grid)) > 100  # and no pair twice

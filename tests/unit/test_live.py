"""Live map rules: deltas, viewports (also across the antimeridian) and thinning by zoom."""

from __future__ import annotations

from trucktrack.domain.live import Area, delta, view_of
from trucktrack.domain.model import GpsPoint


def point(lat: float, lng: float, speed: float = 50.0, ts: int = 1) -> GpsPoint:
    return GpsPoint("f", "V1", ts, lat, lng, speed, 90.0, 10.0, None, "T1", None, None, ts)


def test_a_delta_has_the_vehicle_the_time_and_what_changed() -> None:
    before = view_of(point(18.5, 73.8))
    assert delta(None, before) == before
    after = view_of(point(18.6, 73.8, ts=2))
    assert delta(before, after) == {"vehicle_id": "V1", "timestamp_ms": 2, "lat": 18.6}
    assert delta(after, after) == {"vehicle_id": "V1", "timestamp_ms": 2}


def test_a_viewport_may_cross_the_antimeridian() -> None:
    pacific = Area(170.0, -10.0, -170.0, 10.0, zoom=5)
    assert pacific.contains(0.0, 179.0) and pacific.contains(0.0, -175.0)
    assert not pacific.contains(0.0, 0.0) and not pacific.contains(20.0, 179.0)
    india = Area(68.0, 8.0, 97.0, 37.0, zoom=5)
    assert india.contains(18.5, 73.8) and not india.contains(18.5, 100.0)


def test_low_zooms_share_cells_and_high_zooms_show_everything() -> None:
    low, high = Area(68, 8, 97, 37, zoom=4), Area(68, 8, 97, 37, zoom=15)
    assert low.cell(18.52, 73.85) == low.cell(18.53, 73.86)  # a kilometre apart: one cell
    assert low.cell(18.52, 73.85) != low.cell(28.6, 77.2)  # Pune and Delhi: two
    assert high.cell(18.52, 73.85) is None

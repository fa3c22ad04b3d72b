"""Live map rules: deltas, viewports (also across the antimeridian) and thinning by zoom."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from trucktrack.domain.live import CELL_HOLD_MS, Area, AreaView, delta, view_of
from trucktrack.domain.model import GpsPoint, Principal, Role
from trucktrack.metrics import Metrics
from trucktrack.services.live import LiveHub


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


def test_an_area_shows_one_vehicle_per_cell_and_says_who_leaves() -> None:
    view = AreaView(Area(68, 8, 97, 37, zoom=4))
    minute = 60_000
    assert view.offer("A", 18.52, 73.85, ts=0) == (True, [])
    # B in A's cell while A reports: hidden, nobody leaves
    assert view.offer("B", 18.53, 73.86, ts=minute) == (False, [])
    assert view.offer("A", 18.52, 73.85, ts=2 * minute) == (True, [])
    # A silent for longer than the hold: B takes the cell, A leaves
    later = 2 * minute + CELL_HOLD_MS
    assert view.offer("B", 18.53, 73.86, ts=later) == (True, ["A"])
    # A older fix than the one shown changes nothing
    assert view.offer("B", 10.0, 10.0, ts=later - 1) == (True, [])
    # B drives out of the viewport: it leaves
    assert view.offer("B", 40.0, 73.86, ts=later + 1) == (False, ["B"])
    assert view.shown == {}
    # a cell freed by a vehicle moving on is free for the next one
    view.offer("C", 18.52, 73.85, ts=later + 2)
    view.offer("C", 28.6, 77.2, ts=later + 3)  # to Delhi: another cell
    assert view.offer("D", 18.52, 73.85, ts=later + 4) == (True, [])
    assert set(view.shown) == {"C", "D"}


def test_moving_into_a_taken_cell_hides_a_vehicle_and_frees_its_old_cell() -> None:
    view = AreaView(Area(68, 8, 97, 37, zoom=4))
    view.offer("PUNE", 18.52, 73.85, ts=1)
    view.offer("DELHI", 28.6, 77.2, ts=1)
    assert view.offer("PUNE", 28.61, 77.21, ts=2) == (False, ["PUNE"])  # Delhi's cell is taken
    assert view.offer("OTHER", 18.52, 73.85, ts=3) == (True, [])  # Pune's cell is free


def test_full_detail_shows_every_vehicle_in_the_viewport() -> None:
    view = AreaView(Area(73.0, 18.0, 74.0, 19.0, zoom=15))
    assert view.offer("A", 18.52, 73.85, ts=1) == (True, [])
    assert view.offer("B", 18.52, 73.85, ts=1) == (True, [])
    assert view.offer("A", 20.0, 73.85, ts=2) == (False, ["A"])


def test_cells_are_numbered_by_division_then_truncation() -> None:
    area = Area(-180, -90, 180, 90, zoom=4)
    size = area.cell_deg
    assert size is not None
    for lat, lng in [(18.52, 73.85), (-33.9, 151.2), (0.0, -180.0), (89.9, 179.9)]:
        assert area.cell(lat, lng) == (int((lng + 180.0) / size), int((lat + 90.0) / size))


class NoLocations:
    """A store with no current locations: every snapshot is empty."""

    def get_many(self, fleet_id: str, vehicle_ids: Sequence[str]) -> dict[str, GpsPoint]:
        return {}

    def in_area(self, *args: object, **kwargs: object) -> list[GpsPoint]:
        return []


def test_only_a_vehicle_followed_through_the_area_alone_is_announced_as_left() -> None:
    def fix(vehicle: str, lat: float, ts: int) -> GpsPoint:
        return GpsPoint("f", vehicle, ts, lat, 73.5, 50.0, 90.0, 10.0, None, None, None, None, ts)

    async def scenario() -> list[dict[str, Any]]:
        hub = LiveHub(NoLocations(), Metrics(), location_ttl_h=1e6, min_interval_s=0)  # type: ignore[arg-type]
        sent: list[dict[str, Any]] = []

        async def send(text: str) -> None:
            sent.append(json.loads(text))

        client = hub.connect(Principal("f", Role.ADMIN), send)
        sender = asyncio.create_task(hub.run_sender(client))
        area = {"action": "track_area", "bbox": [73, 18, 74, 19], "zoom": 15}
        await hub.handle(client, json.dumps(area))
        await hub.handle(client, json.dumps({"action": "track", "vehicle_ids": ["B"]}))
        hub.publish_points("f", [fix("A", 18.5, 1), fix("B", 18.5, 1)])
        await asyncio.sleep(0.05)
        hub.publish_points("f", [fix("A", 20.0, 2), fix("B", 20.0, 2)])  # both drive out
        await asyncio.sleep(0.05)
        hub.publish_points("f", [fix("A", 20.1, 3)])  # still out: nothing more
        await asyncio.sleep(0.05)
        hub.disconnect(client)
        await sender
        return sent

    sent = asyncio.run(scenario())
    kinds = [m["type"] for m in sent]
    assert kinds == ["snapshot", "snapshot", "location_update", "left_area", "location_update"]
    assert sent[3] == {"type": "left_area", "vehicle_ids": ["A"]}  # B is tracked: it stays
    assert [u["vehicle_id"] for u in sent[4]["updates"]] == ["B"]


def test_the_rate_limit_is_paced_by_arrival_so_a_late_update_delays_no_later_one() -> None:
    """A point that reached the hub late (a slow commit) must not push back the next one:
    the limit counts from the points' arrival, not from when the previous update went out."""

    def fix(ts: int, received_at: int) -> GpsPoint:
        return GpsPoint("f", "V1", ts, 18.5, 73.5, 50.0, 90.0, 10.0, None, None, None, None,
                        received_at)  # fmt: skip

    async def scenario() -> list[tuple[float, dict[str, Any]]]:
        hub = LiveHub(NoLocations(), Metrics(), location_ttl_h=1e6, min_interval_s=0.5)  # type: ignore[arg-type]
        sent: list[tuple[float, dict[str, Any]]] = []

        async def send(text: str) -> None:
            sent.append((time.time(), json.loads(text)))

        client = hub.connect(Principal("f", Role.ADMIN), send)
        sender = asyncio.create_task(hub.run_sender(client))
        await hub.handle(client, json.dumps({"action": "track", "vehicle_ids": ["V1"]}))
        arrived = int(time.time() * 1000)
        await asyncio.sleep(0.3)  # the first point reaches the hub 0.3 s after it arrived
        hub.publish_points("f", [fix(1, arrived)])
        await asyncio.sleep(0.25)  # the next one arrives on time, 0.55 s after the first
        hub.publish_points("f", [fix(2, arrived + 550)])
        await asyncio.sleep(0.3)
        hub.disconnect(client)
        await sender
        return sent

    sent = asyncio.run(scenario())
    updates = [(at, m) for at, m in sent if m["type"] == "location_update"]
    assert [m["updates"][0]["timestamp_ms"] for _, m in updates] == [1, 2]
    # Paced by sending time it would wait until 0.3 + 0.5 s; by arrival it goes at once.
    assert updates[1][0] - updates[0][0] < 0.4

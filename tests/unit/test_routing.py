"""Route requests checked in the domain, the HTTP body's translation, and the service's guards.

The routes themselves come from real Valhalla tiles: tests/integration/test_routing.py.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import msgspec
import pytest

from trucktrack.api.routing import RouteIn, route_out
from trucktrack.domain.routing import (
    MAX_WAYPOINTS,
    LatLng,
    Maneuver,
    Optimize,
    Route,
    RouteRequest,
    TruckProfile,
    far_from_road,
    problems,
)
from trucktrack.errors import BadRequest, RoutingNotConfigured
from trucktrack.services.routing import RoutingService
from trucktrack.settings import Settings

PUNE, MUMBAI = LatLng(18.5204, 73.8567), LatLng(19.0760, 72.8777)


def request(**changes: object) -> RouteRequest:
    return msgspec.structs.replace(RouteRequest(origin=PUNE, destination=MUMBAI), **changes)


def truck(**changes: object) -> TruckProfile:
    return msgspec.structs.replace(TruckProfile(), **changes)


def test_a_plain_request_has_no_problems() -> None:
    assert problems(request()) == []
    assert problems(request(waypoints=(PUNE,) * MAX_WAYPOINTS)) == []
    assert request(waypoints=(MUMBAI,)).stops() == [PUNE, MUMBAI, MUMBAI]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"origin": LatLng(90.5, 0)}, "origin.lat must be between -90 and 90"),
        ({"destination": LatLng(0, -181)}, "destination.lng must be between -180 and 180"),
        ({"waypoints": (PUNE, LatLng(math.nan, 0))}, "waypoints[1].lat must be between"),
        ({"waypoints": (PUNE,) * (MAX_WAYPOINTS + 1)}, f"at most {MAX_WAYPOINTS} waypoints"),
        ({"vehicle": truck(height_m=-4)}, "vehicle.height_m must be above 0 and at most 10 m"),
        ({"vehicle": truck(width_m=0)}, "vehicle.width_m must be above 0"),
        ({"vehicle": truck(length_m=math.inf)}, "vehicle.length_m must be above 0"),
        ({"vehicle": truck(weight_t=25_000)}, "vehicle.weight_t must be above 0 and at most 200 t"),
        ({"vehicle": truck(axle_load_t=-1)}, "vehicle.axle_load_t must be above 0"),
        ({"vehicle": truck(axles=1)}, "vehicle.axles must be 2 to 20"),
        ({"vehicle": truck(weight_t=7, axle_load_t=9)}, "vehicle.axle_load_t cannot exceed"),
    ],
)
def test_each_problem_is_named(changes: dict[str, object], expected: str) -> None:
    found = problems(request(**changes))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_every_problem_is_reported_at_once() -> None:
    bad = request(origin=LatLng(-91, 200), vehicle=truck(height_m=0, axles=99))
    assert len(problems(bad)) == 4


def route(coordinates: tuple[tuple[float, float], ...]) -> Route:
    return Route(
        coordinates=coordinates,
        distance_m=1234.5,
        duration_s=90.0,
        uses_tolls=True,
        uses_ferries=False,
        maneuvers=(
            Maneuver(
                instruction="Drive north.",
                distance_m=1234.5,
                duration_s=90.0,
                street_names=("NH48",),
                lat=18.52,
                lng=73.85,
            ),
        ),
        warnings=("from the engine",),
    )


def test_a_route_far_from_the_requested_points_says_so() -> None:
    # The route starts ~330 m east of the origin and ends exactly at the destination.
    off = ((PUNE.lng + 0.00316, PUNE.lat), (MUMBAI.lng, MUMBAI.lat))
    (warning,) = far_from_road(request(), route(off))
    assert warning.startswith("the origin is 33") and "the route starts there" in warning
    on = ((PUNE.lng + 0.0005, PUNE.lat), (MUMBAI.lng, MUMBAI.lat))
    assert far_from_road(request(), route(on)) == []
    assert far_from_road(request(), route(())) == []


def test_the_http_body_becomes_a_domain_request_and_the_route_geojson() -> None:
    body = {
        "origin": {"lat": 18.52, "lng": 73.85},
        "destination": {"lat": 19.07, "lng": 72.87},
        "waypoints": [{"lat": 18.7, "lng": 73.4}],
        "optimize": "shortest",
        "avoid_tolls": True,
        "vehicle": {"height_m": 3.8, "width_m": 2.5, "length_m": 12, "weight_t": 16,
                    "axle_load_t": 8, "axles": 3, "hazmat": True},
    }  # fmt: skip
    domain = msgspec.convert(body, RouteIn).to_domain()
    assert domain.optimize is Optimize.SHORTEST and domain.avoid_tolls and not domain.avoid_ferries
    assert domain.waypoints == (LatLng(18.7, 73.4),)
    assert domain.vehicle == TruckProfile(
        height_m=3.8, width_m=2.5, length_m=12, weight_t=16, axle_load_t=8, axles=3, hazmat=True
    )
    out = msgspec.json.decode(
        msgspec.json.encode(route_out(route(((73.85, 18.52), (72.87, 19.07)))))
    )
    assert out["geometry"] == {
        "type": "LineString",
        "coordinates": [[73.85, 18.52], [72.87, 19.07]],
    }
    assert (out["distance_km"], out["duration_min"], out["uses_tolls"]) == (1.234, 1.5, True)
    assert out["maneuvers"][0]["street_names"] == ["NH48"]
    assert out["warnings"] == ["from the engine"]


@pytest.mark.parametrize(
    "body",
    [
        {"lat": 18.5, "lng": 73.8, "extra": 1},
        {"lat": 18.5},
        {"lat": "18.5", "lng": 73.8},
    ],
)
def test_the_http_body_is_strict(body: dict[str, object]) -> None:
    vehicle = {"height_m": 4, "width_m": 2.5, "length_m": 12, "weight_t": 16,
               "axle_load_t": 8, "axles": 3}  # fmt: skip
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"origin": body, "destination": body, "vehicle": vehicle}, RouteIn)


def test_the_service_checks_before_it_needs_an_engine() -> None:
    service = RoutingService(None)
    assert not service.configured
    with pytest.raises(BadRequest) as bad:
        asyncio.run(service.calculate(request(vehicle=truck(height_m=-1, width_m=-1))))
    assert len(bad.value.details) == 2
    with pytest.raises(RoutingNotConfigured, match="routing build-tiles"):
        asyncio.run(service.calculate(request()))
    with pytest.raises(RoutingNotConfigured, match="no tiles here"):
        RoutingService(None, unavailable="no tiles here").calculate_blocking(request())
    service.close()


def test_the_tiles_are_found_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path))
    assert settings.routing_tiles_path() is None
    (tmp_path / "routing" / "tiles").mkdir(parents=True)
    assert settings.routing_tiles_path() == tmp_path / "routing" / "tiles"
    (tmp_path / "routing" / "tiles.tar").touch()
    assert settings.routing_tiles_path() == tmp_path / "routing" / "tiles.tar"
    chosen = Settings(data_dir=str(tmp_path), routing_tiles="/srv/india.tar")
    assert chosen.routing_tiles_path() == Path("/srv/india.tar")

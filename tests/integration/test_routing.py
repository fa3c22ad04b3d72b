"""Truck routes from real Valhalla tiles of the generated test network, with known answers.

The network (src/trucktrack/road_network.py) puts each situation apart: a west and an east end
5 km apart, a 3 km direct road carrying the restriction under test, a 5 km detour. So a truck
the restriction stops drives ~7.0 km over "<situation> detour", any other ~5.0 km straight.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from trucktrack import bootstrap
from trucktrack.adapters.valhalla import ValhallaRouter, build_tiles, truck_options
from trucktrack.domain.geo import distance_m
from trucktrack.domain.routing import LatLng, Optimize, Route, RouteRequest, TruckProfile
from trucktrack.errors import BadRequest, RoutingNotConfigured, Unprocessable, Unroutable
from trucktrack.road_network import known_network
from trucktrack.services.routing import RoutingService
from trucktrack.settings import Settings

NET = known_network()
TRUCK = TruckProfile(
    height_m=4.0, width_m=2.5, length_m=16.0, weight_t=25.0, axle_load_t=9.0, axles=5
)
DIRECT_KM, DETOUR_KM = 5.0, 7.02


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("routing")
    built = build_tiles(NET.write(folder / "known.osm.pbf"), folder / "routing", threads=2)
    assert built.extract_s is not None and built.tile_count > 0
    return Path(built.tiles)


@pytest.fixture(scope="module")
def router(tiles: Path) -> Iterator[ValhallaRouter]:
    r = ValhallaRouter(tiles, cache_mb=32)
    yield r
    r.close()


def at(name: str) -> LatLng:
    return LatLng(*NET.places[name])


def ask(origin: str, destination: str, *via: str, **changes: object) -> RouteRequest:
    vehicle = msgspec.structs.replace(
        TRUCK, **{k: v for k, v in changes.items() if hasattr(TRUCK, k)}
    )
    options = {k: v for k, v in changes.items() if not hasattr(TRUCK, k)}
    return RouteRequest(
        origin=at(origin),
        destination=at(destination),
        waypoints=tuple(at(w) for w in via),
        vehicle=vehicle,
        **options,  # type: ignore[arg-type]
    )


def streets(route: Route) -> set[str]:
    return {name for m in route.maneuvers for name in m.street_names}


def km(route: Route) -> float:
    return route.distance_m / 1000


def test_tolls_are_taken_unless_avoided(router: ValhallaRouter) -> None:
    fast = router.route(ask("toll.west", "toll.east"))
    assert fast.uses_tolls and km(fast) == pytest.approx(12.0, abs=0.05)
    free = router.route(ask("toll.west", "toll.east", avoid_tolls=True))
    assert not free.uses_tolls and "Free Road" in streets(free)
    assert km(free) == pytest.approx(14.84, abs=0.05) and free.warnings == ()


def test_avoid_tolls_with_no_toll_free_way_still_routes_and_warns(router: ValhallaRouter) -> None:
    # Halfway along the toll expressway: only toll roads lead there.
    (west_lat, west_lng), (_, east_lng) = NET.places["toll.west"], NET.places["toll.east"]
    request = RouteRequest(
        origin=at("toll.west"),
        destination=LatLng(west_lat, (west_lng + east_lng) / 2),
        avoid_tolls=True,
        vehicle=TRUCK,
    )
    route = router.route(request)
    assert route.uses_tolls and km(route) == pytest.approx(6.0, abs=0.05)
    assert route.warnings == ("no route for this truck avoids tolls; this one uses toll roads",)


@pytest.mark.parametrize(
    ("situation", "stopped", "allowed"),
    [
        ("lowbridge", {"height_m": 4.2}, {"height_m": 3.0}),
        ("weakbridge", {"weight_t": 20.0}, {"weight_t": 8.0, "axle_load_t": 4.0}),
        ("narrow", {"width_m": 2.6}, {"width_m": 2.4}),
        ("short", {"length_m": 16.0}, {"length_m": 10.0}),
        ("axleload", {"axle_load_t": 10.0}, {"axle_load_t": 6.0}),
        ("axles", {"axles": 5}, {"axles": 2}),
        ("hazmat", {"hazmat": True}, {"hazmat": False}),
    ],
)
def test_a_truck_goes_round_a_limit_it_breaks_and_through_one_it_meets(
    router: ValhallaRouter, situation: str, stopped: dict[str, object], allowed: dict[str, object]
) -> None:
    around = router.route(ask(f"{situation}.west", f"{situation}.east", **stopped))
    assert km(around) == pytest.approx(DETOUR_KM, abs=0.05)
    assert f"{situation} detour" in streets(around)
    through = router.route(ask(f"{situation}.west", f"{situation}.east", **allowed))
    assert km(through) == pytest.approx(DIRECT_KM, abs=0.05)
    assert f"{situation} detour" not in streets(through)


def test_a_street_closed_to_trucks_is_never_taken(router: ValhallaRouter) -> None:
    small = router.route(ask("nohgv.west", "nohgv.east", height_m=2.0, weight_t=3.5,
                             axle_load_t=2.0, axles=2, length_m=6.0))  # fmt: skip
    assert km(small) == pytest.approx(DETOUR_KM, abs=0.05) and "nohgv detour" in streets(small)


def test_a_one_way_street_is_taken_only_its_way(router: ValhallaRouter) -> None:
    east = router.route(ask("oneway.west", "oneway.east"))
    west = router.route(ask("oneway.east", "oneway.west"))
    assert km(east) == pytest.approx(DIRECT_KM, abs=0.05)
    assert km(west) == pytest.approx(DETOUR_KM, abs=0.05) and "oneway detour" in streets(west)


def test_fastest_and_shortest_differ(router: ValhallaRouter) -> None:
    fastest = router.route(ask("speed.west", "speed.east"))
    shortest = router.route(ask("speed.west", "speed.east", optimize=Optimize.SHORTEST))
    assert "Fast Road" in streets(fastest) and km(fastest) == pytest.approx(7.02, abs=0.05)
    assert "Fast Road" not in streets(shortest) and km(shortest) == pytest.approx(5.0, abs=0.05)
    assert fastest.duration_s < shortest.duration_s


def test_ferries_are_taken_unless_avoided(router: ValhallaRouter) -> None:
    ferry = router.route(ask("ferry.west", "ferry.east"))
    assert ferry.uses_ferries and km(ferry) == pytest.approx(5.0, abs=0.05)
    road = router.route(ask("ferry.west", "ferry.east", avoid_ferries=True))
    assert not road.uses_ferries and "ferry detour" in streets(road) and km(road) > 30


def test_the_geometry_is_lng_lat_from_origin_to_destination(router: ValhallaRouter) -> None:
    route = router.route(ask("toll.west", "toll.east", "toll.detour"))
    (o_lat, o_lng), (d_lat, d_lng) = NET.places["toll.west"], NET.places["toll.east"]
    assert route.coordinates[0] == pytest.approx((o_lng, o_lat), abs=1e-5)
    assert route.coordinates[-1] == pytest.approx((d_lng, d_lat), abs=1e-5)
    w_lat, w_lng = NET.places["toll.detour"]
    assert any(distance_m(w_lat, w_lng, lat, lng) < 5 for lng, lat in route.coordinates)
    # The waypoint forces the free road; the path's length is the route's distance.
    assert "Free Road" in streets(route) and not route.uses_tolls
    length = sum(
        distance_m(a[1], a[0], b[1], b[0])
        for a, b in zip(route.coordinates, route.coordinates[1:], strict=False)
    )
    assert length == pytest.approx(route.distance_m, rel=0.01)
    assert sum(m.distance_m for m in route.maneuvers) == pytest.approx(route.distance_m, rel=0.01)
    instructions = [m.instruction for m in route.maneuvers]
    assert instructions[0].startswith("Drive east on Toll West Road")
    assert instructions[-1].startswith(("You have arrived", "Your destination"))


def test_a_yard_behind_a_low_underpass_is_unroutable_for_a_tall_truck(
    router: ValhallaRouter,
) -> None:
    with pytest.raises(Unroutable, match="no legal route for this truck") as caught:
        router.route(ask("yard.outside", "yard.inside"))
    assert caught.value.details == [
        {"engine_code": 442, "engine_message": "No path could be found for input"}
    ]
    van = router.route(ask("yard.outside", "yard.inside", height_m=2.4))
    assert "Yard Underpass" in streets(van)


def test_no_road_near_a_point_names_the_point(router: ValhallaRouter) -> None:
    with pytest.raises(Unroutable, match=r"within 1000 m of the destination$"):
        router.route(ask("toll.west", "nowhere"))
    with pytest.raises(Unroutable, match=r"within 1000 m of the origin and waypoint 1$"):
        router.route(ask("nowhere", "toll.east", "nowhere"))


def test_roads_that_do_not_connect_are_unroutable(router: ValhallaRouter) -> None:
    with pytest.raises(Unroutable, match="do not connect"):
        router.route(ask("toll.west", "island.east"))


def test_options_valhalla_gets() -> None:
    request = ask("toll.west", "toll.east", hazmat=True, optimize=Optimize.SHORTEST,
                  avoid_tolls=True, avoid_ferries=True)  # fmt: skip
    assert truck_options(request, hard=True) == {
        "height": 4.0, "width": 2.5, "length": 16.0, "weight": 25.0, "axle_load": 9.0,
        "axle_count": 5, "hazmat": True, "shortest": True, "use_tolls": 0.0,
        "exclude_tolls": True, "use_ferry": 0.0, "exclude_ferries": True,
    }  # fmt: skip
    assert "exclude_tolls" not in truck_options(request, hard=False)


def test_the_service_routes_off_the_event_loop_and_warns_far_from_roads(tiles: Path) -> None:
    service = RoutingService(ValhallaRouter(tiles), threads=2)
    lat, lng = NET.places["toll.west"]
    request = RouteRequest(
        origin=LatLng(lat + 0.0027, lng), destination=at("toll.east"), vehicle=TRUCK
    )  # ~300 m north of the road's end

    async def many() -> list[Route]:
        return await asyncio.gather(*(service.calculate(request) for _ in range(40)))

    routes = asyncio.run(many())
    assert len({r.coordinates for r in routes}) == 1
    assert routes[0].warnings == ("the origin is 300 m from the nearest road this truck may use; "
                                  "the route starts there",)  # fmt: skip
    assert service.calculate_blocking(request) == routes[0]
    with pytest.raises(BadRequest):
        service.calculate_blocking(msgspec.structs.replace(request, origin=LatLng(0, 999)))
    service.close()


def test_one_engine_per_thread_under_concurrent_use(router: ValhallaRouter) -> None:
    """An Actor shared across threads crashes the process; each thread must get its own."""
    pairs = [("lowbridge.west", "lowbridge.east"), ("oneway.east", "oneway.west"),
             ("speed.west", "speed.east"), ("toll.west", "toll.east")]  # fmt: skip
    expected = {pair: router.route(ask(*pair)).distance_m for pair in pairs}
    failures: list[BaseException] = []

    def drive(n: int) -> None:
        try:
            for i in range(25):
                pair = pairs[(n + i) % len(pairs)]
                assert router.route(ask(*pair)).distance_m == expected[pair]
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=drive, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_tiles_that_cannot_be_read_are_reported(tmp_path: Path, tiles: Path) -> None:
    with pytest.raises(RoutingNotConfigured, match="no routing tiles at"):
        ValhallaRouter(tmp_path / "missing.tar")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RoutingNotConfigured, match="no tiles in"):
        ValhallaRouter(tmp_path / "empty")
    broken = tmp_path / "broken.tar"
    broken.write_bytes(tiles.read_bytes()[:700])
    with pytest.raises(RoutingNotConfigured, match="cannot be read"):
        ValhallaRouter(broken)


def test_build_tiles_reads_osm_xml_and_refuses_what_is_not_osm(tmp_path: Path) -> None:
    xml = NET.write(tmp_path / "known.osm")
    assert xml.read_text().lstrip().startswith("<?xml")
    built = build_tiles(xml, tmp_path / "from-xml", threads=1)
    router = ValhallaRouter(Path(built.tiles))
    assert km(router.route(ask("oneway.west", "oneway.east"))) == pytest.approx(5.0, abs=0.05)
    router.close()
    with pytest.raises(BadRequest, match="no such OSM file"):
        build_tiles(tmp_path / "nope.osm.pbf", tmp_path / "out")
    junk = tmp_path / "junk.osm.pbf"
    junk.write_text("not a pbf")
    with pytest.raises(Unprocessable, match=r"could not read .*junk\.osm\.pbf: PBF error"):
        build_tiles(junk, tmp_path / "out")
    # A failed build leaves what was built before in place, and no staging folder.
    assert sorted(p.name for p in (tmp_path / "from-xml").iterdir()) == ["tiles.tar"]
    empty = tmp_path / "empty.osm"
    empty.write_text('<?xml version="1.0"?>\n<osm version="0.6" generator="t"></osm>\n')
    with pytest.raises(Unprocessable):
        build_tiles(empty, tmp_path / "out")
    assert json.loads(json.dumps(msgspec.to_builtins(built)))["tile_count"] > 0


def test_the_server_starts_without_usable_tiles_and_says_why(tmp_path: Path, tiles: Path) -> None:
    assert not bootstrap.routing(Settings(data_dir=str(tmp_path))).configured
    broken = Settings(data_dir=str(tmp_path), routing_tiles=str(tmp_path / "gone.tar"))
    service = bootstrap.routing(broken)
    with pytest.raises(RoutingNotConfigured, match=r"no routing tiles at .*gone\.tar"):
        service.calculate_blocking(ask("toll.west", "toll.east"))
    working = bootstrap.routing(Settings(data_dir=str(tmp_path), routing_tiles=str(tiles)))
    assert km(working.calculate_blocking(ask("toll.west", "toll.east"))) == pytest.approx(
        12.0, abs=0.05
    )
    working.close()

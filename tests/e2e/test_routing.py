"""POST /routing/calculate through the real server, and `trucktrack routing build-tiles`.

A server of its own routes on tiles that `trucktrack routing build-tiles` built from the
generated test network (road_network.known_network) into its data folder; the shared server
has no tiles and answers 503.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import CLI, Server, assert_error, create_token, run_cli
from trucktrack.road_network import known_network

NET = known_network()
TRUCK = {"height_m": 4.0, "width_m": 2.5, "length_m": 16.0, "weight_t": 25.0,
         "axle_load_t": 9.0, "axles": 5, "hazmat": False}  # fmt: skip
URL = "/routing/calculate"


def at(name: str) -> dict[str, float]:
    lat, lng = NET.places[name]
    return {"lat": lat, "lng": lng}


def body(origin: str = "toll.west", destination: str = "toll.east", **extra: Any) -> dict[str, Any]:
    return {"origin": at(origin), "destination": at(destination), "vehicle": TRUCK, **extra}


class Routed:
    def __init__(self, server: Server, build: subprocess.CompletedProcess[str]) -> None:
        self.server = server
        self.build = build
        data = server.data_dir
        self.tokens = {role: create_token(data, "fleet-r", role)
                       for role in ("dispatcher", "viewer", "device")}  # fmt: skip


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routed]:
    folder = tmp_path_factory.mktemp("routed")
    pbf = NET.write(folder / "known.osm.pbf")
    data = folder / "data"
    build = run_cli("routing", "build-tiles", "--pbf", str(pbf), "--data-dir", str(data))
    assert build.returncode == 0, build.stderr
    server = Server(data, env={"TRUCKTRACK_MAX_BODY_BYTES": "65536"}).start()
    try:
        yield Routed(server, build)
    finally:
        server.stop()


@pytest.fixture
def c(routed: Routed) -> Iterator[httpx.Client]:
    with routed.server.client(routed.tokens["dispatcher"]) as client:
        yield client


def test_build_tiles_puts_a_tiles_tar_in_the_data_dir(routed: Routed) -> None:
    tar = routed.server.data_dir / "routing" / "tiles.tar"
    assert tar.is_file() and tar.stat().st_size > 0
    assert "packed into tiles.tar in" in routed.build.stdout and str(tar) in routed.build.stdout
    assert "Restart `trucktrack serve`" in routed.build.stdout
    assert "Building routing tiles from" in routed.build.stderr
    assert "[INFO]" in routed.build.stderr  # Valhalla's own progress log, passed on
    assert sorted(p.name for p in tar.parent.iterdir()) == ["tiles.tar"]


def test_a_route_with_its_geometry_maneuvers_and_tolls(c: httpx.Client) -> None:
    r = c.post(URL, json=body())
    assert r.status_code == 200, r.text
    route = r.json()
    assert set(route) == {"distance_km", "duration_min", "geometry", "uses_tolls", "uses_ferries",
                          "maneuvers", "warnings"}  # fmt: skip
    assert route["distance_km"] == pytest.approx(12.0, abs=0.05)
    assert 5 < route["duration_min"] < 15 and route["uses_tolls"] is True
    geometry = route["geometry"]
    assert geometry["type"] == "LineString" and len(geometry["coordinates"]) >= 2
    (lat, lng), (dlat, dlng) = NET.places["toll.west"], NET.places["toll.east"]
    assert geometry["coordinates"][0] == pytest.approx([lng, lat], abs=1e-5)  # [lng, lat]
    assert geometry["coordinates"][-1] == pytest.approx([dlng, dlat], abs=1e-5)
    first = route["maneuvers"][0]
    assert first["instruction"] == "Drive east on Toll West Road."
    assert first["street_names"] == ["Toll West Road"] and first["distance_m"] > 0
    assert {"duration_s", "lat", "lng"} <= set(first)
    assert route["warnings"] == []


def test_avoid_tolls_shortest_waypoints_and_truck_limits(c: httpx.Client) -> None:
    free = c.post(URL, json=body(avoid_tolls=True)).json()
    assert free["uses_tolls"] is False and free["distance_km"] == pytest.approx(14.84, abs=0.05)
    assert any("Free Road" in m["street_names"] for m in free["maneuvers"])
    via = c.post(URL, json=body(waypoints=[at("toll.detour")])).json()
    assert via["uses_tolls"] is False
    shortest = c.post(URL, json=body("speed.west", "speed.east", optimize="shortest")).json()
    fastest = c.post(URL, json=body("speed.west", "speed.east", optimize="fastest")).json()
    assert shortest["distance_km"] < fastest["distance_km"]
    assert shortest["duration_min"] > fastest["duration_min"]
    tall = c.post(URL, json=body("lowbridge.west", "lowbridge.east",
                                 vehicle={**TRUCK, "height_m": 4.2})).json()  # fmt: skip
    low = c.post(URL, json=body("lowbridge.west", "lowbridge.east",
                                vehicle={**TRUCK, "height_m": 3.0})).json()  # fmt: skip
    assert tall["distance_km"] == pytest.approx(7.02, abs=0.05)
    assert low["distance_km"] == pytest.approx(5.0, abs=0.05)
    ferry = c.post(URL, json=body("ferry.west", "ferry.east", avoid_ferries=True)).json()
    assert ferry["uses_ferries"] is False


def test_every_role_of_any_fleet_may_route(routed: Routed) -> None:
    for role, token in routed.tokens.items():
        with routed.server.client(token) as client:
            assert client.post(URL, json=body()).status_code == 200, role


def test_routing_needs_a_valid_token(routed: Routed) -> None:
    with routed.server.client(None) as anonymous:
        r = anonymous.post(URL, json=body())
    assert_error(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")
    with routed.server.client("tt_not-a-token") as stranger:
        assert_error(stranger.post(URL, json=body()), 401, "unauthenticated")


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"destination": at("toll.east"), "vehicle": TRUCK}, "origin"),
        ({"origin": at("toll.west"), "destination": at("toll.east")}, "vehicle"),
        (body(origin="toll.west") | {"origin": {"lat": 18.5}}, "lng"),
        (body() | {"origin": {"lat": 90.01, "lng": 78}}, "origin.lat"),
        (body() | {"destination": {"lat": 20, "lng": -180.5}}, "destination.lng"),
        (body() | {"destination": {"lat": "north", "lng": 78}}, "destination.lat"),
        (body(vehicle={**TRUCK, "height_m": -4.2}), "vehicle.height_m"),
        (body(vehicle={**TRUCK, "weight_t": 0}), "vehicle.weight_t"),
        (body(vehicle={**TRUCK, "axles": 1}), "vehicle.axles"),
        (body(vehicle={**TRUCK, "hazmat": "yes"}), "vehicle.hazmat"),
        (body(vehicle={k: v for k, v in TRUCK.items() if k != "length_m"}), "length_m"),
        (body(optimize="scenic"), "optimize"),
        (body(avoid_tolls="sometimes"), "avoid_tolls"),
        (body(waypoints=[at("toll.detour")] * 21), "waypoints"),
        (body(waypoints=[{"lat": 20, "lng": 200}]), "waypoints[0].lng"),
        (body(avoid_toll=True), "avoid_toll"),
        ([body()], "data"),
    ],
)
def test_bad_requests_say_what_is_wrong(c: httpx.Client, payload: object, where: str) -> None:
    error = assert_error(c.post(URL, json=payload), 400, "validation_error")
    assert where in str(error["details"]), error


def test_bad_json_an_impossible_truck_and_an_oversized_body(c: httpx.Client) -> None:
    assert_error(c.post(URL, content=b'{"origin": ', headers={"Content-Type": "application/json"}),
                 400, "bad_request")  # fmt: skip
    error = assert_error(
        c.post(URL, json=body(vehicle={**TRUCK, "weight_t": 7, "axle_load_t": 9})),
        400,
        "bad_request",
    )
    assert error["details"] == ["vehicle.axle_load_t cannot exceed vehicle.weight_t"]
    huge = body(note="x" * 70_000)  # the routing server takes bodies up to 64 KiB
    assert_error(c.post(URL, json=huge), 413, "payload_too_large")


@pytest.mark.parametrize(
    ("origin", "destination", "message"),
    [
        ("yard.outside", "yard.inside", "no legal route for this truck"),
        ("toll.west", "nowhere", "no road this truck may use within 1000 m of the destination"),
        ("nowhere", "toll.east", "no road this truck may use within 1000 m of the origin"),
        ("toll.west", "island.east", "do not connect"),
    ],
)
def test_unroutable_requests_get_422(
    c: httpx.Client, origin: str, destination: str, message: str
) -> None:
    error = assert_error(c.post(URL, json=body(origin, destination)), 422, "unroutable")
    assert message in error["message"], error
    assert error["details"][0]["engine_code"] in {170, 171, 442}


def test_the_route_is_documented(c: httpx.Client) -> None:
    doc = c.get("/openapi.json").json()
    operation = doc["paths"][URL]["post"]
    assert operation["tags"] == ["routing"] and "requestBody" in operation


def test_without_tiles_routing_is_503_and_the_rest_works(a: httpx.Client) -> None:
    error = assert_error(a.post(URL, json=body()), 503, "routing_not_configured")
    assert "trucktrack routing build-tiles" in error["message"]
    assert_error(a.post(URL, json={"origin": {"lat": 95, "lng": 0}}), 400, "validation_error")
    assert a.get("/tracking/vehicle/UNKNOWN-R/location").status_code == 404


def test_build_tiles_refuses_a_missing_or_broken_extract(tmp_path: Path) -> None:
    missing = run_cli("routing", "build-tiles", "--pbf", str(tmp_path / "india-latest.osm.pbf"),
                      "--data-dir", str(tmp_path / "data"))  # fmt: skip
    assert missing.returncode == 2
    assert "no such OSM file" in missing.stderr and "india-latest.osm.pbf" in missing.stderr
    junk = tmp_path / "junk.osm.pbf"
    junk.write_bytes(b"\x00\x01 this is no OSM file")
    broken = run_cli("routing", "build-tiles", "--pbf", str(junk), "--data-dir",
                     str(tmp_path / "data"), "--quiet")  # fmt: skip
    assert broken.returncode == 2
    assert (
        broken.stderr.strip()
        .splitlines()[-1]
        .startswith(f"trucktrack: valhalla_build_tiles could not read {junk}: PBF error")
    )
    assert not (tmp_path / "data" / "routing" / "tiles.tar").exists()
    assert not (tmp_path / "data" / "routing" / ".build").exists()


def test_bench_routing_reports_builds_and_latency(tmp_path: Path) -> None:
    md = tmp_path / "bench.md"
    out = subprocess.run(
        [*CLI, "bench", "routing", "--grid-km", "3", "--queries", "30", "--markdown", str(md)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    report = md.read_text()
    assert "| routing test network |" in report and "| grid 3 x 3 km" in report
    assert f"pyvalhalla {importlib.metadata.version('pyvalhalla')})" in report
    rows = [line for line in report.splitlines()
            if line.startswith(("| test network | ", "| grid | "))]  # fmt: skip
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| test network", "one at a time"], ["| test network", "2 at once (2 threads)"],
        ["| grid", "one at a time"], ["| grid", "2 at once (2 threads)"],
    ]  # fmt: skip
    assert all("| 30 |" in row for row in rows), rows


def trip(uid: str, pickup: str, delivery: str, **extra: Any) -> dict[str, Any]:
    return {"trip_id": f"RT-{uid}", "vehicle_id": f"RV-{uid}", "pickup": at(pickup),
            "delivery": at(delivery), "planned_route": "compute", **extra}  # fmt: skip


def test_a_trip_gets_its_planned_route_from_the_router(c: httpx.Client, uid: str) -> None:
    """`planned_route: "compute"` routes the trip's truck from pickup to delivery: a tall
    truck's trip goes around the low bridge, exactly as /routing/calculate would."""
    tall = {**TRUCK, "height_m": 4.2}
    r = c.post("/trips", json=trip(uid, "lowbridge.west", "lowbridge.east", truck=tall))
    assert r.status_code == 201, r.text
    planned = r.json()["planned_route"]
    assert planned["source"] == "computed" and planned["duration_min"] > 0
    direct = c.post(URL, json=body("lowbridge.west", "lowbridge.east", vehicle=tall)).json()
    assert planned["distance_km"] == pytest.approx(direct["distance_km"], rel=0.01)
    line = c.get(planned["href"]).json()["geometry"]["coordinates"]
    assert line == direct["geometry"]["coordinates"]
    # A 3 m truck (the rest of its profile Valhalla's defaults) takes the bridge.
    low = c.post("/trips", json=trip(f"{uid}-2", "lowbridge.west", "lowbridge.east",
                                     truck={"height_m": 3.0})).json()  # fmt: skip
    assert low["planned_route"]["distance_km"] < planned["distance_km"]


def test_a_trip_that_cannot_be_routed_is_refused(c: httpx.Client, uid: str) -> None:
    assert_error(c.post("/trips", json=trip(uid, "nowhere", "toll.east")), 422, "unroutable")
    r = c.post("/trips", json=trip(uid, "toll.west", "toll.east", truck={"height_m": -1}))
    assert_error(r, 400, "bad_request")
    r = c.post("/trips", json=trip(uid, "toll.west", "toll.east", truck={"wings": 2}))
    assert_error(r, 400, "bad_request")
    assert c.get(f"/trips/RT-{uid}").status_code == 404


def test_without_tiles_a_computed_trip_route_is_503(a: httpx.Client, uid: str) -> None:
    r = a.post("/trips", json=trip(uid, "toll.west", "toll.east"))
    assert_error(r, 503, "routing_not_configured")

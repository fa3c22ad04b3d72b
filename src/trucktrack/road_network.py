"""Small OSM road networks with known routing answers, written with osmium.

The routing tests and `trucktrack bench routing` build Valhalla tiles from these instead of a real
extract: every road, tag and distance is known, so a test can say which road a truck must take.
`known_network()` lays each situation out as its own little network, 20 km from the next, in
central India (around 20° N, 78° E); `grid()` is a larger plain city grid for timing.

Each situation has a west end `<name>.west` and an east end `<name>.east` on short approach roads,
a direct road between them (3 km, or 10 km for the toll road) that carries the tag under test, and
a longer detour over an untagged road through `<name>.detour` (5 km, ~13.8 km for tolls). Points
are named so tests read like the situations they check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

BASE_LAT = 20.0
BASE_LNG = 78.0
KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LNG = 111.320 * math.cos(math.radians(BASE_LAT))


@dataclass
class RoadNetwork:
    """Nodes and ways in OSM terms plus named points (lat, lng) for tests to route between."""

    nodes: list[tuple[int, float, float]] = field(default_factory=list)
    """(id, lat, lng)"""
    ways: list[tuple[list[int], dict[str, str]]] = field(default_factory=list)
    places: dict[str, tuple[float, float]] = field(default_factory=dict)
    _ids: dict[str, int] = field(default_factory=dict)

    def node(self, name: str, x_km: float, y_km: float, *, place: bool = True) -> int:
        """A node `x_km` east and `y_km` north of the base point."""
        lat = BASE_LAT + y_km / KM_PER_DEG_LAT
        lng = BASE_LNG + x_km / KM_PER_DEG_LNG
        node_id = len(self.nodes) + 1
        self.nodes.append((node_id, lat, lng))
        self._ids[name] = node_id
        if place:
            self.places[name] = (lat, lng)
        return node_id

    def way(self, names: list[str], **tags: str) -> None:
        self.ways.append(([self._ids[n] for n in names], tags))

    def point(self, name: str, x_km: float, y_km: float) -> None:
        """A named point that is not a node (e.g. far from every road)."""
        self.places[name] = (BASE_LAT + y_km / KM_PER_DEG_LAT, BASE_LNG + x_km / KM_PER_DEG_LNG)

    def write(self, path: str | Path) -> Path:
        """Write the network as .osm.pbf (or .osm XML, by the file name); replaces the file."""
        import osmium
        from osmium.osm.mutable import Node, Way

        path = Path(path)
        path.unlink(missing_ok=True)
        writer = osmium.SimpleWriter(str(path))
        try:
            for node_id, lat, lng in self.nodes:
                writer.add_node(Node(id=node_id, location=(lng, lat), tags={}, version=1))
            for way_id, (refs, tags) in enumerate(self.ways, start=1):
                writer.add_way(Way(id=way_id, nodes=refs, tags=tags, version=1))
        finally:
            writer.close()
        return path


def _situation(
    net: RoadNetwork, name: str, x0: float, direct: dict[str, str], detour_km: float = 2
) -> None:
    """West and east ends 5 km apart: a 3 km direct road tagged `direct`, a detour that far
    north (2 km: a 5 km detour)."""
    net.node(f"{name}.west", x0 - 1, 0)
    net.node(f"{name}.w", x0, 0, place=False)
    net.node(f"{name}.e", x0 + 3, 0, place=False)
    net.node(f"{name}.east", x0 + 4, 0)
    net.node(f"{name}.detour", x0 + 1.5, detour_km)
    net.way([f"{name}.west", f"{name}.w"], highway="primary", name=f"{name} west road")
    net.way([f"{name}.e", f"{name}.east"], highway="primary", name=f"{name} east road")
    net.way([f"{name}.w", f"{name}.e"], name=f"{name} direct", **direct)
    net.way(
        [f"{name}.w", f"{name}.detour", f"{name}.e"],
        highway="primary",
        maxspeed="60",
        name=f"{name} detour",
    )


def known_network() -> RoadNetwork:
    """The routing test network; see the module docstring and each situation's comment."""
    net = RoadNetwork()
    # Tolls: a 10 km toll trunk road (80 km/h) against a ~13.8 km free primary road (60 km/h).
    net.node("toll.west", -1, 0)
    net.node("toll.w", 0, 0, place=False)
    net.node("toll.e", 10, 0, place=False)
    net.node("toll.east", 11, 0)
    net.node("toll.detour", 5, 4)
    net.way(["toll.west", "toll.w"], highway="primary", name="Toll West Road")
    net.way(["toll.e", "toll.east"], highway="primary", name="Toll East Road")
    net.way(
        ["toll.w", "toll.e"], highway="trunk", toll="yes", maxspeed="80", name="Toll Expressway"
    )
    net.way(["toll.w", "toll.detour", "toll.e"], highway="primary", maxspeed="60", name="Free Road")
    primary = {"highway": "primary", "maxspeed": "60"}
    # A 3.5 m low bridge: a 4.2 m truck goes round, a 3 m one goes under.
    _situation(net, "lowbridge", 20, {**primary, "bridge": "yes", "maxheight": "3.5"})
    # A bridge for 10 t at most: 20 t goes round, 8 t goes over.
    _situation(net, "weakbridge", 40, {**primary, "bridge": "yes", "maxweight": "10"})
    # A street closed to trucks (hgv=no): every truck goes round.
    _situation(net, "nohgv", 60, {**primary, "hgv": "no"})
    # A one-way street, west to east: eastbound takes it, westbound goes round.
    _situation(net, "oneway", 80, {**primary, "oneway": "yes"})
    # Other limits, one per situation, each with its own answer in the tests.
    _situation(net, "narrow", 180, {**primary, "maxwidth": "2.5"})
    _situation(net, "short", 200, {**primary, "maxlength": "12"})
    _situation(net, "axleload", 220, {**primary, "maxaxleload": "8"})
    _situation(net, "hazmat", 240, {**primary, "hazmat": "no"})
    _situation(net, "axles", 260, {**primary, "maxaxles": "3"})
    # A 3 km ferry across a river against a ~30 km road over a bridge upstream.
    ferry = {"route": "ferry", "motor_vehicle": "yes", "hgv": "yes"}
    _situation(net, "ferry", 160, ferry, detour_km=15)
    # A short slow road (20 km/h) against a longer fast one (100 km/h): fastest takes the long
    # fast one, shortest the short slow one.
    net.node("speed.west", 99, 0)
    net.node("speed.w", 100, 0, place=False)
    net.node("speed.e", 103, 0, place=False)
    net.node("speed.east", 104, 0)
    net.node("speed.detour", 101.5, 2)
    net.way(["speed.west", "speed.w"], highway="primary", name="Speed West Road")
    net.way(["speed.e", "speed.east"], highway="primary", name="Speed East Road")
    net.way(["speed.w", "speed.e"], highway="unclassified", maxspeed="20", name="Slow Lane")
    net.way(
        ["speed.w", "speed.detour", "speed.e"], highway="trunk", maxspeed="100", name="Fast Road"
    )
    # A yard behind a 2.5 m underpass, the only way in: no legal path for a normal truck.
    net.node("yard.gate", 120, 0)
    net.node("yard.in", 120, -1, place=False)
    net.node("yard.inside", 120, -2)
    net.node("yard.outside", 119, 0)
    net.way(["yard.outside", "yard.gate"], highway="primary", name="Yard Approach")
    underpass = {"highway": "service", "tunnel": "yes", "maxheight": "2.5"}
    net.way(["yard.gate", "yard.in"], name="Yard Underpass", **underpass)
    net.way(["yard.in", "yard.inside"], highway="service", name="Yard Lane")
    # An island: a road connected to nothing else.
    net.node("island.west", 140, 40)
    net.node("island.east", 142, 40)
    net.way(["island.west", "island.east"], highway="primary", name="Island Road")
    # Open country: no road within 50 km.
    net.point("nowhere", 200, 200)
    return net


def grid(size_km: float = 30.0, spacing_m: float = 500.0) -> RoadNetwork:
    """A square city grid: every fifth line a primary road, the others residential streets."""
    net = RoadNetwork()
    n = int(size_km * 1000 // spacing_m) + 1
    step = spacing_m / 1000
    for i in range(n):
        for j in range(n):
            net.node(f"{i},{j}", j * step, i * step)
    for i in range(n):
        kind = "primary" if i % 5 == 0 else "residential"
        net.way([f"{i},{j}" for j in range(n)], highway=kind, name=f"Row {i}")
        net.way([f"{j},{i}" for j in range(n)], highway=kind, name=f"Column {i}")
    return net

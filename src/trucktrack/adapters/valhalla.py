"""Truck routing with Valhalla through pyvalhalla: the `Router` port, and building its tiles.

`ValhallaRouter` keeps one `valhalla.Actor` per thread (an Actor is not thread-safe: sharing one
across threads crashes the process), each with a small tile cache, and turns every engine error
into a domain error. `build_tiles` runs the `valhalla_build_tiles` program shipped inside the
wheel directly (the `python -m valhalla` wrappers need it on PATH) and then packs the tiles into
a memory-mapped `tiles.tar` with `valhalla_build_extract`.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import valhalla
from valhalla.midgard.utils import decode_polyline

from trucktrack.domain.routing import (
    MAX_WAYPOINTS,
    Maneuver,
    Optimize,
    Route,
    RouteRequest,
)
from trucktrack.errors import (
    BadRequest,
    RoutingNotConfigured,
    TrucktrackError,
    Unprocessable,
    Unroutable,
)

log = logging.getLogger(__name__)

BIN_DIR = Path(valhalla.__file__).resolve().parent / "bin"

# Valhalla's error codes (docs/api/turn-by-turn/api-reference.md, "Internal error codes").
UNCONNECTED = 170
NO_ROAD_NEAR = 171
NO_PATH = frozenset({441, 442, 443})
TOO_LONG = 154


def valhalla_config(tiles: Path, *, cache_mb: int = 128, threads: int = 1) -> dict[str, Any]:
    """A Valhalla config for a tile folder or a tiles.tar: no traffic, admin or time-zone
    databases (tolls, hgv, maxheight, maxweight and oneway need none), silent, a bounded tile
    cache, hard exclusions allowed (else `exclude_tolls` is ignored with warning 208)."""
    config: dict[str, Any] = valhalla.get_config(tile_extract="", tile_dir="")
    mjolnir = config["mjolnir"]
    is_tar = tiles.suffix == ".tar"
    mjolnir["tile_extract"] = str(tiles) if is_tar else ""
    mjolnir["tile_dir"] = "" if is_tar else str(tiles)
    for key in ("traffic_extract", "admin", "timezone", "landmarks"):
        mjolnir[key] = ""
    mjolnir["transit_dir"] = mjolnir["transit_feeds_dir"] = ""
    mjolnir["max_cache_size"] = cache_mb * 1024 * 1024
    mjolnir["concurrency"] = threads
    config["logging"] = {"type": "", "color": False}
    limits = config["service_limits"]
    limits["allow_hard_exclusions"] = True
    limits["truck"]["max_locations"] = MAX_WAYPOINTS + 2
    return config


class ValhallaRouter:
    """The `Router` port on local Valhalla tiles (a tiles.tar or a tile folder)."""

    def __init__(self, tiles: Path, *, cache_mb: int = 128, search_radius_m: float = 1000.0):
        self.tiles = tiles
        self._search_radius_m = search_radius_m
        if not tiles.exists():
            raise RoutingNotConfigured(f"routing is not configured: no routing tiles at {tiles}")
        if tiles.is_dir() and next(tiles.rglob("*.gph"), None) is None:
            raise RoutingNotConfigured(f"routing is not configured: no tiles in {tiles}")
        # pyvalhalla writes a temporary file for every Actor made from a dict; write ours once.
        fd, name = tempfile.mkstemp(prefix="trucktrack-valhalla-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(valhalla_config(tiles, cache_mb=cache_mb), fh)
        self._config_path = name
        self._local = threading.local()
        try:  # open the tiles once now, so a broken tile set is reported at start-up
            status = msgspec.json.decode(valhalla.Actor(self._config_path).status())
            # Valhalla opens any file; a tar it found no tiles in was never modified.
            if tiles.is_file() and not status.get("tileset_last_modified"):
                raise RoutingNotConfigured("no tiles in it")
        except Exception as exc:
            self.close()
            reason = exc.message if isinstance(exc, RoutingNotConfigured) else str(exc)
            raise RoutingNotConfigured(
                f"routing is not configured: the tiles at {tiles} cannot be read ({reason})"
            ) from exc

    def _actor(self) -> valhalla.Actor:
        actor: valhalla.Actor | None = getattr(self._local, "actor", None)
        if actor is None:
            actor = self._local.actor = valhalla.Actor(self._config_path)
        return actor

    def route(self, request: RouteRequest) -> Route:
        actor = self._actor()
        avoiding = request.avoid_tolls or request.avoid_ferries
        try:
            try:
                return self._route(actor, request, hard=avoiding)
            except valhalla.ValhallaError as exc:
                if not avoiding or _code(exc) not in NO_PATH | {NO_ROAD_NEAR}:
                    raise
            # No route avoids them entirely: the least tolls and ferries there are, and say so.
            route = self._route(actor, request, hard=False)
        except Exception as exc:  # every engine failure becomes a domain error, never a 500
            raise self._domain_error(actor, request, exc) from exc
        said = list(route.warnings)
        if request.avoid_tolls and route.uses_tolls:
            said.append("no route for this truck avoids tolls; this one uses toll roads")
        if request.avoid_ferries and route.uses_ferries:
            said.append("no route for this truck avoids ferries; this one takes a ferry")
        return msgspec.structs.replace(route, warnings=tuple(said))

    def _route(self, actor: valhalla.Actor, request: RouteRequest, *, hard: bool) -> Route:
        body = msgspec.json.encode(self._request(request, hard=hard)).decode()
        reply = msgspec.json.decode(actor.route(body))
        return _route_of(reply["trip"])

    def _locations(self, request: RouteRequest) -> list[dict[str, Any]]:
        return [
            {"lat": p.lat, "lon": p.lng, "type": "break", "search_cutoff": self._search_radius_m}
            for p in request.stops()
        ]

    def _request(self, request: RouteRequest, *, hard: bool) -> dict[str, Any]:
        return {
            "locations": self._locations(request),
            "costing": "truck",
            "costing_options": {"truck": truck_options(request, hard=hard)},
            "units": "kilometers",
            "language": "en-US",
        }

    def _domain_error(
        self, actor: valhalla.Actor, request: RouteRequest, exc: Exception
    ) -> TrucktrackError:
        code = _code(exc)
        details: list[object] = [{"engine_code": code, "engine_message": str(exc)}]
        if code == NO_ROAD_NEAR:
            names = self._points_off_road(actor, request)
            where = " and ".join(names) if names else "a point"
            return Unroutable(
                f"no road this truck may use within {self._search_radius_m:g} m of {where}",
                details,
            )
        if code == UNCONNECTED:
            return Unroutable("the points are on roads that do not connect to each other", details)
        if code in NO_PATH:
            return Unroutable(
                "no legal route for this truck between the points (its height, width, length, "
                "weight, axles or hazmat, or the roads' access and one-way rules, rule it out)",
                details,
            )
        if code == TOO_LONG:
            return Unroutable("the route is longer than the routing engine allows", details)
        if isinstance(exc, valhalla.ValhallaError) and getattr(exc, "http_code", 500) == 400:
            return BadRequest(f"the routing engine refused the request: {exc}", details)
        log.warning("routing engine failure (code %s): %r", code, exc, exc_info=code is None)
        return Unroutable(f"the routing engine could not route this request: {exc}", details)

    def _points_off_road(self, actor: valhalla.Actor, request: RouteRequest) -> list[str]:
        """Which points have no road for this truck nearby (only asked after error 171)."""
        waypoints = [f"waypoint {i}" for i in range(1, len(request.waypoints) + 1)]
        names = ["the origin", *waypoints, "the destination"]
        body = {
            "locations": self._locations(request),
            "costing": "truck",
            "costing_options": {"truck": truck_options(request, hard=False)},
        }
        try:
            found = msgspec.json.decode(actor.locate(msgspec.json.encode(body).decode()))
        except Exception:
            return []
        return [name for name, spot in zip(names, found, strict=False) if not spot.get("edges")]

    def close(self) -> None:
        """Forget the config file (the Actors have read it)."""
        Path(self._config_path).unlink(missing_ok=True)


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def truck_options(request: RouteRequest, *, hard: bool) -> dict[str, Any]:
    """Valhalla's truck costing options for the request. `hard`: exclude tolls and ferries
    outright; otherwise only avoid them as much as possible (`use_tolls`/`use_ferry` 0)."""
    v = request.vehicle
    options: dict[str, Any] = {
        "height": v.height_m,
        "width": v.width_m,
        "length": v.length_m,
        "weight": v.weight_t,
        "axle_load": v.axle_load_t,
        "axle_count": v.axles,
        "hazmat": v.hazmat,
    }
    if request.optimize is Optimize.SHORTEST:
        options["shortest"] = True
    if request.avoid_tolls:
        options["use_tolls"] = 0.0
        if hard:
            options["exclude_tolls"] = True
    if request.avoid_ferries:
        options["use_ferry"] = 0.0
        if hard:
            options["exclude_ferries"] = True
    return options


def _route_of(trip: dict[str, Any]) -> Route:
    """A domain Route from Valhalla's `trip`: legs joined, shapes decoded to (lng, lat)."""
    coordinates: list[tuple[float, float]] = []
    maneuvers: list[Maneuver] = []
    for leg in trip["legs"]:
        shape = [(round(lng, 6), round(lat, 6)) for lng, lat in decode_polyline(leg["shape"])]
        for m in leg["maneuvers"]:
            lng, lat = shape[min(m["begin_shape_index"], len(shape) - 1)]
            maneuvers.append(
                Maneuver(
                    instruction=m["instruction"],
                    distance_m=round(m["length"] * 1000, 1),
                    duration_s=round(m["time"], 1),
                    street_names=tuple(m.get("street_names", ())),
                    lat=lat,
                    lng=lng,
                )
            )
        if coordinates and shape and coordinates[-1] == shape[0]:
            shape = shape[1:]  # a leg starts where the one before it ended
        coordinates.extend(shape)
    summary = trip["summary"]
    return Route(
        coordinates=tuple(coordinates),
        distance_m=round(summary["length"] * 1000, 1),
        duration_s=round(summary["time"], 1),
        uses_tolls=bool(summary.get("has_toll", False)),
        uses_ferries=bool(summary.get("has_ferry", False)),
        maneuvers=tuple(maneuvers),
        warnings=tuple(str(w.get("text", w)) for w in trip.get("warnings", ())),
    )


# --- building tiles ---------------------------------------------------------------------------


class TileBuild(msgspec.Struct, frozen=True, kw_only=True):
    """What `build_tiles` made."""

    tiles: str
    """What to route on: the tiles.tar, or the tile folder when the extract failed."""
    tile_count: int
    size_bytes: int
    build_s: float
    extract_s: float | None
    """None when `valhalla_build_extract` failed (the folder is used instead)."""


def build_tiles(
    osm_file: Path,
    routing_dir: Path,
    *,
    threads: int = 2,
    on_output: Callable[[str], None] | None = None,
) -> TileBuild:
    """Build Valhalla tiles from an OSM extract (.osm.pbf or .osm XML) into `routing_dir`
    (`tiles.tar`, or `tiles/`), replacing what was there only once the new tiles open."""
    if not osm_file.is_file():
        raise BadRequest(f"no such OSM file: {osm_file}")
    osm_file, routing_dir = osm_file.resolve(), routing_dir.resolve()
    routing_dir.mkdir(parents=True, exist_ok=True)
    staging = routing_dir / ".build"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        return _build(osm_file, routing_dir, staging, threads, on_output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run(command: list[str], cwd: Path, on_output: Callable[[str], None] | None) -> tuple[int, str]:
    """Run a tool, passing its output on line by line; (exit status, the last lines)."""
    tail: collections.deque[str] = collections.deque(maxlen=12)
    with subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            if on_output is not None:
                on_output(line)
    return proc.returncode, "\n".join(tail)


def _build(
    osm_file: Path,
    routing_dir: Path,
    staging: Path,
    threads: int,
    on_output: Callable[[str], None] | None,
) -> TileBuild:
    tile_dir, extract = staging / "tiles", staging / "tiles.tar"
    config = valhalla_config(tile_dir, threads=threads)
    config["mjolnir"]["tile_extract"] = str(extract)
    config["logging"] = {"type": "std_out", "color": False}
    config_path = staging / "valhalla.json"
    config_path.write_text(json.dumps(config))

    started = time.perf_counter()
    status, tail = _run(
        [str(BIN_DIR / "valhalla_build_tiles"), "-c", str(config_path), "-j", str(threads),
         str(osm_file)],
        staging, on_output,
    )  # fmt: skip
    build_s = time.perf_counter() - started
    if status != 0:
        lines = [line for line in tail.splitlines() if line.strip()]
        # A C++ exception ends the program with "terminate called ... what(): <the reason>".
        reasons = [line.split("what():", 1)[1].strip() for line in lines if "what():" in line]
        reason = reasons[-1] if reasons else lines[-1] if lines else f"exit status {status}"
        raise Unprocessable(f"valhalla_build_tiles could not read {osm_file}: {reason}")
    tiles = sorted(tile_dir.rglob("*.gph"))
    if not tiles:
        raise Unprocessable(f"{osm_file} has no roads to route on: Valhalla built no tiles")
    size = sum(t.stat().st_size for t in tiles)

    started = time.perf_counter()
    status, tail = _run(
        [sys.executable, "-m", "valhalla.valhalla_build_extract", "-c", str(config_path), "-O"],
        staging, on_output,
    )  # fmt: skip
    extract_s: float | None = time.perf_counter() - started
    if status != 0 or not extract.is_file() or not _opens(extract):
        log.warning("valhalla_build_extract failed (%s); routing on the tile folder", tail)
        extract_s = None
        if not _opens(tile_dir):
            raise Unprocessable(f"the tiles built from {osm_file} cannot be opened")

    final_tar, final_dir = routing_dir / "tiles.tar", routing_dir / "tiles"
    if extract_s is not None:
        os.replace(extract, final_tar)  # atomic; a running server keeps its old, open file
        shutil.rmtree(final_dir, ignore_errors=True)
        chosen = final_tar
    else:
        final_tar.unlink(missing_ok=True)  # it would win over the new folder
        old = routing_dir / "tiles.old"
        shutil.rmtree(old, ignore_errors=True)
        if final_dir.exists():
            final_dir.rename(old)
        tile_dir.rename(final_dir)
        shutil.rmtree(old, ignore_errors=True)
        chosen = final_dir
    return TileBuild(
        tiles=str(chosen),
        tile_count=len(tiles),
        size_bytes=size,
        build_s=round(build_s, 3),
        extract_s=None if extract_s is None else round(extract_s, 3),
    )


def _opens(tiles: Path) -> bool:
    """Whether Valhalla can open these tiles (a router on them starts)."""
    try:
        ValhallaRouter(tiles, cache_mb=16).close()
    except RoutingNotConfigured:
        return False
    return True

"""The `trucktrack` command: serve, token, simulate, maintenance, bench, routing, export."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import sys
from pathlib import Path

from trucktrack import bootstrap
from trucktrack.errors import TrucktrackError
from trucktrack.settings import load_settings

ROLES = ("admin", "dispatcher", "viewer", "device")


def _data_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data folder (default: $TRUCKTRACK_DATA_DIR or ./data)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trucktrack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server on the embedded store")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    serve.add_argument(
        "--mqtt-url",
        default=None,
        help="MQTT broker for device messages (mqtt://user:pw@host:port)",
    )
    _data_dir_flag(serve)

    token = sub.add_parser("token", help="manage bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token; prints it as the last line")
    create.add_argument("--fleet", required=True, help="fleet (tenant) id")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument(
        "--vehicle",
        action="append",
        default=None,
        help="limit the token to this vehicle (repeatable)",
    )
    create.add_argument(
        "--trip",
        action="append",
        default=None,
        help="limit a viewer token to this trip's points (repeatable): a shipper's view",
    )
    create.add_argument("--label", default="", help="a note to recognise the token by")
    _data_dir_flag(create)

    sim = sub.add_parser("simulate", help="drive simulated trucks against a running server")
    sim.add_argument("--url", default="http://127.0.0.1:8000")
    sim.add_argument("--token", required=True)
    sim.add_argument("--vehicles", type=int, default=10)
    sim.add_argument("--interval", type=float, default=5.0, help="seconds between fixes")
    sim.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    sim.add_argument("--batch", type=int, default=100, help="points per request")
    sim.add_argument("--seed", type=int, default=1)
    _data_dir_flag(sim)

    maint = sub.add_parser(
        "maintenance", help="move old days to the cold tier and apply retention, once"
    )
    _data_dir_flag(maint)

    bench = sub.add_parser("bench", help="benchmarks (see BENCHMARKS.md)")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    from trucktrack.benchmarks import ingest as bench_ingest

    ingest = bench_sub.add_parser("ingest", help="HTTP ingest and read throughput and latency")
    bench_ingest.add_arguments(ingest)
    from trucktrack.benchmarks import geofence as bench_geofence

    fences = bench_sub.add_parser(
        "geofence", help="the processor chain with many fences, vs the naive loop"
    )
    bench_geofence.add_arguments(fences)
    from trucktrack.benchmarks import realtime as bench_realtime

    live = bench_sub.add_parser(
        "realtime", help="WebSocket delivery latency to many clients while ingesting"
    )
    bench_realtime.add_arguments(live)
    from trucktrack.benchmarks import mqtt as bench_mqtt

    devices = bench_sub.add_parser("mqtt", help="points/s stored from MQTT devices")
    bench_mqtt.add_arguments(devices)
    from trucktrack.benchmarks import routing as bench_routing

    routes = bench_sub.add_parser("routing", help="Valhalla tile builds and truck route latency")
    bench_routing.add_arguments(routes)

    routing = sub.add_parser("routing", help="truck routing (Valhalla)")
    routing_sub = routing.add_subparsers(dest="routing_command", required=True)
    tiles = routing_sub.add_parser(
        "build-tiles",
        help="build routing tiles from an OSM extract into <data-dir>/routing",
        description="Build Valhalla routing tiles from an OpenStreetMap extract (.osm.pbf, or "
        ".osm XML) into <data-dir>/routing/tiles.tar; restart the server to route on them.",
    )
    tiles.add_argument("--pbf", required=True, help="the OSM extract, e.g. india-latest.osm.pbf")
    tiles.add_argument("--threads", type=int, default=2, help="build threads (default 2)")
    tiles.add_argument("--quiet", action="store_true", help="hide Valhalla's progress log")
    _data_dir_flag(tiles)
    from trucktrack.benchmarks import compliance as bench_compliance

    checks = bench_sub.add_parser(
        "compliance", help="route compliance of many active trips, vs the naive per-point way"
    )
    bench_compliance.add_arguments(checks)

    export = sub.add_parser(
        "export",
        help="write points, trips, alerts and trip summaries as Parquet files for analytics",
        description="Write the points (both tiers, one partition per UTC day), trips, alerts "
        "and trip summaries of [--from, --to) as zstd Parquet files into --out, a new or empty "
        "folder. Trips (and their summaries) are those that started in the period. Times: "
        "epoch ms, ISO-8601 with an offset, or a date (UTC midnight).",
    )
    export.add_argument("--from", dest="from_", required=True, help="start (inclusive)")
    export.add_argument("--to", required=True, help="end (exclusive)")
    export.add_argument("--out", required=True, help="output folder (new or empty)")
    export.add_argument("--fleet", default=None, help="only this fleet (default: every fleet)")
    _data_dir_flag(export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("TRUCKTRACK_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "token":
            return _token_create(args)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "maintenance":
            return _maintenance(args)
        if args.command == "bench":
            from trucktrack.benchmarks import compliance, geofence, ingest, mqtt, realtime, routing

            runners = {"geofence": geofence, "ingest": ingest, "realtime": realtime, "mqtt": mqtt,
                       "routing": routing, "compliance": compliance}  # fmt: skip
            return runners[args.bench_command].main(args)
        if args.command == "routing":
            return _build_tiles(args)
        if args.command == "export":
            return _export(args)
    except TrucktrackError as exc:
        print(f"trucktrack: {exc.message}", file=sys.stderr)
        return 2
    return 2


_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"]+")


def _redact_tokens(record: logging.LogRecord) -> bool:
    """uvicorn logs a WebSocket's URL, and browsers pass the token in it (`?token=`)."""
    message = record.getMessage()
    if "token=" in message:
        record.msg, record.args = _TOKEN_IN_URL.sub(r"\1[redacted]", message), ()
    return True


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from trucktrack.api.app import create_asgi

    settings = load_settings(
        {"host": args.host, "port": args.port, "data_dir": args.data_dir, "mqtt_url": args.mqtt_url}
    )
    services = bootstrap.local(settings)
    try:
        if settings.bootstrap_demo_token and not services.tokens.has_any():
            _print_first_token(
                services.tokens.create("demo", "admin", label="first start"),
                settings.host,
                settings.port,
            )
        config = uvicorn.Config(
            create_asgi(services),
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level="info",
            timeout_graceful_shutdown=10,
            ws_ping_interval=settings.ws_ping_interval_s,
            ws_ping_timeout=settings.ws_ping_timeout_s,
        )
        logging.getLogger("uvicorn.error").addFilter(_redact_tokens)
        uvicorn.Server(config).run()
    finally:
        services.close()
    return 0


def _print_first_token(token: str, host: str, port: int) -> None:
    url = f"http://{host}:{port}"
    print(
        f"""
First start: created an admin token for fleet 'demo' (shown only now; keep it):

    export TOKEN={token}

Post a point and read it back:

    curl -s -X POST {url}/tracking/gps -H "Authorization: Bearer $TOKEN" \\
      -H 'Content-Type: application/json' \\
      -d '{{"updates": [{{"vehicle_id": "MH12AB1234", "lat": 18.5204, "lng": 73.8567}}]}}'
    curl -s {url}/tracking/vehicle/MH12AB1234/location -H "Authorization: Bearer $TOKEN"

More tokens: trucktrack token create --fleet demo --role device --vehicle MH12AB1234
API docs: {url}/docs
""",
        flush=True,
    )


def _token_create(args: argparse.Namespace) -> int:
    settings = load_settings({"data_dir": args.data_dir})
    token = bootstrap.tokens_only(settings).create(
        args.fleet, args.role, args.vehicle, label=args.label, trips=args.trip
    )
    scope = ", ".join(args.vehicle) if args.vehicle else "all vehicles"
    if args.trip:
        scope += "; trips " + ", ".join(args.trip)
    print(f"Created a {args.role} token for fleet {args.fleet!r} ({scope}):")
    print(token)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from trucktrack.simulation import run_simulation

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_simulation(
                args.url,
                args.token,
                vehicles=args.vehicles,
                interval_s=args.interval,
                duration_s=args.duration,
                batch_size=args.batch,
                seed=args.seed,
            )
        )
    return 0


def _maintenance(args: argparse.Namespace) -> int:
    import msgspec

    from trucktrack.services.ingest import wall_clock_ms

    services = bootstrap.local(load_settings({"data_dir": args.data_dir}))
    try:
        report = asyncio.run(services.maintenance.run(wall_clock_ms()))
    finally:
        services.close()
    print(msgspec.json.format(msgspec.json.encode(report)).decode())
    return 0


def _export(args: argparse.Namespace) -> int:
    import msgspec

    from trucktrack.errors import BadRequest

    settings = load_settings({"data_dir": args.data_dir})
    from_ms, to_ms = _export_time(args.from_, "--from"), _export_time(args.to, "--to")
    if from_ms >= to_ms:
        raise BadRequest("--from must be before --to")
    report = bootstrap.export_parquet(settings, Path(args.out), from_ms, to_ms, args.fleet)
    print(msgspec.json.format(msgspec.json.encode(report)).decode())
    return 0


def _export_time(value: str, flag: str) -> int:
    """Epoch ms, ISO-8601 with an offset, or a bare date (UTC midnight)."""
    import datetime as dt

    from trucktrack.domain.timefmt import BadTimestamp, day_start_ms, parse_timestamp
    from trucktrack.errors import BadRequest

    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return day_start_ms(dt.date.fromisoformat(value))
        return parse_timestamp(int(value) if re.fullmatch(r"-?\d+", value) else value)
    except (BadTimestamp, ValueError) as exc:
        raise BadRequest(f"{flag} {value!r}: {exc}") from None


def _build_tiles(args: argparse.Namespace) -> int:
    from trucktrack.errors import BadRequest

    if args.threads < 1:
        raise BadRequest("--threads must be at least 1")
    settings = load_settings({"data_dir": args.data_dir})
    pbf = Path(args.pbf)
    print(f"Building routing tiles from {pbf} with {args.threads} threads...", file=sys.stderr)
    built = bootstrap.build_routing_tiles(
        settings,
        pbf,
        threads=args.threads,
        on_output=None if args.quiet else lambda line: print(line, file=sys.stderr),
    )
    extract = "no tiles.tar (valhalla_build_extract failed)"
    if built.extract_s is not None:
        extract = f"packed into tiles.tar in {built.extract_s:.1f} s"
    print(
        f"Built {built.tile_count} tiles ({built.size_bytes / 1e6:.2f} MB) in "
        f"{built.build_s:.1f} s, {extract}: {built.tiles}"
    )
    used = settings.routing_tiles_path()
    if used is not None and used.resolve() != Path(built.tiles).resolve():
        print(f"Note: TRUCKTRACK_ROUTING_TILES points at {used}, not at these tiles.")
    print("Restart `trucktrack serve` to route on them.")
    return 0

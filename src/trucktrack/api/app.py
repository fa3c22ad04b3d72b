"""The HTTP application: routes that parse, call one service, and serialise."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import Parameter

from trucktrack.api.alerts import ALERT_ROUTES
from trucktrack.api.errors import EXCEPTION_HANDLERS
from trucktrack.api.formats import trip_geojson, trip_gpx
from trucktrack.api.geofences import geofence_router
from trucktrack.api.ingest import bearer_token, ingest_batch
from trucktrack.api.live import tracking_ws
from trucktrack.api.mqtt import MqttBridge
from trucktrack.api.openapi import DOCS_HTML, patched_openapi
from trucktrack.api.overload import InFlightLimit
from trucktrack.api.pod import POD_ROUTES
from trucktrack.api.routing import ROUTING_ROUTES
from trucktrack.api.schemas import (
    BulkIn,
    BulkOut,
    HistoryOut,
    IngestReply,
    LocationOut,
    StopsOut,
    history_point_out,
    location_out,
    stop_out,
)
from trucktrack.api.times import time_param
from trucktrack.api.trips import TRIP_ROUTES
from trucktrack.api.vehicles import VEHICLE_ROUTES
from trucktrack.bootstrap import Services
from trucktrack.domain.model import Principal, Role
from trucktrack.errors import BadRequest, Forbidden
from trucktrack.services.ingest import wall_clock_ms

log = logging.getLogger(__name__)
ID_BY_LENGTH = {n: re.compile(f"[A-Za-z0-9_.:-]{{1,{n}}}") for n in (64, 128)}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _principal(request: Request) -> Principal:
    services: Services = request.app.state.services
    return services.tokens.authenticate(bearer_token(request.headers.get("authorization")))


def _checked_id(value: str, what: str, longest: int = 128) -> str:
    if not ID_BY_LENGTH[longest].fullmatch(value):
        raise BadRequest(f"{what} must be 1-{longest} letters, digits or _ - . :")
    return value


# --- tracking ---------------------------------------------------------------------------------


@post(
    "/tracking/gps",
    status_code=200,
    summary="Ingest a batch of GPS points",
    description='Body `{"updates": [point, ...]}` (1 to the configured limit, default 1000), '
    "optionally gzip-compressed. Bad points are rejected with their index; the good ones are "
    "stored durably before the reply. A retried point (same vehicle_id and timestamp) is "
    "counted in `duplicates` and stored once.",
    tags=["tracking"],
)
async def ingest_gps(request: Request, services: Services, principal: Principal) -> IngestReply:
    return await ingest_batch(
        services, principal, await request.body(), request.headers.get("content-encoding")
    )


@get(
    "/tracking/vehicle/{vehicle_id:str}/location",
    summary="A vehicle's current location",
    description="The newest point by device time. 404 when the vehicle is unknown to this fleet "
    "or its newest point is older than the location TTL (24 h).",
    tags=["tracking"],
)
async def vehicle_location(
    vehicle_id: str, services: Services, principal: Principal
) -> LocationOut:
    now = wall_clock_ms()
    point = services.tracking.location(principal, _checked_id(vehicle_id, "vehicle_id", 64), now)
    return location_out(point, now)


@post(
    "/tracking/vehicles/bulk",
    status_code=200,
    summary="Current locations of up to 100 vehicles",
    tags=["tracking"],
)
async def bulk_locations(data: BulkIn, services: Services, principal: Principal) -> BulkOut:
    now = wall_clock_ms()
    found, missing = services.tracking.locations(principal, data.vehicle_ids, now)
    return BulkOut(locations={v: location_out(p, now) for v, p in found.items()}, missing=missing)


class HistoryFormat(StrEnum):
    JSON = "json"
    GEOJSON = "geojson"
    GPX = "gpx"


@get(
    "/tracking/trip/{trip_id:str}/history",
    summary="A trip's points in device-time order",
    description="Paginated: pass the reply's `next_cursor` as `cursor`. `from`/`to` take epoch "
    "milliseconds or ISO-8601. `format=geojson` gives a LineString Feature, `format=gpx` a GPX "
    "1.1 track (the next cursor is then in the `X-Next-Cursor` header).",
    tags=["tracking"],
)
async def trip_history(
    trip_id: str,
    services: Services,
    principal: Principal,
    from_: Annotated[str | None, Parameter(query="from")] = None,
    to: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    format: HistoryFormat = HistoryFormat.JSON,
) -> Response[Any]:
    _checked_id(trip_id, "trip_id")
    page = await asyncio.to_thread(
        services.tracking.trip_history,
        principal,
        trip_id,
        from_ms=time_param(from_, "from"),
        to_ms=time_param(to, "to"),
        cursor=cursor,
        limit=limit,
    )
    headers = {"X-Next-Cursor": page.next_cursor} if page.next_cursor else {}
    if format is HistoryFormat.GPX:
        return Response(
            trip_gpx(trip_id, page.points), media_type="application/gpx+xml", headers=headers
        )
    if format is HistoryFormat.GEOJSON:
        body = msgspec.json.encode(trip_geojson(trip_id, page.points, page.next_cursor))
        return Response(body, media_type="application/geo+json", headers=headers)
    out = HistoryOut(
        trip_id=trip_id,
        count=len(page.points),
        points=[history_point_out(p) for p in page.points],
        next_cursor=page.next_cursor,
        distance_m=services.movement.trip_distance_m(principal, trip_id) or 0.0,
    )
    return Response(msgspec.json.encode(out), media_type="application/json", headers=headers)


@get(
    "/tracking/vehicle/{vehicle_id:str}/stops",
    summary="A vehicle's stops, in start order",
    description="Stops found by the stop detector (under 5 km/h within 100 m for 2 min, by "
    "default): start, end (null while still stopped), duration, place, trip and whether it was "
    "inside a `stop_allowed` fence. `since`/`until` bound the start time (epoch ms or ISO-8601); "
    "paginated with `cursor`.",
    tags=["tracking"],
)
async def vehicle_stops(
    vehicle_id: str,
    services: Services,
    principal: Principal,
    since: str | None = None,
    until: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Parameter(max_length=512)] = None,
) -> StopsOut:
    vid = _checked_id(vehicle_id, "vehicle_id", 64)
    page = await asyncio.to_thread(
        services.movement.stops,
        principal,
        vid,
        since_ms=time_param(since, "since"),
        until_ms=time_param(until, "until"),
        cursor=cursor,
        limit=limit,
    )
    return StopsOut(vid, [stop_out(s) for s in page.stops], page.next_cursor)


# --- operations -------------------------------------------------------------------------------


@get("/healthz", summary="Liveness (no token needed)", tags=["operations"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/metrics", summary="Prometheus metrics (admin token)", tags=["operations"])
async def metrics(services: Services, principal: Principal) -> Response[bytes]:
    if principal.role is not Role.ADMIN:
        raise Forbidden("metrics need an admin token")
    body = await asyncio.to_thread(services.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@get("/openapi.json", include_in_schema=False)
async def openapi_json(request: Request) -> dict[str, Any]:
    return patched_openapi(request.app)


@get("/docs", include_in_schema=False, media_type="text/html")
async def docs() -> str:
    return DOCS_HTML


# --- the application --------------------------------------------------------------------------


async def _maintenance_loop(services: Services) -> None:
    interval = services.settings.maintenance_interval_s
    while True:
        try:
            await services.maintenance.run(wall_clock_ms())
        except Exception:
            log.exception("maintenance run failed; retrying at the next interval")
        await asyncio.sleep(interval)


async def _monitor_loop(services: Services) -> None:
    interval = services.settings.trip_monitor_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            await services.monitor.run_once(wall_clock_ms())
        except Exception:
            log.exception("trip monitor run failed; retrying at the next interval")
        try:  # completed trips whose summary was not made (the process died meanwhile)
            await services.summaries.fill_missing(wall_clock_ms())
        except Exception:
            log.exception("filling missing trip summaries failed; retrying at the next interval")


async def _delivery_loop(services: Services) -> None:
    while True:
        try:
            await services.delivery.run_once(wall_clock_ms())
        except Exception:
            log.exception("alert delivery failed; retrying")
        await asyncio.sleep(1.0)


def create_app(services: Services) -> Litestar:
    """The Litestar app over already-built services (the caller owns their lifecycle)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(_maintenance_loop(services)),
            asyncio.create_task(_delivery_loop(services)),
            asyncio.create_task(_monitor_loop(services)),
        ]
        services.live.loop = asyncio.get_running_loop()
        bridge = None
        if services.settings.mqtt_url:
            bridge = MqttBridge(
                services,
                services.settings.mqtt_url,
                prefix=services.settings.mqtt_topic_prefix,
                client_id=services.settings.mqtt_client_id,
            )
            bridge.start()
        # What start-up built (modules, services, caches) lives as long as the process: out of
        # the collector's sight, a full collection no longer walks it and pauses every request
        # and WebSocket push for ~100 ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if bridge is not None:
                await asyncio.to_thread(bridge.stop)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.delivery.close()
            # Drain the write queue here: uvicorn re-raises SIGTERM once it returns, which
            # would end the process before the caller's own cleanup runs.
            await asyncio.to_thread(services.close)

    app = Litestar(
        route_handlers=[
            ingest_gps,
            vehicle_location,
            vehicle_stops,
            tracking_ws,
            bulk_locations,
            trip_history,
            geofence_router,
            *VEHICLE_ROUTES,
            *ALERT_ROUTES,
            *TRIP_ROUTES,
            *POD_ROUTES,
            *ROUTING_ROUTES,
            healthz,
            metrics,
            openapi_json,
            docs,
        ],
        dependencies={
            "services": Provide(_services, sync_to_thread=False),
            "principal": Provide(_principal, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        request_max_body_size=services.settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="trucktrack",
            version="0.1.0",
            description="Real-time GPS tracking for trucking fleets. Every endpoint but "
            "/healthz needs `Authorization: Bearer <token>`.",
            path="/schema",
            render_plugins=[],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="token")
                }
            ),
            security=[{"bearer": []}],
        ),
        debug=False,
    )
    app.state.services = services
    return app


def create_asgi(services: Services) -> Any:
    """What the server runs: load shedding in front of the Litestar app."""
    return InFlightLimit(create_app(services), services.settings.max_inflight_requests)

"""Truck routing: check the request, run the blocking engine on a few threads, add warnings.

The engine (a `Router`) is CPU-bound and not thread-safe per instance, so every route runs on
this service's own small thread pool: the event loop stays free, and the number of engine
instances (each with its own tile cache) stays bounded by `threads`, whoever calls.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import msgspec

from trucktrack.domain.routing import Route, RouteRequest, far_from_road, problems
from trucktrack.errors import BadRequest, RoutingNotConfigured
from trucktrack.ports import Router

NOT_CONFIGURED = (
    "routing is not configured: build tiles with `trucktrack routing build-tiles --pbf FILE`"
)


class RoutingService:
    """Routes for trucks. Without a router every call raises `RoutingNotConfigured` (503)."""

    def __init__(
        self, router: Router | None, *, threads: int = 2, unavailable: str = NOT_CONFIGURED
    ) -> None:
        self._router = router
        self._unavailable = unavailable
        self._pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="routing")
            if router is not None
            else None
        )

    @property
    def configured(self) -> bool:
        return self._router is not None

    def _checked(self, request: RouteRequest) -> tuple[Router, ThreadPoolExecutor]:
        found = problems(request)
        if found:
            raise BadRequest(f"invalid route request: {found[0]}", list(found))
        if self._router is None or self._pool is None:
            raise RoutingNotConfigured(self._unavailable)
        return self._router, self._pool

    async def calculate(self, request: RouteRequest) -> Route:
        """The route for the request's truck, computed off the event loop."""
        router, pool = self._checked(request)
        route = await asyncio.get_running_loop().run_in_executor(pool, router.route, request)
        return _with_warnings(request, route)

    def calculate_blocking(self, request: RouteRequest) -> Route:
        """The same for callers on a worker thread (still on this service's threads)."""
        router, pool = self._checked(request)
        return _with_warnings(request, pool.submit(router.route, request).result())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._router is not None:
            self._router.close()


def _with_warnings(request: RouteRequest, route: Route) -> Route:
    extra = far_from_road(request, route)
    if not extra:
        return route
    return msgspec.structs.replace(route, warnings=(*route.warnings, *extra))

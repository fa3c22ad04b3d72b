"""Shed load at the door: past a bound of requests in flight, answer 503 with Retry-After at once.

Queues that grow without bound turn a burst into minutes of latency and unbounded memory; a quick
503 lets well-behaved clients (the simulator, devices with backoff) retry the same batch later.
"""

from __future__ import annotations

from typing import Any

import msgspec

from trucktrack.api.schemas import ErrorDetail, ErrorOut

ASGIApp = Any

_BODY = msgspec.json.encode(
    ErrorOut(ErrorDetail("overloaded", "too many requests in flight; retry after a pause"))
)


class InFlightLimit:
    """ASGI wrapper counting HTTP requests in flight; WebSockets and lifespan pass through."""

    def __init__(self, app: ASGIApp, limit: int, retry_after_s: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self._headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", str(retry_after_s).encode()),
            (b"content-length", str(len(_BODY)).encode()),
        ]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": _BODY})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

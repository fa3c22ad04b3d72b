"""Load shedding at the door: past the bound, requests get 503 with Retry-After at once."""

from __future__ import annotations

import asyncio
from typing import Any

from trucktrack.api.overload import InFlightLimit


def test_requests_past_the_bound_get_503_and_the_bound_frees_up() -> None:
    release = asyncio.Event()

    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(app: InFlightLimit) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "http"}, None, send)
        return sent

    async def go() -> None:
        app = InFlightLimit(slow_app, limit=2, retry_after_s=3)
        first = [asyncio.create_task(call(app)) for _ in range(2)]
        await asyncio.sleep(0)
        refused = await call(app)
        assert refused[0]["status"] == 503
        assert (b"retry-after", b"3") in refused[0]["headers"]
        assert b"overloaded" in refused[1]["body"]
        release.set()
        for task in first:
            assert (await task)[0]["status"] == 200
        assert app.in_flight == 0
        assert (await call(app))[0]["status"] == 200

    asyncio.run(go())

"""POST /tracking/gps, the hot path: one function shared by the Litestar route and a lean door.

At tens of thousands of points per second the framework's per-request work (routing, dependency
injection, response building) was about a third of the event loop's time, so `GpsIngestDoor`
serves this one route straight from ASGI in front of Litestar. Both call `ingest_batch`; the
Litestar route documents the operation in OpenAPI and serves it when the door is not mounted.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import msgspec

from trucktrack.api.decoding import decode_batch, decompress
from trucktrack.api.errors import domain_error_parts, error_parts
from trucktrack.api.schemas import IngestReply, RejectionOut
from trucktrack.bootstrap import Services
from trucktrack.domain.model import Principal
from trucktrack.errors import Forbidden, Overloaded, PayloadTooLarge, TrucktrackError
from trucktrack.services.ingest import wall_clock_ms

log = logging.getLogger(__name__)
BEARER = re.compile(r"Bearer\s+(\S+)\s*", re.IGNORECASE)
_encode = msgspec.json.Encoder().encode


def bearer_token(authorization: str | None) -> str | None:
    match = BEARER.fullmatch(authorization or "")
    return match.group(1) if match else None


async def ingest_batch(
    services: Services, principal: Principal, body: bytes, content_encoding: str | None
) -> IngestReply:
    """Decode, validate and durably store one batch; the reply names every rejected point."""
    started = time.perf_counter()
    settings = services.settings
    if not principal.may_write_points():
        raise Forbidden(f"a {principal.role.value} token cannot post positions")
    body = decompress(body, content_encoding, settings.max_body_bytes)
    now_ms = wall_clock_ms()
    points, rejected = decode_batch(body, principal.fleet_id, now_ms, settings.max_batch_points)
    try:
        result = await services.ingest.ingest(principal, points, rejected, now_ms)
    except Overloaded:
        services.metrics.overloaded.inc()
        raise
    services.metrics.ingest_latency.observe(time.perf_counter() - started)
    return IngestReply(
        processed=result.processed,
        duplicates=result.duplicates,
        rejected=[RejectionOut(r.index, r.reason) for r in result.rejected],
    )


class GpsIngestDoor:
    """ASGI wrapper serving POST /tracking/gps itself and passing everything else on."""

    def __init__(self, app: Any, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/tracking/gps" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            principal = self.services.tokens.authenticate(
                bearer_token(headers.get("authorization"))
            )
            body = await _read_body(receive, headers, self.services.settings.max_body_bytes)
            if body is None:
                return  # the client went away
            reply = await ingest_batch(
                self.services, principal, body, headers.get("content-encoding")
            )
            status, payload, extra = 200, _encode(reply), {}
        except TrucktrackError as exc:
            status, payload, extra = domain_error_parts(exc)
        except Exception:
            log.exception("unhandled error in POST /tracking/gps")
            status, payload, extra = error_parts(500, "internal", "internal server error")
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in extra.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Any, headers: dict[str, str], max_bytes: int) -> bytes | None:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)

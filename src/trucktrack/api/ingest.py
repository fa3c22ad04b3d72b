"""POST /tracking/gps: turn one request body into stored points and a per-point reply.

Kept apart from the route so that other device entry points (MQTT next) reuse it as it is.
"""

from __future__ import annotations

import logging
import re
import time

import msgspec

from trucktrack.api.decoding import decode_batch, decompress
from trucktrack.api.schemas import IngestReply, RejectionOut
from trucktrack.bootstrap import Services
from trucktrack.domain.model import Principal
from trucktrack.errors import Forbidden, Overloaded
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

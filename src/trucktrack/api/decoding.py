"""Turning a GPS batch body into points, keeping the good ones and naming each bad one by index.

Shared by every device entry point (HTTP now, MQTT later). The common case (every point valid)
is one msgspec decode; only a batch with a bad point is decoded again point by point.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from typing import Any

import msgspec

from trucktrack.api.schemas import ID_CHARS, GpsBatchIn, PointIn, RawBatchIn
from trucktrack.domain.model import GpsPoint, Rejection
from trucktrack.domain.timefmt import BadTimestamp, parse_timestamp
from trucktrack.errors import BadRequest, PayloadTooLarge

Decoded = tuple[list[tuple[int, GpsPoint]], list[Rejection]]
_ID = re.compile(ID_CHARS)
_GOOD_IDS: set[str] = set()  # ids that passed the check; bounded below
_GOOD_IDS_LIMIT = 200_000


def _bad_id_field(p: PointIn) -> str | None:
    """The first id field of the point outside the allowed character set, if any."""
    for name, value in (
        ("vehicle_id", p.vehicle_id),
        ("trip_id", p.trip_id),
        ("driver_id", p.driver_id),
    ):
        if value is None or value in _GOOD_IDS:
            continue
        if not _ID.fullmatch(value):
            return name
        if len(_GOOD_IDS) >= _GOOD_IDS_LIMIT:
            _GOOD_IDS.clear()
        _GOOD_IDS.add(value)
    return None


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body as sent, or gunzipped when Content-Encoding says gzip, never beyond `max_bytes`."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise BadRequest(f"unsupported Content-Encoding {content_encoding!r} (use gzip)")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body is larger than {max_bytes} bytes")
    return out


def decode_batch(body: bytes, fleet_id: str, received_ms: int, max_points: int) -> Decoded:
    """Points of a `{"updates": [...]}` body as (batch index, GpsPoint), plus the rejections."""
    try:
        return _decode_batch(body, fleet_id, received_ms, max_points)
    except (RecursionError, UnicodeDecodeError):
        raise BadRequest("body is not valid UTF-8 JSON (or nests too deep)") from None


def _decode_batch(body: bytes, fleet_id: str, received_ms: int, max_points: int) -> Decoded:
    try:
        batch = msgspec.json.decode(body, type=GpsBatchIn)
    except msgspec.ValidationError:
        return _decode_one_by_one(body, fleet_id, received_ms, max_points)
    except msgspec.DecodeError:
        return _decode_lenient_json(body, fleet_id, received_ms, max_points)
    _check_count(len(batch.updates), max_points)
    return _to_points(enumerate(batch.updates), [], fleet_id, received_ms)


def _check_count(n: int, max_points: int) -> None:
    if n == 0:
        raise BadRequest("`updates` must hold at least one point")
    if n > max_points:
        raise PayloadTooLarge(f"a batch holds at most {max_points} points, this one {n}")


def _decode_one_by_one(body: bytes, fleet_id: str, received_ms: int, max_points: int) -> Decoded:
    try:
        raw = msgspec.json.decode(body, type=RawBatchIn)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"body must be an object with an `updates` list: {exc}") from None
    except msgspec.DecodeError:  # malformed after the first bad point, or NaN literals
        return _decode_lenient_json(body, fleet_id, received_ms, max_points)
    _check_count(len(raw.updates), max_points)
    good: list[tuple[int, PointIn]] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(raw.updates):
        try:
            good.append((index, msgspec.json.decode(item, type=PointIn)))
        except msgspec.ValidationError as exc:
            rejected.append(Rejection(index, _reason(exc)))

    return _to_points(good, rejected, fleet_id, received_ms)


def _decode_lenient_json(body: bytes, fleet_id: str, received_ms: int, max_points: int) -> Decoded:
    """Python's json reads NaN and Infinity, which strict JSON forbids: those are rejected per
    point (with their index) instead of failing the whole batch."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("updates"), list):
        raise BadRequest("body must be an object with an `updates` list")
    _check_count(len(doc["updates"]), max_points)
    good: list[tuple[int, PointIn]] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(doc["updates"]):
        try:
            if isinstance(item, dict):
                bad = [k for k, v in item.items() if isinstance(v, float) and not math.isfinite(v)]
                if bad:
                    rejected.append(Rejection(index, f"`{bad[0]}` must be a finite number"))
                    continue
            good.append((index, msgspec.convert(item, PointIn)))
        except msgspec.ValidationError as exc:
            rejected.append(Rejection(index, _reason(exc)))
    return _to_points(good, rejected, fleet_id, received_ms)


def _reason(exc: msgspec.ValidationError) -> str:
    return str(exc).replace("`$.", "`").replace("- at `$`", "").strip()


def _to_points(items: Any, rejected: list[Rejection], fleet_id: str, received_ms: int) -> Decoded:
    points: list[tuple[int, GpsPoint]] = []
    good = _GOOD_IDS
    for index, p in items:
        trip, driver = p.trip_id, p.driver_id
        if (
            p.vehicle_id not in good
            or (trip is not None and trip not in good)
            or (driver is not None and driver not in good)
        ):
            bad = _bad_id_field(p)
            if bad is not None:
                reason = f"`{bad}` may hold only letters, digits and _ - . :"
                rejected.append(Rejection(index, reason))
                continue
        ts = p.timestamp
        if ts is None:
            ts = received_ms
        elif ts.__class__ is not int:
            try:
                ts = parse_timestamp(p.timestamp)
            except BadTimestamp as exc:
                rejected.append(Rejection(index, str(exc)))
                continue
        points.append(
            (
                index,
                GpsPoint(
                    fleet_id,
                    p.vehicle_id,
                    ts,
                    p.lat,
                    p.lng,
                    p.speed,
                    p.heading,
                    p.accuracy,
                    p.altitude,
                    p.trip_id,
                    p.driver_id,
                    p.engine_status,
                    received_ms,
                ),
            )
        )
    return points, rejected

"""Opaque page cursors: a position in a listing, as URL-safe base64 of its JSON."""

from __future__ import annotations

import base64
import binascii

import msgspec

from trucktrack.errors import BadRequest

MAX_TIME_MS = 2**62


def encode_cursor(position: object) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_cursor[T](cursor: str, kind: type[T]) -> T:
    """The position a cursor holds; BadRequest for anything this server did not issue."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        return msgspec.json.decode(raw, type=kind)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadRequest("cursor is not one this server issued") from None


def decode_time_cursor(cursor: str) -> tuple[int, str]:
    """A (time in ms, id) position, with the time inside what storage can hold."""
    ts, key = decode_cursor(cursor, tuple[int, str])
    if not -MAX_TIME_MS <= ts <= MAX_TIME_MS or len(key) > 128:
        raise BadRequest("cursor is not one this server issued")
    return ts, key

"""Time query parameters (`from`, `to`, `since`, `until`): epoch milliseconds or ISO-8601."""

from __future__ import annotations

import re

from trucktrack.domain.timefmt import BadTimestamp, parse_timestamp
from trucktrack.errors import BadRequest

EPOCH_MS = re.compile(r"-?[0-9]{1,20}")  # ASCII digits only: str.isdigit() also takes '²'.


def time_param(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_timestamp(int(value) if EPOCH_MS.fullmatch(value) else value)
    except BadTimestamp as exc:
        raise BadRequest(f"`{name}`: {exc}") from None

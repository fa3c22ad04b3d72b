"""Transport schemas: what the HTTP API accepts and returns (apart from the domain records)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from trucktrack.domain.model import GpsPoint
from trucktrack.domain.stops import Stop
from trucktrack.domain.timefmt import format_ms

ID_CHARS = r"[A-Za-z0-9_.:-]+"
ID_PATTERN = f"^{ID_CHARS}$"
# The id character set is checked by api/decoding.py (once per distinct id, cached) rather than by
# msgspec's `pattern`, which runs the regex on every string and cost ~40% of a batch's decode.
# The pattern still appears in the OpenAPI document.
VehicleId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        description="1-64 letters, digits or _ - . :",
        examples=["MH12AB1234"],
        extra_json_schema={"pattern": ID_PATTERN},
    ),
]
RefId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        description="1-128 of A-Z a-z 0-9 _ - . :",
        extra_json_schema={"pattern": ID_PATTERN},
    ),
]
CheckedVehicleId = Annotated[str, Meta(min_length=1, max_length=64, pattern=ID_PATTERN)]
CheckedRefId = Annotated[str, Meta(min_length=1, max_length=128, pattern=ID_PATTERN)]
"""A RefId checked by msgspec itself, where decoding speed does not matter (the panic button)."""


class PointIn(msgspec.Struct):
    """One GPS fix as a device sends it. Unknown fields are ignored."""

    vehicle_id: VehicleId
    lat: Annotated[float, Meta(ge=-90, le=90)]
    lng: Annotated[float, Meta(ge=-180, le=180)]
    timestamp: (
        Annotated[
            int | float | str,
            Meta(
                description="Device time: epoch milliseconds, or ISO-8601 with offset. "
                "Default: the time the server received it."
            ),
        ]
        | None
    ) = None
    speed: Annotated[float, Meta(ge=0, le=300, description="km/h")] = 0.0
    heading: Annotated[float, Meta(ge=0, lt=360, description="degrees from north")] = 0.0
    accuracy: Annotated[float, Meta(gt=0, le=100_000, description="metres")] = 10.0
    altitude: Annotated[float, Meta(ge=-1_000, le=10_000, description="metres")] | None = None
    trip_id: RefId | None = None
    driver_id: RefId | None = None
    engine_status: bool | None = None


class GpsBatchIn(msgspec.Struct):
    """Body of POST /tracking/gps."""

    updates: list[PointIn]


class RawBatchIn(msgspec.Struct):
    """The same body with the points left undecoded, to find which ones are bad."""

    updates: list[msgspec.Raw]


class RejectionOut(msgspec.Struct):
    index: int
    reason: str


class IngestReply(msgspec.Struct):
    processed: int
    """Points accepted and durable (including duplicates of points already stored)."""
    duplicates: int
    rejected: list[RejectionOut]


class LocationOut(msgspec.Struct):
    vehicle_id: str
    lat: float
    lng: float
    speed: float
    heading: float
    accuracy: float
    altitude: float | None
    timestamp: str
    timestamp_ms: int
    received_at: str
    age_s: float
    status: str
    """'moving' or 'stopped' (speed under 5 km/h)."""
    trip_id: str | None
    driver_id: str | None
    engine_status: bool | None


STOPPED_BELOW_KMH = 5.0


def location_out(p: GpsPoint, now_ms: int) -> LocationOut:
    return LocationOut(
        vehicle_id=p.vehicle_id,
        lat=p.lat,
        lng=p.lng,
        speed=p.speed,
        heading=p.heading,
        accuracy=p.accuracy,
        altitude=p.altitude,
        timestamp=format_ms(p.ts),
        timestamp_ms=p.ts,
        received_at=format_ms(p.received_at),
        age_s=round(max(0, now_ms - p.ts) / 1000, 3),
        status="stopped" if p.speed < STOPPED_BELOW_KMH else "moving",
        trip_id=p.trip_id,
        driver_id=p.driver_id,
        engine_status=p.engine_status,
    )


class BulkIn(msgspec.Struct):
    vehicle_ids: Annotated[list[CheckedVehicleId], Meta(min_length=1, max_length=100)]


class BulkOut(msgspec.Struct):
    locations: dict[str, LocationOut]
    missing: list[str]


class HistoryPointOut(msgspec.Struct):
    vehicle_id: str
    lat: float
    lng: float
    timestamp: str
    timestamp_ms: int
    speed: float
    heading: float
    accuracy: float
    altitude: float | None
    driver_id: str | None
    engine_status: bool | None
    received_at: str


def history_point_out(p: GpsPoint) -> HistoryPointOut:
    return HistoryPointOut(
        vehicle_id=p.vehicle_id,
        lat=p.lat,
        lng=p.lng,
        timestamp=format_ms(p.ts),
        timestamp_ms=p.ts,
        speed=p.speed,
        heading=p.heading,
        accuracy=p.accuracy,
        altitude=p.altitude,
        driver_id=p.driver_id,
        engine_status=p.engine_status,
        received_at=format_ms(p.received_at),
    )


class HistoryOut(msgspec.Struct):
    trip_id: str
    count: int
    points: list[HistoryPointOut]
    next_cursor: str | None
    """Pass as `cursor` to get the next page; null on the last page."""
    distance_m: float = 0.0
    """The whole trip's filtered distance so far (GPS jumps and poor fixes left out), as the
    processors last published it (up to ~10 s behind)."""


class StopOut(msgspec.Struct):
    started_at: str
    started_at_ms: int
    ended_at: str | None
    """null while the truck is still stopped."""
    ended_at_ms: int | None
    duration_s: float
    lat: float
    lng: float
    trip_id: str | None
    authorised: bool
    """Inside a `stop_allowed` fence (a depot, dhaba, fuel station)."""


class StopsOut(msgspec.Struct):
    vehicle_id: str
    stops: list[StopOut]
    next_cursor: str | None


def stop_out(stop: Stop) -> StopOut:
    return StopOut(
        started_at=format_ms(stop.started_ts),
        started_at_ms=stop.started_ts,
        ended_at=None if stop.ended_ts is None else format_ms(stop.ended_ts),
        ended_at_ms=stop.ended_ts,
        duration_s=round(stop.duration_s, 1),
        lat=stop.lat,
        lng=stop.lng,
        trip_id=stop.trip_id,
        authorised=stop.authorised,
    )


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    details: list[object] = []


class ErrorOut(msgspec.Struct):
    error: ErrorDetail

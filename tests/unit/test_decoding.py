"""Batch bodies to points: the fast path, per-point rejections, and the batch-level errors."""

from __future__ import annotations

import gzip

import msgspec
import pytest

from trucktrack.api.decoding import decode_batch, decompress
from trucktrack.errors import BadRequest, PayloadTooLarge

NOW = 1_795_000_000_000


def decode(updates: object, max_points: int = 1000) -> tuple[list, dict[int, str]]:
    body = msgspec.json.encode({"updates": updates})
    points, rejected = decode_batch(body, "fleet", NOW, max_points)
    return points, {r.index: r.reason for r in rejected}


def test_a_valid_batch_becomes_points_with_fleet_and_received_time() -> None:
    points, rejected = decode(
        [{"vehicle_id": "MH12AB1234", "lat": 18.5, "lng": 73.8, "timestamp": NOW - 5,
          "speed": 40, "trip_id": "T-1", "extra": {"ignored": True}}]
    )  # fmt: skip
    assert rejected == {}
    [(index, p)] = points
    assert index == 0
    assert (p.fleet_id, p.vehicle_id, p.ts, p.received_at) == ("fleet", "MH12AB1234", NOW - 5, NOW)
    assert (p.speed, p.heading, p.accuracy, p.altitude, p.trip_id) == (40.0, 0.0, 10.0, None, "T-1")


@pytest.mark.parametrize(
    ("point", "field"),
    [
        ({"lat": 1, "lng": 2}, "vehicle_id"),
        ({"vehicle_id": "", "lat": 1, "lng": 2}, "vehicle_id"),
        ({"vehicle_id": "x" * 65, "lat": 1, "lng": 2}, "vehicle_id"),
        ({"vehicle_id": "a b", "lat": 1, "lng": 2}, "vehicle_id"),
        ({"vehicle_id": "ab\n", "lat": 1, "lng": 2}, "vehicle_id"),
        ({"vehicle_id": "V", "lat": 90.01, "lng": 2}, "lat"),
        ({"vehicle_id": "V", "lat": 1, "lng": -180.5}, "lng"),
        ({"vehicle_id": "V", "lat": "1", "lng": 2}, "lat"),
        ({"vehicle_id": "V", "lat": True, "lng": 2}, "lat"),
        ({"vehicle_id": "V", "lat": 1, "lng": 2, "speed": -1}, "speed"),
        ({"vehicle_id": "V", "lat": 1, "lng": 2, "heading": 360}, "heading"),
        ({"vehicle_id": "V", "lat": 1, "lng": 2, "accuracy": 0}, "accuracy"),
        ({"vehicle_id": "V", "lat": 1, "lng": 2, "altitude": 20000}, "altitude"),
        ({"vehicle_id": "V", "lat": 1, "lng": 2, "engine_status": "on"}, "engine_status"),
        ({"vehicle_id": "V", "lat": 1, "lng": 2, "trip_id": "t/../x"}, "trip_id"),
        ({"vehicle_id": "V", "lat": 1, "lng": 2, "driver_id": 7}, "driver_id"),
        ({"vehicle_id": "V", "lat": 1, "lng": 2, "timestamp": "2026-01-01T00:00:00"}, "offset"),
        ({"vehicle_id": "V", "lat": 1, "lng": 2, "timestamp": "soon"}, "ISO-8601"),
        ({"vehicle_id": "V", "lat": 1, "lng": 2, "timestamp": [1]}, "timestamp"),
        ("not an object", "object"),
    ],
)
def test_a_bad_point_is_rejected_alone_with_its_index(point: object, field: str) -> None:
    good = {"vehicle_id": "V", "lat": 1, "lng": 2, "timestamp": NOW}
    points, rejected = decode([good, point, good | {"timestamp": NOW + 1}])
    assert [i for i, _ in points] == [0, 2]
    assert list(rejected) == [1]
    assert field in rejected[1]


def test_timestamps_in_every_accepted_form() -> None:
    forms = [NOW, float(NOW), "2026-11-24T10:00:00Z", "2026-11-24T15:30:00+05:30", None]
    points, rejected = decode(
        [{"vehicle_id": "V", "lat": 1, "lng": 2, "timestamp": t} for t in forms]
    )
    assert rejected == {}
    assert [p.ts for _, p in points] == [NOW, NOW, 1795514400000, 1795514400000, NOW]


def test_nan_and_infinity_literals_are_rejected_per_point() -> None:
    body = (
        b'{"updates": [{"vehicle_id": "V", "lat": NaN, "lng": 1},'
        b'{"vehicle_id": "V", "lat": 1, "lng": -Infinity},'
        b'{"vehicle_id": "V", "lat": 1, "lng": 2, "timestamp": 1795000000000}]}'
    )
    points, rejected = decode_batch(body, "fleet", NOW, 1000)
    assert [i for i, _ in points] == [2]
    assert [(r.index, r.reason) for r in rejected] == [
        (0, "`lat` must be a finite number"),
        (1, "`lng` must be a finite number"),
    ]


def test_a_huge_number_is_out_of_range() -> None:
    body = b'{"updates": [{"vehicle_id": "V", "lat": 1e999, "lng": 1}]}'
    points, rejected = decode_batch(body, "fleet", NOW, 1000)
    assert points == [] and rejected[0].index == 0 and "lat" in rejected[0].reason


@pytest.mark.parametrize(
    "body", [b"", b"nope", b"[]", b'{"updates": 1}', b'{"updates": {}}', b'{"other": []}', b"\xff"]
)
def test_a_body_of_the_wrong_shape_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_batch(body, "fleet", NOW, 1000)


def test_batch_size_limits() -> None:
    with pytest.raises(BadRequest, match="at least one"):
        decode([])
    one = {"vehicle_id": "V", "lat": 1, "lng": 2}
    with pytest.raises(PayloadTooLarge):
        decode([one] * 6, max_points=5)
    with pytest.raises(PayloadTooLarge):  # also on the slow path
        decode([one] * 5 + [{"lat": 1}], max_points=5)
    assert len(decode([one] * 5, max_points=5)[0]) == 5


def test_decompress() -> None:
    raw = b'{"updates": []}'
    assert decompress(raw, None, 100) == raw
    assert decompress(raw, "identity", 100) == raw
    assert decompress(gzip.compress(raw), "gzip", 100) == raw
    assert decompress(gzip.compress(raw), " GZIP ", 100) == raw
    with pytest.raises(BadRequest):
        decompress(b"not gzip", "gzip", 100)
    with pytest.raises(BadRequest):
        decompress(raw, "br", 100)
    with pytest.raises(PayloadTooLarge):
        decompress(gzip.compress(b" " * 10_000), "gzip", 1000)

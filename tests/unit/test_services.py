"""The use cases over in-memory fakes: ingest rules, reads, tokens, maintenance."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes import DAY_MS, FakeColdStore, FakePointLog, FakeTokenStore, gps
from trucktrack.domain.model import Principal, Rejection, Role
from trucktrack.domain.timefmt import day_of
from trucktrack.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from trucktrack.metrics import Metrics
from trucktrack.services.auth import TokenService, hash_token
from trucktrack.services.cursors import decode_cursor, decode_time_cursor, encode_cursor
from trucktrack.services.ingest import IngestService
from trucktrack.services.maintenance import Maintenance
from trucktrack.services.tracking import TrackingService

NOW = 1_795_000_000_000
ADMIN = Principal("f1", Role.ADMIN)
OTHER = Principal("f2", Role.ADMIN)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def log() -> FakePointLog:
    return FakePointLog()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def cold() -> FakeColdStore:
    return FakeColdStore()


@pytest.fixture
def ingest(log: FakePointLog, cold: FakeColdStore, metrics: Metrics) -> IngestService:
    return IngestService(log, cold, metrics, max_future_s=300, retention_days=30, hot_window_h=24)


def test_ingest_stores_good_points_and_merges_rejections_in_index_order(
    ingest: IngestService, log: FakePointLog, metrics: Metrics
) -> None:
    points = [(0, gps("V1", NOW)), (2, gps("V1", NOW + 10 * 60_000)), (3, gps("V2", NOW - 1))]
    result = run(ingest.ingest(ADMIN, points, [Rejection(1, "bad lat")], NOW))
    assert result.processed == 2 and result.duplicates == 0
    assert [(r.index, r.reason[:8]) for r in result.rejected] == [(1, "bad lat"), (2, "timestam")]
    assert set(log.points) == {("V1", NOW), ("V2", NOW - 1)}
    assert metrics.registry.get_sample_value("gps_updates_total") == 2
    assert metrics.registry.get_sample_value("gps_ingestion_errors_total") == 2


def test_ingest_counts_duplicates(ingest: IngestService, metrics: Metrics) -> None:
    batch = [(0, gps("V1", NOW)), (1, gps("V1", NOW + 1))]
    run(ingest.ingest(ADMIN, batch, [], NOW))
    again = run(ingest.ingest(ADMIN, batch, [], NOW))
    assert (again.processed, again.duplicates) == (2, 2)
    assert metrics.registry.get_sample_value("gps_duplicate_points_total") == 2


def test_a_retry_of_points_already_moved_cold_counts_as_duplicates(
    ingest: IngestService, log: FakePointLog, cold: FakeColdStore
) -> None:
    old = gps("V1", NOW - 3 * DAY_MS)
    cold.write_day(day_of(old.ts), [old])
    result = run(ingest.ingest(ADMIN, [(0, old), (1, gps("V1", NOW - 3 * DAY_MS + 1))], [], NOW))
    assert (result.processed, result.duplicates) == (2, 1)
    assert set(log.points) == {("V1", NOW - 3 * DAY_MS + 1)}


def test_ingest_refuses_viewers_and_out_of_scope_batches(ingest: IngestService) -> None:
    with pytest.raises(Forbidden):
        run(ingest.ingest(Principal("f1", Role.VIEWER), [(0, gps())], [], NOW))
    device = Principal("f1", Role.DEVICE, frozenset({"V1"}))
    with pytest.raises(Forbidden):
        run(ingest.ingest(device, [(0, gps("V2"))], [], NOW))
    mixed = run(ingest.ingest(device, [(0, gps("V2")), (1, gps("V1"))], [], NOW))
    assert mixed.processed == 1 and [r.index for r in mixed.rejected] == [0]


def test_a_vehicle_belongs_to_the_first_fleet_that_reports_it(ingest: IngestService) -> None:
    run(ingest.ingest(ADMIN, [(0, gps("V1"))], [], NOW))
    result = run(
        ingest.ingest(OTHER, [(0, gps("V1", NOW + 1, "f2")), (1, gps("B", NOW, "f2"))], [], NOW)
    )
    assert result.processed == 1 and [r.index for r in result.rejected] == [0]


def tracking(log: FakePointLog, cold: FakeColdStore | None = None) -> TrackingService:
    return TrackingService(log, log, cold or FakeColdStore(), location_ttl_h=24)


def test_location_ttl_scope_and_tenancy(log: FakePointLog) -> None:
    run(log.append("f1", [gps("V1", NOW), gps("OLD", NOW - 25 * 3_600_000)]))
    svc = tracking(log)
    assert svc.location(ADMIN, "V1", NOW + 1000).ts == NOW
    for principal, vehicle in ((ADMIN, "OLD"), (OTHER, "V1"), (ADMIN, "NONE"),
                               (Principal("f1", Role.VIEWER, frozenset({"X"})), "V1")):  # fmt: skip
        with pytest.raises(NotFound):
            svc.location(principal, vehicle, NOW)
    found, missing = svc.locations(ADMIN, ["V1", "OLD", "V1", "NONE"], NOW)
    assert list(found) == ["V1"] and missing == ["OLD", "NONE"]


def test_history_merges_tiers_once_and_pages_without_gaps(log: FakePointLog) -> None:
    cold = FakeColdStore()
    old = [gps(f"V{i % 2}", NOW - DAY_MS * 2 + i, trip_id="T") for i in range(7)]
    hot = [gps(f"V{i % 2}", NOW + i, trip_id="T") for i in range(6)]
    run(log.append("f1", [*hot, old[3]]))  # old[3] sits in both tiers, as after a crash mid-move
    for p in old:
        cold.write_day(day_of(p.ts), [p])
    svc = tracking(log, cold)
    seen, cursor = [], None
    for _ in range(10):
        page = svc.trip_history(ADMIN, "T", from_ms=None, to_ms=None, cursor=cursor, limit=4)
        seen += [(p.ts, p.vehicle_id) for p in page.points]
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = sorted((p.ts, p.vehicle_id) for p in old + hot)
    assert seen == expected
    with pytest.raises(NotFound):
        svc.trip_history(OTHER, "T", from_ms=None, to_ms=None, cursor=None, limit=10)
    with pytest.raises(BadRequest):
        svc.trip_history(ADMIN, "T", from_ms=None, to_ms=None, cursor="!!", limit=10)
    window = svc.trip_history(ADMIN, "T", from_ms=NOW + 2, to_ms=NOW + 4, cursor=None, limit=10)
    assert [p.ts for p in window.points] == [NOW + 2, NOW + 3]


def test_cursor_round_trip() -> None:
    assert decode_time_cursor(encode_cursor([NOW, "V:1"])) == (NOW, "V:1")
    assert decode_cursor(encode_cursor("gf_1"), str) == "gf_1"
    for forged in ("%%%", encode_cursor([2**63, "V"]), encode_cursor("x"), encode_cursor([1])):
        with pytest.raises(BadRequest):
            decode_time_cursor(forged)


def test_tokens() -> None:
    store = FakeTokenStore()
    tokens = TokenService(store, cache_s=60)
    token = tokens.create("fleet-1", "device", ["V1", "V2"], label="truck")
    assert token.startswith("tt_") and len(token) > 40
    assert hash_token(token) in store.tokens and token not in str(store.tokens)
    p = tokens.authenticate(token)
    assert (p.fleet_id, p.role, p.vehicles) == ("fleet-1", Role.DEVICE, frozenset({"V1", "V2"}))
    tokens.authenticate(token)
    assert store.lookups == 1  # cached
    for bad in (None, "", "tt_wrong"):
        with pytest.raises(Unauthenticated):
            tokens.authenticate(bad)
    for fleet, role, vehicles in (("bad fleet", "admin", None), ("f", "root", None),
                                  ("f", "device", ["ok", "not ok"])):  # fmt: skip
        with pytest.raises(BadRequest):
            tokens.create(fleet, role, vehicles)


def test_maintenance_moves_whole_old_days_and_applies_retention(log: FakePointLog) -> None:
    cold = FakeColdStore()
    day0 = 1_795_478_400_000  # 2026-11-24T00:00Z
    now = day0 + 12 * 3_600_000
    points = [
        gps("V1", now - 40 * DAY_MS),  # past retention
        gps("V1", day0 - 2 * DAY_MS + 5, trip_id="T"),
        gps("V1", day0 - DAY_MS + 5, trip_id="T"),  # yesterday: not all of it is 24 h old yet
        gps("V1", day0 - 3_600_000, trip_id="T"),
        gps("V1", now - 1000, trip_id="T"),
    ]
    run(log.append("f1", points))
    m = Maintenance(log, cold, log, hot_window_h=24, retention_days=30)
    report = run(m.run(now))
    assert report.deleted_hot_points == 1
    assert report.moved_points == 1 and [d.isoformat() for d in report.moved_days] == ["2026-11-22"]
    assert {p.ts for p in log.points.values()} == {day0 - DAY_MS + 5, day0 - 3_600_000, now - 1000}
    again = run(m.run(now))
    assert (again.moved_points, again.deleted_hot_points) == (0, 0)
    later = run(m.run(now + 31 * DAY_MS))
    assert [d.isoformat() for d in later.dropped_cold_days] == ["2026-11-22"]
    assert later.forgotten_locations == 1

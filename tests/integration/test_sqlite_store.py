"""The SQLite hot tier on real files: group commit, dedupe, ownership, newest point, overload."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import gps
from trucktrack import bootstrap
from trucktrack.bootstrap import Services
from trucktrack.domain.model import Principal, Role
from trucktrack.errors import Overloaded, StorageUnavailable
from trucktrack.settings import Settings

NOW = 1_795_000_000_000
ADMIN = Principal("f1", Role.ADMIN)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = bootstrap.local(Settings(data_dir=str(tmp_path)))
    yield s
    s.close()


def log_of(services: Services):  # type: ignore[no-untyped-def]
    return services.tracking._log


def test_append_dedupes_within_and_across_batches(services: Services) -> None:
    log = log_of(services)

    async def go() -> None:
        first = await log.append("f1", [gps("V1", NOW, trip_id="T"), gps("V1", NOW, trip_id="T"),
                                         gps("V1", NOW + 1, trip_id="T")])  # fmt: skip
        assert (first.inserted, first.duplicates) == (2, 1)
        again = await log.append("f1", [gps("V1", NOW + 1, trip_id="T"), gps("V2", NOW)])
        assert (again.inserted, again.duplicates) == (1, 1)

    asyncio.run(go())
    page = services.tracking.trip_history(
        ADMIN, "T", from_ms=None, to_ms=None, cursor=None, limit=10
    )
    assert [p.ts for p in page.points] == [NOW, NOW + 1]


def test_concurrent_appends_share_commits_and_all_land(services: Services) -> None:
    log = log_of(services)

    async def go() -> list[int]:
        batches = [[gps(f"V{b}", NOW + i, trip_id=f"T{b}") for i in range(50)] for b in range(40)]
        outcomes = await asyncio.gather(*(log.append("f1", batch) for batch in batches))
        return [o.inserted for o in outcomes]

    commits_before = services.writer.commits
    assert asyncio.run(go()) == [50] * 40
    assert services.writer.commits - commits_before < 40
    for b in range(40):
        page = services.tracking.trip_history(
            ADMIN, f"T{b}", from_ms=None, to_ms=None, cursor=None, limit=100
        )
        assert len(page.points) == 50


def test_current_location_keeps_the_newest_even_when_late_points_come(services: Services) -> None:
    log = log_of(services)

    async def go() -> None:
        # Within one batch (one group), the older point comes second.
        await log.append("f1", [gps("V1", NOW + 10, lat=10), gps("V1", NOW, lat=11)])
        await log.append("f1", [gps("V1", NOW + 5, lat=12)])

    asyncio.run(go())
    loc = services.tracking.location(ADMIN, "V1", NOW)
    assert (loc.ts, loc.lat) == (NOW + 10, 10.0)


def test_a_vehicle_of_another_fleet_is_rejected_by_index(services: Services) -> None:
    log = log_of(services)

    async def go() -> None:
        await log.append("f1", [gps("V1", NOW)])
        # Both fleets claim the new vehicle V2 in the same group: the first one wins.
        out1, out2 = await asyncio.gather(
            log.append("f1", [gps("V2", NOW)]),
            log.append(
                "f2", [gps("B1", NOW, "f2"), gps("V1", NOW + 1, "f2"), gps("V2", NOW + 1, "f2")]
            ),
        )
        assert out1.inserted == 1 and not out1.rejected
        assert out2.inserted == 1 and [r.index for r in out2.rejected] == [1, 2]

    asyncio.run(go())
    assert log_of(services).fleet_of("V2") == "f1"
    assert log_of(services).fleet_of("B1") == "f2"


def test_data_and_ownership_survive_a_reopen(tmp_path: Path) -> None:
    s1 = bootstrap.local(Settings(data_dir=str(tmp_path)))
    asyncio.run(log_of(s1).append("f1", [gps("V1", NOW, trip_id="T")]))
    s1.close()
    s2 = bootstrap.local(Settings(data_dir=str(tmp_path)))
    try:
        assert s2.tracking.location(ADMIN, "V1", NOW).ts == NOW
        out = asyncio.run(log_of(s2).append("f2", [gps("V1", NOW + 1, "f2")]))
        assert out.inserted == 0 and len(out.rejected) == 1
        # The trip key is reused, not duplicated.
        asyncio.run(log_of(s2).append("f1", [gps("V1", NOW + 2, trip_id="T")]))
        page = s2.tracking.trip_history(ADMIN, "T", from_ms=None, to_ms=None, cursor=None, limit=9)
        assert [p.ts for p in page.points] == [NOW, NOW + 2]
    finally:
        s2.close()


def test_a_full_write_queue_refuses_more_work(tmp_path: Path) -> None:
    services = bootstrap.local(Settings(data_dir=str(tmp_path), max_pending_points=100))
    log = log_of(services)
    # Another connection holds the write lock, so the writer's first group cannot commit.
    lock = sqlite3.connect(tmp_path / "trucktrack.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")

    async def go() -> None:
        first = asyncio.create_task(log.append("f1", [gps("V1", NOW + i) for i in range(80)]))
        await asyncio.sleep(0.1)
        assert services.writer.pending_points == 80
        with pytest.raises(Overloaded):
            await log.append("f1", [gps("V1", NOW + 100 + i) for i in range(30)])
        lock.execute("COMMIT")
        assert (await first).inserted == 80
        assert services.writer.pending_points == 0

    try:
        asyncio.run(go())
    finally:
        if lock.in_transaction:
            lock.execute("COMMIT")
        lock.close()
        services.close()


def explode(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM points")
    raise ValueError("boom")


def test_a_failing_job_does_not_sink_its_group(services: Services) -> None:
    log = log_of(services)

    async def go() -> None:
        await log.append("f1", [gps("V0", NOW)])
        failing = services.writer.run(explode)
        ok = log.append("f1", [gps("V1", NOW)])
        results = await asyncio.gather(failing, ok, return_exceptions=True)
        assert isinstance(results[0], ValueError)
        assert results[1].inserted == 1  # type: ignore[union-attr]

    asyncio.run(go())
    # The failed job's own change was rolled back, the others' kept.
    assert services.tracking.location(Principal("f1", Role.ADMIN), "V0", NOW).ts == NOW
    with pytest.raises(Exception, match="pickle"):
        asyncio.run(services.writer.run(lambda conn: None))


def test_tokens_made_elsewhere_are_found(tmp_path: Path) -> None:
    running = bootstrap.local(Settings(data_dir=str(tmp_path)))
    try:
        token = bootstrap.tokens_only(Settings(data_dir=str(tmp_path))).create("f9", "viewer")
        assert running.tokens.authenticate(token).fleet_id == "f9"
    finally:
        running.close()


def test_a_dead_writer_process_makes_writes_fail_fast(tmp_path: Path) -> None:
    services = bootstrap.local(Settings(data_dir=str(tmp_path)))
    try:
        services.writer._process.kill()
        services.writer._process.join()

        async def go() -> None:
            for _ in range(50):  # the receiver notices the closed pipe within moments
                try:
                    await log_of(services).append("f1", [gps("V1", NOW)])
                except StorageUnavailable:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("writes kept succeeding with no writer")

        asyncio.run(go())
    finally:
        services.close()


def test_an_area_is_thinned_to_the_newest_fresh_fix_per_cell_before_the_limit(
    services: Services,
) -> None:
    """The store's cells (SQL) are the domain's cells (`Area.cell`), across the antimeridian
    too; stale fixes never count, and the limit cuts the thinned list, newest first."""
    import random

    from trucktrack.domain.live import Area

    rng = random.Random(7)
    points = [
        gps(f"V{i}", NOW - rng.randrange(0, 2 * 86_400_000), lat=rng.uniform(-20, 20),
            lng=rng.choice([rng.uniform(170, 180), rng.uniform(-180, -170)]))
        for i in range(3000)
    ]  # fmt: skip
    asyncio.run(log_of(services).append("f1", points))
    current = services.tracking._current
    fresh_after = NOW - 86_400_000
    for zoom in (3, 6, 9, 13):
        area = Area(172.0, -15.0, -172.0, 15.0, zoom)
        newest: dict[object, tuple[int, str]] = {}
        for p in points:
            if p.ts >= fresh_after and area.contains(p.lat, p.lng):
                key = area.cell(p.lat, p.lng) or p.vehicle_id
                newest[key] = max(newest.get(key, (-1, "")), (p.ts, p.vehicle_id))
        expected = [v for _, v in sorted(newest.values(), reverse=True)]
        found = current.in_area("f1", 172.0, -15.0, -172.0, 15.0, newer_than_ms=fresh_after,
                                cell_deg=area.cell_deg, limit=10_000)  # fmt: skip
        assert [p.vehicle_id for p in found] == expected, zoom
        first = current.in_area("f1", 172.0, -15.0, -172.0, 15.0, newer_than_ms=fresh_after,
                                cell_deg=area.cell_deg, limit=5)  # fmt: skip
        assert [p.vehicle_id for p in first] == expected[:5]

"""Hot to cold: whole old days move to Parquet, reads span both tiers, retention deletes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.fakes import gps
from trucktrack import bootstrap
from trucktrack.bootstrap import Services
from trucktrack.domain.model import GpsPoint, Principal, Role
from trucktrack.settings import Settings

DAY = 86_400_000
DAY0 = 1_795_478_400_000  # 2026-11-24T00:00Z
NOW = DAY0 + 12 * 3_600_000
ADMIN = Principal("f1", Role.ADMIN)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = bootstrap.local(Settings(data_dir=str(tmp_path)))
    yield s
    s.close()


def append(services: Services, points: list[GpsPoint]) -> None:
    asyncio.run(services.tracking._log.append("f1", points))


def whole_trip(services: Services, trip: str, limit: int = 7) -> list[GpsPoint]:
    out: list[GpsPoint] = []
    cursor = None
    for _ in range(1000):
        page = services.tracking.trip_history(
            ADMIN, trip, from_ms=None, to_ms=None, cursor=cursor, limit=limit
        )
        out += page.points
        cursor = page.next_cursor
        if cursor is None:
            return out
    raise AssertionError("no end")


def hot_count(services: Services) -> int:
    return services.reads.get().execute("SELECT count(*) FROM points").fetchone()[0]


def test_old_days_move_to_parquet_and_history_spans_both_tiers(
    services: Services, tmp_path: Path
) -> None:
    # Three days of a trip, two vehicles, every 30 minutes; plus today's points.
    points = [
        gps(f"V{i % 2}", DAY0 - 3 * DAY + i * 1_800_000, trip_id="T", lat=i / 1000)
        for i in range(3 * 48)
    ]
    today = [gps("V0", DAY0 + 1000 * i, trip_id="T") for i in range(5)]
    append(services, points + today)
    report = asyncio.run(services.maintenance.run(NOW))
    # 11-21, 11-22 wholly older than 24 h; 11-23 is not (its last hours are < 24 h old).
    assert [d.isoformat() for d in report.moved_days] == ["2026-11-21", "2026-11-22"]
    assert report.moved_points == 96
    files = sorted((tmp_path / "cold" / "points").glob("day=*/part-*.parquet"))
    assert [f.parent.name for f in files] == ["day=2026-11-21", "day=2026-11-22"]
    meta = pq.ParquetFile(files[0]).metadata
    assert meta.num_rows == 48 and meta.row_group(0).column(0).compression == "ZSTD"
    assert hot_count(services) == 48 + 5
    got = whole_trip(services, "T")
    assert [(p.ts, p.vehicle_id) for p in got] == sorted(
        (p.ts, p.vehicle_id) for p in points + today
    )
    assert got[0] == points[0]  # every field survives the trip through Parquet
    rerun = asyncio.run(services.maintenance.run(NOW))
    assert rerun.moved_points == 0 and hot_count(services) == 53


def test_a_late_point_for_a_moved_day_lands_in_a_new_part(
    services: Services, tmp_path: Path
) -> None:
    append(services, [gps("V0", DAY0 - 2 * DAY + 10, trip_id="L")])
    asyncio.run(services.maintenance.run(NOW))
    append(
        services,
        [gps("V0", DAY0 - 2 * DAY + 5, trip_id="L"), gps("V0", DAY0 - 2 * DAY + 10, trip_id="L")],
    )
    asyncio.run(services.maintenance.run(NOW))
    day = tmp_path / "cold" / "points" / "day=2026-11-22"
    assert len(list(day.glob("part-*.parquet"))) == 2
    # The repeated point (already cold when it came again) reads once.
    assert [p.ts for p in whole_trip(services, "L")] == [DAY0 - 2 * DAY + 5, DAY0 - 2 * DAY + 10]
    (day / ".part-x.parquet.tmp").write_bytes(b"half a file")
    assert len(whole_trip(services, "L")) == 2


def test_retention_deletes_hot_rows_cold_days_and_stale_locations(
    services: Services, tmp_path: Path
) -> None:
    append(
        services, [gps("V0", DAY0 - 3 * DAY, trip_id="R"), gps("V1", DAY0 - 40 * DAY, trip_id="R")]
    )
    first = asyncio.run(services.maintenance.run(NOW))
    assert first.deleted_hot_points == 1 and first.forgotten_locations == 1
    later = asyncio.run(services.maintenance.run(NOW + 30 * DAY))
    assert [d.isoformat() for d in later.dropped_cold_days] == ["2026-11-21"]
    assert later.forgotten_locations == 1
    assert not list((tmp_path / "cold" / "points").glob("day=*"))
    with pytest.raises(Exception, match="no points"):
        whole_trip(services, "R")

"""On real files: the stops a window overlaps, summaries missing from completed trips, and the
Parquet export across both tiers, each point once even while a day is in both."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from tests.fakes import gps
from trucktrack import bootstrap
from trucktrack.bootstrap import Services
from trucktrack.domain.model import GpsPoint
from trucktrack.domain.timefmt import day_of
from trucktrack.domain.trips import Place, Trip, TripStatus
from trucktrack.errors import BadRequest
from trucktrack.settings import Settings

DAY = 86_400_000
DAY0 = 1_795_478_400_000  # 2026-11-24T00:00Z
NOW = DAY0 + 12 * 3_600_000


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = bootstrap.local(Settings(data_dir=str(tmp_path / "data")))
    yield s
    s.close()


def append(services: Services, fleet: str, points: list[GpsPoint]) -> None:
    asyncio.run(services.tracking._log.append(fleet, points))


def test_stops_during_a_window_include_the_one_begun_before(services: Services) -> None:
    # Moving, stopped 10 min, moving, stopped 10 min, moving: fixes every 30 s.
    speeds = [40] * 10 + [0] * 20 + [40] * 10 + [0] * 20 + [40] * 10
    lat, points = 20.0, []
    for i, v in enumerate(speeds):
        lat += 0.001 if v else 0.0
        points.append(gps("V1", NOW + i * 30_000, lat=lat, speed=v))
    append(services, "f1", points)
    stops = services.monitor._stops  # the SqliteStopLog
    first, second = NOW + 10 * 30_000, NOW + 40 * 30_000
    got = stops.during("f1", "V1", NOW, NOW + DAY)
    assert [(s.started_ts, s.ended_ts) for s in got] == [
        (first, NOW + 30 * 30_000), (second, NOW + 60 * 30_000)
    ]  # fmt: skip
    # A window starting inside the first stop still has it; one after it ended does not.
    assert [s.started_ts for s in stops.during("f1", "V1", first + 60_000, NOW + DAY)] == [
        first, second
    ]  # fmt: skip
    assert [s.started_ts for s in stops.during("f1", "V1", NOW + 35 * 30_000, second)] == []
    assert stops.during("f2", "V1", NOW, NOW + DAY) == []  # another fleet's view


def test_completed_trips_without_a_current_summary_are_missing(services: Services) -> None:
    here = Place(20.0, 78.0)

    def trip(trip_id: str, status: TripStatus, ended: int | None) -> Trip:
        return Trip("f1", trip_id, "V1", here, here, status=status, started_at=NOW - DAY,
                    ended_at=ended, created_at=NOW - DAY, version=1)  # fmt: skip

    store = services.trips._store
    for t in (trip("old", TripStatus.COMPLETED, NOW - 40 * DAY),
              trip("done", TripStatus.COMPLETED, NOW - DAY),
              trip("active", TripStatus.ACTIVE, None)):  # fmt: skip
        assert asyncio.run(store.create(t))
    summaries = services.summaries._store
    assert [t.trip_id for t in summaries.missing(NOW - 30 * DAY, 10)] == ["done"]
    summary = services.summaries.compute(store.get("f1", "done"), NOW)
    asyncio.run(summaries.put(summary))
    assert summaries.missing(NOW - 30 * DAY, 10) == []
    assert summaries.get("f1", "done") == summary
    old = msgspec.structs.replace(summary, version=0)  # made by older rules: made again
    asyncio.run(summaries.put(old))
    assert [t.trip_id for t in summaries.missing(NOW - 30 * DAY, 10)] == ["done"]


def test_export_reads_both_tiers_and_writes_each_point_once(
    services: Services, tmp_path: Path
) -> None:
    # Three old days (hourly) and today, fleet f1 on trip T and fleet f2 beside it.
    old = [gps("V1", DAY0 - 3 * DAY + i * 3_600_000, trip_id="T") for i in range(72)]
    today = [gps("V1", DAY0 + i * 3_600_000, trip_id="T") for i in range(6)]
    other = [gps("W1", DAY0 - DAY + i * 3_600_000, fleet_id="f2") for i in range(30)]
    append(services, "f1", old + today)
    append(services, "f2", other)
    asyncio.run(services.maintenance.run(NOW))  # whole days over 24 h old move cold
    cold = services.maintenance._cold
    assert [str(d) for d in cold.days()] == ["2026-11-21", "2026-11-22"]
    # As if moves had died after writing their part: some of the 22nd's rows in a second part,
    # and some of yesterday's (still hot) in a cold part.
    cold.write_day(
        day_of(DAY0 - 2 * DAY), [p for p in old if day_of(p.ts) == day_of(DAY0 - 2 * DAY)][:5]
    )
    cold.write_day(day_of(DAY0 - DAY), [p for p in old if day_of(p.ts) == day_of(DAY0 - DAY)][:3])

    out = tmp_path / "export"
    report = bootstrap.export_parquet(services.settings, out, DAY0 - 2 * DAY, NOW, "f1")
    points = pq.read_table(out / "points").to_pylist()
    want = [p for p in old + today if DAY0 - 2 * DAY <= p.ts < NOW]
    assert len(points) == len(want) == report.rows["points"]
    keys = [(p["vehicle_id"], int(p["ts"].timestamp() * 1000)) for p in points]
    assert sorted(keys) == sorted((p.vehicle_id, p.ts) for p in want)
    assert sorted({str(p["day"]) for p in points}) == ["2026-11-22", "2026-11-23", "2026-11-24"]
    assert report.files[:3] == [f"points/day=2026-11-2{d}/points.parquet" for d in (2, 3, 4)]
    trips = pq.read_table(out / "trips.parquet")
    assert trips.num_rows == 0 and "trip_completed_at" in trips.column_names
    every = bootstrap.export_parquet(services.settings, tmp_path / "all", DAY0 - 9 * DAY, NOW, None)
    assert every.rows["points"] == len(old) + len(today) + len(other)
    with pytest.raises(BadRequest, match="not empty"):
        bootstrap.export_parquet(services.settings, out, DAY0, NOW, None)

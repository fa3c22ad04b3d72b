"""The cold tier: older days of points as zstd-compressed Parquet files, one folder per UTC day.

Layout: `<cold_dir>/points/day=YYYY-MM-DD/part-<unique>.parquet`. A day may hold several parts (late
points that arrived after the day was moved are moved later as a new part). A part is written to a
temporary name and renamed, so a crash never leaves a half file that readers would see.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trucktrack.domain.model import GpsPoint
from trucktrack.domain.timefmt import day_of, day_start_ms

SCHEMA = pa.schema(
    [
        ("fleet_id", pa.string()),
        ("vehicle_id", pa.string()),
        ("ts", pa.int64()),
        ("lat", pa.float64()),
        ("lng", pa.float64()),
        ("speed", pa.float64()),
        ("heading", pa.float64()),
        ("accuracy", pa.float64()),
        ("altitude", pa.float64()),
        ("trip_id", pa.string()),
        ("driver_id", pa.string()),
        ("engine_status", pa.bool_()),
        ("received_at", pa.int64()),
    ]
)
_DAY_PREFIX = "day="


class ParquetColdStore:
    """Implements the ColdPointStore port on local Parquet files."""

    def __init__(self, root: Path) -> None:
        self._root = root / "points"

    def _day_dir(self, day: dt.date) -> Path:
        return self._root / f"{_DAY_PREFIX}{day.isoformat()}"

    def write_day(self, day: dt.date, points: Sequence[GpsPoint]) -> None:
        """Add points to a day as one new part file, atomically (temporary name, fsync, rename)."""
        if not points:
            return
        folder = self._day_dir(day)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = folder / f".{name}.tmp"
        # Sorted by trip, in row groups of 32k rows: a trip's history read skips, by the row
        # groups' min/max statistics, everything but the groups that hold that trip.
        table = _table_of(points).sort_by(
            [("fleet_id", "ascending"), ("trip_id", "ascending"), ("ts", "ascending")]
        )
        pq.write_table(table, tmp, compression="zstd", row_group_size=32_768)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        tmp.rename(folder / name)
        _fsync_dir(folder)

    def days(self) -> list[dt.date]:
        if not self._root.exists():
            return []
        found = []
        for entry in self._root.iterdir():
            if entry.is_dir() and entry.name.startswith(_DAY_PREFIX):
                try:
                    found.append(dt.date.fromisoformat(entry.name[len(_DAY_PREFIX) :]))
                except ValueError:
                    continue
        return sorted(found)

    def stored_keys(self, fleet_id: str, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        wanted: dict[dt.date, list[tuple[str, int]]] = {}
        days = set(self.days())
        for vid, ts in keys:
            day = day_of(ts)
            if day in days:
                wanted.setdefault(day, []).append((vid, ts))
        found: set[tuple[str, int]] = set()
        for day, day_keys in wanted.items():
            expr = (
                (pc.field("fleet_id") == fleet_id)
                & pc.field("vehicle_id").isin(sorted({v for v, _ in day_keys}))
                & pc.field("ts").isin(sorted({t for _, t in day_keys}))
            )
            for f in self._day_dir(day).glob("part-*.parquet"):
                table = pq.read_table(f, columns=["vehicle_id", "ts"], filters=expr)
                found.update(
                    zip(table["vehicle_id"].to_pylist(), table["ts"].to_pylist(), strict=True)
                )
        return found & set(keys)

    def drop_days_before(self, day: dt.date) -> list[dt.date]:
        dropped = [d for d in self.days() if d < day]
        for d in dropped:
            shutil.rmtree(self._day_dir(d))
        return dropped

    def trip_points(
        self,
        fleet_id: str,
        trip_id: str,
        *,
        from_ms: int,
        to_ms: int,
        after: tuple[int, str] | None,
        limit: int,
        vehicles: frozenset[str] | None,
    ) -> list[GpsPoint]:
        files = [
            f
            for d in self.days()
            if day_start_ms(d) + 86_400_000 > from_ms and day_start_ms(d) < to_ms
            for f in sorted(self._day_dir(d).glob("part-*.parquet"))
        ]
        if not files:
            return []
        expr = (
            (pc.field("fleet_id") == fleet_id)
            & (pc.field("trip_id") == trip_id)
            & (pc.field("ts") >= from_ms)
            & (pc.field("ts") < to_ms)
        )
        if after is not None:
            expr &= (pc.field("ts") > after[0]) | (
                (pc.field("ts") == after[0]) & (pc.field("vehicle_id") > after[1])
            )
        if vehicles is not None:
            expr &= pc.field("vehicle_id").isin(list(vehicles))
        tables = [pq.read_table(f, filters=expr, schema=SCHEMA) for f in files]
        table = pa.concat_tables(tables).sort_by([("ts", "ascending"), ("vehicle_id", "ascending")])
        table = _without_repeats(table.combine_chunks())
        return [GpsPoint(**row) for row in table.slice(0, limit).to_pylist()]


def _table_of(points: Sequence[GpsPoint]) -> pa.Table:
    columns = list(zip(*(msgspec.structs.astuple(p) for p in points), strict=True))
    return pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, SCHEMA, strict=True)],
        schema=SCHEMA,
    )


def _without_repeats(table: pa.Table) -> pa.Table:
    """Drop rows repeating the previous (ts, vehicle_id): parts of a day may overlap."""
    if table.num_rows < 2:
        return table
    ts, vid = table["ts"], table["vehicle_id"]
    repeat = pc.and_(
        pc.equal(ts.slice(1), ts.slice(0, table.num_rows - 1)),
        pc.equal(vid.slice(1), vid.slice(0, table.num_rows - 1)),
    )
    keep = pa.concat_arrays([pa.array([True]), pc.invert(repeat).combine_chunks()])
    return table.filter(keep)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

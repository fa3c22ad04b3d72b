"""The analytics export: points, trips, alerts and trip summaries as Parquet files (the spec's
"Parquet format for analytics"), for DuckDB, pandas, Spark or Athena.

It reads the embedded store directly (SQLite read-only, the cold Parquet tier), so it runs
beside a live server. Layout of the output folder (documented in docs/api.md, "Analytics
export"):

    points/day=YYYY-MM-DD/points.parquet   one Hive partition per UTC day, both tiers merged
    trips.parquet  alerts.parquet  summaries.parquet
    manifest.json                          written last: the period, the fleet, row counts

Every file is written under a temporary name, fsync'd and renamed, so a reader never sees half
a file, and zstd-compressed. Times are `timestamp[ms, UTC]`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trucktrack.adapters.parquet import SCHEMA as COLD_SCHEMA
from trucktrack.adapters.sqlite.schema import POINT_JOINS, POINT_SELECT, connect
from trucktrack.adapters.sqlite.summaries import decode_summary
from trucktrack.domain.alerts import Alert
from trucktrack.domain.summary import PHASES, TripSummary
from trucktrack.domain.timefmt import DAY_MS, day_of, day_start_ms, format_ms
from trucktrack.domain.trips import ORDER, Trip
from trucktrack.errors import BadRequest

TS = pa.timestamp("ms", tz="UTC")
POINTS = pa.schema(
    [("fleet_id", pa.string()), ("vehicle_id", pa.string()), ("ts", TS), ("lat", pa.float64()),
     ("lng", pa.float64()), ("speed", pa.float64()), ("heading", pa.float64()),
     ("accuracy", pa.float64()), ("altitude", pa.float64()), ("trip_id", pa.string()),
     ("driver_id", pa.string()), ("engine_status", pa.bool_()), ("received_at", TS)]
)  # fmt: skip
MILESTONE = pa.struct(
    [("milestone", pa.string()), ("ts", TS), ("recorded_at", TS), ("recorded_by", pa.string()),
     ("lat", pa.float64()), ("lng", pa.float64()), ("note", pa.string()),
     ("distance_to_place_m", pa.float64()), ("override", pa.bool_())]
)  # fmt: skip
TRIPS = pa.schema(
    [("fleet_id", pa.string()), ("trip_id", pa.string()), ("booking_id", pa.string()),
     ("vehicle_id", pa.string()), ("driver_id", pa.string()), ("status", pa.string()),
     ("pickup_lat", pa.float64()), ("pickup_lng", pa.float64()), ("pickup_name", pa.string()),
     ("delivery_lat", pa.float64()), ("delivery_lng", pa.float64()),
     ("delivery_name", pa.string()), ("planned_start", TS), ("planned_arrival", TS),
     ("started_at", TS), ("ended_at", TS), ("created_at", TS), ("updated_at", TS),
     ("payload_t", pa.float64()), ("distance_km", pa.float64()),
     ("planned_route_km", pa.float64()), ("planned_route_source", pa.string()),
     ("actual_route_km", pa.float64()),
     *[(f"{m.value}_at", TS) for m in ORDER],
     ("milestones", pa.list_(MILESTONE))]
)  # fmt: skip
ALERTS = pa.schema(
    [("fleet_id", pa.string()), ("alert_id", pa.string()), ("type", pa.string()),
     ("severity", pa.string()), ("vehicle_id", pa.string()), ("trip_id", pa.string()),
     ("geofence_id", pa.string()), ("ts", TS), ("lat", pa.float64()), ("lng", pa.float64()),
     ("details", pa.string()), ("created_at", TS), ("acknowledged_at", TS),
     ("acknowledged_by", pa.string())]
)  # fmt: skip
SUMMARY_STOP = pa.struct(
    [("started_at", TS), ("ended_at", TS), ("duration_s", pa.float64()), ("lat", pa.float64()),
     ("lng", pa.float64()), ("authorised", pa.bool_()), ("place", pa.string()),
     ("phase", pa.string()), ("idle_s", pa.float64())]
)  # fmt: skip
SUMMARY_SPELL = pa.struct(
    [("started_at", TS), ("ended_at", TS), ("duration_s", pa.float64()),
     ("max_speed_kmh", pa.float64()), ("limit_kmh", pa.float64()), ("lat", pa.float64()),
     ("lng", pa.float64()), ("geofence_id", pa.string()), ("alert_id", pa.string())]
)  # fmt: skip
F64 = pa.float64()
SUMMARIES = pa.schema(
    [("fleet_id", pa.string()), ("trip_id", pa.string()), ("vehicle_id", pa.string()),
     ("computed_at", TS), ("started_at", TS), ("ended_at", TS), ("points", pa.int64()),
     ("trusted_points", pa.int64()), ("total_km", F64), ("laden_km", F64),
     ("planned_km", F64), ("within_route_share", F64), ("max_deviation_m", F64),
     ("total_s", F64), ("driving_s", F64), ("stopped_s", F64),
     *[(f"{name}_s", F64) for name, _, _ in PHASES],
     ("at_pickup_s", F64), ("at_delivery_s", F64), ("start_delay_s", F64),
     ("arrival_delay_s", F64), ("stop_count", pa.int64()), ("unauthorised_stops", pa.int64()),
     ("longest_stop_s", F64), ("speeding_count", pa.int64()), ("max_speed_kmh", F64),
     ("fuel_litres", F64), ("fuel_driving_litres", F64), ("fuel_idle_litres", F64),
     ("idle_s", F64), ("idle_basis", pa.string()), ("vehicle_class", pa.string()),
     ("fuel_profile_source", pa.string()), ("payload_t", F64),
     ("stops", pa.list_(SUMMARY_STOP)), ("speeding", pa.list_(SUMMARY_SPELL))]
)  # fmt: skip
_WHEN = "coalesce(t.started_at, t.planned_start, t.created_at)"
_decode_trip = msgspec.msgpack.Decoder(Trip).decode
_decode_alert = msgspec.msgpack.Decoder(Alert).decode
_DAY_BITS = 27  # ms within a UTC day < 2**27: a point's key is (vehicle code << 27) | ms


class ExportReport(msgspec.Struct):
    from_: str = msgspec.field(name="from")
    to: str
    fleet_id: str | None
    rows: dict[str, int]
    files: list[str]


class ParquetExport:
    """Reads one data folder; `run` writes one export."""

    def __init__(self, db_path: Path, cold_dir: Path) -> None:
        self._db_path = db_path
        self._cold_points = cold_dir / "points"

    def run(self, out: Path, from_ms: int, to_ms: int, fleet_id: str | None) -> ExportReport:
        if from_ms >= to_ms:
            raise BadRequest("--from must be before --to")
        if not self._db_path.exists():
            raise BadRequest(f"no trucktrack database at {self._db_path} (check --data-dir)")
        _prepare(out)
        conn = connect(self._db_path, readonly=True)
        try:
            # One read transaction: the hot tier as of one moment. The cold files are listed
            # after it began, so a point moving tiers meanwhile is in one or both (the repeat
            # is dropped), never in neither.
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM trips").fetchone()
            fleet_sql, fleet_args = ("t.fleet_id = ? AND ", [fleet_id]) if fleet_id else ("", [])
            trip_rows = conn.execute(
                "SELECT t.body, d.metres FROM trips AS t LEFT JOIN trip_keys AS k "
                "ON k.fleet_id = t.fleet_id AND k.trip_id = t.trip_id "
                "LEFT JOIN trip_distance AS d ON d.trip_key = k.trip_key "
                f"WHERE {fleet_sql}{_WHEN} >= ? AND {_WHEN} < ? ORDER BY t.fleet_id, {_WHEN}",
                [*fleet_args, from_ms, to_ms],
            ).fetchall()
            summaries = conn.execute(
                "SELECT s.body FROM trip_summaries AS s JOIN trips AS t "
                "ON t.fleet_id = s.fleet_id AND t.trip_id = s.trip_id "
                f"WHERE {fleet_sql}{_WHEN} >= ? AND {_WHEN} < ? ORDER BY t.fleet_id, {_WHEN}",
                [*fleet_args, from_ms, to_ms],
            ).fetchall()
            alerts = conn.execute(
                "SELECT a.body FROM alerts AS a WHERE "
                + ("a.fleet_id = ? AND " if fleet_id else "")
                + "a.ts >= ? AND a.ts < ? ORDER BY a.fleet_id, a.ts, a.alert_id",
                [*fleet_args, from_ms, to_ms],
            ).fetchall()
            files: list[str] = []
            rows = {"points": 0}
            for day in self._days(conn, from_ms, to_ms):
                written = self._write_day(conn, out, day, from_ms, to_ms, fleet_id)
                if written:
                    rows["points"] += written
                    files.append(f"points/day={day.isoformat()}/points.parquet")
        finally:
            conn.close()
        tables = {
            "trips": pa.Table.from_pylist(
                [_trip_row(_decode_trip(body), metres) for body, metres in trip_rows], TRIPS
            ),
            "alerts": pa.Table.from_pylist(
                [_alert_row(_decode_alert(b)) for (b,) in alerts], ALERTS
            ),
            "summaries": pa.Table.from_pylist(
                [_summary_row(decode_summary(b)) for (b,) in summaries], SUMMARIES
            ),
        }
        for name, table in tables.items():
            _write_table(out / f"{name}.parquet", table)
            rows[name] = table.num_rows
            files.append(f"{name}.parquet")
        report = ExportReport(format_ms(from_ms), format_ms(to_ms), fleet_id, rows, files)
        _atomic_bytes(out / "manifest.json", msgspec.json.format(msgspec.json.encode(report)))
        return report

    # --- points -------------------------------------------------------------------------------
    def _days(self, conn: sqlite3.Connection, from_ms: int, to_ms: int) -> list[dt.date]:
        days = {d for d in self._cold_days() if day_start_ms(d) + DAY_MS > from_ms}
        days = {d for d in days if day_start_ms(d) < to_ms}
        first, last = conn.execute(
            "SELECT min(ts), max(ts) FROM points WHERE ts >= ? AND ts < ?", [from_ms, to_ms]
        ).fetchone()
        if first is not None:
            day = day_of(first)
            while day <= day_of(last):
                days.add(day)
                day += dt.timedelta(days=1)
        return sorted(days)

    def _cold_days(self) -> list[dt.date]:
        if not self._cold_points.exists():
            return []
        found = []
        for entry in self._cold_points.iterdir():
            try:
                found.append(dt.date.fromisoformat(entry.name.removeprefix("day=")))
            except ValueError:
                continue
        return found

    def _write_day(
        self,
        conn: sqlite3.Connection,
        out: Path,
        day: dt.date,
        from_ms: int,
        to_ms: int,
        fleet_id: str | None,
    ) -> int:
        """The day's points from the cold parts, then the hot tier, each (vehicle, ts) once."""
        lo, hi = max(from_ms, day_start_ms(day)), min(to_ms, day_start_ms(day) + DAY_MS)
        folder = out / "points" / f"day={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "points.parquet"
        tmp = folder / f".points.parquet.{uuid.uuid4().hex}.tmp"
        cold = _Keys(day_start_ms(day))
        written = 0
        writer = pq.ParquetWriter(tmp, POINTS, compression="zstd")
        try:
            for table in self._cold(day, lo, hi, fleet_id):
                table = table.filter(cold.unseen(table, remember=True))
                if table.num_rows:
                    writer.write_table(table, row_group_size=65_536)
                    written += table.num_rows
            for table in _hot(conn, lo, hi, fleet_id):  # unique by key among themselves
                if cold.any:
                    table = table.filter(cold.unseen(table, remember=False))
                if table.num_rows:
                    writer.write_table(table, row_group_size=65_536)
                    written += table.num_rows
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise
        writer.close()
        if not written:
            tmp.unlink()
            folder.rmdir()
            return 0
        _publish(tmp, target)
        return written

    def _cold(self, day: dt.date, lo: int, hi: int, fleet_id: str | None) -> Iterator[pa.Table]:
        expr = (pc.field("ts") >= lo) & (pc.field("ts") < hi)
        if fleet_id is not None:
            expr &= pc.field("fleet_id") == fleet_id
        for part in sorted((self._cold_points / f"day={day.isoformat()}").glob("part-*.parquet")):
            try:
                table = pq.read_table(part, filters=expr, schema=COLD_SCHEMA)
            except FileNotFoundError:  # dropped by retention meanwhile
                continue
            yield _with_times(table)


def _hot(conn: sqlite3.Connection, lo: int, hi: int, fleet_id: str | None) -> Iterator[pa.Table]:
    key = (lo, -1)
    fleet_sql = " AND v.fleet_id = ?" if fleet_id else ""
    while True:
        rows = conn.execute(
            f"SELECT {POINT_SELECT}, p.vkey FROM points AS p {POINT_JOINS} "
            f"WHERE (p.ts, p.vkey) > (?, ?) AND p.ts < ?{fleet_sql} ORDER BY p.ts, p.vkey "
            "LIMIT 50000",
            [*key, hi, *([fleet_id] if fleet_id else [])],
        ).fetchall()
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        engine = [None if e is None else bool(e) for e in columns[11]]
        arrays = [*columns[:11], engine, columns[12]]
        yield pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(arrays, POINTS, strict=True)],
            schema=POINTS,
        )
        key = (rows[-1][2], rows[-1][13])


class _Keys:
    """The (vehicle, ts) keys of a day's cold rows written so far, as int64s: parts of a day
    may overlap each other, or the hot tier while the day moves cold (rarely: usually a day is
    in one tier, and then nothing is looked up)."""

    def __init__(self, day_start: int) -> None:
        self._day_start = day_start
        self._vehicles: list[str] = []
        self._known: set[str] = set()
        self._seen = pa.array([], pa.int64())

    @property
    def any(self) -> bool:
        return len(self._seen) > 0

    def unseen(self, table: pa.Table, *, remember: bool) -> pa.Array:
        vids = table["vehicle_id"]
        new = [v for v in pc.unique(vids).to_pylist() if v not in self._known]
        self._vehicles += new
        self._known.update(new)
        code = pc.index_in(vids, value_set=pa.array(self._vehicles, pa.string())).cast(pa.int64())
        ms = pc.subtract(table["ts"].cast(pa.int64()), self._day_start)
        keys = pc.add(pc.shift_left(code, _DAY_BITS), ms).combine_chunks()
        if self.any:
            fresh = pc.invert(pc.is_in(keys, value_set=self._seen))
        else:
            fresh = pa.array(np.ones(len(keys), dtype=bool))
        if remember:
            self._seen = pa.concat_arrays([self._seen, keys.filter(fresh)])
        return fresh


def _with_times(table: pa.Table) -> pa.Table:
    for name in ("ts", "received_at"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table[name].cast(TS))
    return table.cast(POINTS)


# --- rows -------------------------------------------------------------------------------------


def _trip_row(t: Trip, metres: float | None) -> dict[str, Any]:
    at = {r.milestone: r.ts for r in t.milestones}
    return {
        "fleet_id": t.fleet_id, "trip_id": t.trip_id, "booking_id": t.booking_id,
        "vehicle_id": t.vehicle_id, "driver_id": t.driver_id, "status": t.status.value,
        "pickup_lat": t.pickup.lat, "pickup_lng": t.pickup.lng, "pickup_name": t.pickup.name,
        "delivery_lat": t.delivery.lat, "delivery_lng": t.delivery.lng,
        "delivery_name": t.delivery.name, "planned_start": t.planned_start,
        "planned_arrival": t.planned_arrival, "started_at": t.started_at,
        "ended_at": t.ended_at, "created_at": t.created_at, "updated_at": t.updated_at,
        "payload_t": t.payload_t, "distance_km": _km(metres),
        "planned_route_km": _km(t.planned_route.distance_m if t.planned_route else None),
        "planned_route_source": t.planned_route.source if t.planned_route else None,
        "actual_route_km": _km(t.actual_route.distance_m if t.actual_route else None),
        **{f"{m.value}_at": at.get(m) for m in ORDER},
        "milestones": [
            {"milestone": r.milestone.value, "ts": r.ts, "recorded_at": r.recorded_at,
             "recorded_by": r.recorded_by, "lat": r.lat, "lng": r.lng, "note": r.note,
             "distance_to_place_m": r.distance_to_place_m, "override": r.override}
            for r in t.milestones
        ],
    }  # fmt: skip


def _km(metres: float | None) -> float | None:
    return None if metres is None else metres / 1000


def _alert_row(a: Alert) -> dict[str, Any]:
    return {
        "fleet_id": a.fleet_id, "alert_id": a.alert_id, "type": a.type.value,
        "severity": a.severity.value, "vehicle_id": a.vehicle_id, "trip_id": a.trip_id,
        "geofence_id": a.geofence_id, "ts": a.ts, "lat": a.lat, "lng": a.lng,
        "details": json.dumps(a.details, sort_keys=True, default=str),
        "created_at": a.created_at, "acknowledged_at": a.acknowledged_at,
        "acknowledged_by": a.acknowledged_by,
    }  # fmt: skip


def _summary_row(s: TripSummary) -> dict[str, Any]:
    d, t, f = s.distance, s.time, s.fuel
    return {
        "fleet_id": s.fleet_id, "trip_id": s.trip_id, "vehicle_id": s.vehicle_id,
        "computed_at": s.computed_at, "started_at": s.started_ts, "ended_at": s.ended_ts,
        "points": s.points, "trusted_points": s.trusted_points,
        "total_km": d.total_m / 1000, "laden_km": d.laden_m / 1000,
        "planned_km": None if d.planned_m is None else d.planned_m / 1000,
        "within_route_share": d.within_route_share, "max_deviation_m": d.max_deviation_m,
        "total_s": t.total_s, "driving_s": t.driving_s, "stopped_s": t.stopped_s,
        **{f"{name}_s": t.phases.get(name) for name, _, _ in PHASES},
        "at_pickup_s": t.at_pickup_s, "at_delivery_s": t.at_delivery_s,
        "start_delay_s": t.start_delay_s, "arrival_delay_s": t.arrival_delay_s,
        "stop_count": s.stops.count, "unauthorised_stops": s.stops.unauthorised,
        "longest_stop_s": s.stops.longest_s, "speeding_count": s.speeding.count,
        "max_speed_kmh": s.speeding.max_speed_kmh, "fuel_litres": f.litres,
        "fuel_driving_litres": f.driving_litres, "fuel_idle_litres": f.idle_litres,
        "idle_s": f.idle_s, "idle_basis": f.idle_basis,
        "vehicle_class": f.profile.vehicle_class.value,
        "fuel_profile_source": f.profile_source, "payload_t": f.payload_t,
        "stops": [
            {"started_at": x.started_ts, "ended_at": x.ended_ts, "duration_s": x.duration_s,
             "lat": x.lat, "lng": x.lng, "authorised": x.authorised, "place": x.place,
             "phase": x.phase, "idle_s": x.idle_s}
            for x in s.stops.stops
        ],
        "speeding": [
            {"started_at": x.started_ts, "ended_at": x.ended_ts, "duration_s": x.duration_s,
             "max_speed_kmh": x.max_speed_kmh, "limit_kmh": x.limit_kmh, "lat": x.lat,
             "lng": x.lng, "geofence_id": x.geofence_id, "alert_id": x.alert_id}
            for x in s.speeding.spells
        ],
    }  # fmt: skip


# --- files ------------------------------------------------------------------------------------


def _prepare(out: Path) -> None:
    """A new or empty folder we can write in (an export never mixes with an older one)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadRequest(f"cannot create the output folder {out}: {exc.strerror}") from None
    if not out.is_dir():
        raise BadRequest(f"{out} is not a folder")
    if any(out.iterdir()):
        raise BadRequest(f"the output folder {out} is not empty: give a new or empty one")
    probe = out / f".probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BadRequest(f"cannot write in the output folder {out}: {exc.strerror}") from None


def _write_table(target: Path, table: pa.Table) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _publish(tmp, target)


def _atomic_bytes(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    _publish(tmp, target)


def _publish(tmp: Path, target: Path) -> None:
    """fsync the file, rename it into place, fsync the folder."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.rename(target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

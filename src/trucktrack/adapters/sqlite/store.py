"""SQLite implementations of the point log, current locations and token ports."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from trucktrack.adapters.sqlite.schema import POINT_JOINS, POINT_SELECT, connect
from trucktrack.adapters.sqlite.stream import record_alert
from trucktrack.adapters.sqlite.writer import GroupCommitWriter
from trucktrack.domain.alerts import Alert, Subscription
from trucktrack.domain.geofence import Geofence
from trucktrack.domain.model import AppendOutcome, GpsPoint, Principal, Role
from trucktrack.domain.stops import Stop
from trucktrack.domain.timefmt import UTC

Row = tuple[object, ...]


def point_from_row(row: Row) -> GpsPoint:
    """Rebuild a GpsPoint from a row in POINT_COLUMNS order."""
    engine = row[11]
    return GpsPoint(
        *row[:11],  # type: ignore[arg-type]
        engine_status=None if engine is None else bool(engine),
        received_at=row[12],  # type: ignore[arg-type]
    )


class ReadConnections:
    """One read-only connection per thread: WAL readers never block the writer or each other."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self._path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def _vehicle_filter(vehicles: frozenset[str] | None) -> tuple[str, list[object]]:
    if vehicles is None:
        return "", []
    marks = ",".join("?" * len(vehicles))
    return f" AND v.vehicle_id IN ({marks})", list(vehicles)


class SqlitePointLog:
    """The hot tier: every point of the last day(s), written through the group-commit writer."""

    def __init__(self, writer: GroupCommitWriter, reads: ReadConnections) -> None:
        self._writer = writer
        self._reads = reads

    async def append(self, fleet_id: str, points: Sequence[GpsPoint]) -> AppendOutcome:
        return await self._writer.append(fleet_id, points)

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
        conn = self._reads.get()
        found = conn.execute(
            "SELECT trip_key FROM trip_keys WHERE fleet_id = ? AND trip_id = ?", [fleet_id, trip_id]
        ).fetchone()
        if found is None:
            return []
        vsql, vargs = _vehicle_filter(vehicles)
        after_ts, after_vid = after if after is not None else (-(2**62), "")
        rows = conn.execute(
            f"SELECT {POINT_SELECT} FROM points AS p {POINT_JOINS} "
            "WHERE p.trip_key = ? AND p.ts >= ? AND p.ts < ? "
            f"AND (p.ts > ? OR (p.ts = ? AND v.vehicle_id > ?)){vsql} "
            "ORDER BY p.ts, v.vehicle_id LIMIT ?",
            [found[0], from_ms, to_ms, after_ts, after_ts, after_vid, *vargs, limit],
        ).fetchall()
        return [point_from_row(r) for r in rows]

    def days_before(self, cutoff_ms: int) -> list[dt.date]:
        conn = self._reads.get()
        days: list[dt.date] = []
        row = conn.execute("SELECT min(ts) FROM points WHERE ts < ?", [cutoff_ms]).fetchone()
        while row is not None and row[0] is not None:
            day = dt.datetime.fromtimestamp(row[0] / 1000, tz=UTC).date()
            days.append(day)
            next_ms = (
                int(dt.datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
                + 86_400_000
            )
            row = conn.execute(
                "SELECT min(ts) FROM points WHERE ts >= ? AND ts < ?", [next_ms, cutoff_ms]
            ).fetchone()
        return days

    def iter_points_between(
        self, from_ms: int, to_ms: int, chunk: int = 50_000
    ) -> Iterator[list[GpsPoint]]:
        conn = self._reads.get()
        key = (from_ms, -1)
        while True:
            rows = conn.execute(
                f"SELECT {POINT_SELECT}, p.vkey FROM points AS p {POINT_JOINS} "
                "WHERE (p.ts, p.vkey) > (?, ?) AND p.ts < ? ORDER BY p.ts, p.vkey LIMIT ?",
                [*key, to_ms, chunk],
            ).fetchall()
            if not rows:
                return
            yield [point_from_row(r) for r in rows]
            key = (rows[-1][2], rows[-1][13])

    def fleet_of(self, vehicle_id: str) -> str | None:
        return self._writer.owner_of(vehicle_id)

    async def delete_between(self, from_ms: int, to_ms: int) -> int:
        return await self._writer.run(_delete_between, from_ms, to_ms)

    async def delete_points(self, points: Sequence[GpsPoint]) -> int:
        return await self._writer.run(_delete_points, [(p.ts, p.vehicle_id) for p in points])


class SqliteCurrentLocations:
    """Each vehicle's newest point, kept by the writer in the same transaction as the point."""

    def __init__(self, writer: GroupCommitWriter, reads: ReadConnections) -> None:
        self._writer = writer
        self._reads = reads

    async def forget_older_than(self, ts_ms: int) -> int:
        return await self._writer.run(_forget_locations_before, ts_ms)

    def get(self, fleet_id: str, vehicle_id: str) -> GpsPoint | None:
        found = self.get_many(fleet_id, [vehicle_id])
        return found.get(vehicle_id)

    def get_many(self, fleet_id: str, vehicle_ids: Sequence[str]) -> dict[str, GpsPoint]:
        if not vehicle_ids:
            return {}
        marks = ",".join("?" * len(vehicle_ids))
        rows = (
            self._reads.get()
            .execute(
                f"SELECT {POINT_SELECT} FROM current_location AS p {POINT_JOINS} "
                f"WHERE v.fleet_id = ? AND v.vehicle_id IN ({marks})",
                [fleet_id, *vehicle_ids],
            )
            .fetchall()
        )
        return {r[1]: point_from_row(r) for r in rows}  # type: ignore[misc]

    def in_area(
        self, fleet_id: str, west: float, south: float, east: float, north: float, *,
        newer_than_ms: int, cell_deg: float | None, limit: int,
    ) -> list[GpsPoint]:  # fmt: skip
        lng = "p.lng BETWEEN ? AND ?" if west <= east else "(p.lng >= ? OR p.lng <= ?)"
        where = f"v.fleet_id = ? AND p.ts >= ? AND p.lat BETWEEN ? AND ? AND {lng}"
        args: list[object] = [fleet_id, newer_than_ms, south, north, west, east]
        if cell_deg is None:
            sql = f"SELECT {POINT_SELECT} FROM current_location AS p {POINT_JOINS} WHERE {where}"
        else:  # the newest of each cell; the cell as domain.live.Area.cell computes it
            sql = (
                f"WITH ranked AS (SELECT p.vkey, row_number() OVER (PARTITION BY "
                f"CAST((p.lng + 180.0) / ? AS INTEGER), CAST((p.lat + 90.0) / ? AS INTEGER) "
                f"ORDER BY p.ts DESC, p.vkey) AS n FROM current_location AS p "
                f"JOIN vehicles AS v ON v.vkey = p.vkey WHERE {where}) "
                f"SELECT {POINT_SELECT} FROM ranked JOIN current_location AS p "
                f"ON p.vkey = ranked.vkey {POINT_JOINS} WHERE ranked.n = 1"
            )
            args = [cell_deg, cell_deg, *args]
        rows = self._reads.get().execute(
            sql + " ORDER BY p.ts DESC, p.vkey LIMIT ?", [*args, limit]
        )
        return [point_from_row(r) for r in rows.fetchall()]

    def on_trip(self, fleet_id: str, trip_id: str) -> list[GpsPoint]:
        rows = self._reads.get().execute(
            f"SELECT {POINT_SELECT} FROM current_location AS p {POINT_JOINS} "
            "WHERE v.fleet_id = ? AND t.trip_id = ?",
            [fleet_id, trip_id],
        )
        return [point_from_row(r) for r in rows.fetchall()]

    def count_newer_than(self, ts_ms: int) -> int:
        row = (
            self._reads.get()
            .execute("SELECT count(*) FROM current_location WHERE ts > ?", [ts_ms])
            .fetchone()
        )
        return int(row[0])


class SqliteStopLog:
    """Stops written by the processors (adapters/sqlite/stream.py), read per vehicle."""

    def __init__(self, reads: ReadConnections) -> None:
        self._reads = reads

    def stops(
        self, fleet_id: str, vehicle_id: str, *, since_ms: int, until_ms: int, after: int | None,
        limit: int,
    ) -> list[Stop]:  # fmt: skip
        rows = self._reads.get().execute(
            "SELECT s.started_ts, s.ended_ts, s.lat, s.lng, t.trip_id, s.authorised, s.duration_s "
            "FROM stops AS s JOIN vehicles AS v ON v.vkey = s.vkey "
            "LEFT JOIN trip_keys AS t ON t.trip_key = s.trip_key "
            "WHERE v.fleet_id = ? AND v.vehicle_id = ? AND s.started_ts >= ? "
            "AND s.started_ts < ? AND s.started_ts > ? ORDER BY s.started_ts LIMIT ?",
            [fleet_id, vehicle_id, since_ms, until_ms, -(2**62) if after is None else after,
             limit],
        )  # fmt: skip
        return [
            Stop(vehicle_id, trip, started, ended, lat, lng, duration, bool(authorised))
            for started, ended, lat, lng, trip, authorised, duration in rows.fetchall()
        ]

    def open_stop(self, fleet_id: str, vehicle_id: str) -> Stop | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT s.started_ts, s.lat, s.lng, t.trip_id, s.authorised "
                "FROM stops AS s JOIN vehicles AS v ON v.vkey = s.vkey "
                "LEFT JOIN trip_keys AS t ON t.trip_key = s.trip_key "
                "WHERE v.fleet_id = ? AND v.vehicle_id = ? AND s.ended_ts IS NULL "
                "ORDER BY s.started_ts DESC LIMIT 1",
                [fleet_id, vehicle_id],
            )
            .fetchone()
        )
        if row is None:
            return None
        started, lat, lng, trip, authorised = row
        return Stop(vehicle_id, trip, started, None, lat, lng, 0.0, bool(authorised))

    def during(self, fleet_id: str, vehicle_id: str, from_ms: int, to_ms: int) -> list[Stop]:
        # A vehicle's stops never overlap, so only the last one begun before `from_ms` can
        # reach into the window: no scan of the vehicle's whole stop history.
        columns = (
            "s.started_ts, s.ended_ts, s.lat, s.lng, t.trip_id, s.authorised, s.duration_s "
            "FROM stops AS s JOIN vehicles AS v ON v.vkey = s.vkey "
            "LEFT JOIN trip_keys AS t ON t.trip_key = s.trip_key "
            "WHERE v.fleet_id = ? AND v.vehicle_id = ?"
        )
        conn = self._reads.get()
        before = conn.execute(
            f"SELECT {columns} AND s.started_ts < ? ORDER BY s.started_ts DESC LIMIT 1",
            [fleet_id, vehicle_id, from_ms],
        ).fetchall()
        inside = conn.execute(
            f"SELECT {columns} AND s.started_ts >= ? AND s.started_ts < ? ORDER BY s.started_ts",
            [fleet_id, vehicle_id, from_ms, to_ms],
        ).fetchall()
        return [
            Stop(vehicle_id, trip, started, ended, lat, lng, duration, bool(authorised))
            for started, ended, lat, lng, trip, authorised, duration in before + inside
            if started >= from_ms or ended is None or ended > from_ms
        ]


class SqliteOdometer:
    def __init__(self, reads: ReadConnections) -> None:
        self._reads = reads

    def trip_m(self, fleet_id: str, trip_id: str) -> float | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT d.metres FROM trip_distance AS d "
                "JOIN trip_keys AS t ON t.trip_key = d.trip_key "
                "WHERE t.fleet_id = ? AND t.trip_id = ?",
                [fleet_id, trip_id],
            )
            .fetchone()
        )
        return None if row is None else float(row[0])


class SqliteTokenStore:
    """Tokens by sha256 hash; written directly (tokens are created by the CLI or at first start)."""

    def __init__(self, path: Path, reads: ReadConnections) -> None:
        self._path = path
        self._reads = reads

    def add(self, token_hash: str, principal: Principal, label: str) -> None:
        conn = connect(self._path)
        try:
            conn.execute(
                "INSERT INTO tokens (token_hash, token_id, fleet_id, role, vehicles, label, "
                "created_at, trips) VALUES (?,?,?,?,?,?,?,?)",
                [
                    token_hash,
                    principal.token_id,
                    principal.fleet_id,
                    principal.role.value,
                    None if principal.vehicles is None else json.dumps(sorted(principal.vehicles)),
                    label,
                    int(time.time() * 1000),
                    None if principal.trips is None else json.dumps(sorted(principal.trips)),
                ],
            )
        finally:
            conn.close()

    def find(self, token_hash: str) -> Principal | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT token_id, fleet_id, role, vehicles, trips FROM tokens "
                "WHERE token_hash = ? AND revoked_at IS NULL",
                [token_hash],
            )
            .fetchone()
        )
        if row is None:
            return None
        token_id, fleet_id, role, vehicles, trips = row
        return Principal(
            fleet_id=fleet_id,
            role=Role(role),
            vehicles=None if vehicles is None else frozenset(json.loads(vehicles)),
            token_id=token_id,
            trips=None if trips is None else frozenset(json.loads(trips)),
        )

    def count(self) -> int:
        return int(self._reads.get().execute("SELECT count(*) FROM tokens").fetchone()[0])

    def device_fleets(self, vehicle_id: str) -> set[str]:
        rows = self._reads.get().execute(
            "SELECT DISTINCT fleet_id FROM tokens, json_each(tokens.vehicles) AS v "
            "WHERE role = 'device' AND revoked_at IS NULL AND v.value = ?",
            [vehicle_id],
        )
        return {fleet for (fleet,) in rows.fetchall()}


class SqliteGeofenceStore:
    """Fences as msgpack bodies with the columns that lists filter on."""

    def __init__(self, writer: GroupCommitWriter, reads: ReadConnections) -> None:
        self._writer = writer
        self._reads = reads

    async def put(self, fence: Geofence) -> None:
        row = (
            fence.fleet_id,
            fence.geofence_id,
            fence.name,
            fence.kind.value,
            int(fence.active),
            fence.created_at,
            _encode_fence(fence),
        )
        await self._writer.run(_put_geofence, row)

    async def delete(self, fleet_id: str, geofence_id: str) -> bool:
        return bool(await self._writer.run(_delete_geofence, fleet_id, geofence_id))

    def get(self, fleet_id: str, geofence_id: str) -> Geofence | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT body FROM geofences WHERE fleet_id = ? AND geofence_id = ?",
                [fleet_id, geofence_id],
            )
            .fetchone()
        )
        return None if row is None else _decode_fence(row[0])

    def list(
        self,
        fleet_id: str,
        *,
        active: bool | None,
        kind: str | None,
        name: str | None,
        after: str | None,
        limit: int,
    ) -> list[Geofence]:
        sql = "SELECT body FROM geofences WHERE fleet_id = ? AND geofence_id > ?"
        args: list[object] = [fleet_id, after or ""]
        if active is not None:
            sql += " AND active = ?"
            args.append(int(active))
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        if name is not None:
            sql += " AND instr(lower(name), lower(?)) > 0"
            args.append(name)
        rows = self._reads.get().execute(sql + " ORDER BY geofence_id LIMIT ?", [*args, limit])
        return [_decode_fence(body) for (body,) in rows.fetchall()]


class SqliteAlertStore:
    """Alerts as msgpack bodies; (fleet, dedupe_key) is unique, so a replay stores nothing.
    With `notify`, a new alert is queued in the webhook outbox in the same transaction."""

    def __init__(
        self, writer: GroupCommitWriter, reads: ReadConnections, notify: bool = False
    ) -> None:
        self._writer = writer
        self._reads = reads
        self._notify = notify

    async def record(self, alert: Alert) -> bool:
        return bool(await self._writer.run(record_alert, alert, self._notify))

    async def acknowledge(self, fleet_id: str, alert_id: str, by: str, at_ms: int) -> Alert | None:
        alert = self.get(fleet_id, alert_id)
        if alert is None or alert.acknowledged_at is not None:
            return alert
        acked = msgspec.structs.replace(alert, acknowledged_at=at_ms, acknowledged_by=by)
        await self._writer.run(_replace_alert_body, fleet_id, alert_id, _encode_alert(acked))
        return acked

    def get(self, fleet_id: str, alert_id: str) -> Alert | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT body FROM alerts WHERE fleet_id = ? AND alert_id = ?", [fleet_id, alert_id]
            )
            .fetchone()
        )
        return None if row is None else _decode_alert(row[0])

    def list(
        self,
        fleet_id: str,
        *,
        vehicle_id: str | None,
        trip_id: str | None,
        type: str | None,
        since_ms: int,
        until_ms: int,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Alert]:
        after_ts, after_id = after if after is not None else (-(2**62), "")
        sql = (
            "SELECT body FROM alerts WHERE fleet_id = ? AND ts >= ? AND ts < ? "
            "AND (ts > ? OR (ts = ? AND alert_id > ?))"
        )
        args: list[object] = [fleet_id, since_ms, until_ms, after_ts, after_ts, after_id]
        for column, value in (("vehicle_id", vehicle_id), ("trip_id", trip_id), ("type", type)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        rows = self._reads.get().execute(sql + " ORDER BY ts, alert_id LIMIT ?", [*args, limit])
        return [_decode_alert(body) for (body,) in rows.fetchall()]


class SqliteAlertOutbox:
    """The webhook outbox: alerts to deliver, oldest first, with their retry schedule."""

    def __init__(self, writer: GroupCommitWriter, reads: ReadConnections) -> None:
        self._writer = writer
        self._reads = reads

    def due(self, now_ms: int, limit: int) -> list[tuple[int, Alert, int]]:
        rows = self._reads.get().execute(
            "SELECT o.seq, a.body, o.attempts FROM alert_outbox AS o "
            "JOIN alerts AS a ON a.fleet_id = o.fleet_id AND a.alert_id = o.alert_id "
            "WHERE o.next_attempt_ms <= ? ORDER BY o.seq LIMIT ?",
            [now_ms, limit],
        )
        return [(seq, _decode_alert(body), attempts) for seq, body, attempts in rows.fetchall()]

    def backlog(self) -> int:
        return int(self._reads.get().execute("SELECT count(*) FROM alert_outbox").fetchone()[0])

    async def delivered(self, seq: int) -> None:
        await self._writer.run(_outbox_delivered, seq)

    async def failed(self, seq: int, attempts: int, next_ms: int, error: str) -> None:
        await self._writer.run(_outbox_failed, seq, attempts, next_ms, error)


class SqliteWebhookSubscriptions:
    def __init__(self, writer: GroupCommitWriter, reads: ReadConnections) -> None:
        self._writer = writer
        self._reads = reads

    def get(self, fleet_id: str) -> Subscription | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT fleet_id, url, secret, created_at, updated_at FROM webhooks "
                "WHERE fleet_id = ?",
                [fleet_id],
            )
            .fetchone()
        )
        return None if row is None else Subscription(*row)

    async def put(self, subscription: Subscription) -> None:
        await self._writer.run(_put_webhook, msgspec.structs.astuple(subscription))

    async def delete(self, fleet_id: str) -> bool:
        return bool(await self._writer.run(_delete_webhook, fleet_id))


_encode_alert = msgspec.msgpack.Encoder().encode
_decode_alert = msgspec.msgpack.Decoder(Alert).decode
_encode_fence = msgspec.msgpack.Encoder().encode
_decode_fence = msgspec.msgpack.Decoder(Geofence).decode


# Write operations run in the writer process, so they are module-level functions.


def _put_geofence(conn: sqlite3.Connection, row: tuple[object, ...]) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO geofences "
        "(fleet_id, geofence_id, name, kind, active, created_at, body) VALUES (?,?,?,?,?,?,?)",
        row,
    )


def _delete_geofence(conn: sqlite3.Connection, fleet_id: str, geofence_id: str) -> int:
    return conn.execute(
        "DELETE FROM geofences WHERE fleet_id = ? AND geofence_id = ?", [fleet_id, geofence_id]
    ).rowcount


def _delete_between(conn: sqlite3.Connection, from_ms: int, to_ms: int) -> int:
    return conn.execute("DELETE FROM points WHERE ts >= ? AND ts < ?", [from_ms, to_ms]).rowcount


def _delete_points(conn: sqlite3.Connection, keys: list[tuple[int, str]]) -> int:
    return conn.executemany(
        "DELETE FROM points WHERE ts = ? "
        "AND vkey = (SELECT vkey FROM vehicles WHERE vehicle_id = ?)",
        keys,
    ).rowcount


def _forget_locations_before(conn: sqlite3.Connection, ts_ms: int) -> int:
    return conn.execute("DELETE FROM current_location WHERE ts < ?", [ts_ms]).rowcount


def _outbox_delivered(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute("DELETE FROM alert_outbox WHERE seq = ?", [seq])


def _outbox_failed(
    conn: sqlite3.Connection, seq: int, attempts: int, next_ms: int, error: str
) -> None:
    conn.execute(
        "UPDATE alert_outbox SET attempts = ?, next_attempt_ms = ?, last_error = ? WHERE seq = ?",
        [attempts, next_ms, error[:500], seq],
    )


def _replace_alert_body(
    conn: sqlite3.Connection, fleet_id: str, alert_id: str, body: bytes
) -> None:
    conn.execute(
        "UPDATE alerts SET body = ? WHERE fleet_id = ? AND alert_id = ?", [body, fleet_id, alert_id]
    )


def _put_webhook(conn: sqlite3.Connection, row: tuple[object, ...]) -> None:
    conn.execute(
        "INSERT INTO webhooks VALUES (?,?,?,?,?) ON CONFLICT (fleet_id) DO UPDATE SET "
        "url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at",
        row,
    )


def _delete_webhook(conn: sqlite3.Connection, fleet_id: str) -> int:
    return conn.execute("DELETE FROM webhooks WHERE fleet_id = ?", [fleet_id]).rowcount

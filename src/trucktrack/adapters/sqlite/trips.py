"""Trips in SQLite: one row per trip with its milestones inside, written through the writer."""

from __future__ import annotations

import sqlite3

import msgspec

from trucktrack.adapters.sqlite.store import ReadConnections
from trucktrack.adapters.sqlite.writer import GroupCommitWriter
from trucktrack.domain.compliance import TripProgress
from trucktrack.domain.trips import OPEN, Trip

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Trip).decode
_decode_progress = msgspec.msgpack.Decoder(TripProgress).decode
WHEN = "coalesce(started_at, planned_start, created_at)"


def _row(trip: Trip) -> tuple[object, ...]:
    return (
        trip.fleet_id,
        trip.trip_id,
        trip.vehicle_id,
        trip.booking_id,
        trip.status.value,
        trip.planned_start,
        trip.started_at,
        trip.ended_at,
        trip.created_at,
        trip.version,
        _encode(trip),
    )


def _insert(conn: sqlite3.Connection, row: tuple[object, ...]) -> bool:
    conn.execute("INSERT OR IGNORE INTO trip_keys (fleet_id, trip_id) VALUES (?, ?)", row[:2])
    return bool(
        conn.execute(
            "INSERT OR IGNORE INTO trips (fleet_id, trip_id, vehicle_id, booking_id, status, "
            "planned_start, started_at, ended_at, created_at, version, body) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            row,
        ).rowcount
    )


def _update(conn: sqlite3.Connection, row: tuple[object, ...], expected: int) -> bool:
    fleet, trip_id, *rest = row
    return bool(
        conn.execute(
            "UPDATE trips SET vehicle_id = ?, booking_id = ?, status = ?, planned_start = ?, "
            "started_at = ?, ended_at = ?, created_at = ?, version = ?, body = ? "
            "WHERE fleet_id = ? AND trip_id = ? AND version = ?",
            [*rest, fleet, trip_id, expected],
        ).rowcount
    )


class SqliteTripStore:
    def __init__(self, writer: GroupCommitWriter, reads: ReadConnections) -> None:
        self._writer = writer
        self._reads = reads

    async def create(self, trip: Trip) -> bool:
        return bool(await self._writer.run(_insert, _row(trip)))

    async def update(self, trip: Trip, expected_version: int) -> bool:
        return bool(await self._writer.run(_update, _row(trip), expected_version))

    def get(self, fleet_id: str, trip_id: str) -> Trip | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT body FROM trips WHERE fleet_id = ? AND trip_id = ?", [fleet_id, trip_id]
            )
            .fetchone()
        )
        return None if row is None else _decode(row[0])

    def for_vehicle(
        self,
        fleet_id: str,
        vehicle_id: str,
        *,
        from_ms: int | None,
        to_ms: int | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Trip]:
        sql = f"SELECT body FROM trips WHERE fleet_id = ? AND vehicle_id = ? AND {WHEN} >= ?"
        args: list[object] = [fleet_id, vehicle_id, from_ms if from_ms is not None else -(2**62)]
        if to_ms is not None:
            sql += f" AND {WHEN} < ?"
            args.append(to_ms)
        if after is not None:
            sql += f" AND ({WHEN}, trip_id) > (?, ?)"
            args.extend(after)
        rows = self._reads.get().execute(sql + f" ORDER BY {WHEN}, trip_id LIMIT ?", [*args, limit])
        return [_decode(body) for (body,) in rows.fetchall()]

    def for_booking(
        self, fleet_id: str, booking_id: str, *, after: tuple[int, str] | None, limit: int
    ) -> list[Trip]:
        sql = "SELECT body FROM trips WHERE fleet_id = ? AND booking_id = ?"
        args: list[object] = [fleet_id, booking_id]
        if after is not None:
            sql += " AND (created_at, trip_id) > (?, ?)"
            args.extend(after)
        rows = self._reads.get().execute(
            sql + " ORDER BY created_at, trip_id LIMIT ?", [*args, limit]
        )
        return [_decode(body) for (body,) in rows.fetchall()]

    def open_or_ended_since(self, ts_ms: int) -> list[Trip]:
        """Every fleet's planned and active trips, and those that ended after `ts_ms`."""
        statuses = sorted(s.value for s in OPEN)
        rows = self._reads.get().execute(
            "SELECT body FROM trips WHERE status IN (?, ?) OR ended_at >= ?", [*statuses, ts_ms]
        )
        return [_decode(body) for (body,) in rows.fetchall()]

    def progress(self, fleet_id: str, trip_id: str) -> TripProgress | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT p.body FROM trip_progress AS p JOIN trip_keys AS k "
                "ON k.trip_key = p.trip_key WHERE k.fleet_id = ? AND k.trip_id = ?",
                [fleet_id, trip_id],
            )
            .fetchone()
        )
        return None if row is None else _decode_progress(row[0])

    def deviating_share(self) -> float:
        """Of the active trips under way on a planned route, the share off route now."""
        total, deviating = (
            self._reads.get()
            .execute(
                "SELECT count(*), coalesce(sum(p.deviating), 0) FROM trips AS t "
                "JOIN trip_keys AS k ON k.fleet_id = t.fleet_id AND k.trip_id = t.trip_id "
                "JOIN trip_progress AS p ON p.trip_key = k.trip_key WHERE t.status = 'active'"
            )
            .fetchone()
        )
        return deviating / total if total else 0.0

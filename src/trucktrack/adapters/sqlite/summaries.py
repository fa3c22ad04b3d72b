"""Trip summaries and vehicle profiles in SQLite: msgpack bodies, written through the writer."""

from __future__ import annotations

import sqlite3

import msgspec

from trucktrack.adapters.sqlite.store import ReadConnections
from trucktrack.adapters.sqlite.writer import GroupCommitWriter
from trucktrack.domain.fuel import VehicleProfile
from trucktrack.domain.summary import SUMMARY_VERSION, TripSummary
from trucktrack.domain.trips import Trip, TripStatus

_encode = msgspec.msgpack.Encoder().encode
decode_summary = msgspec.msgpack.Decoder(TripSummary).decode
_decode_trip = msgspec.msgpack.Decoder(Trip).decode
_decode_profile = msgspec.msgpack.Decoder(VehicleProfile).decode


class SqliteSummaryStore:
    def __init__(self, writer: GroupCommitWriter, reads: ReadConnections) -> None:
        self._writer = writer
        self._reads = reads

    async def put(self, summary: TripSummary) -> None:
        row = (summary.fleet_id, summary.trip_id, summary.computed_at, summary.version,
               _encode(summary))  # fmt: skip
        await self._writer.run(_put_summary, row)

    def get(self, fleet_id: str, trip_id: str) -> TripSummary | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT body FROM trip_summaries WHERE fleet_id = ? AND trip_id = ?",
                [fleet_id, trip_id],
            )
            .fetchone()
        )
        return None if row is None else decode_summary(row[0])

    def missing(self, ended_since_ms: int, limit: int) -> list[Trip]:
        rows = self._reads.get().execute(
            "SELECT t.body FROM trips AS t LEFT JOIN trip_summaries AS s "
            "ON s.fleet_id = t.fleet_id AND s.trip_id = t.trip_id "
            "WHERE t.status = ? AND t.ended_at >= ? AND (s.trip_id IS NULL OR s.version < ?) "
            "ORDER BY t.ended_at LIMIT ?",
            [TripStatus.COMPLETED.value, ended_since_ms, SUMMARY_VERSION, limit],
        )
        return [_decode_trip(body) for (body,) in rows.fetchall()]


class SqliteVehicleProfileStore:
    def __init__(self, writer: GroupCommitWriter, reads: ReadConnections) -> None:
        self._writer = writer
        self._reads = reads

    async def put(self, profile: VehicleProfile) -> None:
        row = (profile.fleet_id, profile.vehicle_id, profile.updated_at, _encode(profile))
        await self._writer.run(_put_profile, row)

    def get(self, fleet_id: str, vehicle_id: str) -> VehicleProfile | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT body FROM vehicle_profiles WHERE fleet_id = ? AND vehicle_id = ?",
                [fleet_id, vehicle_id],
            )
            .fetchone()
        )
        return None if row is None else _decode_profile(row[0])

    async def delete(self, fleet_id: str, vehicle_id: str) -> bool:
        return bool(await self._writer.run(_delete_profile, fleet_id, vehicle_id))


# Write operations run in the writer process, so they are module-level functions.


def _put_summary(conn: sqlite3.Connection, row: tuple[object, ...]) -> None:
    conn.execute("INSERT OR REPLACE INTO trip_summaries VALUES (?,?,?,?,?)", row)


def _put_profile(conn: sqlite3.Connection, row: tuple[object, ...]) -> None:
    conn.execute("INSERT OR REPLACE INTO vehicle_profiles VALUES (?,?,?,?)", row)


def _delete_profile(conn: sqlite3.Connection, fleet_id: str, vehicle_id: str) -> int:
    return conn.execute(
        "DELETE FROM vehicle_profiles WHERE fleet_id = ? AND vehicle_id = ?", [fleet_id, vehicle_id]
    ).rowcount

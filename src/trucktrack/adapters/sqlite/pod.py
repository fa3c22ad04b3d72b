"""Proof-of-delivery records, OTP challenges and POD policies in SQLite."""

from __future__ import annotations

import sqlite3

import msgspec

from trucktrack.adapters.sqlite.store import ReadConnections
from trucktrack.adapters.sqlite.writer import GroupCommitWriter
from trucktrack.domain.pod import OtpChallenge, PodPolicy, PodRecord

_encode = msgspec.msgpack.Encoder().encode
_decode_record = msgspec.msgpack.Decoder(PodRecord).decode
_decode_challenge = msgspec.msgpack.Decoder(OtpChallenge).decode
_decode_policy = msgspec.msgpack.Decoder(PodPolicy).decode


def _add(
    conn: sqlite3.Connection, row: tuple[object, ...], verified: tuple[str, str, bytes] | None
) -> None:
    conn.execute("INSERT INTO pod_records VALUES (?,?,?,?,?,?)", row)
    if verified is not None:
        _put_challenge(conn, *verified)


def _put_challenge(conn: sqlite3.Connection, fleet: str, trip: str, body: bytes) -> None:
    conn.execute("INSERT OR REPLACE INTO otp_challenges VALUES (?,?,?)", [fleet, trip, body])


def _put_policy(conn: sqlite3.Connection, fleet: str, body: bytes) -> None:
    conn.execute("INSERT OR REPLACE INTO pod_policies VALUES (?,?)", [fleet, body])


class SqlitePodStore:
    def __init__(self, writer: GroupCommitWriter, reads: ReadConnections) -> None:
        self._writer = writer
        self._reads = reads

    async def add(self, record: PodRecord, verified: OtpChallenge | None = None) -> None:
        row = (record.pod_id, record.fleet_id, record.trip_id, record.type.value,
               record.uploaded_at, _encode(record))  # fmt: skip
        challenge = None
        if verified is not None:
            challenge = (verified.fleet_id, verified.trip_id, _encode(verified))
        await self._writer.run(_add, row, challenge)

    def for_trip(self, fleet_id: str, trip_id: str) -> list[PodRecord]:
        rows = self._reads.get().execute(
            "SELECT body FROM pod_records WHERE fleet_id = ? AND trip_id = ? "
            "ORDER BY uploaded_at, pod_id",
            [fleet_id, trip_id],
        )
        return [_decode_record(body) for (body,) in rows.fetchall()]

    def get(self, pod_id: str) -> PodRecord | None:
        row = (
            self._reads.get()
            .execute("SELECT body FROM pod_records WHERE pod_id = ?", [pod_id])
            .fetchone()
        )
        return None if row is None else _decode_record(row[0])

    async def put_challenge(self, challenge: OtpChallenge) -> None:
        await self._writer.run(
            _put_challenge, challenge.fleet_id, challenge.trip_id, _encode(challenge)
        )

    def challenge(self, fleet_id: str, trip_id: str) -> OtpChallenge | None:
        row = (
            self._reads.get()
            .execute(
                "SELECT body FROM otp_challenges WHERE fleet_id = ? AND trip_id = ?",
                [fleet_id, trip_id],
            )
            .fetchone()
        )
        return None if row is None else _decode_challenge(row[0])

    async def put_policy(self, fleet_id: str, policy: PodPolicy) -> None:
        await self._writer.run(_put_policy, fleet_id, _encode(policy))

    def policy(self, fleet_id: str) -> PodPolicy | None:
        row = (
            self._reads.get()
            .execute("SELECT body FROM pod_policies WHERE fleet_id = ?", [fleet_id])
            .fetchone()
        )
        return None if row is None else _decode_policy(row[0])

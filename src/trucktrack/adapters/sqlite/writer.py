"""The single SQLite writer: a thread that commits many requests' points in one transaction.

Requests hand their points to the writer and wait; the writer takes everything queued (up to a
bound), writes it in one transaction, commits (fsync with synchronous=FULL) and only then wakes the
requests up. One fsync serves every request of the group, so durability costs little per point.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from trucktrack.adapters.sqlite.schema import POINT_COLUMNS, connect
from trucktrack.domain.ingest_rules import OUT_OF_SCOPE
from trucktrack.domain.model import AppendOutcome, GpsPoint, Rejection
from trucktrack.errors import Overloaded, StorageUnavailable

log = logging.getLogger(__name__)

_INSERT_POINTS = (
    f"INSERT OR IGNORE INTO points ({POINT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_UPSERT_CURRENT = f"""
INSERT INTO current_location ({POINT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
ON CONFLICT (fleet_id, vehicle_id) DO UPDATE SET
    ts = excluded.ts, lat = excluded.lat, lng = excluded.lng, speed = excluded.speed,
    heading = excluded.heading, accuracy = excluded.accuracy, altitude = excluded.altitude,
    trip_id = excluded.trip_id, driver_id = excluded.driver_id,
    engine_status = excluded.engine_status, received_at = excluded.received_at
WHERE excluded.ts > current_location.ts
"""


class _Job:
    __slots__ = ("fleet_id", "fn", "future", "loop", "points")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        fleet_id: str = "",
        points: Sequence[GpsPoint] = (),
        fn: Callable[[sqlite3.Connection], Any] | None = None,
    ) -> None:
        self.loop = loop
        self.future = future
        self.fleet_id = fleet_id
        self.points = points
        self.fn = fn


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client went away); the data is still stored
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GroupCommitWriter:
    """Owns the only write connection; everything that changes the database goes through it."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        max_pending_points: int = 50_000,
        max_group_points: int = 20_000,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._max_pending = max_pending_points
        self._max_group = max_group_points
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._owners: dict[str, str] = {}
        self.commits = 0
        self.last_commit_s = 0.0

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        conn = connect(self._path, synchronous=self._synchronous)
        self._owners = dict(conn.execute("SELECT vehicle_id, fleet_id FROM vehicles").fetchall())
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="sqlite-writer", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Finish everything queued, then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    # --- the requests' side ----------------------------------------------------------------
    @property
    def pending_points(self) -> int:
        return self._pending

    def owner_of(self, vehicle_id: str) -> str | None:
        """The fleet a vehicle id belongs to, if any fleet has claimed it yet."""
        return self._owners.get(vehicle_id)

    async def append(self, fleet_id: str, points: Sequence[GpsPoint]) -> AppendOutcome:
        n = len(points)
        with self._pending_lock:
            if self._pending and self._pending + n > self._max_pending:
                raise Overloaded("the write queue is full")
            self._pending += n
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendOutcome] = loop.create_future()
        self._queue.put(_Job(loop, future, fleet_id=fleet_id, points=points))
        return await asyncio.shield(future)

    async def run[T](self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` inside a write transaction of the writer thread and return its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(loop, future, fn=fn))
        return await future

    def run_sync[T](self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`run` for callers without an event loop (CLI commands, tests)."""
        return asyncio.run(self.run(fn))

    # --- the writer thread -----------------------------------------------------------------
    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                group = [job]
                size = len(job.points)
                stop = False
                while size < self._max_group:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    group.append(nxt)
                    size += len(nxt.points)
                self._commit(conn, group)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, group: list[_Job]) -> None:
        started = time.perf_counter()
        results: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            claimed: dict[str, str] = {}
            for job in group:
                if job.fn is not None:
                    results.append(self._apply_fn(conn, job.fn))
                else:
                    results.append((self._apply_points(conn, job, claimed), None))
            conn.execute("COMMIT")
            self._owners.update(claimed)
        except Exception as exc:  # disk full, I/O error: nothing of the group was committed
            log.exception("group commit failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StorageUnavailable(f"could not write to the database: {exc}")
            results = [(None, error)] * len(group)
        self.commits += 1
        self.last_commit_s = time.perf_counter() - started
        with self._pending_lock:
            self._pending -= sum(len(job.points) for job in group)
        for job, (result, error) in zip(group, results, strict=True):
            job.loop.call_soon_threadsafe(_resolve, job.future, result, error)

    @staticmethod
    def _apply_fn(
        conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]
    ) -> tuple[Any, BaseException | None]:
        conn.execute("SAVEPOINT job")
        try:
            result = fn(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return None, exc
        conn.execute("RELEASE job")
        return result, None

    def _apply_points(
        self, conn: sqlite3.Connection, job: _Job, claimed: dict[str, str]
    ) -> AppendOutcome:
        fleet_id = job.fleet_id
        owners = self._owners
        rows: list[tuple[Any, ...]] = []
        newest: dict[str, tuple[Any, ...]] = {}
        rejected: list[Rejection] = []
        new_vehicles: list[tuple[str, str, int]] = []
        astuple = msgspec.structs.astuple
        for index, point in enumerate(job.points):
            vid = point.vehicle_id
            owner = owners.get(vid) or claimed.get(vid)
            if owner is None:
                claimed[vid] = fleet_id
                new_vehicles.append((vid, fleet_id, point.received_at))
            elif owner != fleet_id:
                rejected.append(Rejection(index, OUT_OF_SCOPE))
                continue
            row = astuple(point)
            rows.append(row)
            best = newest.get(vid)
            if best is None or row[2] > best[2]:
                newest[vid] = row
        if new_vehicles:
            conn.executemany(
                "INSERT OR IGNORE INTO vehicles (vehicle_id, fleet_id, created_at) VALUES (?,?,?)",
                new_vehicles,
            )
        before = conn.total_changes
        conn.executemany(_INSERT_POINTS, rows)
        inserted = conn.total_changes - before
        conn.executemany(_UPSERT_CURRENT, newest.values())
        return AppendOutcome(inserted=inserted, duplicates=len(rows) - inserted, rejected=rejected)

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trucktrack.adapters.sqlite.schema import INSERT_POINT, connect
from trucktrack.domain.ingest_rules import OUT_OF_SCOPE
from trucktrack.domain.model import AppendOutcome, GpsPoint, Rejection
from trucktrack.errors import Overloaded, StorageUnavailable

log = logging.getLogger(__name__)


class _Job:
    __slots__ = ("fleet_id", "fn", "future", "loop", "points", "size")

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
        self.size = len(points)
        self.fn = fn


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client went away); the data is still stored
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GroupCommitWriter:
    """Owns the connection that writes points; every point, key and deletion goes through it.

    (Tokens are written directly: rare, and often from another process, `trucktrack token`.)
    """

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
        self._vehicles: dict[str, tuple[str, int]] = {}  # vehicle_id -> (fleet_id, vkey)
        self._trips: dict[tuple[str, str], int] = {}  # (fleet_id, trip_id) -> trip_key
        self._checkpointer: _Checkpointer
        self.commits = 0

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        conn = connect(self._path, synchronous=self._synchronous)
        # Copying the WAL back into the database took a quarter of the writer's time when done in
        # its commits; the checkpointer thread does it beside it, without the GIL.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = _Checkpointer(self._path)
        self._checkpointer.start()
        self._vehicles = {
            vid: (fleet, vkey)
            for vkey, vid, fleet in conn.execute("SELECT vkey, vehicle_id, fleet_id FROM vehicles")
        }
        self._trips = {
            (fleet, trip): key
            for key, fleet, trip in conn.execute(
                "SELECT trip_key, fleet_id, trip_id FROM trip_keys"
            )
        }
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
            self._checkpointer.stop()

    # --- the requests' side ----------------------------------------------------------------
    @property
    def pending_points(self) -> int:
        return self._pending

    def owner_of(self, vehicle_id: str) -> str | None:
        """The fleet a vehicle id belongs to, if any fleet has claimed it yet."""
        known = self._vehicles.get(vehicle_id)
        return None if known is None else known[0]

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

    # --- the writer thread -----------------------------------------------------------------
    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                group = [job]
                size = job.size
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
                    size += nxt.size
                self._commit(conn, group)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, group: list[_Job]) -> None:
        results: list[tuple[Any, BaseException | None]] = []
        keys = _NewKeys()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                if job.fn is not None:
                    results.append(self._apply_fn(conn, job.fn))
                else:
                    results.append((self._apply_points(conn, job, keys), None))
            conn.execute("COMMIT")
            self._vehicles.update(keys.vehicles)
            self._trips.update(keys.trips)
        except Exception as exc:  # disk full, I/O error: nothing of the group was committed
            log.exception("group commit failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StorageUnavailable(f"could not write to the database: {exc}")
            results = [(None, error)] * len(group)
        self.commits += 1
        with self._pending_lock:
            self._pending -= sum(job.size for job in group)
        for job, (result, error) in zip(group, results, strict=True):
            try:
                job.loop.call_soon_threadsafe(_resolve, job.future, result, error)
            except RuntimeError:  # that caller's event loop is closed; the write still stands
                log.warning("a write finished after its event loop closed")

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

    def _apply_points(self, conn: sqlite3.Connection, job: _Job, keys: _NewKeys) -> AppendOutcome:
        fleet = job.fleet_id
        vehicles, trips = self._vehicles, self._trips
        rows: list[tuple[Any, ...]] = []
        rejected: list[Rejection] = []
        for index, p in enumerate(job.points):
            vid = p.vehicle_id
            known = vehicles.get(vid) or keys.vehicles.get(vid)
            if known is None:
                # A vehicle id belongs to the first fleet that reports it.
                known = (fleet, conn.execute(_CLAIM_VEHICLE, (vid, fleet, p.received_at)).lastrowid)
                keys.vehicles[vid] = known  # type: ignore[assignment]
            elif known[0] != fleet:  # claimed by another fleet while this batch was queued
                rejected.append(Rejection(index, OUT_OF_SCOPE))
                continue
            trip_key = None
            if p.trip_id is not None:
                trip = (fleet, p.trip_id)
                trip_key = trips.get(trip) or keys.trips.get(trip)
                if trip_key is None:
                    trip_key = conn.execute(_NEW_TRIP, trip).lastrowid
                    keys.trips[trip] = trip_key  # type: ignore[assignment]
            rows.append(
                (p.ts, known[1], p.lat, p.lng, p.speed, p.heading, p.accuracy, p.altitude,
                 trip_key, p.driver_id, p.engine_status, p.received_at)
            )  # fmt: skip
        # rowcount excludes the trigger's writes: it is exactly the rows new to the log.
        inserted = conn.executemany(INSERT_POINT, rows).rowcount if rows else 0
        return AppendOutcome(inserted=inserted, duplicates=len(rows) - inserted, rejected=rejected)


_CLAIM_VEHICLE = "INSERT INTO vehicles (vehicle_id, fleet_id, created_at) VALUES (?,?,?)"
_NEW_TRIP = "INSERT INTO trip_keys (fleet_id, trip_id) VALUES (?,?)"


class _NewKeys:
    """Keys created in the open transaction; published to the caches only once it commits."""

    __slots__ = ("trips", "vehicles")

    def __init__(self) -> None:
        self.vehicles: dict[str, tuple[str, int]] = {}
        self.trips: dict[tuple[str, str], int] = {}


class _Checkpointer(threading.Thread):
    """Moves committed WAL frames into the database file every `interval_s`. PASSIVE mode never
    blocks the writer or readers; whatever a reader still needs is copied on a later round."""

    def __init__(self, path: Path, interval_s: float = 0.5) -> None:
        super().__init__(name="sqlite-checkpointer", daemon=True)
        self._path = path
        self._interval_s = interval_s
        self._stopping = threading.Event()

    def run(self) -> None:
        conn = connect(self._path)
        try:
            while not self._stopping.wait(self._interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.exception("WAL checkpoint failed; retrying")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join()

"""The single SQLite writer: a process of its own that commits many requests' points at once.

Requests hand their points to the writer and wait; the writer takes everything queued (up to a
bound), writes it in one transaction, commits (fsync with synchronous=FULL) and only then answers
the requests. One fsync serves every request of the group, so durability costs little per point.

The writer runs in a child process so that it has a core and a GIL of its own: as a thread it
shared the GIL with the event loop and lost up to a third of its speed waiting for it at every
row (benchmarks/group_commit.py). Batches cross as msgpack; the child dies with its parent (it
sees the pipe close), after committing what it had already received.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import pickle
import queue
import signal
import sqlite3
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from trucktrack.adapters.sqlite.schema import INSERT_POINT, connect
from trucktrack.adapters.sqlite.stream import GroupInput, StreamConfig, StreamReport, TrackStream
from trucktrack.domain.ingest_rules import OUT_OF_SCOPE
from trucktrack.domain.model import AppendOutcome, GpsPoint, Rejection
from trucktrack.errors import Overloaded, StorageUnavailable

log = logging.getLogger(__name__)

_APPEND, _CALL = b"A", b"C"
_REPORT = 0  # the job id of the writer's own messages: what processing a group found
IDLE_TICK_S = 1.0
_Batch = tuple[int, str, list[GpsPoint]]
_encode_batch = msgspec.msgpack.Encoder().encode
_decode_batch = msgspec.msgpack.Decoder(_Batch).decode


class _Waiting:
    __slots__ = ("future", "loop", "size")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], size: int):
        self.loop, self.future, self.size = loop, future, size


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client went away); the data is still stored
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GroupCommitWriter:
    """The server's handle on the writer process; every point, key and deletion goes through it.

    (Tokens are written directly: rare, and often from another process, `trucktrack token`.)
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        max_pending_points: int = 50_000,
        max_group_points: int = 20_000,
        stream: StreamConfig | None = None,
        on_report: Callable[[StreamReport], None] | None = None,
    ) -> None:
        self._path = path
        self._stream = stream
        self._on_report = on_report
        self._synchronous = synchronous
        self._max_pending = max_pending_points
        self._max_group = max_group_points
        self._pending = 0
        self._lock = threading.Lock()
        self._waiting: dict[int, _Waiting] = {}
        self._ids = itertools.count(1)
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._owners: dict[str, str] = {}  # vehicle_id -> fleet_id, for callers' quick checks
        self._broken: StorageUnavailable | None = None
        self._process: Any = None
        self._threads: list[threading.Thread] = []
        self.commits = 0

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        reader = connect(self._path, readonly=True)
        try:
            self._owners = dict(reader.execute("SELECT vehicle_id, fleet_id FROM vehicles"))
        finally:
            reader.close()
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        requests_out, requests_in = ctx.Pipe(duplex=False)
        replies_out, replies_in = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_writer_main,
            args=(
                requests_out,
                replies_in,
                str(self._path),
                self._synchronous,
                self._max_group,
                self._stream,
            ),
            name="trucktrack-writer",
            daemon=True,
        )
        self._process.start()
        requests_out.close()
        replies_in.close()
        self._threads = [
            threading.Thread(target=self._send, args=(requests_in,), daemon=True),
            threading.Thread(target=self._receive, args=(replies_out,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Finish everything queued, then stop; safe to call twice."""
        if self._process is None:
            return
        self._outbox.put(None)
        for thread in self._threads:
            thread.join()
        self._process.join(timeout=60)
        self._process = None

    # --- the requests' side ----------------------------------------------------------------
    @property
    def pending_points(self) -> int:
        return self._pending

    def owner_of(self, vehicle_id: str) -> str | None:
        """The fleet a vehicle id belongs to, if any fleet has claimed it yet."""
        return self._owners.get(vehicle_id)

    async def append(self, fleet_id: str, points: Sequence[GpsPoint]) -> AppendOutcome:
        n = len(points)
        with self._lock:
            if self._pending and self._pending + n > self._max_pending:
                raise Overloaded("the write queue is full")
            self._pending += n
        job_id = next(self._ids)
        message = _APPEND + _encode_batch((job_id, fleet_id, list(points)))
        future = self._expect(job_id, n)
        self._outbox.put(message)
        outcome: AppendOutcome = await asyncio.shield(future)
        return outcome

    async def run[T](self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` in a write transaction of the writer and return its result.
        `fn` must be importable (a module-level function): it runs in the writer process."""
        job_id = next(self._ids)
        message = _CALL + pickle.dumps((job_id, fn, args))  # fails here if fn is not importable
        future = self._expect(job_id, 0)
        self._outbox.put(message)
        result: T = await future
        return result

    def _expect(self, job_id: int, size: int) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:  # the same lock as the sweep in _receive: no job can slip between
            if self._broken is not None:
                self._pending -= size
                raise self._broken
            self._waiting[job_id] = _Waiting(loop, future, size)
        return future

    def _send(self, pipe: Connection) -> None:
        try:
            while (message := self._outbox.get()) is not None:
                pipe.send_bytes(message)
        except OSError:
            log.exception("the writer process is gone")
        finally:
            pipe.close()  # the writer drains what it has and exits

    def _receive(self, pipe: Connection) -> None:
        try:
            while True:
                job_id, result, error, claimed, commits = pickle.loads(pipe.recv_bytes())
                self._owners.update(claimed)
                self.commits = commits
                if job_id == _REPORT:
                    self._report(result)
                else:
                    self._settle(job_id, result, error)
        except EOFError:
            pass
        finally:
            pipe.close()
            with self._lock:
                self._broken = StorageUnavailable("the database writer has stopped")
                orphans = list(self._waiting)
            for job_id in orphans:
                self._settle(job_id, None, self._broken)

    def _report(self, report: StreamReport) -> None:
        if self._on_report is not None:
            try:
                self._on_report(report)
            except Exception:
                log.exception("a stream report could not be handled")

    def _settle(self, job_id: int, result: Any, error: BaseException | None) -> None:
        with self._lock:
            waiting = self._waiting.pop(job_id, None)
            if waiting is None:
                return
            self._pending -= waiting.size
        try:
            waiting.loop.call_soon_threadsafe(_resolve, waiting.future, result, error)
        except RuntimeError:  # that caller's event loop is closed; the write still stands
            log.warning("a write finished after its event loop closed")


# --- the writer process ----------------------------------------------------------------------


def _writer_main(
    requests: Connection,
    replies: Connection,
    path: str,
    synchronous: str,
    max_group: int,
    stream_config: StreamConfig | None,
) -> None:
    # Ctrl-C at a terminal reaches the whole process group: the writer must not die with work
    # in hand. It stops when its parent closes the pipe, after writing everything received.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = connect(Path(path), synchronous=synchronous)
    # Copying the WAL back into the database is done beside the commits, not inside them.
    conn.execute("PRAGMA wal_autocheckpoint=0")
    checkpointer = _Checkpointer(Path(path))
    checkpointer.start()
    inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def read() -> None:
        try:
            while True:
                inbox.put(requests.recv_bytes())
        except (EOFError, OSError):
            inbox.put(None)

    stream = None
    if stream_config is not None:
        stream = TrackStream(conn, stream_config)
        stream.recover()
    threading.Thread(target=read, daemon=True).start()
    engine = _Engine(conn, replies, stream)
    try:
        engine.run(inbox, max_group)
        if stream is not None:
            stream.close()
    finally:
        conn.close()
        checkpointer.stop()
        replies.close()


class _Job:
    __slots__ = ("args", "fleet_id", "fn", "job_id", "points")

    def __init__(self, message: bytes) -> None:
        self.fn: Callable[..., Any] | None = None
        self.points: list[GpsPoint] = []
        self.fleet_id = ""
        self.args: tuple[Any, ...] = ()
        if message[:1] == _APPEND:
            self.job_id, self.fleet_id, self.points = _decode_batch(message[1:])
        else:
            self.job_id, self.fn, self.args = pickle.loads(message[1:])


class _Engine:
    """The writer loop: groups queued jobs, applies them in one transaction, replies."""

    def __init__(
        self, conn: sqlite3.Connection, replies: Connection, stream: TrackStream | None
    ) -> None:
        self._conn = conn
        self._replies = replies
        self._stream = stream
        self._vehicles: dict[str, tuple[str, int]] = {
            vid: (fleet, vkey)
            for vkey, vid, fleet in conn.execute("SELECT vkey, vehicle_id, fleet_id FROM vehicles")
        }
        self._trips: dict[tuple[str, str], int] = {
            (fleet, trip): key
            for key, fleet, trip in conn.execute(
                "SELECT trip_key, fleet_id, trip_id FROM trip_keys"
            )
        }
        self._commits = 0

    def run(self, inbox: queue.SimpleQueue[bytes | None], max_group: int) -> None:
        while True:
            try:
                message = inbox.get(timeout=IDLE_TICK_S)
            except queue.Empty:
                self._idle()
                continue
            if message is None:
                return
            group = [_Job(message)]
            size = len(group[0].points)
            stop = False
            while size < max_group:
                try:
                    nxt = inbox.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(_Job(nxt))
                size += len(group[-1].points)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Job]) -> None:
        conn = self._conn
        results: list[tuple[Any, BaseException | None]] = []
        keys = _NewKeys()
        inputs: list[GroupInput] = []
        report = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                if job.fn is not None:
                    results.append(self._apply_fn(job.fn, job.args))
                else:
                    results.append((self._apply_points(job, keys, inputs), None))
            report = self._process(inputs)
            conn.execute("COMMIT")
            self._vehicles.update(keys.vehicles)
            self._trips.update(keys.trips)
        except Exception as exc:  # disk full, I/O error: nothing of the group was committed
            log.exception("group commit failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = StorageUnavailable(f"could not write to the database: {exc}")
            results = [(None, error)] * len(group)
            keys = _NewKeys()
            report = None
            if self._stream is not None:
                self._stream.reload()
        self._commits += 1
        claimed = {vid: fleet for vid, (fleet, _) in keys.vehicles.items()}
        for job, (result, error) in zip(group, results, strict=True):
            try:
                reply = pickle.dumps((job.job_id, result, error, claimed, self._commits))
            except Exception:  # an unpicklable result or error: say so rather than hang
                failure = StorageUnavailable(f"writer job {job.fn!r} gave an unpicklable result")
                reply = pickle.dumps((job.job_id, None, failure, claimed, self._commits))
            self._replies.send_bytes(reply)
            claimed = {}
        if report is not None and (report.alerts or report.lags_s or report.failed):
            self._replies.send_bytes(pickle.dumps((_REPORT, report, None, {}, self._commits)))

    def _idle(self) -> None:
        """No job for a while: let the stream save its state if due (so distances and the
        journal's trim do not wait for the next point)."""
        if self._stream is None:
            return
        try:
            self._stream.tick()
        except Exception:
            log.exception("saving the processors' state failed; retrying later")

    def _process(self, inputs: list[GroupInput]) -> StreamReport | None:
        """Run the processors over the group's points, in its transaction. A failure there
        must not refuse the points: they stay stored, unprocessed, and the state restarts
        from the database."""
        if self._stream is None:
            return None
        conn = self._conn
        conn.execute("SAVEPOINT stream")
        try:
            report = self._stream.process_group(inputs)
        except Exception:
            log.exception("processing a group failed; its points are stored without events")
            conn.execute("ROLLBACK TO stream")
            conn.execute("RELEASE stream")
            self._stream.reload()
            return StreamReport([], [], failed=True)
        conn.execute("RELEASE stream")
        return report

    def _apply_fn(
        self, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> tuple[Any, Exception | None]:
        conn = self._conn
        conn.execute("SAVEPOINT job")
        try:
            result = fn(conn, *args)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return None, exc
        conn.execute("RELEASE job")
        return result, None

    def _apply_points(self, job: _Job, keys: _NewKeys, inputs: list[GroupInput]) -> AppendOutcome:
        conn = self._conn
        fleet = job.fleet_id
        vehicles, trips = self._vehicles, self._trips
        rows: list[tuple[Any, ...]] = []
        stored: list[GpsPoint] = []
        slots: list[tuple[int, int]] = []
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
                    # Planning a trip makes its key too (outside this cache): look first.
                    row = conn.execute(_FIND_TRIP, trip).fetchone()
                    trip_key = row[0] if row else conn.execute(_NEW_TRIP, trip).lastrowid
                    keys.trips[trip] = trip_key  # type: ignore[assignment]
            rows.append(
                (p.ts, known[1], p.lat, p.lng, p.speed, p.heading, p.accuracy, p.altitude,
                 trip_key, p.driver_id, p.engine_status, p.received_at)
            )  # fmt: skip
            stored.append(p)
            slots.append((known[1], -1 if trip_key is None else trip_key))
        # rowcount excludes the trigger's writes: it is exactly the rows new to the log.
        inserted = conn.executemany(INSERT_POINT, rows).rowcount if rows else 0
        inputs.append((fleet, stored, slots))
        return AppendOutcome(inserted=inserted, duplicates=len(rows) - inserted, rejected=rejected)


_CLAIM_VEHICLE = "INSERT INTO vehicles (vehicle_id, fleet_id, created_at) VALUES (?,?,?)"
_NEW_TRIP = "INSERT INTO trip_keys (fleet_id, trip_id) VALUES (?,?)"
_FIND_TRIP = "SELECT trip_key FROM trip_keys WHERE fleet_id = ? AND trip_id = ?"


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

"""The processors on the embedded default: run by the writer, inside each group's transaction.

Every group commit hands the points it stored to `TrackStream.process_group`, which runs them
through `TrackProcessor` and writes what follows (alerts and their webhook outbox rows, stops,
one journal row holding the batch) in the same transaction. So an acknowledged point has been
processed exactly once: the reply, the point and its alerts commit together or not at all.

The processor state lives in memory and is saved as a snapshot every `snapshot_s` (setting
`processor_snapshot_s`; also before the fence catalogue changes and on a clean stop), not at
every commit: saving 10,000 vehicles' state per group would cost as much as storing the points.
After a crash the state is the snapshot plus a replay of the journal rows since, which
recomputes the same events; their alerts have deterministic ids and dedupe keys, so the replay
finds them stored and adds nothing.

(On AWS the same `TrackProcessor` runs in the Kinesis consumer, with the state in DynamoDB.)
"""

from __future__ import annotations

import gzip
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from trucktrack.adapters.files import LocalObjectStore
from trucktrack.domain.alerts import Alert, alerts_from_compliance, alerts_from_event
from trucktrack.domain.compliance import (
    ComplianceBatch,
    ComplianceChecker,
    ComplianceRules,
    ComplianceState,
)
from trucktrack.domain.geofence import BadGeometry, Geofence, fence_shape
from trucktrack.domain.model import GpsPoint
from trucktrack.domain.processing import (
    EventKind,
    FenceCatalog,
    ProcessorRules,
    TrackBatch,
    TrackEvent,
    TrackProcessor,
    TrackState,
)
from trucktrack.domain.trips import Trip, TripStatus

log = logging.getLogger(__name__)


class StreamConfig(msgspec.Struct, frozen=True):
    """How the writer process sets its stream up (crosses to it pickled)."""

    rules: ProcessorRules
    notify: bool
    """Queue new alerts for webhook delivery."""
    snapshot_s: float
    compliance: ComplianceRules = ComplianceRules()
    objects_dir: str = ""
    """The object store holding planned routes; empty: no route compliance."""


class StreamReport(msgspec.Struct, frozen=True):
    """What one group's processing tells the server process (for metrics and live pushes)."""

    alerts: list[Alert]
    lags_s: list[float]
    """Per batch: from the server receiving it to its processing."""
    failed: bool = False


class _Entry(msgspec.Struct, array_like=True):
    """One journal row: a processed batch's columns, exactly as the processor saw them."""

    slot: bytes
    trip: bytes
    ts: bytes
    lat: bytes
    lng: bytes
    speed: bytes
    accuracy: bytes
    heading: bytes = b""


class _Saved(msgspec.Struct, array_like=True):
    """The stream's snapshot: both processors' state and which trip has which route slot."""

    track: bytes
    compliance: bytes
    trip_slots: list[tuple[int, int]]
    """(trip_key, the trip's slot in the compliance checker)."""


_encode = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(_Entry).decode
_decode_fence = msgspec.msgpack.Decoder(Geofence).decode
_decode_saved = msgspec.msgpack.Decoder(_Saved).decode
_decode_trip = msgspec.msgpack.Decoder(Trip).decode
_encode_alert = msgspec.msgpack.Encoder().encode
INT, FLOAT = np.int64, np.float64
TIDY_JOURNAL_ROWS = 4  # per group: more than the one it adds, so the journal shrinks
TIDY_ROWS = 1000  # distance rows published per group

# What the writer hands over per append job: the fleet, the points, their (vkey, trip_key).
GroupInput = tuple[str, Sequence[GpsPoint], Sequence[tuple[int, int]]]


class _Column(Sequence[Any]):
    """A lazy column of a list of points (ids are only read for scoped fences and events)."""

    __slots__ = ("_attr", "_points")

    def __init__(self, points: Sequence[GpsPoint], attr: str) -> None:
        self._points, self._attr = points, attr

    def __len__(self) -> int:
        return len(self._points)

    def __getitem__(self, i: Any) -> Any:
        return getattr(self._points[i], self._attr)


class TrackStream:
    """The processors' state and the fence catalogue, kept in the writer process; every write
    goes through the writer's connection, inside the transaction it has open."""

    def __init__(self, conn: sqlite3.Connection, config: StreamConfig) -> None:
        self._conn = conn
        self._rules = config.rules
        self._notify = config.notify
        self._snapshot_s = config.snapshot_s
        self._processor = TrackProcessor(config.rules)
        self._generation = -1
        self._fences: dict[tuple[str, str], Geofence] = {}
        self._shapes: dict[tuple[str, str], tuple[int, Any]] = {}
        self._seq = 0
        self._snapshot_at = 0.0
        self._saved_distance = np.zeros(0)
        self._saved_trips = np.zeros(0)
        self._unsaved = {"vehicle": np.zeros(0, INT), "trip": np.zeros(0, INT)}
        self._trim_to = self._trimmed = 0
        self._compliance_rules = config.compliance
        self._checker = ComplianceChecker(config.compliance)
        self._routes = LocalObjectStore(Path(config.objects_dir)) if config.objects_dir else None
        self._trip_generation = -1
        self._trip_slots: dict[int, int] = {}
        """trip_key -> slot in the checker, for the active trips with a planned route."""
        self._free_slots: list[int] = []
        self._next_slot = 0
        self._slot_keys = np.zeros(0, INT)  # sorted trip keys of `_trip_slots`, and their slots
        self._slot_values = np.zeros(0, INT)
        self._progressed: set[int] = set()
        """Trips that moved since the last snapshot; at the snapshot they become due."""
        self._progress_due: set[int] = set()
        """Trips whose progress `_tidy` is to publish, a few per group."""
        """Trip keys whose progress changed since it was last published."""

    # --- start and recovery -----------------------------------------------------------------
    def recover(self) -> None:
        """Load the fences and the last snapshot, replay the journal since, save a snapshot.
        Runs in its own transaction, before the writer takes any job."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._load_state()
            self._load_fences()
            self._load_trips()
            replayed = self._replay()
            self._snapshot()
            self.flush()
            conn.execute("COMMIT")
        except Exception:
            # Ingest must go on: start the processors afresh (events of the journal's span
            # may be missed or repeated) rather than leave the writer unable to start.
            log.exception("could not restore the processors' state; starting from scratch")
            conn.execute("ROLLBACK")
            self._start_afresh()
            return
        if replayed:
            log.info("processors resumed: %d journal batches replayed", replayed)

    def _start_afresh(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM stream_snapshot")
            conn.execute("DELETE FROM stream_journal")
            self._load_state()
            self._generation = -1
            self._load_fences()
            self._load_trips()
            self._snapshot()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def tick(self) -> None:
        """When idle: take a due snapshot and finish its tidying, in a transaction of its own."""
        due = time.monotonic() - self._snapshot_at >= self._snapshot_s
        if due and self._seq > self._trim_to:
            self.close()
        elif (
            self._trimmed < self._trim_to
            or self._progress_due
            or any(len(u) for u in self._unsaved.values())
        ):
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._tidy()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Save the state on a clean stop, so the next start has nothing to replay."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._snapshot()
            self.flush()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def reload(self) -> None:
        """After a failed transaction: memory is ahead of the database, so start again from it
        (inside the caller's open transaction)."""
        self._load_state()
        self._generation = -1
        self._load_fences()
        self._load_trips()
        self._replay()

    def _load_state(self) -> None:
        row = self._conn.execute("SELECT journal_seq, body FROM stream_snapshot").fetchone()
        track, compliance, slots = TrackState(), ComplianceState(), []
        if row is not None:
            try:
                saved = _decode_saved(row[1])
                track = TrackState.from_bytes(saved.track)
                compliance = ComplianceState.from_bytes(saved.compliance)
                slots = saved.trip_slots
            except msgspec.DecodeError:  # a snapshot from before route compliance
                track = TrackState.from_bytes(row[1])
        self._seq = 0 if row is None else row[0]
        self._processor = TrackProcessor(self._rules, track)
        self._checker = ComplianceChecker(self._compliance_rules, compliance)
        self._trip_slots = dict(slots)
        used = set(self._trip_slots.values())
        self._free_slots = sorted(set(range(len(compliance))) - used, reverse=True)
        self._next_slot = len(compliance)
        self._trip_generation = -1  # routes are not in the snapshot: plan them all again
        # Whether the last run published every distance is unknown: the next snapshot does.
        self._saved_distance, self._saved_trips = np.zeros(0), np.zeros(0)
        self._trim_to = self._trimmed = self._seq

    def _load_fences(self) -> None:
        """Rebuild the catalogue if any fence changed; shapes of unchanged fences are reused."""
        conn = self._conn
        generation = conn.execute("SELECT gen FROM fence_generation").fetchone()[0]
        if generation == self._generation:
            return
        fences: dict[tuple[str, str], Geofence] = {}
        shapes: dict[tuple[str, str], tuple[int, Any]] = {}
        entries = []
        for body, born in conn.execute("SELECT body, generation FROM geofences WHERE active = 1"):
            fence = _decode_fence(body)
            key = (fence.fleet_id, fence.geofence_id)
            cached = self._shapes.get(key)
            if cached is not None and cached[0] == born:
                shape = cached[1]
            else:
                try:
                    shape = fence_shape(fence)
                except BadGeometry:  # checked when stored; a bad row must not stop the stream
                    log.exception("skipping geofence %s", key)
                    continue
            fences[key], shapes[key] = fence, (born, shape)
            entries.append((fence, shape, born))
        self._processor.catalog = FenceCatalog(entries, generation)
        self._fences, self._shapes, self._generation = fences, shapes, generation

    def _load_trips(self) -> None:
        """Plan the routes of active trips and forget ended ones: all of them after a (re)start,
        then only the trips written since (their rows carry the generation)."""
        conn = self._conn
        generation = conn.execute("SELECT gen FROM trip_generation").fetchone()[0]
        if generation == self._trip_generation or self._routes is None:
            return
        if self._trip_generation < 0:
            rows = conn.execute(
                "SELECT t.body, k.trip_key FROM trips AS t JOIN trip_keys AS k "
                "ON k.fleet_id = t.fleet_id AND k.trip_id = t.trip_id WHERE t.status = ?",
                [TripStatus.ACTIVE.value],
            ).fetchall()
            for stale in set(self._trip_slots) - {key for _, key in rows}:
                self._finish(stale)
        else:
            rows = conn.execute(
                "SELECT t.body, k.trip_key FROM trips AS t JOIN trip_keys AS k "
                "ON k.fleet_id = t.fleet_id AND k.trip_id = t.trip_id WHERE t.generation > ?",
                [self._trip_generation],
            ).fetchall()
        for body, key in rows:
            trip = _decode_trip(body)
            route = trip.planned_route
            if trip.status is not TripStatus.ACTIVE or route is None:
                self._finish(key)
                continue
            data = self._routes.get(trip.fleet_id, route.key)
            if data is None:
                log.error("trip %s: planned route %s is missing", trip.trip_id, route.key)
                self._finish(key)
                continue
            feature = msgspec.json.decode(gzip.decompress(data))
            slot = self._trip_slots.get(key)
            if slot is None:
                if self._free_slots:
                    slot = self._free_slots.pop()
                else:
                    slot, self._next_slot = self._next_slot, self._next_slot + 1
                self._checker.finish(slot)
                self._trip_slots[key] = slot
            try:
                self._checker.plan(slot, feature["geometry"]["coordinates"])
            except ValueError:
                log.exception("trip %s: unusable planned route", trip.trip_id)
                self._finish(key)
        self._trip_generation = generation
        keys = np.array(sorted(self._trip_slots), INT)
        self._slot_keys = keys
        self._slot_values = np.array([self._trip_slots[k] for k in keys.tolist()], INT)

    def _finish(self, trip_key: int) -> None:
        slot = self._trip_slots.pop(trip_key, None)
        if slot is not None:
            self._checker.finish(slot)
            self._free_slots.append(slot)

    def _replay(self) -> int:
        conn = self._conn
        rows = conn.execute(
            "SELECT seq, body FROM stream_journal WHERE seq > ? ORDER BY seq", [self._seq]
        ).fetchall()
        if not rows:
            return 0
        vehicles = {
            vkey: (vid, fleet)
            for vkey, vid, fleet in conn.execute("SELECT vkey, vehicle_id, fleet_id FROM vehicles")
        }
        trips = dict(conn.execute("SELECT trip_key, trip_id FROM trip_keys").fetchall())
        for seq, body in rows:
            entry = _decode_entry(body)
            slot = np.frombuffer(entry.slot, dtype=INT)
            trip = np.frombuffer(entry.trip, dtype=INT)
            owners = [vehicles[v] for v in slot.tolist()]
            fleets = [fleet for _, fleet in owners]
            batch = TrackBatch(
                slot=slot,
                fleet=np.array([self._processor.catalog.fleet_code(f) for f in fleets], INT),
                trip=trip,
                ts=np.frombuffer(entry.ts, dtype=INT),
                lat=np.frombuffer(entry.lat, dtype=FLOAT),
                lng=np.frombuffer(entry.lng, dtype=FLOAT),
                speed=np.frombuffer(entry.speed, dtype=FLOAT),
                accuracy=np.frombuffer(entry.accuracy, dtype=FLOAT),
                vehicle_ids=[vid for vid, _ in owners],
                trip_ids=[trips.get(t) for t in trip.tolist()],
            )
            heading = (
                np.frombuffer(entry.heading, dtype=FLOAT)
                if entry.heading
                else np.full(len(batch), np.nan)
            )
            now = _now_ms()
            self._record(self._processor.process(batch), batch, fleets, now)
            self._check_routes(batch, heading, fleets, now)
            self._seq = seq
        return len(rows)

    # --- the group commit's side --------------------------------------------------------------
    def process_group(self, jobs: Sequence[GroupInput]) -> StreamReport | None:
        """Process the points of one group commit, inside its open transaction."""
        jobs = [job for job in jobs if job[1]]
        if not jobs:
            return None
        conn = self._conn
        fences_changed = conn.execute("SELECT gen FROM fence_generation").fetchone()[0] != (
            self._generation
        )
        trips_changed = self._routes is not None and (
            conn.execute("SELECT gen FROM trip_generation").fetchone()[0] != self._trip_generation
        )
        if fences_changed or trips_changed:
            # The journal must only ever be replayed with the fences and routes it saw: save
            # the state first. (Checked only when points come, so many changes stay cheap.)
            self._snapshot()
            self._publish_progress(len(self._progress_due))  # before the trips' slots change
            self._load_fences()
            self._load_trips()
        now = _now_ms()
        points = [p for _, pts, _ in jobs for p in pts]
        keys = [k for _, _, ks in jobs for k in ks]
        fleets = [fleet for fleet, pts, _ in jobs for _ in range(len(pts))]
        codes = np.concatenate(
            [
                np.full(len(pts), self._processor.catalog.fleet_code(fleet), INT)
                for fleet, pts, _ in jobs
            ]
        )
        slot, trip = (np.array(column, INT) for column in zip(*keys, strict=True))
        ts, lat, lng, speed, accuracy = zip(
            *((p.ts, p.lat, p.lng, p.speed, p.accuracy) for p in points), strict=True
        )
        batch = TrackBatch(
            slot=slot,
            fleet=codes,
            trip=trip,
            ts=np.array(ts, INT),
            lat=np.array(lat, FLOAT),
            lng=np.array(lng, FLOAT),
            speed=np.array(speed, FLOAT),
            accuracy=np.array(accuracy, FLOAT),
            vehicle_ids=_Column(points, "vehicle_id"),
            trip_ids=_Column(points, "trip_id"),
        )
        heading = np.array([p.heading for p in points], FLOAT)
        alerts = self._record(self._processor.process(batch), batch, fleets, now)
        alerts += self._check_routes(batch, heading, fleets, now)
        entry = _Entry(*(a.tobytes() for a in (slot, trip, batch.ts, batch.lat, batch.lng,
                                                batch.speed, batch.accuracy, heading)))  # fmt: skip
        self._seq = (
            self._conn.execute(
                "INSERT INTO stream_journal (body) VALUES (?)", [_encode(entry)]
            ).lastrowid
            or self._seq
        )
        if time.monotonic() - self._snapshot_at >= self._snapshot_s:
            self._snapshot()
        self._tidy()
        lags = [(now - pts[0].received_at) / 1000 for _, pts, _ in jobs]
        return StreamReport(alerts, lags)

    def _check_routes(
        self, batch: TrackBatch, heading: np.ndarray, fleets: Sequence[str], now: int
    ) -> list[Alert]:
        """Route compliance for the fixes the processor trusted that belong to a trip with a
        planned route; stores the alerts it raises and returns the new ones."""
        if not len(self._slot_keys):
            return []
        kept = self._processor.kept_points
        keys = batch.trip[kept]
        at = np.searchsorted(self._slot_keys, keys)
        at[at >= len(self._slot_keys)] = 0
        planned = self._slot_keys[at] == keys
        if not planned.any():
            return []
        rows = kept[planned]
        result = self._checker.check(
            ComplianceBatch.of(
                self._slot_values[at[planned]], batch.ts[rows], batch.lat[rows],
                batch.lng[rows], batch.speed[rows], heading[rows],
            )
        )  # fmt: skip
        self._progressed.update(np.unique(keys[planned]).tolist())
        new: list[Alert] = []
        for event in result.events:
            i = int(rows[event.point])
            trip_id = batch.trip_ids[i]
            if trip_id is None:
                continue
            for alert in alerts_from_compliance(
                event, fleet_id=fleets[i], vehicle_id=batch.vehicle_ids[i], trip_id=trip_id,
                created_at=now,
            ):  # fmt: skip
                if record_alert(self._conn, alert, self._notify):
                    new.append(alert)
        return new

    def _record(
        self, events: list[TrackEvent], batch: TrackBatch, fleets: Sequence[str], now: int
    ) -> list[Alert]:
        """Store the alerts (once per dedupe key) and stops the events raise; returns the new
        alerts."""
        conn = self._conn
        new: list[Alert] = []
        for event in events:
            i = event.point
            vkey, trip_key = int(batch.slot[i]), int(batch.trip[i])
            trip_key_or_none = None if trip_key < 0 else trip_key
            if event.kind is EventKind.STOP_STARTED or event.kind is EventKind.STOP_ENDED:
                conn.execute(
                    "INSERT INTO stops VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (vkey, started_ts) "
                    "DO UPDATE SET ended_ts = excluded.ended_ts, "
                    "authorised = excluded.authorised, duration_s = excluded.duration_s",
                    [vkey, event.since,
                     event.ts if event.kind is EventKind.STOP_ENDED else None,
                     event.lat, event.lng, trip_key_or_none,
                     bool(event.details.get("authorised")), event.details.get("duration_s", 0)],
                )  # fmt: skip
                continue
            fleet = fleets[i]
            fence = self._fences.get((fleet, event.fence_id)) if event.fence_id else None
            for alert in alerts_from_event(
                event,
                fleet_id=fleet,
                vehicle_id=batch.vehicle_ids[i],
                trip_id=batch.trip_ids[i],
                fence=fence,
                created_at=now,
            ):
                if record_alert(conn, alert, self._notify):
                    new.append(alert)
        return new

    def _snapshot(self) -> None:
        """Save the state. The journal rows it covers and the distances that changed since the
        last one are written away a little per group after it (see `_tidy`), so that no
        single commit pays for all of it."""
        conn = self._conn
        state = self._processor.state
        saved = _Saved(
            state.to_bytes(), self._checker.state.to_bytes(), list(self._trip_slots.items())
        )
        conn.execute(
            "INSERT OR REPLACE INTO stream_snapshot VALUES (1, ?, ?, ?)",
            [self._seq, _now_ms(), _encode(saved)],
        )
        self._trim_to = self._seq
        self._progress_due |= self._progressed
        self._progressed.clear()
        for name, now, saved in (
            ("vehicle", state.distance, self._saved_distance),
            ("trip", state.trip_distance, self._saved_trips),
        ):
            before = np.zeros(len(now))
            before[: min(len(saved), len(now))] = saved[: len(now)]
            changed = np.flatnonzero(now != before)
            self._unsaved[name] = np.union1d(self._unsaved[name], changed)
        self._saved_distance = state.distance.copy()
        self._saved_trips = state.trip_distance.copy()
        self._snapshot_at = time.monotonic()

    def _publish_progress(self, rows: int) -> None:
        """Where up to `rows` of the trips that moved before the last snapshot stand on their
        routes now (for the trips API: progress, distance off route, ETA): once per trip per
        snapshot, and a few per group like the distances (10,000 trips in one commit made
        that commit slow)."""
        out = []
        for _ in range(min(rows, len(self._progress_due))):
            key = self._progress_due.pop()
            slot = self._trip_slots.get(key)
            progress = None if slot is None else self._checker.progress(slot)
            if progress is not None:
                out.append((key, progress.deviating, _encode(progress)))
        self._conn.executemany("INSERT OR REPLACE INTO trip_progress VALUES (?, ?, ?)", out)

    def _tidy(self, rows: int = TIDY_ROWS) -> None:
        """Delete a few journal rows the snapshot covers, publish a few distances and a few
        trips' progress."""
        conn = self._conn
        if self._trimmed < self._trim_to:
            upto = min(self._trim_to, self._trimmed + TIDY_JOURNAL_ROWS)
            conn.execute("DELETE FROM stream_journal WHERE seq <= ?", [upto])
            self._trimmed = upto
        if self._progress_due:
            self._publish_progress(rows)
        state = self._processor.state
        for name, table, key, values in (
            ("vehicle", "vehicle_distance", "vkey", state.distance),
            ("trip", "trip_distance", "trip_key", state.trip_distance),
        ):
            pending = self._unsaved[name]
            if not len(pending):
                continue
            now, self._unsaved[name] = pending[:rows], pending[rows:]
            conn.executemany(
                f"INSERT OR REPLACE INTO {table} ({key}, metres) VALUES (?, ?)",
                zip(now.tolist(), values[now].tolist(), strict=True),
            )

    def flush(self) -> None:
        """Finish the tidying at once (at start-up and shut-down)."""
        self._tidy(rows=2**62)
        self._conn.execute("DELETE FROM stream_journal WHERE seq <= ?", [self._trim_to])
        self._trimmed = self._trim_to


def record_alert(conn: sqlite3.Connection, alert: Alert, notify: bool) -> bool:
    """Store an alert unless its dedupe key is already stored; if new, queue it for delivery
    when there is a deployment-wide webhook (`notify`) or the fleet has its own."""
    new = conn.execute(
        "INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?,?)",
        [alert.fleet_id, alert.alert_id, alert.type.value, alert.vehicle_id, alert.trip_id,
         alert.ts, alert.dedupe_key, _encode_alert(alert)],
    ).rowcount  # fmt: skip
    if new and (
        notify
        or conn.execute("SELECT 1 FROM webhooks WHERE fleet_id = ?", [alert.fleet_id]).fetchone()
    ):
        conn.execute(
            "INSERT INTO alert_outbox (fleet_id, alert_id) VALUES (?, ?)",
            [alert.fleet_id, alert.alert_id],
        )
    return bool(new)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

"""The stream processors over one batch of many vehicles' fixes at once.

Every accepted point flows through the chain: noise filter -> distance -> fence membership and
transitions (entry, exit, cross, restricted, dwell) -> speeding -> stops. The semantics are
those of the per-vehicle reference steps (`filters`, `fence_transitions`, `speeding`, `stops`);
this module runs them for a whole batch without a Python loop over every point: state is kept
as columns (numpy arrays indexed by a vehicle's slot), membership comes from one grid lookup
for all points (`GeofenceIndex.point_pairs`, `segment_pairs`), and only vehicles with
something happening (inside or crossing a fence, over the limit, slow, a GPS jump) go through
the reference steps. A moving truck outside every fence
costs a few array operations. `tests/unit/test_processing.py` checks that both agree.

Pure: no I/O. The caller keeps `TrackState` (and can snapshot it with `to_bytes`), feeds
`TrackBatch`es in arrival order and turns the `TrackEvent`s into alerts and stop records.
"""

from __future__ import annotations

import bisect
import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import msgspec
import numpy as np
from shapely.geometry.base import BaseGeometry

from trucktrack.domain import fence_transitions, filters, speeding, stops
from trucktrack.domain.fence_transitions import FenceTerms, MembershipState, Transition
from trucktrack.domain.filters import FilterRules
from trucktrack.domain.geo import distances_m
from trucktrack.domain.geofence import Geofence, GeofenceIndex
from trucktrack.domain.speeding import SpeedEventKind, SpeedRules
from trucktrack.domain.stops import StopEventKind, StopRules

EMPTY: frozenset[str] = frozenset()


class ProcessorRules(msgspec.Struct, frozen=True):
    filter: FilterRules = FilterRules()
    stops: StopRules = StopRules()
    speed: SpeedRules = SpeedRules()
    default_speed_limit_kmh: float = 80.0
    """The limit outside every fence with a `speed_limit_kmh` (trucks on Indian highways)."""
    timezone: str = "Asia/Kolkata"
    """The zone restricted hours are written in."""


class EventKind(StrEnum):
    ENTER = Transition.ENTER.value
    EXIT = Transition.EXIT.value
    CROSS = Transition.CROSS.value
    RESTRICTED = Transition.RESTRICTED.value
    DWELL = Transition.DWELL.value
    SPEEDING_STARTED = SpeedEventKind.STARTED.value
    SPEEDING_ENDED = SpeedEventKind.ENDED.value
    STOP_STARTED = StopEventKind.STOP_STARTED.value
    STOP_ENDED = StopEventKind.STOP_ENDED.value
    UNEXPECTED_STOP = StopEventKind.UNEXPECTED_STOP.value


class TrackEvent(msgspec.Struct, frozen=True):
    kind: EventKind
    point: int
    """Index in the batch of the fix that raised it."""
    ts: int
    lat: float
    lng: float
    since: int
    """Start of what the event belongs to: the fence visit, the stop, the speeding spell."""
    fence_id: str | None = None
    details: dict[str, float | bool] = {}


@dataclass(slots=True)
class TrackBatch:
    """Points of many vehicles, in arrival order, as columns."""

    slot: np.ndarray
    """int64: the vehicle's slot in `TrackState` (a small dense integer, e.g. its row key)."""
    fleet: np.ndarray
    """int64: `FenceCatalog.fleet_code` of the vehicle's fleet (-1: a fleet without fences)."""
    trip: np.ndarray
    """int64: the trip's slot for per-trip distance, -1 for none."""
    ts: np.ndarray
    lat: np.ndarray
    lng: np.ndarray
    speed: np.ndarray
    accuracy: np.ndarray
    vehicle_ids: Sequence[str]
    trip_ids: Sequence[str | None]

    def __len__(self) -> int:
        return len(self.ts)


class FenceCatalog:
    """The active fences of every fleet: one spatial index plus the rules as columns."""

    def __init__(
        self, fences: Sequence[tuple[Geofence, BaseGeometry, int]], version: int = 0
    ) -> None:
        """`fences`: (fence, shape, generation at which it got that shape); `version`: now."""
        self.version = version
        self._fleets: dict[str, int] = {}
        self.index = GeofenceIndex([(f.geofence_id, shape) for f, shape, _ in fences])
        n = len(fences)
        self.fleet = np.empty(n, dtype=np.int64)
        self.speed_limit = np.full(n, np.inf)
        self.stop_allowed = np.zeros(n, dtype=bool)
        self.scoped = np.zeros(n, dtype=bool)
        self.vehicle_scope: list[frozenset[str] | None] = []
        self.trip_scope: list[frozenset[str] | None] = []
        self.terms: dict[int, dict[str, FenceTerms]] = {}
        for i, (fence, _, born) in enumerate(fences):
            rules = fence.rules
            code = self._fleets.setdefault(fence.fleet_id, len(self._fleets))
            self.fleet[i] = code
            if rules.speed_limit_kmh is not None:
                self.speed_limit[i] = rules.speed_limit_kmh
            self.stop_allowed[i] = rules.stop_allowed
            self.vehicle_scope.append(
                None if rules.vehicle_ids is None else frozenset(rules.vehicle_ids)
            )
            self.trip_scope.append(None if rules.trip_ids is None else frozenset(rules.trip_ids))
            self.scoped[i] = rules.vehicle_ids is not None or rules.trip_ids is not None
            dwell = rules.max_dwell_min
            self.terms.setdefault(code, {})[fence.geofence_id] = FenceTerms(
                version=born,
                min_dwell_ms=int(rules.min_dwell_s * 1000),
                max_dwell_ms=None if dwell is None else int(dwell * 60_000),
                restricted=rules.restricted,
                windows=_windows(rules.restricted_hours),
            )  # fmt: skip

    def __len__(self) -> int:
        return len(self.fleet)

    def fleet_code(self, fleet_id: str) -> int:
        return self._fleets.get(fleet_id, -1)


def _windows(hours: list[tuple[str, str]] | None) -> tuple[tuple[int, int], ...] | None:
    if hours is None:
        return None
    return tuple((int(a[:2]) * 60 + int(a[3:]), int(b[:2]) * 60 + int(b[3:])) for a, b in hours)


_COLUMNS: dict[str, tuple[type, float | int | bool]] = {
    "seen_ts": (np.int64, -1),  # newest device time seen, trusted or not
    "last_ts": (np.int64, -1),  # the last trusted fix
    "last_lat": (np.float64, np.nan),
    "last_lng": (np.float64, np.nan),
    "distance": (np.float64, 0.0),  # filtered metres so far
    "fence_version": (np.int64, -1),  # catalogue generation at the last trusted fix
    "anchor_ts": (np.int64, -1),  # first slow fix of the current slow spell
    "anchor_lat": (np.float64, np.nan),
    "anchor_lng": (np.float64, np.nan),
    "stopped": (np.bool_, False),
    "stop_authorised": (np.bool_, False),
    "stop_flagged": (np.bool_, False),
    "speed_since": (np.int64, -1),  # first fix of the current spell over the limit
    "speed_max": (np.float64, 0.0),
    "speed_limit": (np.float64, 0.0),
    "speed_reported": (np.bool_, False),
}


class _Snapshot(msgspec.Struct, array_like=True):
    slots: int
    columns: dict[str, bytes]
    trip_distance: bytes
    membership: dict[int, MembershipState]


class TrackState:
    """Every vehicle's processor state, one array per field, indexed by slot."""

    def __init__(self) -> None:
        self.columns: dict[str, np.ndarray] = {
            name: np.full(0, default, dtype=dtype) for name, (dtype, default) in _COLUMNS.items()
        }
        self.trip_distance = np.zeros(0)
        self.membership: dict[int, MembershipState] = {}
        """Vehicles inside a fence or with a change awaiting debounce (usually few)."""

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise AttributeError(name) from None

    def ensure(self, slots: int, trips: int) -> None:
        have = len(self.columns["seen_ts"])
        if slots > have:
            grow = max(slots, have * 2, 1024) - have
            for name, (dtype, default) in _COLUMNS.items():
                extra = np.full(grow, default, dtype=dtype)
                self.columns[name] = np.concatenate((self.columns[name], extra))
        if trips > len(self.trip_distance):
            grow = max(trips, len(self.trip_distance) * 2, 1024) - len(self.trip_distance)
            self.trip_distance = np.concatenate((self.trip_distance, np.zeros(grow)))

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode(
            _Snapshot(
                len(self.columns["seen_ts"]),
                {name: array.tobytes() for name, array in self.columns.items()},
                self.trip_distance.tobytes(),
                self.membership,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> TrackState:
        snapshot = msgspec.msgpack.decode(data, type=_Snapshot)
        state = cls()
        state.ensure(snapshot.slots, 0)
        for name, (dtype, _) in _COLUMNS.items():
            if name in snapshot.columns:
                saved = np.frombuffer(snapshot.columns[name], dtype=dtype)
                state.columns[name][: len(saved)] = saved
        state.trip_distance = np.frombuffer(snapshot.trip_distance, dtype=np.float64).copy()
        state.membership = snapshot.membership
        return state


class TrackProcessor:
    """Runs the processor chain over batches, keeping `state` between them."""

    def __init__(self, rules: ProcessorRules, state: TrackState | None = None) -> None:
        self.rules = rules
        self.state = state or TrackState()
        self.catalog = FenceCatalog([])
        self._tz = local_zone(rules.timezone)
        self.kept = 0
        self.dropped = 0
        self.kept_points = np.zeros(0, np.int64)
        """Batch indexes of the fixes the last `process` trusted, by vehicle then time (what
        later steps, such as route compliance, should look at)."""

    def process(self, batch: TrackBatch) -> list[TrackEvent]:
        """Advance every vehicle of the batch; returns the events, vehicle by vehicle."""
        if not len(batch):
            self.kept_points = np.zeros(0, np.int64)
            return []
        st = self.state
        st.ensure(int(batch.slot.max()) + 1, int(batch.trip.max()) + 1)
        order = np.lexsort((batch.ts, batch.slot))  # stable: a retried point keeps its first
        slot, ts = batch.slot[order], batch.ts[order]
        first = np.r_[True, slot[1:] != slot[:-1]]
        fresh = (ts > st.seen_ts[slot]) & (first | (ts > np.r_[0, ts[:-1]]))
        last_of = np.r_[first[1:], True]  # the last point of each vehicle in the batch
        st.seen_ts[slot[last_of]] = np.maximum(st.seen_ts[slot[last_of]], ts[last_of])
        good = fresh & (batch.accuracy[order] <= self.rules.filter.max_accuracy_m)
        keep = self._drop_jumps(batch, order, np.flatnonzero(good))
        self.kept += len(keep)
        self.dropped += len(batch) - len(keep)
        self.kept_points = order[keep]
        if not len(keep):
            return []
        points = order[keep]
        k = _Kept(batch, points, st)
        seg = np.where(k.has_prev, distances_m(k.prev_lat, k.prev_lng, k.lat, k.lng), 0.0)
        np.add.at(st.distance, k.slot, seg)
        on_trip = k.trip >= 0
        np.add.at(st.trip_distance, k.trip[on_trip], seg[on_trip])

        events: list[TrackEvent] = []
        contain, cross = self._membership(batch, k)
        self._fences(k, contain, cross, events)
        limit = np.full(len(k), self.rules.default_speed_limit_kmh)
        allowed = np.zeros(len(k), dtype=bool)
        if len(contain[0]):
            np.minimum.at(limit, contain[0], self.catalog.speed_limit[contain[1]])
            allowed[contain[0][self.catalog.stop_allowed[contain[1]]]] = True
        self._speeding(k, limit, contain, events)
        self._stops(k, allowed, events)

        ends = k.ends
        st.last_ts[k.slot[ends]] = k.ts[ends]
        st.last_lat[k.slot[ends]] = k.lat[ends]
        st.last_lng[k.slot[ends]] = k.lng[ends]
        st.fence_version[k.slot[ends]] = self.catalog.version
        return events

    # --- filter ---------------------------------------------------------------------------
    def _drop_jumps(self, batch: TrackBatch, order: np.ndarray, good: np.ndarray) -> np.ndarray:
        """Positions (into `order`) of the trusted fixes: `good` minus GPS jumps. A jump makes
        the next fix's reference the fix before the jump, so a vehicle with one is replayed
        through the reference filter; the others are settled with arrays."""
        if not len(good):
            return good
        st = self.state
        idx = order[good]
        slot = batch.slot[idx]
        first = np.r_[True, slot[1:] != slot[:-1]]
        prev_ts = np.where(first, st.last_ts[slot], np.r_[0, batch.ts[idx][:-1]])
        prev_lat = np.where(first, st.last_lat[slot], np.r_[0.0, batch.lat[idx][:-1]])
        prev_lng = np.where(first, st.last_lng[slot], np.r_[0.0, batch.lng[idx][:-1]])
        has_prev = prev_ts >= 0
        metres = distances_m(prev_lat, prev_lng, batch.lat[idx], batch.lng[idx])
        hours = np.maximum(batch.ts[idx] - prev_ts, 1) / 3_600_000
        jump = has_prev & (metres / 1000 / hours > self.rules.filter.max_implied_speed_kmh)
        if not jump.any():
            return good
        keep = np.ones(len(good), dtype=bool)
        for vehicle in np.unique(slot[jump]).tolist():
            at = np.flatnonzero(slot == vehicle)
            last = None
            if st.last_ts[vehicle] >= 0:
                last = filters.TrackFix(
                    int(st.last_ts[vehicle]), float(st.last_lat[vehicle]),
                    float(st.last_lng[vehicle]),
                )  # fmt: skip
            fixes = [
                filters.TrackFix(t, la, ln)
                for t, la, ln in zip(
                    batch.ts[idx[at]].tolist(),
                    batch.lat[idx[at]].tolist(),
                    batch.lng[idx[at]].tolist(),
                    strict=True,
                )
            ]
            _, verdicts = filters.step(filters.FilterState(last), fixes, self.rules.filter)
            keep[at] = [v is None for v in verdicts]
        return good[keep]

    # --- fences ---------------------------------------------------------------------------
    def _membership(self, batch: TrackBatch, k: _Kept) -> tuple[_Pairs, _Pairs]:
        """(kept point, fence) pairs: fences holding each fix and fences each segment from
        the previous trusted fix touches, limited to the vehicle's fleet and the fence's
        scope."""
        catalog = self.catalog
        if not len(catalog):
            none = np.zeros(0, dtype=np.int64)
            return (none, none), (none, none)
        contain = self._mine(batch, k, catalog.index.point_pairs(k.lng, k.lat))
        moved = np.flatnonzero(k.has_prev)
        pairs = catalog.index.segment_pairs(
            k.prev_lng[moved], k.prev_lat[moved], k.lng[moved], k.lat[moved]
        )
        cross = self._mine(batch, k, np.vstack((moved[pairs[0]], pairs[1])))
        return contain, cross

    def _mine(self, batch: TrackBatch, k: _Kept, pairs: np.ndarray) -> _Pairs:
        catalog = self.catalog
        at, fence = pairs[0], pairs[1]
        ok = catalog.fleet[fence] == k.fleet[at]
        scoped = ok & catalog.scoped[fence]
        for i in np.flatnonzero(scoped).tolist():
            f, p = int(fence[i]), int(k.points[at[i]])
            vehicles, trips = catalog.vehicle_scope[f], catalog.trip_scope[f]
            ok[i] = (vehicles is None or batch.vehicle_ids[p] in vehicles) and (
                trips is None or batch.trip_ids[p] in trips
            )
        return at[ok], fence[ok]

    def _fences(self, k: _Kept, contain: _Pairs, cross: _Pairs, events: list[TrackEvent]) -> None:
        st, catalog = self.state, self.catalog
        busy = np.union1d(k.slot[contain[0]], k.slot[cross[0]])
        if st.membership:
            held = np.fromiter(st.membership, dtype=np.int64, count=len(st.membership))
            busy = np.union1d(busy, np.intersect1d(held, k.slot[k.ends]))
        if not len(busy):
            return
        inside = _sets_by_point(contain, catalog.index.fence_ids)
        passed = _sets_by_point(cross, catalog.index.fence_ids)
        ts, lat, lng = k.lists()
        last_ts = st.last_ts[busy].tolist()
        known = st.fence_version[busy].tolist()
        fleets = k.fleet.tolist()
        for n, (vehicle, lo, hi) in enumerate(k.ranges(busy)):
            before = st.membership.get(vehicle)
            state = MembershipState(
                last_ts[n],
                before.inside if before else {},
                before.pending if before else {},
                known[n],
                before.flagged if before else {},
            )
            fixes = [
                fence_transitions.Fix(t, la, ln)
                for t, la, ln in zip(ts[lo:hi], lat[lo:hi], lng[lo:hi], strict=True)
            ]
            after, found = fence_transitions.step(
                state,
                fixes,
                [inside.get(i, EMPTY) for i in range(lo, hi)],
                [passed.get(i, EMPTY) for i in range(lo, hi)],
                catalog.terms.get(fleets[lo], {}),
                catalog.version,
                self._tz,
            )
            if after.inside or after.pending:
                st.membership[vehicle] = after
            else:
                st.membership.pop(vehicle, None)
            for e in found:
                i = min(bisect.bisect_left(ts, e.ts, lo, hi), hi - 1)
                point = int(k.points[i])
                events.append(
                    TrackEvent(EventKind(e.kind.value), point, e.ts, e.lat, e.lng, e.since,
                               e.fence_id)
                )  # fmt: skip

    # --- speed ----------------------------------------------------------------------------
    def _speeding(
        self, k: _Kept, limit: np.ndarray, contain: _Pairs, events: list[TrackEvent]
    ) -> None:
        st, rules = self.state, self.rules.speed
        over = k.speed > limit + rules.tolerance_kmh
        # Settled with arrays: vehicles fast at every fix that cannot change state this batch
        # (a spell already reported, or one still too short to report).
        v, starts, ends = k.slot[k.starts], k.starts, k.ends
        n_over = np.add.reduceat(over.astype(np.int64), starts)
        all_over = n_over == ends - starts + 1
        since = st.speed_since[v]
        open_spell = since >= 0
        # A spell too short to report that ends: forgotten without an event.
        calmed = open_spell & ~st.speed_reported[v] & (n_over == 0)
        st.speed_since[v[calmed]] = -1
        quiet = all_over & (
            (open_spell & st.speed_reported[v])
            | (np.where(open_spell, since, k.ts[starts]) > k.ts[ends] - rules.min_duration_s * 1000)
        )
        if quiet.any():
            top = np.maximum.reduceat(k.speed, starts)[quiet]
            low = np.minimum.reduceat(limit, starts)[quiet]
            q, fresh = v[quiet], ~open_spell[quiet]
            st.speed_since[q] = np.where(fresh, k.ts[starts][quiet], since[quiet])
            st.speed_max[q] = np.where(fresh, top, np.maximum(st.speed_max[q], top))
            st.speed_limit[q] = np.where(fresh, low, np.minimum(st.speed_limit[q], low))
        busy = v[~quiet & ~calmed & (open_spell | (n_over > 0))]
        if not len(busy):
            return
        ts, lat, lng = k.lists()
        speeds, limits = k.speed.tolist(), limit.tolist()
        columns = ("last_ts", "speed_since", "speed_max", "speed_limit", "speed_reported")
        rows = zip(*(st.columns[c][busy].tolist() for c in columns), strict=True)
        out: list[tuple[int, float, float, bool]] = []
        for (_, lo, hi), (last, since, top, low, reported) in zip(
            k.ranges(busy), rows, strict=True
        ):
            state = speeding.SpeedState(last, None if since < 0 else since, top, low, reported)
            fixes = [
                speeding.SpeedFix(t, v, lim)
                for t, v, lim in zip(ts[lo:hi], speeds[lo:hi], limits[lo:hi], strict=True)
            ]
            after, found = speeding.step(state, fixes, rules)
            out.append((-1 if after.since is None else after.since, after.max_speed,
                        after.limit, after.reported))  # fmt: skip
            for e in found:
                i = bisect.bisect_left(ts, e.ts, lo, hi)
                fence = self._limiting_fence(i, e.limit_kmh, contain)
                events.append(
                    TrackEvent(
                        EventKind(e.kind.value), int(k.points[i]), e.ts, lat[i], lng[i],
                        e.started_ts, fence,
                        {"max_speed_kmh": e.max_speed_kmh, "limit_kmh": e.limit_kmh,
                         "duration_s": e.duration_s},
                    )
                )  # fmt: skip
        for column, values in zip(columns[1:], zip(*out, strict=True), strict=True):
            st.columns[column][busy] = values

    def _limiting_fence(self, i: int, limit_kmh: float, contain: _Pairs) -> str | None:
        """The fence whose speed limit was the one broken, if it was not the default."""
        if limit_kmh >= self.rules.default_speed_limit_kmh:
            return None
        fences = contain[1][contain[0] == i]
        hit = fences[self.catalog.speed_limit[fences] == limit_kmh]
        return str(self.catalog.index.fence_ids[hit[0]]) if len(hit) else None

    # --- stops ----------------------------------------------------------------------------
    def _stops(self, k: _Kept, allowed: np.ndarray, events: list[TrackEvent]) -> None:
        st, rules = self.state, self.rules.stops
        slow = k.speed < rules.max_speed_kmh
        v, starts, ends = k.slot[k.starts], k.starts, k.ends
        count = ends - starts + 1
        anchor_ts = st.anchor_ts[v]
        anchored = anchor_ts >= 0
        near = distances_m(st.anchor_lat[k.slot], st.anchor_lng[k.slot], k.lat, k.lng)
        near = (st.anchor_ts[k.slot] >= 0) & (near <= rules.radius_m)
        n_slow = np.add.reduceat(slow.astype(np.int64), starts)
        steady = (
            anchored
            & (n_slow == count)
            & (np.add.reduceat((slow & near).astype(np.int64), starts) == count)
        )
        held = (k.ts[ends] - anchor_ts) / 1000
        stopped, authorised, flagged = st.stopped[v], st.stop_authorised[v], st.stop_flagged[v]
        # Settled with arrays: a stop going on with no threshold to pass, a slow spell still
        # too short to be a stop, and a lone fix that starts or ends a slow spell.
        still = steady & stopped & (authorised | flagged | (held <= rules.unexpected_after_s))
        waiting = steady & ~stopped & (held < rules.min_duration_s)
        lone = (count == 1) & ~stopped & ~steady
        if still.any():
            allowed_any = np.add.reduceat(allowed.astype(np.int64), starts) > 0
            st.stop_authorised[v[still]] |= allowed_any[still]
        if lone.any():
            first_slow = slow[starts]
            restart, clear = lone & first_slow, lone & ~first_slow
            st.anchor_ts[v[restart]] = k.ts[starts][restart]
            st.anchor_lat[v[restart]] = k.lat[starts][restart]
            st.anchor_lng[v[restart]] = k.lng[starts][restart]
            st.anchor_ts[v[clear]] = -1
            st.anchor_lat[v[clear]] = np.nan
            st.anchor_lng[v[clear]] = np.nan
        busy = v[~(still | waiting | lone) & (anchored | (n_slow > 0))]
        if not len(busy):
            return
        ts, lat, lng = k.lists()
        speeds, allowed_at = k.speed.tolist(), allowed.tolist()
        columns = ("last_ts", "anchor_ts", "anchor_lat", "anchor_lng", "stopped",
                   "stop_authorised", "stop_flagged")  # fmt: skip
        rows = zip(*(st.columns[c][busy].tolist() for c in columns), strict=True)
        out: list[tuple[int, float, float, bool, bool, bool]] = []
        for (_, lo, hi), row in zip(k.ranges(busy), rows, strict=True):
            last, anchor_ts, anchor_lat, anchor_lng, stopped, authorised, flagged = row
            anchor = None if anchor_ts < 0 else (anchor_ts, anchor_lat, anchor_lng)
            state = stops.StopState(last, anchor, stopped, authorised, flagged)
            fixes = [
                stops.StopFix(t, la, ln, v, a)
                for t, la, ln, v, a in zip(
                    ts[lo:hi], lat[lo:hi], lng[lo:hi], speeds[lo:hi], allowed_at[lo:hi],
                    strict=True,
                )
            ]  # fmt: skip
            after, found = stops.step(state, fixes, rules)
            out.append((*(after.anchor or (-1, np.nan, np.nan)), after.stopped,
                        after.authorised, after.flagged))  # fmt: skip
            for e in found:
                i = bisect.bisect_left(ts, e.ts, lo, hi)
                events.append(
                    TrackEvent(
                        EventKind(e.kind.value), int(k.points[i]), e.ts, e.lat, e.lng,
                        e.started_ts, None,
                        {"duration_s": e.duration_s, "authorised": e.authorised},
                    )
                )  # fmt: skip
        for column, values in zip(columns[1:], zip(*out, strict=True), strict=True):
            st.columns[column][busy] = values


_Pairs = tuple[np.ndarray, np.ndarray]


class _Kept:
    """The trusted fixes of a batch, sorted by vehicle then time, with each one's previous
    trusted fix (from the batch or from the state)."""

    def __init__(self, batch: TrackBatch, points: np.ndarray, st: TrackState) -> None:
        self.points = points
        self.slot = batch.slot[points]
        self.fleet = batch.fleet[points]
        self.trip = batch.trip[points]
        self.ts = batch.ts[points]
        self.lat = batch.lat[points]
        self.lng = batch.lng[points]
        self.speed = batch.speed[points]
        first = np.r_[True, self.slot[1:] != self.slot[:-1]]
        self.starts = np.flatnonzero(first)
        self.ends = np.r_[self.starts[1:], len(points)] - 1
        self.prev_lat = np.where(first, st.last_lat[self.slot], np.r_[0.0, self.lat[:-1]])
        self.prev_lng = np.where(first, st.last_lng[self.slot], np.r_[0.0, self.lng[:-1]])
        self.has_prev = ~first | (st.last_ts[self.slot] >= 0)
        self._lists: tuple[list[int], list[float], list[float]] | None = None

    def __len__(self) -> int:
        return len(self.points)

    def lists(self) -> tuple[list[int], list[float], list[float]]:
        """ts, lat, lng as Python lists (for the reference steps), made once per batch."""
        if self._lists is None:
            self._lists = (self.ts.tolist(), self.lat.tolist(), self.lng.tolist())
        return self._lists

    def ranges(self, vehicles: np.ndarray) -> list[tuple[int, int, int]]:
        """(slot, start, end) of each vehicle's fixes among the kept ones."""
        lo = np.searchsorted(self.slot, vehicles, side="left")
        hi = np.searchsorted(self.slot, vehicles, side="right")
        return list(zip(vehicles.tolist(), lo.tolist(), hi.tolist(), strict=True))


def _sets_by_point(pairs: _Pairs, fence_ids: np.ndarray) -> dict[int, frozenset[str]]:
    at, fence = pairs
    if not len(at):
        return {}
    order = np.argsort(at, kind="stable")
    at, fence = at[order], fence[order]
    starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])
    ends = np.r_[starts[1:], len(at)]
    return {
        int(at[s]): frozenset(fence_ids[fence[s:e]].tolist())
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    }


def local_zone(name: str) -> dt.tzinfo:
    """The zone for restricted hours; raises ValueError for an unknown name."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None

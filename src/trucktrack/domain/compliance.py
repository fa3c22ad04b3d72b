"""Route compliance: every fix of an active trip checked against the trip's planned route.

Three things come out of it (issue #5):

- **route deviation**: the fix's distance to the planned route. A deviation starts once the
  truck has been over `deviation_m` (5 km) for `confirm_fixes` fixes and `confirm_s` seconds,
  and ends once it has been back within `back_on_route_m` (4 km) just as long: one alert when it
  starts, one when the truck is back, and GPS noise at either boundary never flaps.
- **wrong direction**: progress along the route (chainage) going backwards by more than
  `backwards_m`, or the truck's heading more than `wrong_heading_deg` against the route's
  bearing for `wrong_heading_s` of driving. It ends once the truck has made `resume_m` of
  forward progress again.
- **ETA**: the distance left along the route and a recent speed (`eta_ms`).

How it is fast: routes live in one `RouteCatalog` (every route's segments concatenated, one
array per field), per-trip state lives in numpy columns indexed by a trip slot
(`ComplianceState`), and `ComplianceChecker.check` matches a whole batch at once: each fix
against a window of `window_segments` segments around its trip's last match (a fixes x window
matrix), the whole route only for fixes whose window match is poor (a first fix, a fix off
the route, a fix at the window's edge). A batch holding several fixes of one trip is processed
in rounds, the k-th fix of every trip in round k. A fix is matched to a leg of the route: one
it is on (within `on_route_m`) first, then the one nearest where the truck should be
(`chainage_penalty`), so a U-turn, a loop or an out-and-back route does not snap to the wrong
leg; and a jump in chainage is a re-match, never progress lost. `nearest_on_route` is the
naive reference (every segment for every fix) the tests and the benchmark compare against.

Pure: no I/O. The caller keeps the checker (its `state` can be snapshot with `to_bytes`),
`plan`s a trip's route when the trip starts (and again after a restart: an unchanged route
keeps its progress), feeds `ComplianceBatch`es in arrival order, `finish`es the trip when it
ends, and turns the `ComplianceEvent`s into alerts. An event is identified by (trip, kind,
since): a replay after a crash gives the same triple.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import msgspec
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from trucktrack.domain.geo import EARTH_RADIUS_M, distances_m

M_PER_DEG_LAT = EARTH_RADIUS_M * math.pi / 180
"""Metres per degree of latitude (and of longitude at the equator)."""


class ComplianceRules(msgspec.Struct, frozen=True):
    deviation_m: float = 5000.0
    """A fix further than this from the planned route is off route (the issue's 5 km)."""
    back_on_route_m: float = 4000.0
    """A deviating truck is back once within this: the 1 km gap is the hysteresis."""
    confirm_fixes: int = 2
    """Consecutive fixes on the other side of a threshold before a deviation starts or ends."""
    confirm_s: float = 30.0
    """... spanning at least this long (so a 1 Hz device needs 30 s, not 2 fixes)."""
    on_route_m: float = 150.0
    """A fix this close to a leg of the route is on it (GPS noise, a service road): its window
    match is trusted, and progress and heading are checked. Further, the whole route is
    searched and progress is frozen (an off-route chainage means little)."""
    max_progress_kmh: float = 150.0
    """Progress along the route faster than this between two fixes (plus `on_route_m`) is a
    re-match, not driving (a GPS gap, another leg of the route): it counts afresh from there,
    so it is never taken for going backwards."""
    backwards_m: float = 1000.0
    """Progress lost from the furthest point reached that counts as going the wrong way."""
    resume_m: float = 500.0
    """Forward progress from the lowest point that ends a wrong-direction spell."""
    wrong_heading_deg: float = 120.0
    """A heading further than this from the route's bearing is against the route."""
    wrong_heading_s: float = 120.0
    """Driving time against the route (between consecutive fixes against it) that counts."""
    heading_min_speed_kmh: float = 10.0
    """Slower fixes are neutral for the heading check: a parked truck's heading is noise."""
    eta_speed_window_s: float = 900.0
    """Time constant of the recent speed (an exponentially weighted mean of progress)."""
    eta_min_speed_kmh: float = 5.0
    """Under this recent speed (stopped for a while), the ETA falls back or is None."""
    eta_fallback_speed_kmh: float | None = None
    """Speed for the ETA when there is no recent speed (e.g. a planned average); None: no ETA."""
    window_segments: int = 16
    """Segments searched for a fix: a quarter behind where the truck should be by now (its
    last match moved on at its recent speed), the rest ahead."""
    chainage_penalty: float = 0.1
    """Metres of distance a leg of the route may be further by, per metre of chainage it is
    away from where the truck should be, and still be the match: a route passing near itself
    (a U-turn, a loop, out and back on one road) keeps the truck on the leg it was on, and a
    first fix at a round trip's depot goes to its start, not its end."""

    def __post_init__(self) -> None:
        if not 0 <= self.back_on_route_m < self.deviation_m:
            raise ValueError("back_on_route_m must be under deviation_m")
        if not 0 < self.on_route_m <= self.back_on_route_m:
            raise ValueError("on_route_m must be positive and at most back_on_route_m")
        if self.confirm_fixes < 1 or not 2 <= self.window_segments <= _SPARE:
            raise ValueError(f"confirm_fixes must be >= 1 and window_segments in 2..{_SPARE}")
        if not 0 <= self.chainage_penalty < 1:
            raise ValueError("chainage_penalty must be in [0, 1)")


class ComplianceEventKind(StrEnum):
    DEVIATION_STARTED = "route_deviation_started"
    DEVIATION_ENDED = "route_deviation_ended"
    WRONG_DIRECTION_STARTED = "wrong_direction_started"
    WRONG_DIRECTION_ENDED = "wrong_direction_ended"


class ComplianceEvent(msgspec.Struct, frozen=True):
    kind: ComplianceEventKind
    trip: int
    """The trip's slot."""
    point: int
    """Index in the batch of the fix that raised it."""
    ts: int
    lat: float
    lng: float
    since: int
    """Start of the spell: the first fix over `deviation_m`, the furthest point reached
    before going back, or the first fix of the run against the route's bearing."""
    details: dict[str, float | bool] = {}


@dataclass(slots=True)
class ComplianceBatch:
    """Fixes of many trips, in arrival order, as columns."""

    trip: np.ndarray
    """int64: the trip's slot (a small dense integer the caller maps trip ids to)."""
    ts: np.ndarray
    """int64: device time, epoch ms."""
    lat: np.ndarray
    lng: np.ndarray
    speed: np.ndarray
    """km/h, NaN when unknown."""
    heading: np.ndarray
    """Degrees clockwise from north, NaN when unknown."""

    @classmethod
    def of(
        cls,
        trip: Sequence[int] | np.ndarray,
        ts: Sequence[int] | np.ndarray,
        lat: Sequence[float] | np.ndarray,
        lng: Sequence[float] | np.ndarray,
        speed: Sequence[float] | np.ndarray | None = None,
        heading: Sequence[float] | np.ndarray | None = None,
    ) -> ComplianceBatch:
        """Columns with the right dtypes; unknown speeds and headings as NaN."""
        n = len(ts)
        return cls(
            np.asarray(trip, dtype=np.int64),
            np.asarray(ts, dtype=np.int64),
            np.asarray(lat, dtype=np.float64),
            np.asarray(lng, dtype=np.float64),
            np.full(n, np.nan) if speed is None else np.asarray(speed, dtype=np.float64),
            np.full(n, np.nan) if heading is None else np.asarray(heading, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(slots=True)
class ComplianceResult:
    """Per fix of the batch (same order), and the events the batch raised."""

    checked: np.ndarray
    """False for a fix not checked: a retry, a late or duplicate fix, NaN or out-of-range
    coordinates, or a trip with no planned route. Its other columns are NaN / -1."""
    distance_m: np.ndarray
    """To the planned route (exact whenever over `on_route_m`; within it, to the part of the
    route near the trip's progress)."""
    chainage_m: np.ndarray
    """Where along the route the fix was matched, from the route's start."""
    remaining_m: np.ndarray
    """Route length minus chainage."""
    eta_ts: np.ndarray
    """int64 epoch ms of arrival at the route's end, -1 when there is no ETA."""
    events: list[ComplianceEvent] = field(default_factory=list)


# --- the routes ---------------------------------------------------------------------------

# A segment's fields: its start (metres north of the equator, degrees of longitude), the step
# to its end (metres north, degrees east), chainage at its start, length, bearing. The catalog
# keeps one contiguous array per field, so a window of consecutive segments is a slice.
_Y, _LNG, _DY, _DLNG, _CHAIN, _LEN, _BEARING = range(7)
_FIELDS = 7
_SPARE = 64
"""Zeroed segments kept past the last one, so a window may run off the end of the array."""
_MIN_SEGMENT_M = 0.01


def route_fingerprint(vertices: Sequence[Sequence[float]] | np.ndarray) -> int:
    """A stable non-zero 63-bit id of a vertex list, to tell after a restart whether a trip's
    saved progress belongs to the route it has now."""
    data = np.ascontiguousarray(vertices, dtype=np.float64).tobytes()
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1
    return value or 1


def route_segments(vertices: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """A route's segments, one row each (the catalog's fields); `vertices` are (lng, lat).

    Segments stay in degrees: each fix is compared with them in a flat (equirectangular)
    projection centred on the fix's own latitude, so a 1000 km route spanning 10 degrees of
    latitude is as accurate at its ends as in its middle (0.01%, 0.5 m, at 5 km from the route
    in India, against the haversine; one projection per route would be off by several percent
    at its ends). Lengths, chainage and bearings use each segment's mid-latitude. Routes are
    assumed not to cross the antimeridian (India's do not).

    Repeated vertices are dropped; a route whose vertices are all the same point is kept as
    one zero-length segment (distance to that point, no bearing). Raises ValueError for fewer
    than two vertices or coordinates that are not finite WGS84.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 2 or len(v) < 2:
        raise ValueError("a planned route needs at least two (lng, lat) vertices")
    if not np.isfinite(v).all() or (np.abs(v[:, 0]) > 180).any() or (np.abs(v[:, 1]) > 90).any():
        raise ValueError("a planned route's vertices must be finite (lng, lat) in degrees")
    step = distances_m(v[:-1, 1], v[:-1, 0], v[1:, 1], v[1:, 0])
    v = v[np.r_[True, step >= _MIN_SEGMENT_M]]
    if len(v) == 1:
        v = np.vstack((v, v))
    lng0, lat0, lng1, lat1 = v[:-1, 0], v[:-1, 1], v[1:, 0], v[1:, 1]
    rows = np.empty((len(v) - 1, _FIELDS))
    rows[:, _Y], rows[:, _LNG] = lat0 * M_PER_DEG_LAT, lng0
    rows[:, _DY], rows[:, _DLNG] = (lat1 - lat0) * M_PER_DEG_LAT, lng1 - lng0
    east = rows[:, _DLNG] * M_PER_DEG_LAT * np.cos(np.radians((lat0 + lat1) / 2))
    north = rows[:, _DY]
    rows[:, _LEN] = np.hypot(east, north)
    rows[:, _CHAIN] = np.r_[0.0, np.cumsum(rows[:-1, _LEN])]
    rows[:, _BEARING] = np.where(
        rows[:, _LEN] > 0, np.degrees(np.arctan2(east, north)) % 360, np.nan
    )
    return rows


class RouteCatalog:
    """Every active trip's planned route, indexed by trip slot, in one segment array.

    Routes come and go as trips start and end: `put` appends a route's segments at the end
    (the array grows by doubling), `remove` only marks them dead, and the live segments are
    compacted once dead ones are over half of the array, so both cost O(route) amortised.
    56 bytes per segment: 10,000 routes of 500 vertices take ~280 MB (more while growing).
    """

    def __init__(self) -> None:
        self.segments = np.zeros((_FIELDS, _SPARE))
        """(field, segment): one contiguous row per field."""
        self.used = 0
        """Segments in use, live or dead."""
        self.dead = 0
        self.start = np.full(0, -1, dtype=np.int64)
        """Per trip slot: first row of its route, -1 for none."""
        self.count = np.zeros(0, dtype=np.int64)
        self.length = np.zeros(0)
        self.fingerprint = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return int((self.start >= 0).sum())

    def __contains__(self, trip: int) -> bool:
        return 0 <= trip < len(self.start) and self.start[trip] >= 0

    def put(self, trip: int, vertices: Sequence[Sequence[float]] | np.ndarray) -> int:
        """Set a trip's route ((lng, lat) vertices); returns its fingerprint. The same route
        again is a no-op."""
        if trip < 0:
            raise ValueError("trip slots are non-negative")
        fingerprint = route_fingerprint(vertices)
        if trip in self and self.fingerprint[trip] == fingerprint:
            return fingerprint
        rows = route_segments(vertices)
        self.remove(trip)
        self._ensure_slots(trip + 1)
        need = self.used + len(rows)
        if need + _SPARE > self.segments.shape[1]:
            grown = np.zeros((_FIELDS, max(need, 2 * self.segments.shape[1], 1024) + _SPARE))
            grown[:, : self.used] = self.segments[:, : self.used]
            self.segments = grown
        self.segments[:, self.used : need] = rows.T
        self.start[trip], self.count[trip] = self.used, len(rows)
        self.length[trip] = rows[-1, _CHAIN] + rows[-1, _LEN]
        self.fingerprint[trip] = fingerprint
        self.used = need
        return fingerprint

    def remove(self, trip: int) -> None:
        """Forget a trip's route (nothing if it has none)."""
        if trip not in self:
            return
        self.dead += int(self.count[trip])
        self.start[trip], self.count[trip], self.fingerprint[trip] = -1, 0, 0
        self.length[trip] = 0.0
        if self.dead > max(self.used // 2, 1 << 16):
            self.compact()

    def compact(self) -> None:
        """Move the live routes together, in their current order, dropping dead rows."""
        live = np.flatnonzero(self.start >= 0)
        live = live[np.argsort(self.start[live])]
        counts = self.count[live]
        new_start = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
        rows = np.repeat(self.start[live] - new_start, counts) + np.arange(counts.sum())
        self.segments = np.concatenate(
            (self.segments[:, rows], np.zeros((_FIELDS, _SPARE))), axis=1
        )
        self.start[live] = new_start
        self.used, self.dead = len(rows), 0

    def _ensure_slots(self, n: int) -> None:
        have = len(self.start)
        if n <= have:
            return
        grow = max(n, 2 * have, 1024) - have
        self.start = np.r_[self.start, np.full(grow, -1, dtype=np.int64)]
        self.count = np.r_[self.count, np.zeros(grow, dtype=np.int64)]
        self.length = np.r_[self.length, np.zeros(grow)]
        self.fingerprint = np.r_[self.fingerprint, np.zeros(grow, dtype=np.int64)]


# --- the per-trip state -------------------------------------------------------------------

_COLUMNS: dict[str, tuple[type, float | int | bool]] = {
    "route": (np.int64, 0),  # fingerprint of the route the progress below belongs to
    "last_ts": (np.int64, -1),  # newest fix checked: older and equal ones are ignored
    "segment": (np.int64, -1),  # matched segment of the last fix (within the route)
    "chainage": (np.float64, np.nan),
    "distance": (np.float64, np.nan),
    "on_route": (np.bool_, False),  # the last fix was within on_route_m, not deviating
    "speed": (np.float64, np.nan),  # recent speed, km/h (progress along the route)
    "deviating": (np.bool_, False),
    "deviation_since": (np.int64, -1),
    "deviation_max": (np.float64, 0.0),
    "pending": (np.int64, 0),  # consecutive fixes across the threshold for a change
    "pending_since": (np.int64, -1),
    "peak": (np.float64, np.nan),  # furthest chainage since the last reset
    "peak_ts": (np.int64, -1),
    "wrong": (np.bool_, False),  # in a wrong-direction spell
    "wrong_since": (np.int64, -1),
    "trough": (np.float64, np.nan),  # lowest chainage of the wrong-direction spell
    "against_s": (np.float64, 0.0),  # driving time against the route's bearing
    "against_since": (np.int64, -1),
    "against_last": (np.bool_, False),  # the last fix was against the route's bearing
}
# What a new route resets: the match and progress. Alert spells and the last time stay, so
# a re-planned route neither re-raises an open alert nor accepts a retried fix.
_PROGRESS = ("segment", "chainage", "distance", "on_route", "peak", "peak_ts", "trough",
             "against_s", "against_since", "against_last")  # fmt: skip


class _Snapshot(msgspec.Struct, array_like=True):
    slots: int
    columns: dict[str, bytes]


class ComplianceState:
    """Every trip's compliance state, one array per field, indexed by trip slot."""

    def __init__(self) -> None:
        self.columns: dict[str, np.ndarray] = {
            name: np.full(0, default, dtype=dtype) for name, (dtype, default) in _COLUMNS.items()
        }

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise AttributeError(name) from None

    def __len__(self) -> int:
        return len(self.columns["last_ts"])

    def ensure(self, slots: int) -> None:
        have = len(self)
        if slots > have:
            grow = max(slots, have * 2, 1024) - have
            for name, (dtype, default) in _COLUMNS.items():
                extra = np.full(grow, default, dtype=dtype)
                self.columns[name] = np.concatenate((self.columns[name], extra))

    def reset(self, trip: int, names: Sequence[str] = tuple(_COLUMNS)) -> None:
        for name in names:
            self.columns[name][trip] = _COLUMNS[name][1]

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode(
            _Snapshot(len(self), {name: array.tobytes() for name, array in self.columns.items()})
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ComplianceState:
        snapshot = msgspec.msgpack.decode(data, type=_Snapshot)
        state = cls()
        state.ensure(snapshot.slots)
        for name, (dtype, _) in _COLUMNS.items():
            if name in snapshot.columns:
                saved = np.frombuffer(snapshot.columns[name], dtype=dtype)
                state.columns[name][: len(saved)] = saved
        return state


class TripProgress(msgspec.Struct, frozen=True):
    """Where a trip stands on its planned route, as of its last checked fix."""

    route_length_m: float
    chainage_m: float | None
    remaining_m: float | None
    distance_m: float | None
    speed_kmh: float | None
    """Recent speed (progress along the route, or GPS speed while off it)."""
    eta_ts: int | None
    last_ts: int | None
    deviating: bool
    wrong_direction: bool


def eta_ms(
    remaining_m: float, speed_kmh: float | None, at_ts: int, rules: ComplianceRules
) -> int | None:
    """Arrival time: `at_ts` plus the remaining distance at the recent speed.

    A recent speed under `eta_min_speed_kmh` (a truck stopped for a while: the mean decays
    with `eta_speed_window_s`), or none yet, gives the fallback speed if the rules have one,
    else None: no ETA rather than one that says "never"."""
    speed = speed_kmh if speed_kmh is not None and speed_kmh >= rules.eta_min_speed_kmh else None
    speed = rules.eta_fallback_speed_kmh if speed is None else speed
    if speed is None or speed <= 0 or not math.isfinite(remaining_m):
        return None
    return at_ts + round(max(remaining_m, 0.0) / (speed / 3.6) * 1000)


# --- the checker --------------------------------------------------------------------------

_OFF_ROUTE = 1e8
"""Added to the score of a leg beyond `on_route_m`: more than any chainage penalty."""
_FLAT_LIMIT = 1 << 20
"""Candidate (fix, segment) pairs per chunk of a whole-route search: bounds its memory."""


@dataclass(slots=True)
class _Match:
    segment: np.ndarray
    distance: np.ndarray
    """Nearest distance to the searched part of the route (what deviation is measured on)."""
    matched: np.ndarray
    """Distance to the matched candidate (usually the same)."""
    chainage: np.ndarray


class ComplianceChecker:
    """Checks batches of fixes against planned routes, keeping `state` between them."""

    def __init__(
        self,
        rules: ComplianceRules | None = None,
        state: ComplianceState | None = None,
        routes: RouteCatalog | None = None,
    ) -> None:
        self.rules = rules or ComplianceRules()
        self.state = state or ComplianceState()
        self.routes = routes or RouteCatalog()
        self.whole_route_searches = 0
        """Fixes matched against their whole route so far (first fixes, far off, jumps)."""

    def plan(self, trip: int, vertices: Sequence[Sequence[float]] | np.ndarray) -> None:
        """Give a trip its planned route ((lng, lat) vertices), at its start, when it is
        re-planned, and after a restart: the same route keeps the trip's progress; another
        route restarts the matching but keeps open alert spells (they end by the rules). A
        slot reused by a new trip must be `finish`ed first."""
        fingerprint = self.routes.put(trip, vertices)
        self.state.ensure(trip + 1)
        if self.state.route[trip] != fingerprint:
            self.state.reset(trip, _PROGRESS)
            self.state.route[trip] = fingerprint

    def finish(self, trip: int) -> None:
        """The trip ended: forget its route and state (the slot may be reused)."""
        self.routes.remove(trip)
        if trip < len(self.state):
            self.state.reset(trip)

    def progress(self, trip: int) -> TripProgress | None:
        """The trip's standing on its route, None for a trip with no planned route."""
        if trip not in self.routes or trip >= len(self.state):
            return None
        st = self.state
        length = float(self.routes.length[trip])
        chainage = _opt(st.chainage[trip])
        remaining = None if chainage is None else length - chainage
        speed = _opt(st.speed[trip])
        last = int(st.last_ts[trip])
        eta = None
        if remaining is not None and last >= 0:
            eta = eta_ms(remaining, speed, last, self.rules)
        return TripProgress(
            length, chainage, remaining, _opt(st.distance[trip]), speed, eta,
            last if last >= 0 else None, bool(st.deviating[trip]), bool(st.wrong[trip]),
        )  # fmt: skip

    def check(self, batch: ComplianceBatch) -> ComplianceResult:
        """Advance every trip of the batch; returns per-fix results and the events, trip by
        trip in time order."""
        n = len(batch)
        result = ComplianceResult(
            np.zeros(n, dtype=bool), np.full(n, np.nan), np.full(n, np.nan),
            np.full(n, np.nan), np.full(n, -1, dtype=np.int64),
        )  # fmt: skip
        if not n:
            return result
        routes, st = self.routes, self.state
        trip = batch.trip
        known = (trip >= 0) & (trip < len(routes.start))
        known[known] = routes.start[trip[known]] >= 0
        valid = (
            known
            & np.isfinite(batch.lat) & np.isfinite(batch.lng)
            & (np.abs(batch.lat) <= 90) & (np.abs(batch.lng) <= 180)
        )  # fmt: skip
        rows = np.flatnonzero(valid)
        if not len(rows):
            return result
        st.ensure(int(trip[rows].max()) + 1)
        rows = rows[np.lexsort((batch.ts[rows], trip[rows]))]  # stable: a retry keeps its first
        t, ts = trip[rows], batch.ts[rows]
        first = np.r_[True, t[1:] != t[:-1]]
        fresh = (ts > st.last_ts[t]) & (first | (ts > np.r_[np.int64(0), ts[:-1]]))
        rows = rows[fresh]
        if not len(rows):
            return result
        t = trip[rows]
        starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
        sizes = np.diff(np.r_[starts, len(rows)])
        rank = np.arange(len(rows)) - np.repeat(starts, sizes)
        by_round = rows[np.argsort(rank, kind="stable")]
        found: list[ComplianceEvent] = []
        at = 0
        for size in np.bincount(rank).tolist():
            self._round(batch, by_round[at : at + size], result, found)
            at += size
        found.sort(key=lambda e: (e.trip, e.ts))
        result.events = found
        return result

    # --- one round: at most one fix per trip --------------------------------------------------
    def _round(
        self,
        batch: ComplianceBatch,
        rows: np.ndarray,
        result: ComplianceResult,
        found: list[ComplianceEvent],
    ) -> None:
        st, rules, routes = self.state, self.rules, self.routes
        t, ts = batch.trip[rows], batch.ts[rows]
        lat, lng = batch.lat[rows], batch.lng[rows]
        speed, heading = batch.speed[rows], batch.heading[rows]
        last_ts, prev_chainage = st.last_ts[t], st.chainage[t]
        dt = np.where(last_ts >= 0, (ts - last_ts) / 1000, np.nan)
        recent = np.nan_to_num(st.speed[t]) / 3.6
        # Where the truck should be by now: the last match moved on at its recent speed.
        expected = np.where(
            st.segment[t] >= 0,
            np.minimum(prev_chainage + recent * np.nan_to_num(dt), routes.length[t]),
            0.0,
        )
        m = self._match(t, lat, lng, st.segment[t], expected)
        d, c = m.distance, m.chainage

        # Deviation, with hysteresis: a change needs confirm_fixes fixes and confirm_s.
        dev = st.deviating[t]
        toward = np.where(dev, d <= rules.back_on_route_m, d > rules.deviation_m)
        pending = np.where(toward, st.pending[t] + 1, 0)
        pending_since = np.where(toward, np.where(pending == 1, ts, st.pending_since[t]), -1)
        dmax = np.where(
            dev | (toward & (pending > 1)),
            np.maximum(st.deviation_max[t], d),
            np.where(toward, d, 0.0),
        )
        flip = toward & (pending >= rules.confirm_fixes)
        flip &= ts - pending_since >= rules.confirm_s * 1000
        dev_started, dev_ended = flip & ~dev, flip & dev
        dev_since = np.where(dev_started, pending_since, st.deviation_since[t])
        deviating = dev ^ flip
        pending = np.where(flip, 0, pending)
        pending_since = np.where(flip, -1, pending_since)

        # Progress and heading, only on the route: off it, a chainage means little.
        on = ~deviating & (m.matched <= rules.on_route_m)
        was_on = st.on_route[t]
        reach = rules.max_progress_kmh / 3.6 * np.nan_to_num(dt) + rules.on_route_m
        along = on & was_on & (np.abs(c - prev_chainage) <= reach)
        rejoin = on & ~along  # first fix, back from off route, a jump: progress counts afresh
        peak, peak_ts = st.peak[t], st.peak_ts[t]
        higher = rejoin | (along & (c > peak))
        peak = np.where(higher, c, peak)
        peak_ts = np.where(higher, ts, peak_ts)
        lost = np.where(on, peak - c, 0.0)

        bearing = routes.segments[_BEARING, routes.start[t] + m.segment]
        moving = (speed >= rules.heading_min_speed_kmh) & np.isfinite(heading)
        moving &= on & np.isfinite(bearing)
        off_bearing = np.abs((heading - bearing + 180) % 360 - 180)
        against = moving & (off_bearing > rules.wrong_heading_deg)
        with_route = moving & ~against
        against_last = st.against_last[t]
        against_s = np.where(
            with_route | ~on,
            0.0,
            np.where(against & against_last, st.against_s[t] + np.nan_to_num(dt), st.against_s[t]),
        )
        against_since = np.where(with_route | ~on, -1, st.against_since[t])
        against_since = np.where(against & (against_since < 0), ts, against_since)

        wrong = st.wrong[t]
        by_back = on & (lost > rules.backwards_m)
        by_heading = against & (against_s >= rules.wrong_heading_s)
        wrong_started = ~wrong & (by_back | by_heading)
        wrong_since = np.where(
            wrong_started,
            np.minimum(
                np.where(by_back, peak_ts, np.iinfo(np.int64).max),
                np.where(by_heading, against_since, np.iinfo(np.int64).max),
            ),
            st.wrong_since[t],
        )
        trough = st.trough[t]
        trough = np.where(
            wrong_started | (wrong & rejoin),
            c,
            np.where(wrong & on, np.fmin(trough, c), trough),
        )
        wrong_ended = wrong & on & ~against & (c - trough >= rules.resume_m)
        peak = np.where(wrong_ended, c, peak)
        peak_ts = np.where(wrong_ended, ts, peak_ts)
        against_s = np.where(wrong_ended, 0.0, against_s)
        against_since = np.where(wrong_ended, -1, against_since)

        # Recent speed: progress along the route between fixes on it, else the GPS speed.
        observed = np.where(
            along & (dt > 0),
            np.clip((c - prev_chainage) / np.where(dt > 0, dt, 1.0) * 3.6, 0.0, 250.0),
            speed,
        )
        weight = np.where(
            np.isfinite(dt), -np.expm1(-np.nan_to_num(dt) / rules.eta_speed_window_s), 1.0
        )
        old = st.speed[t]
        recent_kmh = np.where(
            np.isnan(observed),
            old,
            np.where(np.isnan(old), observed, old + weight * (observed - old)),
        )

        remaining = routes.length[t] - c
        result.checked[rows] = True
        result.distance_m[rows] = d
        result.chainage_m[rows] = c
        result.remaining_m[rows] = remaining
        result.eta_ts[rows] = _etas(remaining, recent_kmh, ts, rules)

        self._events(batch, rows, found, ComplianceEventKind.DEVIATION_STARTED, dev_started,
                     dev_since, distance_m=d, max_distance_m=dmax)  # fmt: skip
        self._events(batch, rows, found, ComplianceEventKind.DEVIATION_ENDED, dev_ended,
                     st.deviation_since[t], distance_m=d, max_distance_m=dmax,
                     duration_s=(ts - st.deviation_since[t]) / 1000)  # fmt: skip
        self._events(batch, rows, found, ComplianceEventKind.WRONG_DIRECTION_STARTED,
                     wrong_started, wrong_since, lost_m=lost, against_s=against_s,
                     heading_off_deg=off_bearing, backwards=by_back, heading=by_heading,
                     chainage_m=c)  # fmt: skip
        self._events(batch, rows, found, ComplianceEventKind.WRONG_DIRECTION_ENDED, wrong_ended,
                     st.wrong_since[t], duration_s=(ts - st.wrong_since[t]) / 1000,
                     regained_m=c - trough, chainage_m=c)  # fmt: skip

        columns = {
            "last_ts": ts, "segment": m.segment, "chainage": c, "distance": d, "on_route": on,
            "speed": recent_kmh, "deviating": deviating,
            "deviation_since": np.where(dev_ended, -1, dev_since),
            "deviation_max": np.where(dev_ended, 0.0, dmax),
            "pending": pending, "pending_since": pending_since,
            "peak": peak, "peak_ts": peak_ts, "wrong": wrong ^ wrong_started ^ wrong_ended,
            "wrong_since": np.where(wrong_ended, -1, wrong_since),
            "trough": np.where(wrong_ended, np.nan, trough),
            "against_s": against_s, "against_since": against_since, "against_last": against,
        }  # fmt: skip
        for name, values in columns.items():
            st.columns[name][t] = values

    def _events(
        self,
        batch: ComplianceBatch,
        rows: np.ndarray,
        found: list[ComplianceEvent],
        kind: ComplianceEventKind,
        mask: np.ndarray,
        since: np.ndarray,
        **details: np.ndarray,
    ) -> None:
        for i in np.flatnonzero(mask).tolist():
            row = int(rows[i])
            found.append(
                ComplianceEvent(
                    kind, int(batch.trip[row]), row, int(batch.ts[row]),
                    float(batch.lat[row]), float(batch.lng[row]), int(since[i]),
                    {
                        name: _detail(values[i])
                        for name, values in details.items()
                        if not np.isnan(values[i])  # no heading: left out, not NaN
                    },
                )
            )  # fmt: skip

    # --- matching -------------------------------------------------------------------------
    def _match(
        self,
        t: np.ndarray,
        lat: np.ndarray,
        lng: np.ndarray,
        last_segment: np.ndarray,
        expected: np.ndarray,
    ) -> _Match:
        """Each fix against a window of segments around its trip's last match; the whole route
        for fixes with no last match, nothing near in the window, or a match at the window's
        edge (the truck may have gone past it)."""
        routes = self.routes
        width = self.rules.window_segments
        start, count = routes.start[t], routes.count[t]
        # Centred on where the truck should be, not where it was: on a dense route (a vertex
        # every 20 m) a window of 16 segments would soon be left behind.
        last = np.maximum(last_segment, 0)  # a first fix searches its whole route anyway
        anchor = last + self._segment_at(start + last, count - last, expected)
        lo = np.clip(anchor - width // 4, 0, np.maximum(count - width, 0))
        cols = lo[:, None] + np.arange(width)
        # Consecutive segments from start + lo: one slice per field and fix (a window of a
        # route shorter than the window runs into the next route or the spare: masked).
        windows = sliding_window_view(routes.segments[:_BEARING], width, axis=1)[:, start + lo]
        d, c, along = _candidates(windows, lat[:, None], lng[:, None])
        d[cols >= count[:, None]] = np.inf
        edge = np.full((len(t), 1), np.inf)
        legs = (d <= np.hstack((edge, d[:, :-1]))) & (d <= np.hstack((d[:, 1:], edge)))
        score = self._score(legs, d, c, expected[:, None])
        best = np.argmin(score, axis=1)
        pick = np.arange(len(t)), best
        segment = cols[pick]
        at_edge = ((best == width - 1) & (segment < count - 1) & (along[pick] == 1.0)) | (
            (best == 0) & (segment > 0) & (along[pick] == 0.0)
        )
        nearest = d.min(axis=1)
        m = _Match(segment, nearest, d[pick], c[pick])
        poor = np.flatnonzero((last_segment < 0) | at_edge | (nearest > self.rules.on_route_m))
        if len(poor):
            self.whole_route_searches += len(poor)
            whole = self._search_route(t[poor], lat[poor], lng[poor], expected[poor])
            m.segment[poor], m.distance[poor] = whole.segment, whole.distance
            m.matched[poor], m.chainage[poor] = whole.matched, whole.chainage
        return m

    def _segment_at(self, start: np.ndarray, count: np.ndarray, chainage: np.ndarray) -> np.ndarray:
        """The segment holding each chainage among the `count` (at most `_SPARE`) from
        `start`: a binary search for every fix at once, near the window it is for."""
        chain = self.routes.segments[_CHAIN]
        lo, hi = start.copy(), start + np.minimum(count, _SPARE)  # the answer is in [lo, hi)
        while True:
            open_ = hi - lo > 1
            if not open_.any():
                return lo - start
            mid = (lo + hi) // 2
            right = open_ & (chain[mid] <= chainage)
            lo = np.where(right, mid, lo)
            hi = np.where(open_ & ~right, mid, hi)

    def _score(
        self, legs: np.ndarray, d: np.ndarray, c: np.ndarray, expected: np.ndarray
    ) -> np.ndarray:
        """Which candidate a fix matches: the nearest point of each leg (a local minimum of
        the distance along the route); a leg within `on_route_m` before any further one (the
        truck is on the route there, wherever it was expected); then distance plus
        `chainage_penalty` per metre away from where the truck should be. Legs are compared,
        not points, so along one leg the nearest point wins unbiased."""
        penalty = self.rules.chainage_penalty * np.abs(c - expected)
        off = np.where(d > self.rules.on_route_m, _OFF_ROUTE, 0.0)
        return np.where(legs, d + penalty + off, np.inf)

    def _search_route(
        self, t: np.ndarray, lat: np.ndarray, lng: np.ndarray, expected: np.ndarray
    ) -> _Match:
        """Every segment of each fix's route, in chunks of at most `_FLAT_LIMIT` pairs."""
        routes = self.routes
        counts = routes.count[t]
        ends = np.cumsum(counts)
        out = _Match(np.empty(len(t), dtype=np.int64), np.empty(len(t)), np.empty(len(t)),
                     np.empty(len(t)))  # fmt: skip
        a = 0
        while a < len(t):
            b = max(a + 1, int(np.searchsorted(ends, ends[a] - counts[a] + _FLAT_LIMIT, "right")))
            n = counts[a:b]
            group = np.repeat(np.arange(b - a), n)
            first = np.r_[0, np.cumsum(n)[:-1]]
            local = np.arange(int(n.sum())) - np.repeat(first, n)
            rows = routes.start[t[a:b]][group] + local
            d, c, _ = _candidates(
                routes.segments[:, rows], lat[a:b][group], lng[a:b][group],
                _metres_per_deg_lng(lat[a:b])[group],
            )  # fmt: skip
            before, after = np.r_[np.inf, d[:-1]], np.r_[d[1:], np.inf]
            before[first], after[np.r_[first[1:], len(d)] - 1] = np.inf, np.inf
            score = self._score((d <= before) & (d <= after), d, c, expected[a:b][group])
            low = np.minimum.reduceat(score, first)
            hit = np.flatnonzero(score <= low[group])
            hit = hit[np.r_[True, group[hit][1:] != group[hit][:-1]]]  # first best per fix
            out.segment[a:b], out.matched[a:b], out.chainage[a:b] = local[hit], d[hit], c[hit]
            out.distance[a:b] = np.minimum.reduceat(d, first)
            a = b
        return out


def _metres_per_deg_lng(lat: np.ndarray) -> np.ndarray:
    result: np.ndarray = M_PER_DEG_LAT * np.cos(np.radians(lat))
    return result


def _candidates(
    seg: np.ndarray, lat: np.ndarray, lng: np.ndarray, kx: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance from each fix to each segment (`seg[field]` broadcasts with `lat`), the
    chainage of the nearest point on the segment, and how far along the segment it is (0..1);
    flat around the fix's own latitude (`kx`: its metres per degree of longitude), so
    distances to adjacent segments compare exactly (no seam at a shared vertex)."""
    kx = _metres_per_deg_lng(lat) if kx is None else kx
    dx = (lng - seg[_LNG]) * kx
    dy = lat * M_PER_DEG_LAT - seg[_Y]
    ux, uy = seg[_DLNG] * kx, seg[_DY]
    square = ux * ux + uy * uy
    along = np.divide(dx * ux + dy * uy, square, out=np.zeros_like(dx), where=square > 0)
    np.clip(along, 0.0, 1.0, out=along)
    ex, ey = dx - along * ux, dy - along * uy
    return np.sqrt(ex * ex + ey * ey), seg[_CHAIN] + along * seg[_LEN], along


def _etas(
    remaining: np.ndarray, speed_kmh: np.ndarray, ts: np.ndarray, rules: ComplianceRules
) -> np.ndarray:
    """`eta_ms` over arrays (-1 for None)."""
    fallback = rules.eta_fallback_speed_kmh
    speed = np.where(speed_kmh >= rules.eta_min_speed_kmh, speed_kmh, fallback or np.nan)
    ok = np.isfinite(speed) & (speed > 0) & np.isfinite(remaining)
    ms = np.round(np.maximum(remaining, 0.0) / np.where(ok, speed, 1.0) * 3600.0)
    return np.where(ok, ts + ms.astype(np.int64), -1)


def _detail(value: np.generic | float | bool) -> float | bool:
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    return round(float(value), 3)


def _opt(value: np.floating) -> float | None:
    return None if np.isnan(value) else float(value)


# --- the naive reference ------------------------------------------------------------------


class RouteMatch(msgspec.Struct, frozen=True):
    distance_m: float
    chainage_m: float
    segment: int
    """Index of the nearest segment in the vertex list as given."""


def vertex_chainage(vertices: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Distance along the route to each vertex (haversine), for `nearest_on_route`."""
    v = np.asarray(vertices, dtype=np.float64)
    return np.r_[0.0, np.cumsum(distances_m(v[:-1, 1], v[:-1, 0], v[1:, 1], v[1:, 0]))]


def nearest_on_route(
    vertices: Sequence[Sequence[float]] | np.ndarray,
    lat: float,
    lng: float,
    chainage: np.ndarray | None = None,
) -> RouteMatch:
    """The naive reference: one fix against every segment of the route, no index, no state.

    The same flat projection around the fix as the checker (so distances agree to float
    rounding), but from the raw vertex list, and chainage from haversine lengths
    (`vertex_chainage`, computed here unless given) rather than the catalog's."""
    v = np.asarray(vertices, dtype=np.float64)
    x = (v[:, 0] - lng) * M_PER_DEG_LAT * math.cos(math.radians(lat))
    y = (v[:, 1] - lat) * M_PER_DEG_LAT
    ax, ay, ux, uy = x[:-1], y[:-1], np.diff(x), np.diff(y)
    len2 = ux * ux + uy * uy
    along = np.divide(-(ax * ux + ay * uy), len2, out=np.zeros_like(ax), where=len2 > 0)
    along = np.clip(along, 0.0, 1.0)
    d = np.hypot(ax + along * ux, ay + along * uy)
    i = int(np.argmin(d))
    if chainage is None:
        chainage = vertex_chainage(v)
    c = chainage[i] + along[i] * (chainage[i + 1] - chainage[i])
    return RouteMatch(float(d[i]), float(c), i)

"""Trip summary: what a completed trip amounted to (the spec's generate-trip-summary).

From the trip record, its points, the vehicle's stops and the trip's speeding alerts:

- **distance**: over the fixes the noise filter trusts (the processors' filter, `filters.py`,
  run over the trip's points in device-time order), so it matches the trip's `distance_km`;
  against the planned route: the share of that distance within `route_radius_m` (500 m) of the
  route and the largest deviation, every fix against every nearby segment at once (an STRtree
  of the route's segments, then the exact distance of `compliance.nearest_on_route`).
- **time**: total, driving and stopped (from the stops), and the phases between milestones.
  They tile the trip: to_pickup (trip_started -> reached_pickup), pickup_wait (->
  loading_started), loading (-> loading_completed), after_loading (-> in_transit), in_transit
  (-> reached_delivery), delivery_wait (-> unloading_started), unloading (->
  unloading_completed), after_unloading (-> trip_completed). at_pickup is reached_pickup ->
  in_transit and at_delivery reached_delivery -> trip_completed (loading and unloading
  included). Arrival is reached_delivery (trip_completed when there is none): its delay is
  against planned_arrival.
- **stops**: the stop detector's stops overlapping the trip, clipped to it (a stop still open
  at trip_completed ends there), with their place (pickup, delivery) and phase.
- **speeding**: the trip's speeding alerts, one per spell, each followed over the trusted
  fixes until the first one at or under its limit; and the top speed of the trip.
- **fuel**: `fuel.estimate` with idling from the stops: engine-on time where the device
  reports `engine_status`, else the first `idle_assumed_s` of each stop.

Pure: the caller reads the inputs and stores the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import shapely

from trucktrack.domain import filters
from trucktrack.domain.alerts import Alert, AlertType
from trucktrack.domain.compliance import M_PER_DEG_LAT, vertex_chainage
from trucktrack.domain.fuel import FuelEstimate, FuelProfile, estimate
from trucktrack.domain.geo import distance_m, distances_m
from trucktrack.domain.model import GpsPoint
from trucktrack.domain.stops import Stop
from trucktrack.domain.trips import Milestone, Trip

SUMMARY_VERSION = 1
"""Bumped when the figures change meaning; a stored summary of an older version is remade."""

PHASES: tuple[tuple[str, Milestone, Milestone], ...] = (
    ("to_pickup", Milestone.TRIP_STARTED, Milestone.REACHED_PICKUP),
    ("pickup_wait", Milestone.REACHED_PICKUP, Milestone.LOADING_STARTED),
    ("loading", Milestone.LOADING_STARTED, Milestone.LOADING_COMPLETED),
    ("after_loading", Milestone.LOADING_COMPLETED, Milestone.IN_TRANSIT),
    ("in_transit", Milestone.IN_TRANSIT, Milestone.REACHED_DELIVERY),
    ("delivery_wait", Milestone.REACHED_DELIVERY, Milestone.UNLOADING_STARTED),
    ("unloading", Milestone.UNLOADING_STARTED, Milestone.UNLOADING_COMPLETED),
    ("after_unloading", Milestone.UNLOADING_COMPLETED, Milestone.TRIP_COMPLETED),
)
"""The phases between consecutive milestones, in order: together they make the whole trip."""


class SummaryRules(msgspec.Struct, frozen=True):
    filter: filters.FilterRules = filters.FilterRules()
    route_radius_m: float = 500.0
    """Fixes this close to the planned route count as on it (the issue's 500 m)."""
    place_radius_m: float = 500.0
    """A stop this close to the pickup or delivery place is there (the milestones' radius)."""
    idle_assumed_s: float = 600.0
    """Without engine status, the engine is assumed to run this long at each stop."""
    speed_tolerance_kmh: float = 0.0


DEFAULT_RULES = SummaryRules()


@dataclass(slots=True)
class TrackColumns:
    """A vehicle's points as columns, in device-time order."""

    ts: np.ndarray
    """int64 epoch ms."""
    lat: np.ndarray
    lng: np.ndarray
    speed: np.ndarray
    """km/h."""
    accuracy: np.ndarray
    """metres."""
    engine: np.ndarray
    """1.0 engine on, 0.0 off, NaN unknown."""

    @classmethod
    def of_points(cls, points: Sequence[GpsPoint]) -> TrackColumns:
        engine = [np.nan if p.engine_status is None else float(p.engine_status) for p in points]
        track = cls(
            np.fromiter((p.ts for p in points), np.int64, len(points)),
            np.fromiter((p.lat for p in points), np.float64, len(points)),
            np.fromiter((p.lng for p in points), np.float64, len(points)),
            np.fromiter((p.speed for p in points), np.float64, len(points)),
            np.fromiter((p.accuracy for p in points), np.float64, len(points)),
            np.asarray(engine, dtype=np.float64),
        )
        return track.sorted()

    def sorted(self) -> TrackColumns:
        order = np.argsort(self.ts, kind="stable")
        return self.take(order)

    def take(self, rows: np.ndarray) -> TrackColumns:
        return TrackColumns(
            self.ts[rows], self.lat[rows], self.lng[rows], self.speed[rows],
            self.accuracy[rows], self.engine[rows],
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.ts)


class SpeedingSpell(msgspec.Struct, frozen=True):
    started_ts: int
    alerted_ts: int
    """When it had lasted long enough to raise the alert."""
    limit_kmh: float
    max_speed_kmh: float
    lat: float | None = None
    lng: float | None = None
    ended_ts: int | None = None
    """The first trusted fix back at or under the limit; None when the trip ended speeding."""
    duration_s: float | None = None
    geofence_id: str | None = None
    """The fence whose own limit was broken (None: the default limit)."""
    alert_id: str | None = None


def spells_from_alerts(alerts: Sequence[Alert]) -> list[SpeedingSpell]:
    """One spell per speeding alert (the processors raise one per spell)."""
    spells = []
    for a in alerts:
        if a.type is not AlertType.SPEEDING:
            continue
        since = a.details.get("since", a.ts)
        spells.append(
            SpeedingSpell(
                started_ts=int(since) if isinstance(since, int | float) else a.ts,
                alerted_ts=a.ts,
                limit_kmh=_number(a.details.get("limit_kmh"), 0.0),
                max_speed_kmh=_number(a.details.get("max_speed_kmh"), 0.0),
                lat=a.lat,
                lng=a.lng,
                geofence_id=a.geofence_id,
                alert_id=a.alert_id,
            )
        )
    return sorted(spells, key=lambda s: s.started_ts)


class DistanceSummary(msgspec.Struct, frozen=True):
    total_m: float
    """Filtered: the sum of the steps between consecutive trusted fixes."""
    laden_m: float
    """Steps ending after loading_completed and at or before unloading_started."""
    planned_m: float | None
    within_route_share: float | None
    """Of `total_m`, the share whose fixes are within the radius of the planned route (a step
    between a fix within and one beyond counts half); of the fixes when it did not move."""
    route_radius_m: float
    max_deviation_m: float | None
    max_deviation_ts: int | None
    max_deviation_lat: float | None
    max_deviation_lng: float | None


class TimeSummary(msgspec.Struct, frozen=True):
    total_s: float
    driving_s: float
    """The trip's time outside stops (slow traffic and halts too short to be stops included)."""
    stopped_s: float
    phases: dict[str, float | None]
    """Seconds of each of PHASES (None when a milestone is missing)."""
    at_pickup_s: float | None
    at_delivery_s: float | None
    planned_start_ts: int | None
    planned_arrival_ts: int | None
    arrived_ts: int
    start_delay_s: float | None
    arrival_delay_s: float | None
    """Arrival minus planned_arrival: positive late, negative early."""


class TripStop(msgspec.Struct, frozen=True):
    started_ts: int
    ended_ts: int
    duration_s: float
    lat: float
    lng: float
    authorised: bool
    place: str | None
    """pickup or delivery when within the place radius, else None."""
    phase: str | None
    """The phase it started in."""
    idle_s: float
    engine_known: bool


class StopSummary(msgspec.Struct, frozen=True):
    count: int
    total_s: float
    longest_s: float
    authorised: int
    unauthorised: int
    stops: list[TripStop]


class SpeedingSummary(msgspec.Struct, frozen=True):
    count: int
    max_speed_kmh: float
    """Top speed of the trusted fixes."""
    spells: list[SpeedingSpell]


class TripSummary(msgspec.Struct, frozen=True, kw_only=True):
    fleet_id: str
    trip_id: str
    vehicle_id: str
    computed_at: int
    version: int = SUMMARY_VERSION
    started_ts: int
    ended_ts: int
    points: int
    trusted_points: int
    distance: DistanceSummary
    time: TimeSummary
    stops: StopSummary
    speeding: SpeedingSummary
    fuel: FuelEstimate


def summarise(
    trip: Trip,
    track: TrackColumns,
    *,
    planned_route: Sequence[Sequence[float]] | np.ndarray | None,
    stops: Sequence[Stop],
    speeding: Sequence[SpeedingSpell],
    fuel: FuelProfile,
    fuel_source: str,
    computed_at: int,
    rules: SummaryRules = DEFAULT_RULES,
) -> TripSummary:
    """The summary of a started and ended trip; `track` holds its vehicle's points (any
    outside trip_started..trip_completed are left out), `planned_route` (lng, lat) vertices."""
    if trip.started_at is None or trip.ended_at is None:
        raise ValueError("only a trip that started and ended has a summary")
    start, end = trip.started_at, trip.ended_at
    track = track.sorted()
    lo = int(np.searchsorted(track.ts, start, side="left"))
    hi = int(np.searchsorted(track.ts, end, side="right"))
    track = track.take(np.arange(lo, hi))
    kept = track.take(np.flatnonzero(trusted_fixes(track, rules.filter)))
    at = {r.milestone: r.ts for r in trip.milestones}

    steps = (
        distances_m(kept.lat[:-1], kept.lng[:-1], kept.lat[1:], kept.lng[1:])
        if len(kept) > 1
        else np.zeros(0)
    )
    total_m = float(steps.sum())
    loaded, unloaded = at.get(Milestone.LOADING_COMPLETED), at.get(Milestone.UNLOADING_STARTED)
    if loaded is None or unloaded is None:
        laden_m = total_m  # no loading on record: count it all as laden (the higher estimate)
    else:
        step_end = kept.ts[1:]
        laden_m = float(steps[(step_end > loaded) & (step_end <= unloaded)].sum())

    distance = _distance(trip, kept, steps, total_m, laden_m, planned_route, rules)
    trip_stops = _stops(trip, track, stops, at, rules)
    stopped_s = sum(s.duration_s for s in trip_stops)
    time = _time(trip, at, stopped_s)
    spells = [_follow(s, kept, rules) for s in speeding if start <= s.alerted_ts <= end]
    known = [s.engine_known for s in trip_stops]
    basis = (
        "none" if not known
        else "engine_status" if all(known)
        else "assumed" if not any(known)
        else "mixed"
    )  # fmt: skip
    return TripSummary(
        fleet_id=trip.fleet_id,
        trip_id=trip.trip_id,
        vehicle_id=trip.vehicle_id,
        computed_at=computed_at,
        started_ts=start,
        ended_ts=end,
        points=len(track),
        trusted_points=len(kept),
        distance=distance,
        time=time,
        stops=StopSummary(
            count=len(trip_stops),
            total_s=stopped_s,
            longest_s=max((s.duration_s for s in trip_stops), default=0.0),
            authorised=sum(s.authorised for s in trip_stops),
            unauthorised=sum(not s.authorised for s in trip_stops),
            stops=trip_stops,
        ),
        speeding=SpeedingSummary(
            count=len(spells),
            max_speed_kmh=float(kept.speed.max()) if len(kept) else 0.0,
            spells=spells,
        ),
        fuel=estimate(
            fuel,
            empty_km=(total_m - laden_m) / 1000,
            laden_km=laden_m / 1000,
            idle_s=sum(s.idle_s for s in trip_stops),
            idle_basis=basis,
            trip_payload_t=trip.payload_t,
            profile_source=fuel_source,
        ),
    )


def trusted_fixes(track: TrackColumns, rules: filters.FilterRules) -> np.ndarray:
    """Which fixes of one vehicle's track (in device-time order) the noise filter keeps: the
    semantics of `filters.step` from an empty state, with arrays unless there is a GPS jump
    (then the reference step decides, as the processors do)."""
    n = len(track)
    if not n:
        return np.zeros(0, dtype=bool)
    newer = np.r_[True, track.ts[1:] > np.maximum.accumulate(track.ts)[:-1]]
    good = np.flatnonzero(newer & (track.accuracy <= rules.max_accuracy_m))
    keep = np.zeros(n, dtype=bool)
    keep[good] = True
    if len(good) < 2:
        return keep
    lat, lng, ts = track.lat[good], track.lng[good], track.ts[good]
    metres = distances_m(lat[:-1], lng[:-1], lat[1:], lng[1:])
    hours = np.maximum(ts[1:] - ts[:-1], 1) / 3_600_000
    if not (metres / 1000 / hours > rules.max_implied_speed_kmh).any():
        return keep
    fixes = [
        filters.TrackFix(t, la, ln)
        for t, la, ln in zip(ts.tolist(), lat.tolist(), lng.tolist(), strict=True)
    ]
    _, verdicts = filters.step(filters.FilterState(), fixes, rules)
    keep[good] = [v is None for v in verdicts]
    return keep


def distances_to_route(
    vertices: Sequence[Sequence[float]] | np.ndarray, lat: np.ndarray, lng: np.ndarray
) -> np.ndarray:
    """Metres from each fix to the nearest point of the route ((lng, lat) vertices), as
    `compliance.nearest_on_route` measures it (flat around the fix), for all fixes at once.

    With an STRtree of the segments: every segment whose box meets a box of `_NEAR_M` around
    the fix is measured exactly, which settles the fixes within `_NEAR_M` of the route (most
    of them). For the others, the nearest segment in degrees bounds the true distance (d0), and
    every segment whose box meets the fix's box of d0 is measured: the true nearest is among
    them."""
    v = np.asarray(vertices, dtype=np.float64)
    lat, lng = np.asarray(lat, dtype=np.float64), np.asarray(lng, dtype=np.float64)
    if not len(lat):
        return np.zeros(0)
    v = v[np.r_[True, (np.diff(v, axis=0) != 0).any(axis=1)]]  # repeated vertices
    if len(v) == 1:
        return distances_m(lat, lng, np.full_like(lat, v[0, 1]), np.full_like(lng, v[0, 0]))
    tree = shapely.STRtree(shapely.linestrings(np.stack((v[:-1], v[1:]), axis=1)))
    out = _within_box(tree, v, lat, lng, np.full(len(lat), _NEAR_M))
    far = np.flatnonzero(out > _NEAR_M)
    if len(far):
        first, nearest = tree.query_nearest(shapely.points(lng[far], lat[far]))
        bound = np.full(len(far), np.inf)
        np.minimum.at(bound, first, _to_segments(v, nearest, lat[far][first], lng[far][first]))
        out[far] = _within_box(tree, v, lat[far], lng[far], bound * (1 + 1e-9) + 1e-6)
    return out


_NEAR_M = 1000.0


def _within_box(
    tree: shapely.STRtree, v: np.ndarray, lat: np.ndarray, lng: np.ndarray, radius: np.ndarray
) -> np.ndarray:
    """Each fix's distance to the nearest segment whose box meets the fix's box of `radius`
    metres (inf for none): exact wherever the true distance is within `radius`."""
    dlat = radius / M_PER_DEG_LAT
    dlng = radius / (M_PER_DEG_LAT * np.maximum(np.cos(np.radians(lat)), 1e-12))
    fix, seg = tree.query(shapely.box(lng - dlng, lat - dlat, lng + dlng, lat + dlat))
    out = np.full(len(lat), np.inf)
    np.minimum.at(out, fix, _to_segments(v, seg, lat[fix], lng[fix]))
    return out


def _to_segments(v: np.ndarray, seg: np.ndarray, lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    """Distance from fix k to segment seg[k] (vertex seg[k] to seg[k] + 1), flat around the
    fix: `nearest_on_route`'s formula, pair by pair."""
    kx = M_PER_DEG_LAT * np.cos(np.radians(lat))
    ax, ay = (v[seg, 0] - lng) * kx, (v[seg, 1] - lat) * M_PER_DEG_LAT
    ux, uy = (v[seg + 1, 0] - v[seg, 0]) * kx, (v[seg + 1, 1] - v[seg, 1]) * M_PER_DEG_LAT
    len2 = ux * ux + uy * uy
    along = np.divide(-(ax * ux + ay * uy), len2, out=np.zeros_like(ax), where=len2 > 0)
    along = np.clip(along, 0.0, 1.0)
    result: np.ndarray = np.hypot(ax + along * ux, ay + along * uy)
    return result


def _distance(
    trip: Trip,
    kept: TrackColumns,
    steps: np.ndarray,
    total_m: float,
    laden_m: float,
    route: Sequence[Sequence[float]] | np.ndarray | None,
    rules: SummaryRules,
) -> DistanceSummary:
    planned = trip.planned_route.distance_m if trip.planned_route is not None else None
    if route is None or not len(kept):
        return DistanceSummary(total_m, laden_m, planned, None, rules.route_radius_m,
                               None, None, None, None)  # fmt: skip
    if planned is None:
        planned = float(vertex_chainage(route)[-1])
    d = distances_to_route(route, kept.lat, kept.lng)
    within = (d <= rules.route_radius_m).astype(np.float64)
    if total_m > 0:
        share = float((steps * (within[:-1] + within[1:]) / 2).sum() / total_m)
    else:
        share = float(within.mean())
    worst = int(np.argmax(d))
    return DistanceSummary(
        total_m, laden_m, planned, share, rules.route_radius_m, float(d[worst]),
        int(kept.ts[worst]), float(kept.lat[worst]), float(kept.lng[worst]),
    )  # fmt: skip


def phase_at(at: dict[Milestone, int], ts: int) -> str | None:
    """The phase a moment falls in (the last one started by then)."""
    found = None
    for name, first, _ in PHASES:
        begun = at.get(first)
        if begun is not None and begun <= ts:
            found = name
    return found


def _stops(
    trip: Trip,
    track: TrackColumns,
    stops: Sequence[Stop],
    at: dict[Milestone, int],
    rules: SummaryRules,
) -> list[TripStop]:
    assert trip.started_at is not None and trip.ended_at is not None
    start, end = trip.started_at, trip.ended_at
    found = []
    for stop in sorted(stops, key=lambda s: s.started_ts):
        s = max(stop.started_ts, start)
        e = min(end if stop.ended_ts is None else stop.ended_ts, end)
        if e <= s:
            continue
        idle_s, known = _idle(track, s, e, rules)
        found.append(
            TripStop(
                started_ts=s,
                ended_ts=e,
                duration_s=(e - s) / 1000,
                lat=stop.lat,
                lng=stop.lng,
                authorised=stop.authorised,
                place=_place(trip, stop.lat, stop.lng, rules.place_radius_m),
                phase=phase_at(at, s),
                idle_s=idle_s,
                engine_known=known,
            )
        )
    return found


def _idle(track: TrackColumns, s: int, e: int, rules: SummaryRules) -> tuple[float, bool]:
    """Engine-on seconds of a stop [s, e): each fix's engine state holds until the next fix
    (unknown ones take the state before them, leading unknown ones the first known); without
    any engine status, the first `idle_assumed_s`."""
    lo, hi = np.searchsorted(track.ts, [s, e], side="left")
    engine = track.engine[lo:hi]
    known = np.flatnonzero(~np.isnan(engine))
    if not len(known):
        return min((e - s) / 1000, rules.idle_assumed_s), False
    filled = engine[np.maximum.accumulate(np.where(~np.isnan(engine), np.arange(len(engine)), 0))]
    filled[: known[0]] = engine[known[0]]
    bounds = np.r_[s, track.ts[lo + 1 : hi], e]
    return float((np.diff(bounds) * filled).sum() / 1000), True


def _place(trip: Trip, lat: float, lng: float, radius_m: float) -> str | None:
    near = [
        (distance_m(lat, lng, place.lat, place.lng), name)
        for name, place in (("pickup", trip.pickup), ("delivery", trip.delivery))
    ]
    metres, name = min(near)
    return name if metres <= radius_m else None


def _time(trip: Trip, at: dict[Milestone, int], stopped_s: float) -> TimeSummary:
    assert trip.started_at is not None and trip.ended_at is not None
    total_s = (trip.ended_at - trip.started_at) / 1000

    def span(first: Milestone, last: Milestone) -> float | None:
        a, b = at.get(first), at.get(last)
        return None if a is None or b is None else (b - a) / 1000

    arrived = at.get(Milestone.REACHED_DELIVERY, trip.ended_at)
    return TimeSummary(
        total_s=total_s,
        driving_s=total_s - stopped_s,
        stopped_s=stopped_s,
        phases={name: span(first, last) for name, first, last in PHASES},
        at_pickup_s=span(Milestone.REACHED_PICKUP, Milestone.IN_TRANSIT),
        at_delivery_s=span(Milestone.REACHED_DELIVERY, Milestone.TRIP_COMPLETED),
        planned_start_ts=trip.planned_start,
        planned_arrival_ts=trip.planned_arrival,
        arrived_ts=arrived,
        start_delay_s=None
        if trip.planned_start is None
        else (trip.started_at - trip.planned_start) / 1000,
        arrival_delay_s=None
        if trip.planned_arrival is None
        else (arrived - trip.planned_arrival) / 1000,
    )


def _follow(spell: SpeedingSpell, kept: TrackColumns, rules: SummaryRules) -> SpeedingSpell:
    """The spell over the trusted fixes: from its start to the first fix at or under its
    limit, and the top speed in between."""
    i = int(np.searchsorted(kept.ts, spell.started_ts, side="left"))
    calm = np.flatnonzero(kept.speed[i:] <= spell.limit_kmh + rules.speed_tolerance_kmh)
    j = i + int(calm[0]) if len(calm) else len(kept)
    ended = int(kept.ts[j]) if j < len(kept) else None
    last = ended if ended is not None else (int(kept.ts[-1]) if len(kept) else spell.alerted_ts)
    top = float(kept.speed[i:j].max()) if j > i else 0.0
    return msgspec.structs.replace(
        spell,
        ended_ts=ended,
        duration_s=(max(last, spell.alerted_ts) - spell.started_ts) / 1000,
        max_speed_kmh=max(top, spell.max_speed_kmh),
    )


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default

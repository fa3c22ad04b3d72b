"""The trip summary as the API shows it: ISO-8601 times, km, seconds and litres, rounded."""

from __future__ import annotations

import msgspec

from trucktrack.domain.fuel import FuelEstimate, FuelProfile
from trucktrack.domain.summary import SpeedingSpell, TripStop, TripSummary
from trucktrack.domain.timefmt import format_ms


class DistanceOut(msgspec.Struct):
    total_km: float
    """Over the fixes the noise filter trusts (as the trip's distance_km)."""
    planned_km: float | None
    actual_minus_planned_km: float | None
    within_route_share: float | None
    """Of total_km, the share within route_radius_m of the planned route."""
    off_route_km: float | None
    route_radius_m: float
    max_deviation_m: float | None
    max_deviation_at: str | None
    max_deviation_lat: float | None
    max_deviation_lng: float | None
    laden_km: float
    """From loading_completed to unloading_started."""


class PhasesOut(msgspec.Struct):
    """Seconds between consecutive milestones: together the whole trip."""

    to_pickup_s: float | None
    pickup_wait_s: float | None
    loading_s: float | None
    after_loading_s: float | None
    in_transit_s: float | None
    delivery_wait_s: float | None
    unloading_s: float | None
    after_unloading_s: float | None


class TimeOut(msgspec.Struct):
    total_s: float
    driving_s: float
    """Outside stops (slow traffic and short halts included)."""
    stopped_s: float
    at_pickup_s: float | None
    """reached_pickup to in_transit (loading included)."""
    at_delivery_s: float | None
    """reached_delivery to trip_completed (unloading included)."""
    phases: PhasesOut
    planned_start: str | None
    planned_arrival: str | None
    arrived_at: str
    """reached_delivery (trip_completed if there is none)."""
    start_delay_s: float | None
    arrival_delay_s: float | None
    """arrived_at minus planned_arrival: positive late, negative early."""


class StopOut(msgspec.Struct):
    started_at: str
    ended_at: str
    duration_s: float
    lat: float
    lng: float
    authorised: bool
    place: str | None
    """pickup or delivery (within the milestone radius of it), else null."""
    phase: str | None
    idle_s: float
    """Engine-on time counted for fuel (reported, or assumed without engine status)."""
    engine_known: bool


class StopsOut(msgspec.Struct):
    count: int
    total_s: float
    longest_s: float
    authorised: int
    unauthorised: int
    stops: list[StopOut]


class SpellOut(msgspec.Struct):
    started_at: str
    alerted_at: str
    ended_at: str | None
    """The first trusted fix back at or under the limit; null if the trip ended speeding."""
    duration_s: float | None
    max_speed_kmh: float
    limit_kmh: float
    lat: float | None
    lng: float | None
    geofence_id: str | None
    alert_id: str | None


class SpeedingOut(msgspec.Struct):
    count: int
    """Speeding spells (one speeding alert each)."""
    max_speed_kmh: float
    spells: list[SpellOut]


class FuelOut(msgspec.Struct):
    litres: float
    driving_litres: float
    idle_litres: float
    idle_s: float
    idle_basis: str
    km_per_l_empty: float
    km_per_l_laden: float
    empty_km: float
    laden_km: float
    payload_t: float
    payload_source: str
    payload_factor: float
    profile_source: str
    profile: FuelProfile


class SummaryOut(msgspec.Struct):
    trip_id: str
    vehicle_id: str
    computed_at: str
    started_at: str
    ended_at: str
    points: int
    trusted_points: int
    distance: DistanceOut
    time: TimeOut
    stops: StopsOut
    speeding: SpeedingOut
    fuel: FuelOut


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else format_ms(ms)


def summary_out(s: TripSummary) -> SummaryOut:
    d, t = s.distance, s.time
    off_route = None if d.within_route_share is None else d.total_m * (1 - d.within_route_share)
    return SummaryOut(
        trip_id=s.trip_id,
        vehicle_id=s.vehicle_id,
        computed_at=format_ms(s.computed_at),
        started_at=format_ms(s.started_ts),
        ended_at=format_ms(s.ended_ts),
        points=s.points,
        trusted_points=s.trusted_points,
        distance=DistanceOut(
            total_km=round(d.total_m / 1000, 3),
            planned_km=_r(None if d.planned_m is None else d.planned_m / 1000, 3),
            actual_minus_planned_km=_r(
                None if d.planned_m is None else (d.total_m - d.planned_m) / 1000, 3
            ),
            within_route_share=_r(d.within_route_share, 4),
            off_route_km=_r(None if off_route is None else off_route / 1000, 3),
            route_radius_m=d.route_radius_m,
            max_deviation_m=_r(d.max_deviation_m),
            max_deviation_at=_iso(d.max_deviation_ts),
            max_deviation_lat=d.max_deviation_lat,
            max_deviation_lng=d.max_deviation_lng,
            laden_km=round(d.laden_m / 1000, 3),
        ),
        time=TimeOut(
            total_s=round(t.total_s, 1),
            driving_s=round(t.driving_s, 1),
            stopped_s=round(t.stopped_s, 1),
            at_pickup_s=_r(t.at_pickup_s),
            at_delivery_s=_r(t.at_delivery_s),
            phases=PhasesOut(**{f"{k}_s": _r(v) for k, v in t.phases.items()}),
            planned_start=_iso(t.planned_start_ts),
            planned_arrival=_iso(t.planned_arrival_ts),
            arrived_at=format_ms(t.arrived_ts),
            start_delay_s=_r(t.start_delay_s),
            arrival_delay_s=_r(t.arrival_delay_s),
        ),
        stops=StopsOut(
            count=s.stops.count,
            total_s=round(s.stops.total_s, 1),
            longest_s=round(s.stops.longest_s, 1),
            authorised=s.stops.authorised,
            unauthorised=s.stops.unauthorised,
            stops=[_stop_out(x) for x in s.stops.stops],
        ),
        speeding=SpeedingOut(
            count=s.speeding.count,
            max_speed_kmh=round(s.speeding.max_speed_kmh, 1),
            spells=[_spell_out(x) for x in s.speeding.spells],
        ),
        fuel=_fuel_out(s.fuel),
    )


def _stop_out(x: TripStop) -> StopOut:
    return StopOut(
        format_ms(x.started_ts), format_ms(x.ended_ts), round(x.duration_s, 1), x.lat, x.lng,
        x.authorised, x.place, x.phase, round(x.idle_s, 1), x.engine_known,
    )  # fmt: skip


def _spell_out(x: SpeedingSpell) -> SpellOut:
    return SpellOut(
        format_ms(x.started_ts), format_ms(x.alerted_ts), _iso(x.ended_ts), _r(x.duration_s),
        round(x.max_speed_kmh, 1), x.limit_kmh, x.lat, x.lng, x.geofence_id, x.alert_id,
    )  # fmt: skip


def _fuel_out(f: FuelEstimate) -> FuelOut:
    return FuelOut(
        litres=round(f.litres, 2),
        driving_litres=round(f.driving_litres, 2),
        idle_litres=round(f.idle_litres, 2),
        idle_s=round(f.idle_s, 1),
        idle_basis=f.idle_basis,
        km_per_l_empty=round(f.km_per_l_empty, 3),
        km_per_l_laden=round(f.km_per_l_laden, 3),
        empty_km=round(f.empty_km, 3),
        laden_km=round(f.laden_km, 3),
        payload_t=round(f.payload_t, 3),
        payload_source=f.payload_source,
        payload_factor=round(f.payload_factor, 4),
        profile_source=f.profile_source,
        profile=f.profile,
    )

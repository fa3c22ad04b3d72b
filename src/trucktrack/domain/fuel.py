"""The fuel model: the litres a trip burnt, estimated from distance, load and idling.

No fuel sensor is assumed, so this is an estimate from a documented model (docs/api.md, "Trip
summary"), with per-class defaults a fleet overrides per vehicle:

    litres = empty_km / km_per_l
           + laden_km / (km_per_l * payload_factor)
           + idle_h * idle_l_per_h
    payload_factor = 1 - load_sensitivity * min(payload_t / capacity_t, 1)

`km_per_l` is the empty truck's highway figure; a full load costs `load_sensitivity` (30%) of
it. Laden is the distance between loading_completed and unloading_started, empty the rest. The
class defaults are assumptions for Indian diesel trucks, not measurements: typical figures
fleets quote (a loaded 10/12-wheeler 3.5-4 km/l, a loaded tractor-trailer 2.5-3 km/l, an LCV
8-10 km/l) and idle burn of roughly 0.5-3 l/h by engine size.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta


class VehicleClass(StrEnum):
    LCV = "lcv"
    """Light: up to 7.5 t gross (Tata Ace to 407, pick-ups)."""
    MCV = "mcv"
    """Medium: 7.5-16 t gross (6-wheelers such as a Tata 1109 or Eicher Pro 2000)."""
    HCV = "hcv"
    """Heavy rigid: 16-31 t gross (10- and 12-wheelers)."""
    TRACTOR_TRAILER = "tractor_trailer"
    """Articulated: 35-55 t gross combination."""


class FuelProfile(msgspec.Struct, frozen=True):
    """The parameters the estimate uses for one vehicle."""

    vehicle_class: VehicleClass
    km_per_l: float
    """Empty, on the highway."""
    idle_l_per_h: float
    capacity_t: float
    """Rated payload."""
    payload_t: float | None = None
    """The usual payload when a trip does not say; None: full capacity (a full truck load)."""
    load_sensitivity: float = 0.3
    """Share of km_per_l lost at full payload."""


CLASS_DEFAULTS: dict[VehicleClass, FuelProfile] = {
    VehicleClass.LCV: FuelProfile(VehicleClass.LCV, 12.0, 0.6, 2.5),
    VehicleClass.MCV: FuelProfile(VehicleClass.MCV, 7.0, 1.0, 8.0),
    VehicleClass.HCV: FuelProfile(VehicleClass.HCV, 5.0, 1.8, 20.0),
    VehicleClass.TRACTOR_TRAILER: FuelProfile(VehicleClass.TRACTOR_TRAILER, 3.8, 2.5, 32.0),
}
"""Assumed figures (see the module docstring): loaded, an HCV does 5.0 * 0.7 = 3.5 km/l and a
tractor-trailer 3.8 * 0.7 = 2.66 km/l."""

KmPerL = Annotated[float, Meta(gt=0, le=50)]
LitresPerHour = Annotated[float, Meta(ge=0, le=20)]
Tonnes = Annotated[float, Meta(ge=0, le=100)]
Capacity = Annotated[float, Meta(gt=0, le=100)]
Sensitivity = Annotated[float, Meta(ge=0, le=0.9)]


class VehicleProfile(msgspec.Struct, frozen=True, kw_only=True):
    """What a fleet says about one of its vehicles; fields left out take the class default."""

    fleet_id: str
    vehicle_id: str
    vehicle_class: VehicleClass
    km_per_l: KmPerL | None = None
    idle_l_per_h: LitresPerHour | None = None
    capacity_t: Capacity | None = None
    payload_t: Tonnes | None = None
    load_sensitivity: Sensitivity | None = None
    updated_at: int = 0
    updated_by: str = ""

    def effective(self) -> FuelProfile:
        """The class defaults with this vehicle's own figures over them."""
        base = CLASS_DEFAULTS[self.vehicle_class]
        return FuelProfile(
            self.vehicle_class,
            base.km_per_l if self.km_per_l is None else self.km_per_l,
            base.idle_l_per_h if self.idle_l_per_h is None else self.idle_l_per_h,
            base.capacity_t if self.capacity_t is None else self.capacity_t,
            self.payload_t,
            base.load_sensitivity if self.load_sensitivity is None else self.load_sensitivity,
        )


def check_profile(profile: VehicleProfile) -> None:
    """Raise ValueError for a profile that cannot be: a usual payload over the capacity."""
    fuel = profile.effective()
    if fuel.payload_t is not None and fuel.payload_t > fuel.capacity_t:
        source = "given" if profile.capacity_t is not None else f"the {fuel.vehicle_class} default"
        raise ValueError(
            f"payload_t {fuel.payload_t:g} is over capacity_t {fuel.capacity_t:g} ({source})"
        )


class FuelEstimate(msgspec.Struct, frozen=True):
    litres: float
    driving_litres: float
    idle_litres: float
    idle_s: float
    idle_basis: str
    """engine_status (from the device), assumed (no engine status: the first minutes of each
    stop), mixed, or none (no stops)."""
    empty_km: float
    laden_km: float
    km_per_l_empty: float
    km_per_l_laden: float
    payload_t: float
    payload_source: str
    """trip, vehicle (the profile's usual payload) or capacity (a full load assumed)."""
    payload_factor: float
    profile: FuelProfile
    profile_source: str
    """vehicle (the vehicle's profile) or default (the default class)."""


def estimate(
    profile: FuelProfile,
    *,
    empty_km: float,
    laden_km: float,
    idle_s: float,
    idle_basis: str,
    trip_payload_t: float | None,
    profile_source: str,
) -> FuelEstimate:
    """The model above; a payload over the capacity counts as a full load."""
    if trip_payload_t is not None:
        payload, payload_source = trip_payload_t, "trip"
    elif profile.payload_t is not None:
        payload, payload_source = profile.payload_t, "vehicle"
    else:
        payload, payload_source = profile.capacity_t, "capacity"
    factor = 1.0 - profile.load_sensitivity * min(max(payload / profile.capacity_t, 0.0), 1.0)
    laden_kmpl = profile.km_per_l * factor
    driving = empty_km / profile.km_per_l + laden_km / laden_kmpl
    idle = idle_s / 3600 * profile.idle_l_per_h
    return FuelEstimate(
        litres=driving + idle,
        driving_litres=driving,
        idle_litres=idle,
        idle_s=idle_s,
        idle_basis=idle_basis,
        empty_km=empty_km,
        laden_km=laden_km,
        km_per_l_empty=profile.km_per_l,
        km_per_l_laden=laden_kmpl,
        payload_t=payload,
        payload_source=payload_source,
        payload_factor=factor,
        profile=profile,
        profile_source=profile_source,
    )

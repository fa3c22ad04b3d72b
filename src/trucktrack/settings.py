"""Every setting in one place, typed, with its default and a line saying what it does.

Settings come from `TRUCKTRACK_*` environment variables (e.g. `TRUCKTRACK_RETENTION_DAYS=7`), then
from command-line flags, which win. An unknown or malformed value fails at start-up, loudly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from trucktrack.domain.compliance import ComplianceRules
from trucktrack.domain.filters import FilterRules
from trucktrack.domain.fuel import VehicleClass
from trucktrack.domain.processing import ProcessorRules, local_zone
from trucktrack.domain.speeding import SpeedRules
from trucktrack.domain.stops import StopRules
from trucktrack.domain.summary import SummaryRules


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Runtime configuration of one trucktrack process."""

    data_dir: str = "./data"
    """Where the SQLite database (hot tier, tokens) and the cold Parquet tier live."""
    host: str = "127.0.0.1"
    """Interface the HTTP server binds to."""
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    """TCP port of the HTTP server (0 picks a free one)."""

    max_batch_points: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    """Most points one `POST /tracking/gps` may carry; more gets 413."""
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 4 * 1024 * 1024
    """Largest request body, before and after gzip decompression; more gets 413."""
    max_future_s: Annotated[float, Meta(ge=0)] = 300.0
    """Points stamped further ahead of the server clock than this are rejected."""
    retention_days: Annotated[float, Meta(gt=0)] = 30.0
    """Points older than this are refused at ingest and deleted by maintenance."""
    hot_window_h: Annotated[float, Meta(gt=0)] = 24.0
    """Points stay in SQLite this long; whole older days move to Parquet."""
    location_ttl_h: Annotated[float, Meta(gt=0)] = 24.0
    """A current location older than this is reported as unknown (404)."""
    maintenance_interval_s: Annotated[float, Meta(gt=0)] = 3600.0
    """How often the server moves old days to the cold tier and applies retention."""

    max_pending_points: Annotated[int, Meta(ge=1)] = 50_000
    """Points waiting for the disk beyond which ingest answers 503 with Retry-After."""
    max_inflight_requests: Annotated[int, Meta(ge=1)] = 512
    """HTTP requests being served at once beyond which new ones get 503 with Retry-After."""
    max_group_points: Annotated[int, Meta(ge=1)] = 20_000
    """Most points one group commit writes in a single transaction."""
    sqlite_synchronous: str = "FULL"
    """SQLite `synchronous` pragma: FULL makes every acknowledged point survive power loss."""

    speed_limit_kmh: Annotated[float, Meta(gt=0, le=300)] = 80.0
    """Speed limit outside fences with their own `speed_limit_kmh` (trucks on Indian highways)."""
    speeding_min_s: Annotated[float, Meta(ge=0)] = 30.0
    """Speeding must last this long to raise an alert (one spike is not speeding)."""
    speed_tolerance_kmh: Annotated[float, Meta(ge=0)] = 0.0
    """Speeds up to the limit plus this are not speeding."""
    stop_speed_kmh: Annotated[float, Meta(gt=0)] = 5.0
    """Under this speed a truck may be stopped."""
    stop_radius_m: Annotated[float, Meta(gt=0)] = 100.0
    """A stop stays within this distance of where the truck slowed down."""
    stop_min_s: Annotated[float, Meta(ge=0)] = 120.0
    """Slow and in place this long makes a stop (a stop start event)."""
    unexpected_stop_min: Annotated[float, Meta(gt=0)] = 30.0
    """A stop outside every `stop_allowed` fence longer than this raises an unexpected stop."""
    max_implied_speed_kmh: Annotated[float, Meta(gt=0)] = 200.0
    """A fix that could only be reached faster than this is a GPS jump: stored, not processed."""
    max_accuracy_m: Annotated[float, Meta(gt=0)] = 100.0
    """Fixes with a worse reported accuracy are stored but not processed."""
    timezone: str = "Asia/Kolkata"
    """The time zone of geofences' `restricted_hours`."""
    processors: bool = True
    """Run the processors (filter, distance, fences, speeding, stops) over every stored point.
    Off: points are only stored, and no alert but the panic button is raised (for measuring)."""
    processor_snapshot_s: Annotated[float, Meta(gt=0)] = 10.0
    """How often the processors' state is saved; after a crash, what came since is replayed."""

    milestone_radius_m: Annotated[float, Meta(gt=0)] = 500.0
    """reached_pickup / reached_delivery need the truck's real position this close to the place
    (an admin may override, and the override is recorded)."""
    milestone_position_max_age_s: Annotated[float, Meta(gt=0)] = 900.0
    """The truck's newest point must be at most this old (before the milestone's time) to
    confirm a reached_* milestone."""
    milestone_backdate_h: Annotated[float, Meta(ge=0)] = 24.0
    """A milestone may be dated at most this long before its trip was created (a trip entered
    after it began); older, or before 2000, is refused (422)."""
    trip_late_points_h: Annotated[float, Meta(ge=0)] = 24.0
    """Points without a trip_id are attributed to the trip their vehicle was on at their time;
    a finished trip keeps taking its late (buffered) points for this long after it ended."""
    summary_route_radius_m: Annotated[float, Meta(gt=0)] = 500.0
    """A trip summary counts the track within this distance of the planned route as on it."""
    fuel_default_class: VehicleClass = VehicleClass.HCV
    """The fuel model's class (lcv, mcv, hcv, tractor_trailer) of a vehicle with no profile."""
    fuel_idle_assumed_min: Annotated[float, Meta(ge=0)] = 10.0
    """Without engine status, a truck is assumed to idle this long at each stop (fuel)."""

    route_deviation_km: Annotated[float, Meta(gt=0)] = 5.0
    """A truck on an active trip further than this from its planned route is off route (one
    route_deviation alert when it starts)."""
    route_back_km: Annotated[float, Meta(ge=0)] = 4.0
    """... and back on route (one back_on_route alert) once within this again: the gap is
    the hysteresis that keeps GPS noise at the boundary from flapping."""
    route_confirm_s: Annotated[float, Meta(ge=0)] = 30.0
    """Off (or back on) route for this long, over at least two fixes, before it counts."""
    wrong_direction_m: Annotated[float, Meta(gt=0)] = 1000.0
    """Progress along the planned route lost (going backwards) that raises wrong_direction."""
    wrong_heading_s: Annotated[float, Meta(gt=0)] = 120.0
    """Driving against the route's bearing (over 120 degrees off, over 10 km/h) this long also
    raises wrong_direction."""
    trip_monitor_interval_s: Annotated[float, Meta(gt=0)] = 60.0
    """How often the trip monitor sweeps the active trips (trucks gone silent)."""
    signal_lost_min: Annotated[float, Meta(gt=0)] = 15.0
    """A truck on an active trip nothing was received from this long raises signal_lost (its
    next fix, signal_restored)."""

    pod_max_mb: Annotated[float, Meta(gt=0, le=64)] = 10.0
    """Largest proof-of-delivery file (413 over it)."""
    pod_link_ttl_s: Annotated[float, Meta(gt=0)] = 900.0
    """How long a signed download link of a proof-of-delivery file stays valid."""
    link_secret: str = ""
    """The key that signs download links; empty: one is made at first start and kept in
    `<data_dir>/link.key`."""
    otp_webhook_url: str = ""
    """Where delivery OTPs are POSTed for the gateway that texts the consignee (signed like
    alert webhooks); empty: no OTPs can be sent (POST /delivery/otp answers 503)."""
    otp_webhook_secret: str = ""
    """The HMAC key of the OTP webhook's X-Trucktrack-Signature."""
    otp_valid_min: Annotated[float, Meta(gt=0)] = 15.0
    """A delivery OTP is valid this long."""
    otp_max_attempts: Annotated[int, Meta(ge=1)] = 5
    """Wrong codes before the OTP is locked (a new one must be sent)."""

    live_min_interval_s: Annotated[float, Meta(ge=0)] = 1.0
    """A live WebSocket client gets at most one update per vehicle this often (newest wins)."""
    live_send_timeout_s: Annotated[float, Meta(gt=0)] = 5.0
    """A live client whose messages cannot be sent for this long is disconnected (1013)."""
    ws_ping_interval_s: Annotated[float, Meta(gt=0)] = 20.0
    """The server pings every WebSocket client this often (protocol-level ping frames)."""
    ws_ping_timeout_s: Annotated[float, Meta(gt=0)] = 20.0
    """A WebSocket client that has not answered a ping within this is closed (1011) and its
    subscriptions dropped."""

    mqtt_url: str = ""
    """MQTT broker to take device messages from, e.g. mqtt://trucktrack:secret@127.0.0.1:1883;
    empty: no MQTT."""
    mqtt_topic_prefix: str = "topic/vehicle"
    """Devices publish to `<prefix>/<vehicle_id>/gps` and `<prefix>/<vehicle_id>/emergency`."""
    mqtt_client_id: str = "trucktrack"
    """The broker keeps this client's session (and its unacknowledged messages) across
    restarts; give each trucktrack server its own."""
    mqtt_retry_s: Annotated[float, Meta(gt=0)] = 60.0
    """An MQTT message that cannot be stored (overload, storage down) is retried this long;
    then it is logged, left unacknowledged, and the bridge reconnects so that the broker
    delivers it again."""

    webhook_url: str = ""
    """Where every new alert is POSTed (JSON, HMAC-signed); empty: no webhook."""
    webhook_secret: str = ""
    """The HMAC-SHA256 key for the X-Trucktrack-Signature header."""

    token_cache_s: Annotated[float, Meta(ge=0)] = 10.0
    """How long a verified token is trusted before it is looked up again (revocation delay)."""
    bootstrap_demo_token: bool = True
    """On the first start with an empty data dir, create and print an admin token for `demo`."""

    routing_tiles: str = ""
    """Valhalla routing tiles (a tiles.tar or a tile folder); empty: the data dir's
    `routing/tiles.tar`, else `routing/tiles/`, as `trucktrack routing build-tiles` makes them.
    Without tiles `POST /routing/calculate` answers 503 and everything else works."""
    routing_threads: Annotated[int, Meta(ge=1, le=64)] = 2
    """Routes computed at once; each thread holds its own Valhalla engine and tile cache."""
    routing_cache_mb: Annotated[int, Meta(ge=1)] = 128
    """Tile cache of each routing thread, in MiB (Valhalla's own default is ~1 GB)."""
    routing_search_radius_m: Annotated[float, Meta(gt=0, le=35_000)] = 1000.0
    """A point farther than this from every road the truck may use is unroutable (422)."""

    def processor_rules(self) -> ProcessorRules:
        return ProcessorRules(
            filter=FilterRules(
                max_implied_speed_kmh=self.max_implied_speed_kmh, max_accuracy_m=self.max_accuracy_m
            ),
            stops=StopRules(
                max_speed_kmh=self.stop_speed_kmh,
                radius_m=self.stop_radius_m,
                min_duration_s=self.stop_min_s,
                unexpected_after_s=self.unexpected_stop_min * 60,
            ),
            speed=SpeedRules(
                min_duration_s=self.speeding_min_s, tolerance_kmh=self.speed_tolerance_kmh
            ),
            default_speed_limit_kmh=self.speed_limit_kmh,
            timezone=self.timezone,
        )

    def summary_rules(self) -> SummaryRules:
        return SummaryRules(
            filter=FilterRules(
                max_implied_speed_kmh=self.max_implied_speed_kmh, max_accuracy_m=self.max_accuracy_m
            ),
            route_radius_m=self.summary_route_radius_m,
            place_radius_m=self.milestone_radius_m,
            idle_assumed_s=self.fuel_idle_assumed_min * 60,
            speed_tolerance_kmh=self.speed_tolerance_kmh,
        )

    def compliance_rules(self) -> ComplianceRules:
        return ComplianceRules(
            deviation_m=self.route_deviation_km * 1000,
            back_on_route_m=self.route_back_km * 1000,
            confirm_s=self.route_confirm_s,
            backwards_m=self.wrong_direction_m,
            wrong_heading_s=self.wrong_heading_s,
        )

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "trucktrack.db"

    @property
    def cold_dir(self) -> Path:
        return Path(self.data_dir) / "cold"

    @property
    def objects_dir(self) -> Path:
        """The object store (routes, later proof-of-delivery files), one folder per fleet."""
        return Path(self.data_dir) / "objects"

    @property
    def routing_dir(self) -> Path:
        """Where `trucktrack routing build-tiles` puts the tiles."""
        return Path(self.data_dir) / "routing"

    def routing_tiles_path(self) -> Path | None:
        """The tiles to route on: `routing_tiles` if set, else what build-tiles made, if any."""
        if self.routing_tiles:
            return Path(self.routing_tiles)
        for candidate in (self.routing_dir / "tiles.tar", self.routing_dir / "tiles"):
            if candidate.exists():
                return candidate
        return None


ENV_PREFIX = "TRUCKTRACK_"


def load_settings(overrides: dict[str, object] | None = None) -> Settings:
    """Settings from the environment, then `overrides` (e.g. CLI flags; None values are ignored)."""
    raw: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        value = os.environ.get(ENV_PREFIX + field.name.upper())
        if value is not None:
            raw[field.name] = value
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    try:
        # str_values lets "30" from the environment become 30.0; constraints still apply.
        settings = msgspec.convert(raw, Settings, strict=False)
        local_zone(settings.timezone)
        settings.compliance_rules()  # route_back_km must be under route_deviation_km
    except (msgspec.ValidationError, ValueError) as exc:
        raise SystemExit(f"trucktrack: bad setting: {exc}") from exc
    return settings

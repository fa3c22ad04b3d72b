"""The composition root: the only place that picks adapters and wires services from settings.

Nothing connects at import time; `local(settings)` builds the embedded default (SQLite + Parquet
files) and `Services.close()` releases it. A later `aws(settings)` will wire the same services to
the managed adapters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trucktrack.adapters.files import LocalObjectStore
from trucktrack.adapters.parquet import ParquetColdStore
from trucktrack.adapters.sqlite.pod import SqlitePodStore
from trucktrack.adapters.sqlite.schema import create_schema
from trucktrack.adapters.sqlite.store import (
    ReadConnections,
    SqliteAlertOutbox,
    SqliteAlertStore,
    SqliteCurrentLocations,
    SqliteGeofenceStore,
    SqliteOdometer,
    SqlitePointLog,
    SqliteStopLog,
    SqliteTokenStore,
    SqliteWebhookSubscriptions,
)
from trucktrack.adapters.sqlite.stream import StreamConfig, StreamReport
from trucktrack.adapters.sqlite.summaries import SqliteSummaryStore, SqliteVehicleProfileStore
from trucktrack.adapters.sqlite.trips import SqliteTripStore
from trucktrack.adapters.sqlite.writer import GroupCommitWriter
from trucktrack.adapters.webhooks import WebhookOtpNotifier, WebhookSink
from trucktrack.domain.alerts import AlertType
from trucktrack.domain.timefmt import format_ms
from trucktrack.domain.trips import MilestoneRecord, Trip
from trucktrack.errors import RoutingNotConfigured
from trucktrack.metrics import Metrics
from trucktrack.services.alerts import AlertService
from trucktrack.services.auth import TokenService
from trucktrack.services.delivery import AlertDelivery
from trucktrack.services.geofences import GeofenceService
from trucktrack.services.ingest import IngestService
from trucktrack.services.live import LiveHub
from trucktrack.services.maintenance import Maintenance
from trucktrack.services.monitor import TripMonitor
from trucktrack.services.movement import MovementService
from trucktrack.services.pod import PodService
from trucktrack.services.routing import RoutingService
from trucktrack.services.summaries import SummaryService
from trucktrack.services.tracking import TrackingService
from trucktrack.services.trips import TripService
from trucktrack.services.vehicles import VehicleProfileService
from trucktrack.services.webhooks import WebhookService
from trucktrack.settings import Settings

if TYPE_CHECKING:
    from trucktrack.adapters.analytics import ExportReport
    from trucktrack.adapters.valhalla import TileBuild

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    tokens: TokenService
    ingest: IngestService
    tracking: TrackingService
    movement: MovementService
    geofences: GeofenceService
    alerts: AlertService
    delivery: AlertDelivery
    webhooks: WebhookService
    live: LiveHub
    trips: TripService
    pod: PodService
    monitor: TripMonitor
    maintenance: Maintenance
    writer: GroupCommitWriter
    reads: ReadConnections
    routing: RoutingService
    summaries: SummaryService
    vehicles: VehicleProfileService

    def close(self) -> None:
        """Write what is queued and release the files; safe to call twice."""
        self.writer.close()
        self.reads.close()
        self.routing.close()


FENCE_VIOLATIONS = frozenset({AlertType.RESTRICTED_AREA, AlertType.DWELL_EXCEEDED})


def count_processed(metrics: Metrics, report: StreamReport) -> None:
    """Metrics from what the processors found in one group commit."""
    for alert in report.alerts:
        metrics.alerts.labels(alert.type.value).inc()
        if alert.type is AlertType.ROUTE_DEVIATION:
            metrics.route_deviations.inc()
        if alert.type in FENCE_VIOLATIONS or (
            alert.type is AlertType.SPEEDING and alert.geofence_id is not None
        ):
            metrics.geofence_violations.labels(alert.type.value).inc()
    for lag in report.lags_s:
        metrics.processing_lag.observe(lag)
    if report.failed:
        metrics.processing_failures.inc()


def milestone_message(trip: Trip, record: MilestoneRecord) -> dict[str, object]:
    """What live clients following the trip receive when a milestone is recorded."""
    return {
        "type": "milestone",
        "trip_id": trip.trip_id,
        "vehicle_id": trip.vehicle_id,
        "status": trip.status.value,
        "milestone": record.milestone.value,
        "timestamp": format_ms(record.ts),
        "lat": record.lat,
        "lng": record.lng,
        "override": record.override,
        "recorded_by": record.recorded_by,
    }


def link_secret(settings: Settings) -> bytes:
    """The key signing download links: the setting, else one made once and kept on disk."""
    if settings.link_secret:
        return settings.link_secret.encode()
    path = Path(settings.data_dir) / "link.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def tokens_only(settings: Settings) -> TokenService:
    """Token administration without starting a writer (for `trucktrack token create`)."""
    create_schema(settings.db_path)
    reads = ReadConnections(settings.db_path)
    return TokenService(SqliteTokenStore(settings.db_path, reads), settings.token_cache_s)


def local(settings: Settings) -> Services:
    """The embedded default: everything under `settings.data_dir`, no servers to run."""
    create_schema(settings.db_path)
    reads = ReadConnections(settings.db_path)
    metrics = Metrics()
    writer = GroupCommitWriter(
        settings.db_path,
        synchronous=settings.sqlite_synchronous,
        max_pending_points=settings.max_pending_points,
        max_group_points=settings.max_group_points,
        stream=StreamConfig(
            settings.processor_rules(),
            notify=bool(settings.webhook_url),
            snapshot_s=settings.processor_snapshot_s,
            compliance=settings.compliance_rules(),
            objects_dir=str(settings.objects_dir),
        )
        if settings.processors
        else None,
        on_report=lambda report: on_processed(report),  # defined below, before start()
    )
    current = SqliteCurrentLocations(writer, reads)
    live = LiveHub(
        current,
        metrics,
        location_ttl_h=settings.location_ttl_h,
        min_interval_s=settings.live_min_interval_s,
        send_timeout_s=settings.live_send_timeout_s,
    )

    def on_processed(report: StreamReport) -> None:  # on the writer's reply thread
        count_processed(metrics, report)
        live.publish_alerts_threadsafe(report.alerts)
        loop = live.loop
        if loop is not None and report.alerts and len(trips.windows):
            asyncio.run_coroutine_threadsafe(trips.handle_alerts(report.alerts), loop)

    writer.start()

    log = SqlitePointLog(writer, reads)
    subscriptions = SqliteWebhookSubscriptions(writer, reads)
    cold = ParquetColdStore(settings.cold_dir)
    tracking = TrackingService(current, log, cold, location_ttl_h=settings.location_ttl_h)
    routes = routing(settings)
    trip_store = SqliteTripStore(writer, reads)
    metrics.watch(
        "route_deviation_share",
        "Of the active trips under way on a planned route, the share off route now (the "
        "spec's route_deviation_rate alarm is at 0.1)",
        trip_store.deviating_share,
    )
    trips = TripService(
        trip_store,
        LocalObjectStore(settings.objects_dir),
        current,
        log,
        tracking,
        milestone_radius_m=settings.milestone_radius_m,
        position_max_age_s=settings.milestone_position_max_age_s,
        late_points_h=settings.trip_late_points_h,
        max_future_s=settings.max_future_s,
        milestone_backdate_h=settings.milestone_backdate_h,
        routing=routes,
        on_milestone=lambda trip, record: announce(trip, record),  # defined below
    )
    trips.load(int(time.time() * 1000))
    pod = PodService(
        SqlitePodStore(writer, reads),
        LocalObjectStore(settings.objects_dir),
        trips,
        WebhookOtpNotifier(settings.otp_webhook_url, settings.otp_webhook_secret),
        max_bytes=int(settings.pod_max_mb * 1_000_000),
        link_secret=link_secret(settings),
        link_ttl_s=settings.pod_link_ttl_s,
        otp_ttl_s=settings.otp_valid_min * 60,
        otp_attempts=settings.otp_max_attempts,
    )
    trips.completion_check = pod.missing_for
    trips.after_milestone.append(pod.issue_on_arrival)
    ttl_ms = int(settings.location_ttl_h * 3_600_000)
    metrics.watch(
        "active_vehicles_tracked",
        "Vehicles whose newest point is younger than the location TTL (24 h)",
        lambda: current.count_newer_than(int(time.time() * 1000) - ttl_ms),
    )
    metrics.watch(
        "gps_write_queue_points", "Points waiting for the disk", lambda: writer.pending_points
    )
    alerts = AlertService(
        SqliteAlertStore(writer, reads, notify=bool(settings.webhook_url)),
        log,
        metrics,
        on_alert=live.publish_alerts,
    )
    stops = SqliteStopLog(reads)
    profiles = SqliteVehicleProfileStore(writer, reads)
    summaries = SummaryService(
        SqliteSummaryStore(writer, reads),
        trips,
        tracking,
        stops,
        alerts,
        profiles,
        LocalObjectStore(settings.objects_dir),
        rules=settings.summary_rules(),
        default_class=settings.fuel_default_class,
        backfill_days=settings.retention_days,
    )

    def announce(trip: Trip, record: MilestoneRecord) -> None:  # as each milestone is stored
        live.publish_trip_event(
            trip.fleet_id, trip.trip_id, trip.vehicle_id, milestone_message(trip, record)
        )
        summaries.on_milestone(trip, record)

    return Services(
        settings=settings,
        metrics=metrics,
        tokens=TokenService(SqliteTokenStore(settings.db_path, reads), settings.token_cache_s),
        ingest=IngestService(
            log,
            cold,
            metrics,
            max_future_s=settings.max_future_s,
            retention_days=settings.retention_days,
            hot_window_h=settings.hot_window_h,
            on_stored=live.publish_points,
            attribute=trips.attribute,
        ),
        tracking=tracking,
        movement=MovementService(stops, SqliteOdometer(reads), log),
        geofences=GeofenceService(SqliteGeofenceStore(writer, reads)),
        alerts=alerts,
        delivery=AlertDelivery(
            SqliteAlertOutbox(writer, reads),
            WebhookSink(settings.webhook_url, settings.webhook_secret, subscriptions),
            metrics,
        ),
        webhooks=WebhookService(subscriptions),
        live=live,
        trips=trips,
        pod=pod,
        monitor=TripMonitor(
            trips,
            stops,
            alerts,
            current,
            unexpected_stop_s=settings.unexpected_stop_min * 60,
            signal_lost_s=settings.signal_lost_min * 60,
        ),
        maintenance=Maintenance(
            log,
            cold,
            current,
            hot_window_h=settings.hot_window_h,
            retention_days=settings.retention_days,
        ),
        writer=writer,
        reads=reads,
        routing=routes,
        summaries=summaries,
        vehicles=VehicleProfileService(profiles, log, default_class=settings.fuel_default_class),
    )


def routing(settings: Settings) -> RoutingService:
    """Truck routing on the configured tiles; without usable tiles it answers 503 (and says why
    in the log), and the rest of the server works as usual."""
    tiles = settings.routing_tiles_path()
    if tiles is None:
        return RoutingService(None)
    from trucktrack.adapters.valhalla import ValhallaRouter  # loads a 37 MB library: only if used

    try:
        router = ValhallaRouter(
            tiles,
            cache_mb=settings.routing_cache_mb,
            search_radius_m=settings.routing_search_radius_m,
        )
    except RoutingNotConfigured as exc:
        log.error("%s", exc.message)
        return RoutingService(None, unavailable=exc.message)
    return RoutingService(router, threads=settings.routing_threads)


def export_parquet(
    settings: Settings, out: Path, from_ms: int, to_ms: int, fleet_id: str | None
) -> ExportReport:
    """Points, trips, alerts and summaries of [from_ms, to_ms) as Parquet files in `out`."""
    from trucktrack.adapters.analytics import ParquetExport

    return ParquetExport(settings.db_path, settings.cold_dir).run(out, from_ms, to_ms, fleet_id)


def build_routing_tiles(
    settings: Settings,
    osm_file: Path,
    *,
    threads: int,
    on_output: Callable[[str], None] | None = None,
) -> TileBuild:
    """Valhalla tiles from an OSM extract into the data dir's routing folder."""
    from trucktrack.adapters.valhalla import build_tiles

    return build_tiles(osm_file, settings.routing_dir, threads=threads, on_output=on_output)

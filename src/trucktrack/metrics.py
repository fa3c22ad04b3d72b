"""Prometheus metrics of one process (the spec's custom CloudWatch metrics, scraped at /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # `*_created` series only add noise to every scrape

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _LiveGauge(Collector):
    """A gauge computed when scraped (e.g. vehicles seen in the last 24 h, from the store)."""

    def __init__(self, name: str, doc: str, read: Callable[[], float]) -> None:
        self._name, self._doc, self._read = name, doc, read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._name, self._doc, value=self._read())


class Metrics:
    """Counters and histograms the services update; one registry per process (or per test)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.gps_updates = Counter(
            "gps_updates",
            "GPS points accepted and stored (including retried duplicates)",
            registry=r,
        )
        self.gps_duplicates = Counter(
            "gps_duplicate_points", "Accepted points that were already stored", registry=r
        )
        self.gps_errors = Counter(
            "gps_ingestion_errors",
            "GPS points rejected (validation, scope, time window)",
            registry=r,
        )
        self.ingest_latency = Histogram(
            "gps_ingest_latency_seconds",
            "Time to validate and durably store one POST /tracking/gps batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.alerts = Counter("alerts", "Alerts raised, by type", ["type"], registry=r)
        self.webhook_deliveries = Counter(
            "webhook_deliveries", "Alerts delivered to the webhook", registry=r
        )
        self.webhook_failures = Counter(
            "webhook_failures", "Failed webhook delivery attempts (each is retried)", registry=r
        )
        self.geofence_violations = Counter(
            "geofence_violations",
            "Fence rules broken: restricted area, dwell too long, speeding over a fence's limit",
            ["type"],
            registry=r,
        )
        self.route_deviations = Counter(
            "route_deviation_incidents",
            "Trips that went off their planned route (route_deviation alerts)",
            registry=r,
        )
        self.processing_lag = Histogram(
            "gps_processing_lag_seconds",
            "From a batch reaching the server to the processors having run over it",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.processing_failures = Counter(
            "gps_processing_failures",
            "Group commits whose points were stored but could not be processed (see the log)",
            registry=r,
        )
        self.live_sent = Counter(
            "websocket_messages_sent", "Messages sent to live WebSocket clients", registry=r
        )
        self.live_coalesced = Counter(
            "websocket_updates_coalesced",
            "Location updates replaced by a newer one before they were sent (rate limit, slow "
            "client)",
            registry=r,
        )
        self.live_dropped_clients = Counter(
            "websocket_slow_clients_dropped",
            "Live clients disconnected because they could not keep up",
            registry=r,
        )
        self.tracking_latency = Histogram(
            "tracking_latency_seconds",
            "From a point reaching the server to its update being sent to a live client",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.mqtt_messages = Counter(
            "mqtt_messages",
            "MQTT messages from devices, by topic kind (gps, emergency) and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.overloaded = Counter(
            "ingest_overloaded",
            "Batches refused with 503 because the write queue was full",
            registry=r,
        )

    def watch(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """Expose `read()` as a gauge evaluated at scrape time."""
        self.registry.register(_LiveGauge(name, doc, read))

    def points_stored(self, inserted: int, duplicates: int) -> None:
        if inserted + duplicates:
            self.gps_updates.inc(inserted + duplicates)
        if duplicates:
            self.gps_duplicates.inc(duplicates)

    def points_rejected(self, n: int) -> None:
        if n:
            self.gps_errors.inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""Delivering alerts from the outbox to a sink, at least once, with backoff between tries."""

from __future__ import annotations

import logging

from trucktrack.metrics import Metrics
from trucktrack.ports import AlertOutbox, AlertSink

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 600


class AlertDelivery:
    def __init__(self, outbox: AlertOutbox, sink: AlertSink, metrics: Metrics) -> None:
        self._outbox = outbox
        self._sink = sink
        self._metrics = metrics

    async def run_once(self, now_ms: int, limit: int = 100) -> int:
        """Try every delivery that is due; returns how many succeeded. A failed one is tried
        again after 1, 2, 4, ... seconds (at most 10 minutes apart), for as long as it takes."""
        done = 0
        for seq, alert, attempts in self._outbox.due(now_ms, limit):
            try:
                await self._sink.send(alert)
            except Exception as exc:
                backoff_s = min(MAX_BACKOFF_S, 2**attempts)
                await self._outbox.failed(seq, attempts + 1, now_ms + backoff_s * 1000, str(exc))
                self._metrics.webhook_failures.inc()
                log.warning(
                    "alert %s not delivered (try %d): %s", alert.alert_id, attempts + 1, exc
                )
                continue
            await self._outbox.delivered(seq)
            self._metrics.webhook_deliveries.inc()
            done += 1
        return done

    async def close(self) -> None:
        await self._sink.close()

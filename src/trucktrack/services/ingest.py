"""Accepting GPS points: apply the acceptance rules, store durably, report per-point outcomes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from trucktrack.domain.ingest_rules import OUT_OF_SCOPE, TimeWindow, scope_reason
from trucktrack.domain.model import GpsPoint, IngestResult, Principal, Rejection
from trucktrack.errors import Forbidden
from trucktrack.metrics import Metrics
from trucktrack.ports import PointLog


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class IngestService:
    """The ingest use case shared by every entry point (HTTP now, MQTT and Lambda later)."""

    def __init__(
        self,
        log: PointLog,
        metrics: Metrics,
        *,
        max_future_s: float,
        retention_days: float,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._log = log
        self._metrics = metrics
        self._max_future_s = max_future_s
        self._retention_days = retention_days
        self._clock = clock

    def now_ms(self) -> int:
        return self._clock()

    async def ingest(
        self,
        principal: Principal,
        points: Sequence[tuple[int, GpsPoint]],
        rejected: list[Rejection],
        now_ms: int,
    ) -> IngestResult:
        """Store the (batch index, point) pairs that pass the rules; `rejected` already holds
        the points that failed decoding. Returns once every stored point is on disk."""
        if not principal.may_write_points():
            raise Forbidden(f"a {principal.role.value} token cannot post positions")
        window = TimeWindow(now_ms, self._max_future_s, self._retention_days)
        fleet_of = self._log.fleet_of
        barred = {
            v
            for v in {p.vehicle_id for _, p in points}
            if scope_reason(principal, v, fleet_of(v)) is not None
        }
        indexes: list[int] = []
        accepted: list[GpsPoint] = []
        decode_rejections = len(rejected)
        rejected = list(rejected)
        for index, point in points:
            if barred and point.vehicle_id in barred:
                rejected.append(Rejection(index, OUT_OF_SCOPE))
            elif (reason := window.reason_to_reject(point.ts)) is not None:
                rejected.append(Rejection(index, reason))
            else:
                indexes.append(index)
                accepted.append(point)
        if (
            points
            and decode_rejections == 0
            and all(r.reason == OUT_OF_SCOPE for r in rejected)
            and len(rejected) == len(points)
        ):
            self._metrics.points_rejected(len(rejected))
            raise Forbidden("no point of this batch is in this token's scope")
        inserted = duplicates = 0
        if accepted:
            outcome = await self._log.append(principal.fleet_id, accepted)
            inserted, duplicates = outcome.inserted, outcome.duplicates
            rejected.extend(Rejection(indexes[r.index], r.reason) for r in outcome.rejected)
        rejected.sort(key=lambda r: r.index)
        self._metrics.points_stored(inserted, duplicates)
        self._metrics.points_rejected(len(rejected))
        return IngestResult(
            processed=inserted + duplicates, duplicates=duplicates, rejected=rejected
        )

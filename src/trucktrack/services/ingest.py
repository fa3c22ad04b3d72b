"""Accepting GPS points: apply the acceptance rules, store durably, report per-point outcomes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from trucktrack.domain.ingest_rules import OUT_OF_SCOPE, TimeWindow, scope_reason
from trucktrack.domain.model import GpsPoint, IngestResult, Principal, Rejection
from trucktrack.errors import Forbidden
from trucktrack.metrics import Metrics
from trucktrack.ports import ColdPointStore, PointLog

Attribution = Callable[[str, Sequence[GpsPoint]], tuple[list[GpsPoint], list[tuple[int, str]]]]
"""Give points their trip; returns the kept points and the refused ones' (position, reason)."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class IngestService:
    """The ingest use case shared by every entry point (HTTP now, MQTT and Lambda later)."""

    def __init__(
        self,
        log: PointLog,
        cold: ColdPointStore,
        metrics: Metrics,
        *,
        max_future_s: float,
        retention_days: float,
        hot_window_h: float,
        on_stored: Callable[[str, Sequence[GpsPoint]], None] | None = None,
        attribute: Attribution | None = None,
    ) -> None:
        self._attribute = attribute
        self._on_stored = on_stored
        self._log = log
        self._cold = cold
        self._metrics = metrics
        self._max_future_s = max_future_s
        self._retention_days = retention_days
        self._hot_window_ms = int(hot_window_h * 3_600_000)

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
        if any(p.ts < now_ms - self._hot_window_ms for p in accepted):
            indexes, accepted, duplicates = await self._drop_cold_repeats(
                principal.fleet_id, indexes, accepted, now_ms
            )
        if accepted and self._attribute is not None:
            accepted, refused = self._attribute(principal.fleet_id, accepted)
            if refused:
                gone = {position for position, _ in refused}
                rejected.extend(Rejection(indexes[i], reason) for i, reason in refused)
                indexes = [ix for i, ix in enumerate(indexes) if i not in gone]
        if accepted:
            outcome = await self._log.append(principal.fleet_id, accepted)
            inserted, duplicates = outcome.inserted, duplicates + outcome.duplicates
            if self._on_stored is not None and inserted:
                self._on_stored(principal.fleet_id, accepted)
            rejected.extend(Rejection(indexes[r.index], r.reason) for r in outcome.rejected)
        rejected.sort(key=lambda r: r.index)
        self._metrics.points_stored(inserted, duplicates)
        self._metrics.points_rejected(len(rejected))
        return IngestResult(
            processed=inserted + duplicates, duplicates=duplicates, rejected=rejected
        )

    async def _drop_cold_repeats(
        self, fleet_id: str, indexes: list[int], points: list[GpsPoint], now_ms: int
    ) -> tuple[list[int], list[GpsPoint], int]:
        """A point older than the hot window may already have moved to the cold tier (a retry
        after a long outage): such points count as duplicates instead of being stored again."""
        old = [(p.vehicle_id, p.ts) for p in points if p.ts < now_ms - self._hot_window_ms]
        stored = await asyncio.to_thread(self._cold.stored_keys, fleet_id, old)
        if not stored:
            return indexes, points, 0
        keep = [(i, p) for i, p in zip(indexes, points, strict=True)
                if (p.vehicle_id, p.ts) not in stored]  # fmt: skip
        return [i for i, _ in keep], [p for _, p in keep], len(points) - len(keep)

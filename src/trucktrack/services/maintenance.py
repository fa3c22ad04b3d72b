"""Scheduled upkeep: move whole old days from the hot tier to Parquet, and apply retention."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import msgspec

from trucktrack.domain.timefmt import DAY_MS, HOUR_MS, day_of, day_start_ms
from trucktrack.ports import ColdPointStore, CurrentLocations, PointLog

log = logging.getLogger(__name__)
MOVE_CHUNK = 200_000


class MaintenanceReport(msgspec.Struct, frozen=True):
    moved_days: list[dt.date]
    moved_points: int
    deleted_hot_points: int
    dropped_cold_days: list[dt.date]
    forgotten_locations: int


class Maintenance:
    """Tiering and retention. Safe to rerun and to crash mid-way: a day is written to Parquet
    before it is deleted from SQLite, and readers drop the rare point found in both."""

    def __init__(
        self,
        log_: PointLog,
        cold: ColdPointStore,
        current: CurrentLocations,
        *,
        hot_window_h: float,
        retention_days: float,
    ) -> None:
        self._log = log_
        self._cold = cold
        self._current = current
        self._hot_ms = int(hot_window_h * HOUR_MS)
        self._retention_ms = int(retention_days * DAY_MS)

    async def run(self, now_ms: int) -> MaintenanceReport:
        retention_cutoff = now_ms - self._retention_ms
        deleted = await self._log.delete_between(0, retention_cutoff)
        # The cold tier is kept by whole days: a day goes once all of it is past retention.
        dropped = self._cold.drop_days_before(day_of(retention_cutoff))
        forgotten = await self._current.forget_older_than(retention_cutoff)

        moved_days: list[dt.date] = []
        moved_points = 0
        hot_cutoff = now_ms - self._hot_ms
        for day in self._log.days_before(hot_cutoff):
            start = day_start_ms(day)
            end = start + DAY_MS
            if end > hot_cutoff:
                break  # only whole days leave the hot tier
            # Part by part: a chunk is deleted from SQLite only once its part file is durable,
            # and exactly the rows written are deleted, so a point arriving meanwhile stays hot.
            for chunk in self._log.iter_points_between(start, end, MOVE_CHUNK):
                await asyncio.to_thread(self._cold.write_day, day, chunk)
                await self._log.delete_points(chunk)
                moved_points += len(chunk)
            moved_days.append(day)
        report = MaintenanceReport(moved_days, moved_points, deleted, dropped, forgotten)
        if moved_days or deleted or dropped or forgotten:
            log.info("maintenance: %s", msgspec.json.encode(report).decode())
        return report

"""In-memory fakes of the ports, for testing services without SQLite or Parquet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from trucktrack.domain.ingest_rules import OUT_OF_SCOPE
from trucktrack.domain.model import AppendOutcome, GpsPoint, Principal, Rejection
from trucktrack.domain.summary import TripSummary
from trucktrack.domain.timefmt import day_of, day_start_ms
from trucktrack.domain.trips import Trip

DAY_MS = 86_400_000


def _page(
    points: Sequence[GpsPoint],
    fleet_id: str,
    trip_id: str,
    from_ms: int,
    to_ms: int,
    after: tuple[int, str] | None,
    limit: int,
    vehicles: frozenset[str] | None,
) -> list[GpsPoint]:
    chosen = sorted(
        (
            p
            for p in points
            if p.fleet_id == fleet_id
            and p.trip_id == trip_id
            and from_ms <= p.ts < to_ms
            and (after is None or (p.ts, p.vehicle_id) > after)
            and (vehicles is None or p.vehicle_id in vehicles)
        ),
        key=lambda p: (p.ts, p.vehicle_id),
    )
    return chosen[:limit]


class FakePointLog:
    """PointLog and CurrentLocations in dicts, with the same ownership and dedupe rules."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, int], GpsPoint] = {}
        self.owners: dict[str, str] = {}
        self.current: dict[tuple[str, str], GpsPoint] = {}

    async def append(self, fleet_id: str, points: Sequence[GpsPoint]) -> AppendOutcome:
        inserted = duplicates = 0
        rejected = []
        for i, p in enumerate(points):
            owner = self.owners.setdefault(p.vehicle_id, fleet_id)
            if owner != fleet_id:
                rejected.append(Rejection(i, OUT_OF_SCOPE))
                continue
            key = (p.vehicle_id, p.ts)
            if key in self.points:
                duplicates += 1
                continue
            self.points[key] = p
            inserted += 1
            cur = self.current.get((fleet_id, p.vehicle_id))
            if cur is None or p.ts > cur.ts:
                self.current[(fleet_id, p.vehicle_id)] = p
        return AppendOutcome(inserted, duplicates, rejected)

    def fleet_of(self, vehicle_id: str) -> str | None:
        return self.owners.get(vehicle_id)

    def trip_points(self, fleet_id: str, trip_id: str, **q: object) -> list[GpsPoint]:
        return _page(list(self.points.values()), fleet_id, trip_id, **q)  # type: ignore[arg-type]

    def days_before(self, cutoff_ms: int) -> list[dt.date]:
        return sorted({day_of(p.ts) for p in self.points.values() if p.ts < cutoff_ms})

    def iter_points_between(
        self, from_ms: int, to_ms: int, chunk: int = 50_000
    ) -> Iterator[list[GpsPoint]]:
        chosen = sorted(
            (p for p in self.points.values() if from_ms <= p.ts < to_ms), key=lambda p: p.ts
        )
        for k in range(0, len(chosen), chunk):
            yield chosen[k : k + chunk]

    async def delete_between(self, from_ms: int, to_ms: int) -> int:
        gone = [k for k, p in self.points.items() if from_ms <= p.ts < to_ms]
        for k in gone:
            del self.points[k]
        return len(gone)

    async def delete_points(self, points: Sequence[GpsPoint]) -> int:
        n = 0
        for p in points:
            n += self.points.pop((p.vehicle_id, p.ts), None) is not None
        return n

    # CurrentLocations
    def get(self, fleet_id: str, vehicle_id: str) -> GpsPoint | None:
        return self.current.get((fleet_id, vehicle_id))

    def get_many(self, fleet_id: str, vehicle_ids: Sequence[str]) -> dict[str, GpsPoint]:
        return {v: p for v in vehicle_ids if (p := self.current.get((fleet_id, v)))}

    def count_newer_than(self, ts_ms: int) -> int:
        return sum(1 for p in self.current.values() if p.ts > ts_ms)

    async def forget_older_than(self, ts_ms: int) -> int:
        gone = [k for k, p in self.current.items() if p.ts < ts_ms]
        for k in gone:
            del self.current[k]
        return len(gone)


class FakeColdStore:
    def __init__(self) -> None:
        self.by_day: dict[dt.date, list[GpsPoint]] = {}

    def write_day(self, day: dt.date, points: Sequence[GpsPoint]) -> None:
        assert all(day_start_ms(day) <= p.ts < day_start_ms(day) + DAY_MS for p in points)
        self.by_day.setdefault(day, []).extend(points)

    def trip_points(self, fleet_id: str, trip_id: str, **q: object) -> list[GpsPoint]:
        every = [p for pts in self.by_day.values() for p in pts]
        return _page(every, fleet_id, trip_id, **q)  # type: ignore[arg-type]

    def days(self) -> list[dt.date]:
        return sorted(self.by_day)

    def stored_keys(self, fleet_id: str, keys: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        held = {(p.vehicle_id, p.ts) for pts in self.by_day.values() for p in pts
                if p.fleet_id == fleet_id}  # fmt: skip
        return held & set(keys)

    def drop_days_before(self, day: dt.date) -> list[dt.date]:
        dropped = [d for d in self.days() if d < day]
        for d in dropped:
            del self.by_day[d]
        return dropped


class FakeTokenStore:
    def __init__(self) -> None:
        self.tokens: dict[str, Principal] = {}
        self.lookups = 0

    def add(self, token_hash: str, principal: Principal, label: str) -> None:
        self.tokens[token_hash] = principal

    def find(self, token_hash: str) -> Principal | None:
        self.lookups += 1
        return self.tokens.get(token_hash)

    def count(self) -> int:
        return len(self.tokens)


def gps(
    vehicle_id: str = "V1",
    ts: int = 1_795_000_000_000,
    fleet_id: str = "f1",
    trip_id: str | None = None,
    lat: float = 18.5,
    lng: float = 73.8,
    speed: float = 0.0,
) -> GpsPoint:
    """A GpsPoint with sensible defaults."""
    return GpsPoint(
        fleet_id, vehicle_id, ts, lat, lng, speed, 0.0, 10.0, None, trip_id, None, None, ts
    )


class FakeSummaryStore:
    """SummaryStore over a list of trips (the ones it may report missing)."""

    def __init__(self, trips: Sequence[Trip]) -> None:
        self.trips = list(trips)
        self.summaries: dict[tuple[str, str], TripSummary] = {}

    async def put(self, summary: TripSummary) -> None:
        self.summaries[(summary.fleet_id, summary.trip_id)] = summary

    def get(self, fleet_id: str, trip_id: str) -> TripSummary | None:
        return self.summaries.get((fleet_id, trip_id))

    def missing(self, ended_since_ms: int, limit: int) -> list[Trip]:
        found = [t for t in self.trips
                 if (t.ended_at or 0) >= ended_since_ms
                 and (t.fleet_id, t.trip_id) not in self.summaries]  # fmt: skip
        return sorted(found, key=lambda t: t.ended_at or 0)[:limit]

"""PodService on a real data folder: uploads on one trip are serialised by a per-trip lock, and
those locks do not outlive their use (one per trip ever made would grow without end)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from trucktrack import bootstrap
from trucktrack.bootstrap import Services
from trucktrack.domain.model import Principal, Role
from trucktrack.domain.pod import PodType
from trucktrack.domain.trips import Milestone, Place
from trucktrack.services.ingest import wall_clock_ms
from trucktrack.services.pod import Capture
from trucktrack.services.trips import MilestoneRequest, TripDraft
from trucktrack.settings import Settings

ADMIN = Principal("f", Role.ADMIN, token_id="t")
HERE = Place(18.52, 73.85)
PHOTO = Capture(PodType.PHOTO, b"\xff\xd8\xff\xe0" + bytes(500))


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = bootstrap.local(Settings(data_dir=str(tmp_path / "data"), bootstrap_demo_token=False))
    yield s
    s.close()


async def start(services: Services, n: int) -> str:
    trip = await services.trips.create(ADMIN, TripDraft(f"V{n}", HERE, HERE, trip_id=f"T{n}"))
    request = MilestoneRequest(Milestone.TRIP_STARTED, wall_clock_ms())
    await services.trips.record_milestone(ADMIN, trip.trip_id, request)
    return trip.trip_id


def test_the_same_upload_at_once_is_stored_once(services: Services) -> None:
    async def run() -> list[bool]:
        trip_id = await start(services, 0)
        done = await asyncio.gather(
            *(services.pod.capture(ADMIN, trip_id, PHOTO) for _ in range(5))
        )
        return [c.repeated for c in done]

    assert sorted(asyncio.run(run())) == [False, True, True, True, True]
    assert len(services.pod.overview(ADMIN, "T0", wall_clock_ms()).captures) == 1


def test_per_trip_locks_go_once_unused(services: Services) -> None:
    async def run() -> None:
        for n in range(200):
            trip_id = await start(services, n)
            await services.pod.capture(ADMIN, trip_id, PHOTO)

    asyncio.run(run())
    gc.collect()
    assert len(services.pod._locks) == 0

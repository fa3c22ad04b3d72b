"""Concurrent clients on the shared server: retries racing each other, fleets racing for an id."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Server, Tokens, history, now_ms, point

THREADS = 8


def run_together(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run the jobs in threads released at the same instant; their results in order."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        barrier.wait(timeout=10)
        results[i] = jobs[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


def test_the_same_batch_posted_by_many_clients_at_once_is_stored_once(
    server: Server, tokens: Tokens, uid: str
) -> None:
    """GIVEN 8 clients posting the same 50 points at the same instant
    THEN each reply processes 50, the duplicates add up to 7 x 50, and history holds 50."""
    t = now_ms() - 10_000
    trip = f"CC-{uid}"
    batch = {"updates": [point(f"CC-{uid}", t + i, trip_id=trip) for i in range(50)]}

    def post() -> dict[str, Any]:
        with server.client(tokens.admin_a) as c:
            r = c.post("/tracking/gps", json=batch)
            assert r.status_code == 200, r.text
            return r.json()

    replies = run_together([post] * THREADS)
    assert all(r["processed"] == 50 and r["rejected"] == [] for r in replies)
    assert sum(r["duplicates"] for r in replies) == (THREADS - 1) * 50
    with server.client(tokens.admin_a) as c:
        assert [p["timestamp_ms"] for p in history(c, trip)] == [t + i for i in range(50)]


def test_two_fleets_racing_for_new_vehicle_ids_never_share_one(
    server: Server, tokens: Tokens, uid: str
) -> None:
    """GIVEN fleets A and B posting the same 20 new vehicle ids at the same instant
    THEN each id is stored for exactly one fleet, the other's points are rejected as out of
    scope, and only the winner can read the vehicle."""
    t = now_ms() - 1000
    ids = [f"RACE{i}-{uid}" for i in range(20)]

    def post(token: str, lat: float) -> dict[str, Any]:
        def job() -> dict[str, Any]:
            with server.client(token) as c:
                r = c.post("/tracking/gps", json={"updates": [point(v, t, lat=lat) for v in ids]})
                assert r.status_code in (200, 403), r.text
                return r.json() if r.status_code == 200 else {"processed": 0, "rejected": ids}

        return job

    jobs = [post(tokens.admin_a, 1), post(tokens.admin_b, 2)] * (THREADS // 2)
    replies = run_together(jobs)
    assert sum(r["processed"] for r in replies) == len(ids) * THREADS // 2
    with server.client(tokens.admin_a) as a, server.client(tokens.admin_b) as b:
        bulk_a = a.post("/tracking/vehicles/bulk", json={"vehicle_ids": ids}).json()
        bulk_b = b.post("/tracking/vehicles/bulk", json={"vehicle_ids": ids}).json()
    assert sorted(bulk_a["locations"]) == sorted(bulk_b["missing"])
    assert sorted(bulk_b["locations"]) == sorted(bulk_a["missing"])
    assert {loc["lat"] for loc in bulk_a["locations"].values()} <= {1.0}
    assert {loc["lat"] for loc in bulk_b["locations"].values()} <= {2.0}

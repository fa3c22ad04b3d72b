"""Old days move to Parquet (`trucktrack maintenance`) and history still reads them over HTTP."""

from __future__ import annotations

import json
import subprocess

import httpx

from tests.e2e.conftest import CLI, Server, history, now_ms, point

DAY = 86_400_000


def test_history_spans_hot_and_cold_tiers(server: Server, a: httpx.Client, uid: str) -> None:
    trip = f"TIER-{uid}"
    start = (now_ms() // DAY - 3) * DAY  # three days ago, 00:00 UTC
    old = [point(f"TV-{uid}", start + 3_600_000 * h, trip_id=trip, lat=h) for h in range(48)]
    new = [point(f"TV-{uid}", now_ms() - 1000 * i, trip_id=trip) for i in range(3)]
    r = a.post("/tracking/gps", json={"updates": old + new})
    assert r.json()["processed"] == 51, r.text

    out = subprocess.run(
        [*CLI, "maintenance", "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["moved_points"] >= 48
    assert list((server.data_dir / "cold" / "points").glob("day=*/part-*.parquet"))

    seen: list[int] = []
    cursor = None
    for _ in range(20):
        params: dict[str, object] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        body = a.get(f"/tracking/trip/{trip}/history", params=params).json()
        seen += [p["timestamp_ms"] for p in body["points"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(p["timestamp"] for p in old + new)
    gpx = a.get(f"/tracking/trip/{trip}/history", params={"format": "gpx", "limit": 60})
    assert gpx.text.count("<trkpt") == 51


def test_a_retry_of_points_already_in_the_cold_tier_is_a_duplicate(
    server: Server, a: httpx.Client, uid: str
) -> None:
    """GIVEN a batch from three days ago, stored and then moved to Parquet by maintenance
    WHEN the device retries the same batch THEN every point is reported as a duplicate and the
    trip still holds each point once."""
    trip = f"RETRY-{uid}"
    start = (now_ms() // DAY - 3) * DAY + 3_600_000
    batch = {"updates": [point(f"RV-{uid}", start + 1000 * i, trip_id=trip) for i in range(5)]}
    assert a.post("/tracking/gps", json=batch).json()["duplicates"] == 0
    out = subprocess.run(
        [*CLI, "maintenance", "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["moved_points"] >= 5
    again = a.post("/tracking/gps", json=batch)
    assert [p["timestamp_ms"] for p in history(a, trip)] == [start + 1000 * i for i in range(5)]
    assert again.json() == {"processed": 5, "duplicates": 5, "rejected": []}

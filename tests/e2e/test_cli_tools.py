"""`trucktrack simulate` and `trucktrack bench ingest` against a real server (short runs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.e2e.conftest import CLI, Server, Tokens


def test_simulate_posts_a_moving_fleet(server: Server, tokens: Tokens) -> None:
    out = subprocess.run(
        [*CLI, "simulate", "--url", server.url, "--token", tokens.dispatcher_a, "--vehicles", "30",
         "--interval", "0.5", "--duration", "2", "--batch", "10", "--seed", "11"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "accepted" in last and "errors 0" in last
    with server.client(tokens.admin_a) as c:
        ids = [f"TRK-{i:05d}" for i in range(1, 31)]
        bulk = c.post("/tracking/vehicles/bulk", json={"vehicle_ids": ids}).json()
    assert len(bulk["locations"]) == 30 and bulk["missing"] == []


def test_bench_ingest_runs_end_to_end(tmp_path: Path) -> None:
    md = tmp_path / "bench.md"
    out = subprocess.run(
        [*CLI, "bench", "ingest", "--vehicles", "200", "--clients", "4", "--duration", "1",
         "--warmup", "0", "--paced-rate", "2000", "--read-duration", "0.5", "--markdown", str(md),
         "--variant", "trips:trips=50"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "50 trips started" in out.stderr
    report = md.read_text()
    assert "| [trips] max ingest, 4 clients |" in report
    assert "| max ingest, 4 clients |" in report and "| paced 2000 points/s |" in report
    assert "current-location reads" in report
    # The trucks drove along their routes: every sampled trip has progress and an ETA.
    (trips,) = [line for line in report.splitlines() if "[trips] trip reads" in line]
    assert "no progress: 0, on route: 20 |" in trips, trips
    for line in report.splitlines():
        if line.startswith("| max ingest") or line.startswith("| paced"):
            assert "200: " in line and "error" not in line and "503" not in line, line


def test_bench_geofence_compares_the_chain_and_the_naive_loop() -> None:
    out = subprocess.run(
        [*CLI, "bench", "geofence", "--fences", "300", "--vehicles", "200", "--rounds", "2",
         "--naive-seconds", "0.5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "| whole chain: TrackProcessor" in out.stdout
    assert "| spatial part alone, grid" in out.stdout and "STRtree" in out.stdout
    assert "| naive: every fence per point" in out.stdout and "whole chain vs naive:" in out.stdout


def test_a_fresh_data_dir_prints_a_working_first_token(tmp_path: Path) -> None:
    server = Server(tmp_path / "fresh", env={"TRUCKTRACK_BOOTSTRAP_DEMO_TOKEN": "true"}).start()
    try:
        log = server.log.read_text()
        token = next(line.split("=", 1)[1] for line in log.splitlines() if "export TOKEN=" in line)
        with server.client(token) as c:
            r = c.post(
                "/tracking/gps", json={"updates": [{"vehicle_id": "D1", "lat": 1, "lng": 2}]}
            )
        assert r.status_code == 200
        assert "curl" in log
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        server.stop()


def test_bench_realtime_reports_latency_and_no_loss() -> None:
    out = subprocess.run(
        [*CLI, "bench", "realtime", "--clients", "20", "--per-client", "5", "--rate", "1000",
         "--warmup", "1", "--duration", "2", "--settle", "1.5", "--timeline"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("| ") and "of" in line)
    assert row.rstrip(" |").endswith("0 of 100"), row
    # Only the 2,000 points sent after the warm-up are measured (each delivered at most once).
    deliveries = int(row.split("|")[1].replace(",", ""))
    assert 0 < deliveries <= 2000, row
    assert "after 1 s of warm-up" in out.stdout
    assert "deliveries: " in out.stdout and "POST replies: " in out.stdout


def test_bench_mqtt_stores_everything_published() -> None:
    out = subprocess.run(
        [*CLI, "bench", "mqtt", "--vehicles", "20", "--publishers", "2", "--batch", "10",
         "--duration", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    row = out.stdout.strip().splitlines()[-1]
    published, stored = (int(cell.strip().replace(",", "")) for cell in row.split("|")[1:3])
    assert published > 0 and stored == published, row


def test_bench_compliance_compares_the_checker_and_the_naive_way(tmp_path: Path) -> None:
    md = tmp_path / "bench.md"
    out = subprocess.run(
        [*CLI, "bench", "compliance", "--trips", "200", "--vertices", "50", "--fixes", "10",
         "--per-batch", "5", "--passes", "1", "--naive-seconds", "0.3", "--churn", "20",
         "--markdown", str(md)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = md.read_text()
    assert report.strip() == out.stdout.strip()
    assert "| ComplianceChecker.check, all 2 batches" in report
    assert "| naive: every segment of the route per fix" in report and "checker vs naive:" in report
    agree = float(report.split("agree within ")[1].split(" m")[0])
    assert agree < 1.0, report

"""The benchmark scripts under benchmarks/ at a small size, so a change elsewhere cannot break
them unnoticed (the full runs that fill BENCHMARKS.md take minutes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_trip_summary_benchmark_completes_a_trip_and_summarises_it() -> None:
    # The trip goes through trip_completed under the default POD policy (photo and signature).
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "trip_summary.py"), "--days", "1",
         "--vertices", "100", "--repeat", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "8640 points" in out.stdout and "| 100 |" in out.stdout
    assert "SummaryService.compute, 8640 points from SQLite, 100 route vertices" in out.stdout


def test_progress_publish_benchmark_times_both_shapes() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "progress_publish.py"), "--trips", "200",
         "--per-group", "50", "--repeat", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "| all 200 rows (at the snapshot) | 1 |" in out.stdout
    assert "| 50 rows (per group) | 4 |" in out.stdout

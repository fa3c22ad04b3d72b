"""Trip history from the cold tier: a part sorted by trip (as written now) vs written as it came.

Run: .venv/bin/python benchmarks/cold_reads.py [--points 1000000]

One day of points for 10,000 vehicles (one trip each) goes into one Parquet part each way; then
20 trips' histories are read back through `ParquetColdStore.trip_points`, side by side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from trucktrack.adapters.parquet import ParquetColdStore, _table_of
from trucktrack.domain.model import GpsPoint

DAY = dt.date(2026, 11, 20)
T0 = 1_795_132_800_000


def _ms_per_read(store: ParquetColdStore) -> float:
    started = time.perf_counter()
    for k in range(20):
        store.trip_points(
            "f", f"T{k * 37}", from_ms=0, to_ms=2**62, after=None, limit=1000, vehicles=None
        )
    return (time.perf_counter() - started) / 20 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    n = parser.parse_args().points
    points = [
        GpsPoint("f", f"V{i % 10_000}", T0 + i * 80, 18.0, 73.0, 50.0, 0.0, 10.0, None,
                 f"T{i % 10_000}", None, None, T0)
        for i in range(n)
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        sorted_store = ParquetColdStore(Path(folder) / "sorted")
        sorted_store.write_day(DAY, points)
        plain_dir = Path(folder) / "plain" / "points" / f"day={DAY}"
        plain_dir.mkdir(parents=True)
        pq.write_table(_table_of(points), plain_dir / "part-0.parquet", compression="zstd")
        plain_store = ParquetColdStore(Path(folder) / "plain")
        print(f"{'part layout':30s} {'ms per trip history':>20s}")
        print(f"{'as it came (time order)':30s} {_ms_per_read(plain_store):20.1f}")
        print(f"{'sorted by trip, 32k row groups':30s} {_ms_per_read(sorted_store):20.1f}")


if __name__ == "__main__":
    main()

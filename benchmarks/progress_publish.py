"""Why trip progress is published a little per group: one commit with every active trip's row
against the rows of one group, side by side.

Run: .venv/bin/python benchmarks/progress_publish.py [--trips 10000] [--per-group 1000]

The stream used to write every moved trip's `trip_progress` row at each processor snapshot (every
10 s), all in the one group commit that took the snapshot; now the rows become due at the
snapshot and each group writes at most `--per-group` of them. This times both shapes the way the
writer runs them: the rows encoded (msgpack), `INSERT OR REPLACE` with executemany, WAL and
synchronous=FULL, one durable commit each, in a real database of `--trips` progress rows.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time

import msgspec

from trucktrack.adapters.sqlite.schema import SCHEMA
from trucktrack.domain.compliance import TripProgress


def _rows(trips: range, round_: int) -> list[tuple[int, bool, bytes]]:
    encode = msgspec.msgpack.Encoder().encode
    return [
        (key, False, encode(TripProgress(
            500_000.0, 1_000.0 * round_ + key, 400_000.0, 12.0, 52.5,
            1_796_160_000_000 + key, 1_796_160_000_000, False, False,
        )))
        for key in trips
    ]  # fmt: skip


def _commit_ms(conn: sqlite3.Connection, trips: range, round_: int) -> float:
    started = time.perf_counter()
    rows = _rows(trips, round_)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT OR REPLACE INTO trip_progress VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=10_000)
    parser.add_argument("--per-group", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as folder:
        conn = sqlite3.connect(os.path.join(folder, "progress.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        _commit_ms(conn, range(args.trips), 0)  # every trip has a row, as in a running server
        every = [_commit_ms(conn, range(args.trips), r) for r in range(1, args.repeat + 1)]
        some = [
            _commit_ms(conn, range(g * args.per_group, (g + 1) * args.per_group), r)
            for r in range(1, args.repeat + 1)
            for g in range(args.trips // args.per_group)
        ]
        conn.close()
    print(f"{args.trips} trips, SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL")
    print("| one commit writes | commits | median ms | max ms |")
    print("|---|---:|---:|---:|")
    print(f"| all {args.trips:,} rows (at the snapshot) | {len(every)} | "
          f"{statistics.median(every):.1f} | {max(every):.1f} |")  # fmt: skip
    print(f"| {args.per_group:,} rows (per group) | {len(some)} | "
          f"{statistics.median(some):.1f} | {max(some):.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()

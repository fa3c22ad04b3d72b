"""Why the hot tier stores integer vehicle and trip keys: insert rates of two schemas side by side.

Run: .venv/bin/python benchmarks/storage_keys.py [--rows 200000]

Each variant appends the same points (10,000 vehicles, one trip each) in transactions of 1,000
rows with executemany, WAL and synchronous=FULL, as the group-commit writer does.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time

from trucktrack.adapters.sqlite.schema import SCHEMA as INTEGER_KEYS

TEXT_KEYS = """
CREATE TABLE points (
    fleet_id TEXT NOT NULL, vehicle_id TEXT NOT NULL, ts INTEGER NOT NULL, lat REAL, lng REAL,
    speed REAL, heading REAL, accuracy REAL, altitude REAL, trip_id TEXT, driver_id TEXT,
    engine_status INTEGER, received_at INTEGER, PRIMARY KEY (ts, fleet_id, vehicle_id)
) WITHOUT ROWID;
CREATE INDEX points_by_trip ON points (fleet_id, trip_id, ts, vehicle_id)
    WHERE trip_id IS NOT NULL;
CREATE TABLE current_location (
    fleet_id TEXT NOT NULL, vehicle_id TEXT NOT NULL, ts INTEGER NOT NULL, lat REAL, lng REAL,
    speed REAL, heading REAL, accuracy REAL, altitude REAL, trip_id TEXT, driver_id TEXT,
    engine_status INTEGER, received_at INTEGER, PRIMARY KEY (fleet_id, vehicle_id)
) WITHOUT ROWID;
CREATE TRIGGER keep_newest AFTER INSERT ON points BEGIN
    INSERT INTO current_location VALUES (NEW.fleet_id, NEW.vehicle_id, NEW.ts, NEW.lat, NEW.lng,
        NEW.speed, NEW.heading, NEW.accuracy, NEW.altitude, NEW.trip_id, NEW.driver_id,
        NEW.engine_status, NEW.received_at)
    ON CONFLICT (fleet_id, vehicle_id) DO UPDATE SET ts = excluded.ts, lat = excluded.lat,
        lng = excluded.lng, speed = excluded.speed, heading = excluded.heading,
        accuracy = excluded.accuracy, altitude = excluded.altitude, trip_id = excluded.trip_id,
        driver_id = excluded.driver_id, engine_status = excluded.engine_status,
        received_at = excluded.received_at
    WHERE excluded.ts > current_location.ts;
END;
"""


def _rate(schema: str, insert: str, rows: list[tuple[object, ...]], folder: str) -> float:
    path = os.path.join(folder, f"{random.random()}.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA cache_size=-65536")
    conn.executescript(schema)
    started = time.perf_counter()
    for k in range(0, len(rows), 1000):
        conn.execute("BEGIN")
        conn.executemany(insert, rows[k : k + 1000])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    n = parser.parse_args().rows
    rng = random.Random(1)
    t0 = 1_795_000_000_000
    text_rows = [
        ("bench", f"V{i % 10000}", t0 + i, 20 + rng.random(), 77 + rng.random(), 50.0, 90.0,
         10.0, None, f"T{i % 10000}", None, None, t0)
        for i in range(n)
    ]  # fmt: skip
    int_rows = [
        (t0 + i, i % 10000 + 1, r[3], r[4], 50.0, 90.0, 10.0, None, i % 10000 + 1, None, None, t0)
        for i, r in enumerate(text_rows)
    ]
    with tempfile.TemporaryDirectory() as folder:
        text = _rate(TEXT_KEYS, f"INSERT OR IGNORE INTO points VALUES ({','.join('?' * 13)})",
                     text_rows, folder)  # fmt: skip
        ints = _rate(INTEGER_KEYS, f"INSERT OR IGNORE INTO points VALUES ({','.join('?' * 12)})",
                     int_rows, folder)  # fmt: skip
    print(f"{'schema':34s} {'rows/s':>10s}")
    print(f"{'text keys (fleet_id, vehicle_id)':34s} {text:10.0f}")
    print(f"{'integer keys (vkey, trip_key)':34s} {ints:10.0f}")
    print(f"ratio: {ints / text:.2f}x")


if __name__ == "__main__":
    main()

"""Tables of the embedded store and how connections to it are opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1

# points: the hot tier. The time-first key keeps appends at the end of the B-tree as the table
# grows (vehicle-first keys slow inserts ~6x by 2M rows, see DESIGN.md).
SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    fleet_id TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    lat REAL NOT NULL,
    lng REAL NOT NULL,
    speed REAL NOT NULL,
    heading REAL NOT NULL,
    accuracy REAL NOT NULL,
    altitude REAL,
    trip_id TEXT,
    driver_id TEXT,
    engine_status INTEGER,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (ts, fleet_id, vehicle_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_trip ON points (fleet_id, trip_id, ts, vehicle_id)
    WHERE trip_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS current_location (
    fleet_id TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    lat REAL NOT NULL,
    lng REAL NOT NULL,
    speed REAL NOT NULL,
    heading REAL NOT NULL,
    accuracy REAL NOT NULL,
    altitude REAL,
    trip_id TEXT,
    driver_id TEXT,
    engine_status INTEGER,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (fleet_id, vehicle_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS current_location_by_ts ON current_location (ts);

CREATE TABLE IF NOT EXISTS vehicles (
    vehicle_id TEXT PRIMARY KEY,
    fleet_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    token_id TEXT NOT NULL UNIQUE,
    fleet_id TEXT NOT NULL,
    role TEXT NOT NULL,
    vehicles TEXT,
    label TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) WITHOUT ROWID;
"""

POINT_COLUMNS = (
    "fleet_id, vehicle_id, ts, lat, lng, speed, heading, accuracy, altitude, trip_id, "
    "driver_id, engine_status, received_at"
)


def connect(path: Path, *, synchronous: str = "FULL", readonly: bool = False) -> sqlite3.Connection:
    """A connection with the pragmas every trucktrack connection needs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30.0, cached_statements=64
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={_checked_sync(synchronous)}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-65536")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


def _checked_sync(value: str) -> str:
    value = value.upper()
    if value not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA, not {value!r}")
    return value


def create_schema(path: Path) -> None:
    """Create the tables if they are missing (idempotent)."""
    conn = connect(path)
    try:
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    finally:
        conn.close()

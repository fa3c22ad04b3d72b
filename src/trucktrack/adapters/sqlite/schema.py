"""Tables of the embedded store and how connections to it are opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 2

# points: the hot tier. Vehicles and trips are stored as small integer keys: text keys made every
# insert ~1.5x slower (benchmarks/storage_keys.py). The time-first key keeps appends at the end of
# the B-tree as the table grows (vehicle-first keys slow inserts ~6x by 2M rows, see DESIGN.md).
SCHEMA = """
CREATE TABLE IF NOT EXISTS vehicles (
    vkey INTEGER PRIMARY KEY,
    vehicle_id TEXT NOT NULL UNIQUE,
    fleet_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS trip_keys (
    trip_key INTEGER PRIMARY KEY,
    fleet_id TEXT NOT NULL,
    trip_id TEXT NOT NULL,
    UNIQUE (fleet_id, trip_id)
);

CREATE TABLE IF NOT EXISTS points (
    ts INTEGER NOT NULL,
    vkey INTEGER NOT NULL,
    lat REAL NOT NULL,
    lng REAL NOT NULL,
    speed REAL NOT NULL,
    heading REAL NOT NULL,
    accuracy REAL NOT NULL,
    altitude REAL,
    trip_key INTEGER,
    driver_id TEXT,
    engine_status INTEGER,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (ts, vkey)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_trip ON points (trip_key, ts, vkey)
    WHERE trip_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS current_location (
    vkey INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    lat REAL NOT NULL,
    lng REAL NOT NULL,
    speed REAL NOT NULL,
    heading REAL NOT NULL,
    accuracy REAL NOT NULL,
    altitude REAL,
    trip_key INTEGER,
    driver_id TEXT,
    engine_status INTEGER,
    received_at INTEGER NOT NULL
);

-- The newest point per vehicle is kept by SQLite itself, inside the insert's transaction: a late
-- (older) point never moves the current location backwards.
CREATE TRIGGER IF NOT EXISTS points_keep_newest AFTER INSERT ON points BEGIN
    INSERT INTO current_location VALUES (
        NEW.vkey, NEW.ts, NEW.lat, NEW.lng, NEW.speed, NEW.heading, NEW.accuracy, NEW.altitude,
        NEW.trip_key, NEW.driver_id, NEW.engine_status, NEW.received_at
    )
    ON CONFLICT (vkey) DO UPDATE SET
        ts = excluded.ts, lat = excluded.lat, lng = excluded.lng, speed = excluded.speed,
        heading = excluded.heading, accuracy = excluded.accuracy, altitude = excluded.altitude,
        trip_key = excluded.trip_key, driver_id = excluded.driver_id,
        engine_status = excluded.engine_status, received_at = excluded.received_at
    WHERE excluded.ts > current_location.ts;
END;

CREATE TABLE IF NOT EXISTS geofences (
    fleet_id TEXT NOT NULL,
    geofence_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    active INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    body BLOB NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (fleet_id, geofence_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS geofences_by_active ON geofences (active, created_at);

-- Every change to the fences is a new generation of the catalogue the processors use; a fence
-- remembers the generation it was last written in (a vehicle that has not reported since sees
-- it for the first time: a baseline, not an entry).
CREATE TABLE IF NOT EXISTS fence_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    gen INTEGER NOT NULL
);
INSERT OR IGNORE INTO fence_generation VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS geofences_written AFTER INSERT ON geofences BEGIN
    UPDATE fence_generation SET gen = gen + 1;
    UPDATE geofences SET generation = (SELECT gen FROM fence_generation)
        WHERE fleet_id = NEW.fleet_id AND geofence_id = NEW.geofence_id;
END;
CREATE TRIGGER IF NOT EXISTS geofences_deleted AFTER DELETE ON geofences BEGIN
    UPDATE fence_generation SET gen = gen + 1;
END;

-- The processors' input since their last snapshot, one row per group commit, in order: after
-- a crash the state is the snapshot plus a replay of these, giving the very same events.
CREATE TABLE IF NOT EXISTS stream_journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even once the table is emptied
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS stream_snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    journal_seq INTEGER NOT NULL,
    taken_at INTEGER NOT NULL,
    body BLOB NOT NULL
);

-- Stops found by the stop detector (open while ended_ts is NULL).
CREATE TABLE IF NOT EXISTS stops (
    vkey INTEGER NOT NULL,
    started_ts INTEGER NOT NULL,
    ended_ts INTEGER,
    lat REAL NOT NULL,
    lng REAL NOT NULL,
    trip_key INTEGER,
    authorised INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    PRIMARY KEY (vkey, started_ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stops_by_trip ON stops (trip_key, started_ts)
    WHERE trip_key IS NOT NULL;

-- Filtered distance per vehicle and trip, as of the processors' last snapshot.
CREATE TABLE IF NOT EXISTS vehicle_distance (
    vkey INTEGER PRIMARY KEY,
    metres REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trip_distance (
    trip_key INTEGER PRIMARY KEY,
    metres REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS alerts (
    fleet_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    type TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    trip_id TEXT,
    ts INTEGER NOT NULL,
    dedupe_key TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (fleet_id, alert_id),
    UNIQUE (fleet_id, dedupe_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (fleet_id, ts, alert_id);

-- Alerts waiting for webhook delivery (at least once: a row goes only after a 2xx).
CREATE TABLE IF NOT EXISTS alert_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    fleet_id TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

-- A fleet's own alert webhook; its secret signs the deliveries, so it is kept as given.
CREATE TABLE IF NOT EXISTS webhooks (
    fleet_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    token_id TEXT NOT NULL UNIQUE,
    fleet_id TEXT NOT NULL,
    role TEXT NOT NULL,
    vehicles TEXT,
    label TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    trips TEXT
) WITHOUT ROWID;

-- Trips: the columns the indexes need (the spec's vehicle-trips and booking-tracking) and the
-- whole record, milestones included, as msgpack. `version` guards against lost updates.
CREATE TABLE IF NOT EXISTS trips (
    fleet_id TEXT NOT NULL,
    trip_id TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    booking_id TEXT,
    status TEXT NOT NULL,
    planned_start INTEGER,
    started_at INTEGER,
    ended_at INTEGER,
    created_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body BLOB NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (fleet_id, trip_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trips_by_vehicle
    ON trips (fleet_id, vehicle_id, coalesce(started_at, planned_start, created_at), trip_id);
CREATE INDEX IF NOT EXISTS trips_by_booking ON trips (fleet_id, booking_id, created_at, trip_id)
    WHERE booking_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS trips_open ON trips (status, ended_at);
CREATE INDEX IF NOT EXISTS trips_by_generation ON trips (generation);

-- Every trip change is a new generation; a trip remembers the one it was last written in, so
-- the processors reload only the trips that changed (routes to check against, trips ended).
CREATE TABLE IF NOT EXISTS trip_generation (id INTEGER PRIMARY KEY CHECK (id = 1), gen INTEGER);
INSERT OR IGNORE INTO trip_generation VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS trips_inserted AFTER INSERT ON trips BEGIN
    UPDATE trip_generation SET gen = gen + 1;
    UPDATE trips SET generation = (SELECT gen FROM trip_generation)
        WHERE fleet_id = NEW.fleet_id AND trip_id = NEW.trip_id;
END;
CREATE TRIGGER IF NOT EXISTS trips_updated AFTER UPDATE OF body ON trips BEGIN
    UPDATE trip_generation SET gen = gen + 1;
    UPDATE trips SET generation = (SELECT gen FROM trip_generation)
        WHERE fleet_id = NEW.fleet_id AND trip_id = NEW.trip_id;
END;

-- Proof of delivery: captures (their files are in the object store), the trip's current OTP
-- (a salted hash only) and each fleet's policy of what completing a trip needs.
CREATE TABLE IF NOT EXISTS pod_records (
    pod_id TEXT PRIMARY KEY,
    fleet_id TEXT NOT NULL,
    trip_id TEXT NOT NULL,
    type TEXT NOT NULL,
    uploaded_at INTEGER NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pod_by_trip ON pod_records (fleet_id, trip_id, uploaded_at);
CREATE TABLE IF NOT EXISTS otp_challenges (
    fleet_id TEXT NOT NULL,
    trip_id TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (fleet_id, trip_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pod_policies (
    fleet_id TEXT PRIMARY KEY,
    body BLOB NOT NULL
) WITHOUT ROWID;

-- Where each active trip stands on its planned route, as of the processors' last snapshot.
CREATE TABLE IF NOT EXISTS trip_progress (
    trip_key INTEGER PRIMARY KEY,
    deviating INTEGER NOT NULL,
    body BLOB NOT NULL
);

-- A completed trip's summary (msgpack), made when it completes; `version` says by which rules.
CREATE TABLE IF NOT EXISTS trip_summaries (
    fleet_id TEXT NOT NULL,
    trip_id TEXT NOT NULL,
    computed_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (fleet_id, trip_id)
) WITHOUT ROWID;

-- What a fleet says about a vehicle for the fuel model (class, km/l, idle burn, capacity).
CREATE TABLE IF NOT EXISTS vehicle_profiles (
    fleet_id TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (fleet_id, vehicle_id)
) WITHOUT ROWID;
"""

# Selecting a point back as GpsPoint fields, from `<table> AS p` joined with vehicles and trips.
POINT_SELECT = (
    "v.fleet_id, v.vehicle_id, p.ts, p.lat, p.lng, p.speed, p.heading, p.accuracy, p.altitude, "
    "t.trip_id, p.driver_id, p.engine_status, p.received_at"
)
POINT_JOINS = (
    "JOIN vehicles AS v ON v.vkey = p.vkey LEFT JOIN trip_keys AS t ON t.trip_key = p.trip_key"
)
INSERT_POINT = "INSERT OR IGNORE INTO points VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


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
        columns = {row[1] for row in conn.execute("PRAGMA table_info(geofences)")}
        if columns and "generation" not in columns:  # a version-1 database
            conn.execute("ALTER TABLE geofences ADD COLUMN generation INTEGER NOT NULL DEFAULT 0")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(tokens)")}
        if columns and "trips" not in columns:
            conn.execute("ALTER TABLE tokens ADD COLUMN trips TEXT")
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    finally:
        conn.close()

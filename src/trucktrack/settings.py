"""Every setting in one place, typed, with its default and a line saying what it does.

Settings come from `TRUCKTRACK_*` environment variables (e.g. `TRUCKTRACK_RETENTION_DAYS=7`), then
from command-line flags, which win. An unknown or malformed value fails at start-up, loudly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Runtime configuration of one trucktrack process."""

    data_dir: str = "./data"
    """Where the SQLite database (hot tier, tokens) and the cold Parquet tier live."""
    host: str = "127.0.0.1"
    """Interface the HTTP server binds to."""
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    """TCP port of the HTTP server (0 picks a free one)."""

    max_batch_points: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    """Most points one `POST /tracking/gps` may carry; more gets 413."""
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 4 * 1024 * 1024
    """Largest request body, before and after gzip decompression; more gets 413."""
    max_future_s: Annotated[float, Meta(ge=0)] = 300.0
    """Points stamped further ahead of the server clock than this are rejected."""
    retention_days: Annotated[float, Meta(gt=0)] = 30.0
    """Points older than this are refused at ingest and deleted by maintenance."""
    hot_window_h: Annotated[float, Meta(gt=0)] = 24.0
    """Points stay in SQLite this long; whole older days move to Parquet."""
    location_ttl_h: Annotated[float, Meta(gt=0)] = 24.0
    """A current location older than this is reported as unknown (404)."""
    maintenance_interval_s: Annotated[float, Meta(gt=0)] = 3600.0
    """How often the server moves old days to the cold tier and applies retention."""

    max_pending_points: Annotated[int, Meta(ge=1)] = 50_000
    """Points waiting for the disk beyond which ingest answers 503 with Retry-After."""
    max_inflight_requests: Annotated[int, Meta(ge=1)] = 512
    """HTTP requests being served at once beyond which new ones get 503 with Retry-After."""
    max_group_points: Annotated[int, Meta(ge=1)] = 20_000
    """Most points one group commit writes in a single transaction."""
    sqlite_synchronous: str = "FULL"
    """SQLite `synchronous` pragma: FULL makes every acknowledged point survive power loss."""

    webhook_url: str = ""
    """Where every new alert is POSTed (JSON, HMAC-signed); empty: no webhook."""
    webhook_secret: str = ""
    """The HMAC-SHA256 key for the X-Trucktrack-Signature header."""

    token_cache_s: Annotated[float, Meta(ge=0)] = 10.0
    """How long a verified token is trusted before it is looked up again (revocation delay)."""
    bootstrap_demo_token: bool = True
    """On the first start with an empty data dir, create and print an admin token for `demo`."""

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "trucktrack.db"

    @property
    def cold_dir(self) -> Path:
        return Path(self.data_dir) / "cold"


ENV_PREFIX = "TRUCKTRACK_"


def load_settings(overrides: dict[str, object] | None = None) -> Settings:
    """Settings from the environment, then `overrides` (e.g. CLI flags; None values are ignored)."""
    raw: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        value = os.environ.get(ENV_PREFIX + field.name.upper())
        if value is not None:
            raw[field.name] = value
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    try:
        # str_values lets "30" from the environment become 30.0; constraints still apply.
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"trucktrack: bad setting: {exc}") from exc

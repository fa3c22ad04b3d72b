"""With the ASGI ingest door off, the framework route answers POST /tracking/gps the same way."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx

from tests.e2e.conftest import Server, create_token, now_ms, point


def test_the_framework_route_gives_the_same_replies(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"TRUCKTRACK_INGEST_DOOR": "false"}).start()
    try:
        token = create_token(server.data_dir, "nodoor", "admin")
        viewer = create_token(server.data_dir, "nodoor", "viewer")
        t = now_ms() - 1000
        batch = {"updates": [point("ND-1", t), point("ND-1", t + 1, lat=95)]}
        with server.client(token) as c:
            r = c.post("/tracking/gps", json=batch)
            assert r.status_code == 200
            assert r.json()["processed"] == 1 and r.json()["rejected"][0]["index"] == 1
            again = c.post(
                "/tracking/gps",
                content=gzip.compress(json.dumps(batch).encode()),
                headers={"Content-Encoding": "gzip"},
            )
            assert again.json()["duplicates"] == 1
            assert c.post("/tracking/gps", content=b"nope").status_code == 400
            too_many = {"updates": [point("ND-2", t + i) for i in range(1001)]}
            assert c.post("/tracking/gps", json=too_many).status_code == 413
        r = httpx.post(server.url + "/tracking/gps", json=batch)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        with server.client(viewer) as v:
            assert v.post("/tracking/gps", json=batch).status_code == 403
    finally:
        server.stop()

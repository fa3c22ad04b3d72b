"""SIGKILL the server right after proof of delivery is acknowledged: every capture answered 201
(and a verified OTP) must be there after a restart, its file byte for byte; and a file a crash
left without its record is never shown and does not double a retried upload."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import JsonReceiver, Server, create_token
from tests.e2e.test_pod import JPEG, PDF, PLACE, STROKES, start_trip, upload
from trucktrack.domain.pod import PodType, capture_id


@pytest.fixture
def gateway() -> Iterator[JsonReceiver]:
    with JsonReceiver() as srv:
        yield srv


@pytest.mark.timeout(120)
def test_acknowledged_captures_survive_sigkill(tmp_path: Path, gateway: JsonReceiver) -> None:
    env = {"TRUCKTRACK_OTP_WEBHOOK_URL": f"{gateway.url}/otp"}
    server = Server(tmp_path / "data", env=env).start()
    try:
        token = create_token(server.data_dir, "podcrash", "admin")
        with server.client(token) as c:
            trip_id = start_trip(c, "crash")
            assert c.post("/delivery/otp", json={"trip_id": trip_id}).status_code == 202
            acked = []
            for kind, data, fields in [
                ("photo", JPEG, PLACE),
                ("signature", STROKES, {"signer_name": "Asha"}),
                ("weight_receipt", PDF, {"weight_kg": 12_480}),
                ("otp", None, {"code": gateway.bodies()[-1]["code"]}),
            ]:
                r = upload(c, trip_id, kind, data, **fields)
                assert r.status_code == 201, r.text
                acked.append(r.json())
        server.kill()  # at once, after the last 201

        server.start()
        with server.client(token) as c, httpx.Client(base_url=server.url) as anonymous:
            listed = c.get(f"/trips/{trip_id}/pod").json()
            assert [x["pod_id"] for x in listed["captures"]] == [a["pod_id"] for a in acked]
            assert listed["missing"] == [] and listed["otp"]["state"] == "verified"
            for capture in listed["captures"][:3]:
                body = anonymous.get(capture["download"])
                assert body.status_code == 200
                assert hashlib.sha256(body.content).hexdigest() == capture["sha256"]

            # A crash between writing a file and storing its record leaves the file alone at
            # the key its upload would have had. It is never listed, and the retry (the client
            # had no 201) rewrites it rather than adding a second one.
            photo = JPEG + b"late"
            sha = hashlib.sha256(photo).hexdigest()
            folder = server.data_dir / "objects" / "podcrash" / "pod" / trip_id / "photo"
            orphan = folder / f"{capture_id('podcrash', trip_id, PodType.PHOTO, sha)}.jpg"
            orphan.write_bytes(photo)
            assert len(c.get(f"/trips/{trip_id}/pod").json()["captures"]) == 4
            retried = upload(c, trip_id, "photo", photo)
            assert retried.status_code == 201 and retried.json()["sha256"] == sha
            assert sorted(p.name for p in folder.iterdir()) == sorted(
                [f"{acked[0]['pod_id']}.jpg", orphan.name]
            )
            assert anonymous.get(retried.json()["download"]).content == photo
    finally:
        server.stop()

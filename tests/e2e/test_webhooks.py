"""Alerts reach a webhook signed with HMAC-SHA256, and a failed delivery is retried."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

from tests.e2e.conftest import JsonReceiver, Server, create_token, now_ms

SECRET = "s3cret-for-tests"


def test_a_panic_alert_is_delivered_signed_after_a_failed_try(tmp_path: Path) -> None:
    # The receiver answers 500 to the first delivery and 200 to the rest.
    receiver = JsonReceiver(answer=lambda _: 500 if len(receiver.requests) == 1 else 200).start()
    env = {
        "TRUCKTRACK_WEBHOOK_URL": f"{receiver.url}/hook",
        "TRUCKTRACK_WEBHOOK_SECRET": SECRET,
    }
    server = Server(tmp_path / "data", env=env).start()
    try:
        token = create_token(server.data_dir, "hooks", "admin")
        with server.client(token) as c:
            c.post("/tracking/gps", json={"updates": [{"vehicle_id": "W1", "lat": 1, "lng": 2}]})
            alert = c.post(
                "/tracking/emergency", json={"vehicle_id": "W1", "timestamp": now_ms() - 5}
            ).json()
            deadline = time.monotonic() + 20
            while len(receiver.requests) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(receiver.requests) == 2, "no retry after the first failure"
            for headers, body in receiver.requests:
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                assert headers["X-Trucktrack-Signature"] == expected
                assert headers["X-Trucktrack-Delivery"] == alert["alert_id"]
                sent = json.loads(body)
                assert (sent["alert_id"], sent["type"], sent["severity"]) == (
                    alert["alert_id"], "panic", "critical",
                )  # fmt: skip
            metrics = c.get("/metrics").text
            assert "webhook_deliveries_total 1.0" in metrics
            assert "webhook_failures_total 1.0" in metrics
            time.sleep(1.5)
            assert len(receiver.requests) == 2  # delivered once it got a 2xx
    finally:
        server.stop()
        receiver.stop()


def test_each_fleet_gets_its_own_alerts_at_its_own_webhook(tmp_path: Path) -> None:
    receivers = [JsonReceiver(answer=lambda _: 204).start() for _ in range(2)]  # one per fleet
    server = Server(tmp_path / "data").start()  # no deployment-wide webhook
    try:
        a = create_token(server.data_dir, "fleet-x", "admin")
        b = create_token(server.data_dir, "fleet-y", "admin")
        dispatcher = create_token(server.data_dir, "fleet-x", "dispatcher")
        with server.client(a) as ca, server.client(b) as cb, server.client(dispatcher) as cd:
            url_a, url_b = (f"{r.url}/alerts" for r in receivers)
            r = ca.put("/alerts/webhook", json={"url": url_a, "secret": SECRET})
            assert r.status_code == 200 and r.json()["secret"] is None, r.text
            made = cb.put("/alerts/webhook", json={"url": url_b}).json()
            secret_b = made["secret"]
            assert secret_b.startswith("whsec_") and len(secret_b) > 30
            shown = cb.get("/alerts/webhook").json()
            assert shown["url"] == url_b and shown["secret"] is None
            assert cd.get("/alerts/webhook").status_code == 403
            assert cd.put("/alerts/webhook", json={"url": url_a}).status_code == 403
            for bad, status in (
                ({"url": "ftp://127.0.0.1/x"}, 422), ({"url": "http://u:p@127.0.0.1/x"}, 422),
                ({"url": "not a url"}, 422), ({"url": url_a, "secret": "short"}, 400),
                ({"url": url_a, "extra": 1}, 400), ({}, 400),
            ):  # fmt: skip
                assert ca.put("/alerts/webhook", json=bad).status_code == status, bad

            for client, vehicle in ((ca, "X-1"), (cb, "Y-1")):
                client.post("/tracking/gps", json={"updates": [{"vehicle_id": vehicle, "lat": 1,
                                                                "lng": 2}]})  # fmt: skip
                assert (
                    client.post(
                        "/tracking/emergency",
                        json={"vehicle_id": vehicle, "timestamp": now_ms() - 9},
                    ).status_code
                    == 201
                )
            wait = time.monotonic() + 20
            while sum(len(r.requests) for r in receivers) < 2 and time.monotonic() < wait:
                time.sleep(0.05)
            for receiver, secret, vehicle in (
                (receivers[0], SECRET, "X-1"), (receivers[1], secret_b, "Y-1"),
            ):  # fmt: skip
                [(headers, body)] = receiver.requests
                assert json.loads(body)["vehicle_id"] == vehicle
                expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                assert headers["X-Trucktrack-Signature"] == expected

            assert ca.delete("/alerts/webhook").status_code == 204
            assert ca.get("/alerts/webhook").status_code == 404
            assert ca.delete("/alerts/webhook").status_code == 404
            ca.post("/tracking/emergency", json={"vehicle_id": "X-1", "timestamp": now_ms() - 5})
            time.sleep(1.5)
            assert len(receivers[0].requests) == 1  # nowhere to go: not delivered
    finally:
        server.stop()
        for r in receivers:
            r.stop()

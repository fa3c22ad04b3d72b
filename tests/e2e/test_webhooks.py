"""Alerts reach a webhook signed with HMAC-SHA256, and a failed delivery is retried."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from pathlib import Path
from typing import ClassVar

from tests.e2e.conftest import Server, create_token, free_port, now_ms

SECRET = "s3cret-for-tests"


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers 500 to the first delivery and 200 to the rest; remembers what it got."""

    calls: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.calls.append((dict(self.headers), body))
        self.send_response(500 if len(Receiver.calls) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_panic_alert_is_delivered_signed_after_a_failed_try(tmp_path: Path) -> None:
    Receiver.calls = []
    port = free_port()
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = {
        "TRUCKTRACK_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
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
            while len(Receiver.calls) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(Receiver.calls) == 2, "no retry after the first failure"
            for headers, body in Receiver.calls:
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
            assert len(Receiver.calls) == 2  # delivered once it got a 2xx
    finally:
        server.stop()
        receiver.shutdown()

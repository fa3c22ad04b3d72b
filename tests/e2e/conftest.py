"""The real server as a subprocess on a loopback port, with tokens of two fleets, plus helpers.

Everything here talks to 127.0.0.1 only. One server serves the whole session (tests keep apart by
unique vehicle and trip ids, see the `uid` fixture); modules that need other settings or a restart
start their own, and every server is stopped (SIGTERM, then SIGKILL) in teardown.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

CLI = [sys.executable, "-m", "trucktrack"]
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`trucktrack <args>` in a subprocess (extra environment `env`), output captured as text."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def create_token(data_dir: Path, fleet: str, role: str, *vehicles: str) -> str:
    """A new token from `trucktrack token create` (the last line of its stdout)."""
    args = ["token", "create", "--data-dir", str(data_dir), "--fleet", fleet, "--role", role]
    for v in vehicles:
        args += ["--vehicle", v]
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


class Server:
    """One `trucktrack serve` process; restartable on the same data folder and port."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "TRUCKTRACK_BOOTSTRAP_DEMO_TOKEN": "false", **(env or {})}
        self.env.pop("TRUCKTRACK_DATA_DIR", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"{data_dir.name}-server.log"

    def start(self, ready_within_s: float = 30) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, "--data-dir", str(self.data_dir)], stdout=log, stderr=log, env=self.env
            )
        deadline = time.monotonic() + ready_within_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"server not ready in {ready_within_s} s: {self.log.read_text()[-2000:]}"
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, grace_s: float = 20) -> int | None:
        """SIGTERM, then SIGKILL after `grace_s`; the exit status (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


class Received(NamedTuple):
    """One POST a `JsonReceiver` got."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class JsonReceiver:
    """An HTTP endpoint on a free loopback port (a webhook, an OTP gateway) that records every
    POST in `requests` and answers it with no body: 200, or the status `answer(request)` gives.
    `answer` runs after the request is recorded and before the reply, in the request's thread,
    so a test can act while the sender waits. Use it as a context manager or start()/stop()."""

    def __init__(self, answer: Callable[[Received], int] | None = None) -> None:
        self.requests: list[Received] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = Received(dict(self.headers), body)
                receiver.requests.append(request)
                status = answer(request) if answer else 200
                self.send_response(status)
                if status != 204:  # a 204 must not carry a Content-Length
                    self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}"

    def bodies(self) -> list[Any]:
        """Every body received, decoded as JSON."""
        return [r.json() for r in self.requests]

    def start(self) -> JsonReceiver:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> JsonReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Tokens:
    """The tokens every shared-server test may use. Scoped ones name `scoped1`/`scoped2`."""

    def __init__(self, data_dir: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.scoped1 = f"SCOPED-1-{tag}"
        self.scoped2 = f"SCOPED-2-{tag}"
        self.admin_a = create_token(data_dir, "fleet-a", "admin")
        self.admin_b = create_token(data_dir, "fleet-b", "admin")
        self.dispatcher_a = create_token(data_dir, "fleet-a", "dispatcher")
        self.viewer_a = create_token(data_dir, "fleet-a", "viewer")
        self.viewer_a_one = create_token(data_dir, "fleet-a", "viewer", self.scoped1)
        self.device_a = create_token(data_dir, "fleet-a", "device", self.scoped1, self.scoped2)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Processor snapshots every second (10 s by default): all the e2e traffic runs through
    # frequent snapshots, and published distances show up quickly.
    env = {"TRUCKTRACK_PROCESSOR_SNAPSHOT_S": "1"}
    srv = Server(tmp_path_factory.mktemp("shared") / "data", env=env).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def tokens(server: Server) -> Tokens:
    return Tokens(server.data_dir)


@pytest.fixture
def a(server: Server, tokens: Tokens) -> Iterator[httpx.Client]:
    """An admin client of fleet A."""
    with server.client(tokens.admin_a) as c:
        yield c


@pytest.fixture
def b(server: Server, tokens: Tokens) -> Iterator[httpx.Client]:
    """An admin client of fleet B."""
    with server.client(tokens.admin_b) as c:
        yield c


@pytest.fixture
def uid() -> str:
    """A suffix that keeps one test's vehicles and trips apart from the others'."""
    return uuid.uuid4().hex[:10]


# --- helpers ----------------------------------------------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def point(vehicle_id: str, ts: object, **extra: object) -> dict[str, object]:
    return {"vehicle_id": vehicle_id, "lat": 18.52, "lng": 73.85, "timestamp": ts, **extra}


def post_ok(client: httpx.Client, *points: dict[str, object]) -> dict[str, Any]:
    """POST the points; all must be accepted. Returns the reply body."""
    r = client.post("/tracking/gps", json={"updates": list(points)})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["rejected"] == [], body
    return body


def provide_pod(client: httpx.Client, trip_id: str) -> None:
    """Upload what the default POD policy asks for before trip_completed: a photo and a
    signature (as strokes)."""
    for kind, data, extra in (("photo", b"\xff\xd8\xff\xe0" + bytes(64), {}),
                              ("signature", b'{"strokes": [[[0, 0], [5, 5]]]}',
                               {"signer_name": "Asha"})):  # fmt: skip
        r = client.post("/delivery/pod", data={"trip_id": trip_id, "type": kind, **extra},
                        files={"file": ("f", data)})  # fmt: skip
        assert r.status_code == 201, r.text


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The reply is `status` with the JSON error envelope `{"error": {code, message, details?}}`."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert list(body) == ["error"], body
    error: dict[str, Any] = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error.get("details", []), list), error
    return error


def history_pages(
    client: httpx.Client, trip: str, limit: int = 10_000, **params: object
) -> list[dict[str, Any]]:
    """Every page of a trip's JSON history, following `next_cursor` (bounded)."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        r = client.get(f"/tracking/trip/{trip}/history", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["trip_id"] == trip
        assert page["count"] == len(page["points"]) <= limit
        assert r.headers.get("X-Next-Cursor") == page["next_cursor"]
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("history did not end within 1000 pages")


def history(client: httpx.Client, trip: str, **params: object) -> list[dict[str, Any]]:
    """All of a trip's points (JSON format), in the order the server gives them."""
    return [p for page in history_pages(client, trip, **params) for p in page["points"]]


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample (or the first labelled one) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


def wait_for(condition: Any, timeout_s: float = 10, what: str = "condition") -> Any:
    """Poll `condition()` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)

"""The real server as a subprocess on a loopback port, with tokens of two fleets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CLI = [sys.executable, "-m", "trucktrack"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_token(data_dir: Path, fleet: str, role: str, *vehicles: str) -> str:
    args = [*CLI, "token", "create", "--data-dir", str(data_dir), "--fleet", fleet, "--role", role]
    for v in vehicles:
        args += ["--vehicle", v]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.strip().splitlines()[-1]


class Server:
    """One `trucktrack serve` process; restartable on the same data folder."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "TRUCKTRACK_BOOTSTRAP_DEMO_TOKEN": "false", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"

    def start(self) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [*CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, "--data-dir", str(self.data_dir)], stdout=log, stderr=log, env=self.env
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become ready in 30 s")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


class Tokens:
    def __init__(self, data_dir: Path) -> None:
        self.admin_a = create_token(data_dir, "fleet-a", "admin")
        self.admin_b = create_token(data_dir, "fleet-b", "admin")
        self.dispatcher_a = create_token(data_dir, "fleet-a", "dispatcher")
        self.viewer_a = create_token(data_dir, "fleet-a", "viewer")
        self.viewer_a_one = create_token(data_dir, "fleet-a", "viewer", "SCOPED-1")
        self.device_a = create_token(data_dir, "fleet-a", "device", "SCOPED-1", "SCOPED-2")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("server")).start()
    yield srv
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


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def point(vehicle_id: str, ts: int, **extra: object) -> dict[str, object]:
    return {"vehicle_id": vehicle_id, "lat": 18.52, "lng": 73.85, "timestamp": ts, **extra}

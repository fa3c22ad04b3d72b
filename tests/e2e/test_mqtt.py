"""Devices over MQTT: a real mosquitto (Debian package) on a loopback port, with password
authentication and an ACL that lets each device publish only under its own vehicle id."""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.e2e.conftest import Server, create_token, free_port, metric, now_ms, wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None, reason="mosquitto is installed by `make test`"
)
SERVICE_PW, DEVICE_PW = "svc-secret-123", "dev-secret-456"


class Broker:
    """mosquitto with a password file, an ACL and persistence; restartable on its port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        passwords = folder / "passwords"
        for i, (user, pw) in enumerate(
            [("trucktrack", SERVICE_PW), ("MQ-1", DEVICE_PW), ("MQ-2", DEVICE_PW),
             ("NOBODY-1", DEVICE_PW)]
        ):  # fmt: skip
            flags = ["-b", "-c"] if i == 0 else ["-b"]
            subprocess.run(["mosquitto_passwd", *flags, str(passwords), user, pw], check=True)
        (folder / "acl").write_text(
            "user trucktrack\ntopic read topic/vehicle/#\ntopic write topic/vehicle/#\n\n"
            "pattern write topic/vehicle/%u/#\npattern read topic/vehicle/%u/#\n"
        )
        (folder / "mosquitto.conf").write_text(
            # run as whoever runs the tests (as root, mosquitto would switch to its own user,
            # which cannot read pytest's private temp folder)
            f"user {getpass.getuser()}\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {passwords}\nacl_file {folder / 'acl'}\n"
            f"persistence true\npersistence_location {folder}/\n"
        )
        (folder / "acl").chmod(0o600)
        passwords.chmod(0o600)

    def start(self) -> Broker:
        log = open(self.folder / "broker.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.folder / "mosquitto.conf")], stdout=log, stderr=log
        )
        wait_for(lambda: _can_connect(self.port), 10, "mosquitto to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def _can_connect(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def device(broker: Broker, user: str, password: str = DEVICE_PW) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{user}-{time.time()}")
    client.username_pw_set(user, password)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def publish(client: mqtt.Client, topic: str, body: Any) -> None:
    info = client.publish(topic, json.dumps(body) if not isinstance(body, bytes) else body, qos=1)
    info.wait_for_publish(timeout=10)
    assert info.is_published()


def mqtt_server(folder: Path, broker: Broker, **env: str) -> tuple[Server, str]:
    """A server taking MQTT from the broker (not started), and an admin token of its fleet."""
    url = f"mqtt://trucktrack:{SERVICE_PW}@127.0.0.1:{broker.port}"
    server = Server(folder, env={"TRUCKTRACK_MQTT_URL": url, **env})
    server.data_dir.mkdir(parents=True)
    create_token(server.data_dir, "mq-fleet", "device", "MQ-1", "MQ-2")
    return server, create_token(server.data_dir, "mq-fleet", "admin")


def wait_subscribed(server: Server, admin: str, connected: float = 1) -> None:
    """Until the `mqtt_connected` gauge says the bridge is (or is not) subscribed."""
    with server.client(admin) as c:
        wait_for(lambda: metric(c.get("/metrics").text, "mqtt_connected") == connected, 20,
                 f"mqtt_connected to be {connected}")  # fmt: skip


def counted(server: Server, admin: str, sample: str) -> float:
    with server.client(admin) as c:
        text = c.get("/metrics").text
    return metric(text, sample) if sample in text else 0.0


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Broker, Server, str]]:
    broker = Broker(tmp_path / "broker").start()
    server, admin = mqtt_server(tmp_path / "data", broker)
    server.start()
    try:
        wait_subscribed(server, admin)
        yield broker, server, admin
    finally:
        server.stop()
        broker.stop()


def history(server: Server, token: str, trip: str) -> list[dict[str, Any]]:
    with server.client(token) as c:
        r = c.get(f"/tracking/trip/{trip}/history")
        return list(r.json()["points"]) if r.status_code == 200 else []


def test_points_alerts_and_rejections_over_mqtt(setup: tuple[Broker, Server, str]) -> None:
    broker, server, admin = setup
    dev = device(broker, "MQ-1")
    rejected: list[dict[str, Any]] = []
    dev.on_message = lambda _c, _u, m: rejected.append(json.loads(m.payload))
    dev.subscribe("topic/vehicle/MQ-1/gps/rejected", qos=0)
    try:
        t = now_ms() - 60_000
        publish(dev, "topic/vehicle/MQ-1/gps",
                {"lat": 18.52, "lng": 73.85, "timestamp": t, "trip_id": "MQT"})  # fmt: skip
        publish(dev, "topic/vehicle/MQ-1/gps", [
            {"lat": 18.53, "lng": 73.85, "timestamp": t + 1000, "trip_id": "MQT"},
            {"lat": 999, "lng": 73.85, "timestamp": t + 2000, "trip_id": "MQT"},
            {"vehicle_id": "MQ-2", "lat": 18.5, "lng": 73.8, "timestamp": t + 3000},
        ])  # fmt: skip
        publish(dev, "topic/vehicle/MQ-1/gps", {"updates": [
            {"lat": 18.54, "lng": 73.85, "timestamp": t + 4000, "trip_id": "MQT"}]})  # fmt: skip
        publish(dev, "topic/vehicle/MQ-1/gps", b"not json")
        wait_for(lambda: len(history(server, admin, "MQT")) == 3, 10, "three points stored")
        wait_for(lambda: len(rejected) >= 2, 10, "rejections published back")
        batch = next(r for r in rejected if "rejected" in r)
        assert batch["processed"] == 1
        assert [r["index"] for r in batch["rejected"]] == [1, 2]
        assert "lat" in batch["rejected"][0]["reason"]  # out of range
        assert "scope" in batch["rejected"][1]["reason"]  # MQ-2's point on MQ-1's topic
        assert any("error" in r for r in rejected)  # the message that is not JSON
        publish(dev, "topic/vehicle/MQ-1/emergency", {"note": "SOS", "lat": 18.5, "lng": 73.8})
        with server.client(admin) as c:
            panic = wait_for(
                lambda: c.get("/alerts", params={"vehicle_id": "MQ-1", "type": "panic"}).json()[
                    "alerts"
                ],
                10,
                "the panic alert",
            )
            assert panic[0]["details"]["note"] == "SOS"
            text = c.get("/metrics").text
            assert metric(text, 'mqtt_messages_total{kind="gps",outcome="stored"}') >= 3
    finally:
        dev.loop_stop()
        dev.disconnect()


def test_a_vehicle_no_device_token_names_is_refused(setup: tuple[Broker, Server, str]) -> None:
    broker, server, admin = setup
    dev = device(broker, "NOBODY-1")
    try:
        publish(dev, "topic/vehicle/NOBODY-1/gps",
                {"lat": 18.5, "lng": 73.8, "trip_id": "NOBODY-T"})  # fmt: skip
        with server.client(admin) as c:
            wait_for(lambda: "unknown_vehicle" in c.get("/metrics").text, 10, "the refusal counted")
        assert history(server, admin, "NOBODY-T") == []
    finally:
        dev.loop_stop()
        dev.disconnect()


def test_the_broker_refuses_wrong_passwords_and_foreign_topics(
    setup: tuple[Broker, Server, str],
) -> None:
    broker, server, admin = setup
    bad = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bad")
    bad.username_pw_set("MQ-1", "wrong")
    outcome: list[Any] = []
    bad.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(reason)
    bad.connect("127.0.0.1", broker.port)
    bad.loop_start()
    try:
        wait_for(lambda: outcome, 10, "the broker's answer")
        assert outcome[0].is_failure  # not authorised
    finally:
        bad.loop_stop()
    dev = device(broker, "MQ-2")
    try:  # the ACL drops MQ-2 publishing under MQ-1's topic
        dev.publish("topic/vehicle/MQ-1/gps", json.dumps(
            {"lat": 18.5, "lng": 73.8, "trip_id": "SPOOF"}), qos=1).wait_for_publish(5)  # fmt: skip
        time.sleep(1.0)
        assert history(server, admin, "SPOOF") == []
    finally:
        dev.loop_stop()
        dev.disconnect()


def test_the_bridge_reconnects_after_a_broker_restart(setup: tuple[Broker, Server, str]) -> None:
    """Points from before the restart and from right after it (published before trucktrack's
    bridge is back: the broker keeps them in its persistent session) are all stored, once."""
    broker, server, admin = setup
    t = now_ms() - 60_000

    def fix(i: int) -> dict[str, object]:
        return {"lat": 18.5 + i / 1000, "lng": 73.8, "timestamp": t + 1000 * i,
                "trip_id": "RESTART"}  # fmt: skip

    dev = device(broker, "MQ-1")
    for i in range(3):
        publish(dev, "topic/vehicle/MQ-1/gps", fix(i))
    wait_for(lambda: len(history(server, admin, "RESTART")) == 3, 10, "the points before")
    dev.loop_stop()
    dev.disconnect()
    broker.stop()
    broker.start()
    dev = device(broker, "MQ-1")
    try:
        for i in range(3, 6):
            publish(dev, "topic/vehicle/MQ-1/gps", fix(i))
        wait_subscribed(server, admin)
        wait_for(lambda: len(history(server, admin, "RESTART")) == 6, 20, "the points after")
        time.sleep(1.0)  # anything delivered twice would be in by now
        stored = history(server, admin, "RESTART")
        assert sorted(p["timestamp_ms"] for p in stored) == [t + 1000 * i for i in range(6)]
        assert counted(server, admin, 'mqtt_messages_total{kind="gps",outcome="stored"}') >= 6
    finally:
        dev.loop_stop()
        dev.disconnect()


def test_messages_sent_while_trucktrack_is_down_arrive_when_it_is_back(
    setup: tuple[Broker, Server, str],
) -> None:
    """The broker keeps trucktrack's persistent session: QoS 1 messages published while the
    server is stopped are delivered, and stored, once it reconnects."""
    broker, server, admin = setup
    t = now_ms() - 60_000
    dev = device(broker, "MQ-1")
    try:
        publish(dev, "topic/vehicle/MQ-1/gps", {"lat": 18.5, "lng": 73.8, "timestamp": t,
                                                "trip_id": "AWAY"})  # fmt: skip
        wait_for(lambda: len(history(server, admin, "AWAY")) == 1, 10, "the first point")
        server.stop()
        for i in range(1, 4):
            publish(
                dev,
                "topic/vehicle/MQ-1/gps",
                {"lat": 18.5 + i / 1000, "lng": 73.8, "timestamp": t + i * 1000, "trip_id": "AWAY"},
            )
        server.start()
        wait_for(lambda: len(history(server, admin, "AWAY")) == 4, 20, "the queued points")
    finally:
        dev.loop_stop()
        dev.disconnect()


def panics(server: Server, admin: str, vehicle: str) -> list[dict[str, Any]]:
    with server.client(admin) as c:
        r = c.get("/alerts", params={"vehicle_id": vehicle, "type": "panic"})
        assert r.status_code == 200, r.text
        return list(r.json()["alerts"])


def test_bad_emergencies_are_refused_like_over_http(setup: tuple[Broker, Server, str]) -> None:
    """The emergency topic takes exactly what POST /tracking/emergency takes."""
    broker, server, admin = setup
    dev = device(broker, "MQ-1")
    rejected: list[dict[str, Any]] = []
    dev.on_message = lambda _c, _u, m: rejected.append(json.loads(m.payload))
    dev.subscribe("topic/vehicle/MQ-1/emergency/rejected", qos=0)
    bad: list[Any] = [
        {"lat": 91.0, "lng": 73.8},
        {"lat": 18.5, "lng": -181.0},
        {"trip_id": "not a trip id!"},
        {"note": "x" * 501},
        {"timestamp": now_ms() + 3_600_000},  # an hour ahead: over the 5 min skew
        {"timestamp": "yesterday"},
        {"colour": "red"},
        {"vehicle_id": "MQ-2"},  # another vehicle than the topic's: out of scope
        [1, 2],
        b"not json",
    ]
    try:
        time.sleep(0.3)  # the subscription to rejections
        for body in bad:
            publish(dev, "topic/vehicle/MQ-1/emergency", body)
        wait_for(lambda: len(rejected) == len(bad), 10, "every refusal published back")
        assert all("error" in r for r in rejected), rejected
        sample = 'mqtt_messages_total{kind="emergency",outcome="rejected"}'
        assert counted(server, admin, sample) == len(bad)
        assert panics(server, admin, "MQ-1") == [] and panics(server, admin, "MQ-2") == []
    finally:
        dev.loop_stop()
        dev.disconnect()


def test_a_redelivered_emergency_is_the_same_alert(setup: tuple[Broker, Server, str]) -> None:
    """A press without the device's time, delivered twice (QoS 1 redelivery), is one alert;
    another press (other content) is another."""
    broker, server, admin = setup
    dev = device(broker, "MQ-1")
    press = {"note": "SOS", "lat": 18.5, "lng": 73.8}
    stored = 'mqtt_messages_total{kind="emergency",outcome="stored"}'
    try:
        publish(dev, "topic/vehicle/MQ-1/emergency", press)
        publish(dev, "topic/vehicle/MQ-1/emergency", press)
        wait_for(lambda: counted(server, admin, stored) == 2, 10, "both messages handled")
        [alert] = panics(server, admin, "MQ-1")
        assert alert["details"] == {"note": "SOS"}
        publish(dev, "topic/vehicle/MQ-1/emergency", {**press, "note": "fire"})
        wait_for(lambda: len(panics(server, admin, "MQ-1")) == 2, 10, "the other press")
        stamped = {**press, "timestamp": now_ms() - 1000}  # a stamped press is known by its time
        publish(dev, "topic/vehicle/MQ-1/emergency", stamped)
        publish(dev, "topic/vehicle/MQ-1/emergency", stamped)
        wait_for(lambda: counted(server, admin, stored) == 5, 10, "the stamped presses handled")
        assert len(panics(server, admin, "MQ-1")) == 3
    finally:
        dev.loop_stop()
        dev.disconnect()


def test_an_mqtt_emergency_is_pushed_to_live_clients(setup: tuple[Broker, Server, str]) -> None:
    from websockets.sync.client import connect

    broker, server, admin = setup
    dev = device(broker, "MQ-1")
    try:
        with connect(f"ws://127.0.0.1:{server.port}/tracking/ws?token={admin}") as conn:
            conn.send(json.dumps({"action": "track", "vehicle_ids": ["MQ-1"]}))
            assert json.loads(conn.recv(timeout=5))["type"] == "snapshot"
            publish(dev, "topic/vehicle/MQ-1/emergency", {"note": "help", "lat": 18.5, "lng": 73.8})
            pushed = json.loads(conn.recv(timeout=5))
        assert pushed["type"] == "alert"
        assert pushed["alert"]["type"] == "panic" and pushed["alert"]["vehicle_id"] == "MQ-1"
        assert pushed["alert"]["severity"] == "critical"
        assert pushed["alert"]["details"] == {"note": "help"}
    finally:
        dev.loop_stop()
        dev.disconnect()


def _writer_process(server: Server) -> int:
    """The pid of the server's database writer (a spawned child process)."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    for pid in children:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"spawn_main" in cmdline:
            return int(pid)
    raise AssertionError(f"no writer process among {children}")


def test_a_message_that_cannot_be_stored_is_delivered_again(tmp_path: Path) -> None:
    """Storage down: the message is logged, left unacknowledged, and the bridge reconnects so
    that the broker delivers it again (MQTT 3.1.1 redelivers only on a reconnect); once
    storage is back (here: a restart) it is stored, once."""
    import os
    import signal

    broker = Broker(tmp_path / "broker").start()
    server, admin = mqtt_server(tmp_path / "data", broker, TRUCKTRACK_MQTT_RETRY_S="0.5")
    server.start()
    dev = device(broker, "MQ-1")
    unacked = 'mqtt_messages_total{kind="gps",outcome="unacknowledged"}'
    t = now_ms() - 60_000
    try:
        wait_subscribed(server, admin)
        publish(dev, "topic/vehicle/MQ-1/gps", {"lat": 18.5, "lng": 73.8, "timestamp": t,
                                                "trip_id": "DOWN"})  # fmt: skip
        wait_for(lambda: len(history(server, admin, "DOWN")) == 1, 10, "the first point")
        os.kill(_writer_process(server), signal.SIGKILL)  # the database writer dies
        publish(dev, "topic/vehicle/MQ-1/gps", {"lat": 18.6, "lng": 73.8, "timestamp": t + 1000,
                                                "trip_id": "DOWN"})  # fmt: skip
        wait_for(lambda: counted(server, admin, unacked) >= 2, 30, "a redelivery after reconnect")
        log = server.log.read_text()
        assert "could not be stored" in log and "reconnecting so that the broker" in log
        wait_subscribed(server, admin)  # connected again after each reconnect
        server.kill()
        server.start()
        wait_for(lambda: len(history(server, admin, "DOWN")) == 2, 20, "the message stored")
        time.sleep(1.0)
        assert [p["timestamp_ms"] for p in history(server, admin, "DOWN")] == [t, t + 1000]
    finally:
        dev.loop_stop()
        dev.disconnect()
        server.stop()
        broker.stop()

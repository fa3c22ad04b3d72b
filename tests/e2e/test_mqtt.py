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


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Broker, Server, str]]:
    broker = Broker(tmp_path / "broker").start()
    url = f"mqtt://trucktrack:{SERVICE_PW}@127.0.0.1:{broker.port}"
    server = Server(tmp_path / "data", env={"TRUCKTRACK_MQTT_URL": url})
    server.data_dir.mkdir(parents=True)
    create_token(server.data_dir, "mq-fleet", "device", "MQ-1", "MQ-2")
    admin = create_token(server.data_dir, "mq-fleet", "admin")
    server.start()
    try:
        with server.client(admin) as c:
            wait_for(lambda: "mqtt_messages_total" in c.get("/metrics").text or True, 1)
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
    broker, server, admin = setup
    t = now_ms() - 60_000
    dev = device(broker, "MQ-1")
    publish(dev, "topic/vehicle/MQ-1/gps", {"lat": 18.5, "lng": 73.8, "timestamp": t,
                                            "trip_id": "RESTART"})  # fmt: skip
    wait_for(lambda: len(history(server, admin, "RESTART")) == 1, 10, "the first point")
    dev.loop_stop()
    dev.disconnect()
    broker.stop()
    broker.start()
    dev = device(broker, "MQ-1")
    try:
        publish(dev, "topic/vehicle/MQ-1/gps", {"lat": 18.6, "lng": 73.8, "timestamp": t + 1000,
                                                "trip_id": "RESTART"})  # fmt: skip
        wait_for(lambda: len(history(server, admin, "RESTART")) == 2, 20, "the bridge back")
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

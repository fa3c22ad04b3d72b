"""`trucktrack bench mqtt`: points/s stored from devices publishing over MQTT.

Starts a local mosquitto (the Debian package; anonymous, loopback only) and the real server
subscribed to it, registers `--vehicles` devices (one device token naming them), then
`--publishers` MQTT clients publish messages of `--batch` points (each message one vehicle's
points, QoS 1, up to 100 in flight per client) as fast as the broker takes them for
`--duration` seconds, pausing while more than `--backlog` points wait in the broker (so the
figure is a sustained rate, not a burst into the broker's queue). Points/s counts what the
server stored (`gps_updates_total`), measured until the backlog has drained.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec

from trucktrack.benchmarks.ingest import _free_port, _machine, _wait_ready


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--publishers", type=int, default=4, help="MQTT client connections")
    parser.add_argument("--batch", type=int, default=100, help="points per message")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of publishing")
    parser.add_argument(
        "--backlog",
        type=int,
        default=200_000,
        help="publishers pause while more than this many published points are not yet stored",
    )
    parser.add_argument("--markdown", help="append the results as a markdown section to FILE")


def _stored(url: str, token: str) -> float:
    import urllib.request

    request = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("gps_updates_total "):
                return float(line.split()[1])
    return 0.0


def main(args: argparse.Namespace) -> int:
    import paho.mqtt.client as mqtt

    if shutil.which("mosquitto") is None:
        print("mosquitto is not installed (make broker)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="trucktrack-bench-mqtt-"))
    broker_port, port = _free_port(), _free_port()
    (folder / "mosquitto.conf").write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\n"
        "max_queued_messages 100000\n"
    )
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(folder / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cli = [sys.executable, "-m", "trucktrack"]
    data = folder / "data"
    vehicles = [f"MQB-{i:05d}" for i in range(args.vehicles)]
    device = ["--vehicle" if i % 2 == 0 else vehicles[i // 2] for i in range(2 * len(vehicles))]
    for role, extra in (("device", device), ("admin", [])):
        out = subprocess.run(
            [*cli, "token", "create", "--data-dir", str(data), "--fleet", "bench", "--role",
             role, *extra],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    token = out.stdout.strip().splitlines()[-1]
    log = open(folder / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--data-dir", str(data),
         "--mqtt-url", f"mqtt://127.0.0.1:{broker_port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        if not _wait_ready(url, server, 30):
            print(f"server did not start; see {folder / 'server.log'}", file=sys.stderr)
            return 1
        time.sleep(1.0)  # let the bridge connect and subscribe
        before = _stored(url, token)
        published = [0] * args.publishers
        stop = time.monotonic() + args.duration
        base = time.time_ns() // 10**6 - 3_600_000

        def publisher(n: int) -> None:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{n}")
            client.max_inflight_messages_set(100)
            client.max_queued_messages_set(200)
            client.connect("127.0.0.1", broker_port)
            client.loop_start()
            mine = vehicles[n :: args.publishers]
            k = 0
            while time.monotonic() < stop:
                if sum(published) - stored_now[0] > args.backlog:
                    time.sleep(0.01)
                    continue
                vid = mine[k % len(mine)]
                first = base + (k // len(mine)) * args.batch
                body = msgspec.json.encode(
                    [{"lat": 20.0, "lng": 78.0 + j * 1e-5, "timestamp": first + j}
                     for j in range(args.batch)]
                )  # fmt: skip
                info = client.publish(f"topic/vehicle/{vid}/gps", body, qos=1)
                if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                    time.sleep(0.002)
                    continue
                published[n] += args.batch
                k += 1
            client.loop_stop()
            client.disconnect()

        stored_now = [0.0]
        started = time.monotonic()
        threads = [threading.Thread(target=publisher, args=(n,)) for n in range(args.publishers)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            stored_now[0] = _stored(url, token) - before
            time.sleep(0.25)
        for t in threads:
            t.join()
        total = sum(published)
        while _stored(url, token) - before < total and time.monotonic() - started < 300:
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        stored = _stored(url, token) - before
    finally:
        server.terminate()
        server.wait(timeout=30)
        broker.terminate()
        broker.wait(timeout=10)
        log.close()
        if sys.exc_info()[0] is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"server log kept in {folder / 'server.log'}", file=sys.stderr)
    command = shlex.join(["trucktrack", "bench", "mqtt", *sys.argv[3:]])
    report = "\n".join(
        [
            f"### bench mqtt, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"Command: `{command}`  ",
            f"Machine: {_machine()}  ",
            f"Load: {args.publishers} MQTT publishers, {args.vehicles} vehicles, messages of "
            f"{args.batch} points at QoS 1, {args.duration:.0f} s of publishing with at most "
            f"{args.backlog:,} points waiting; mosquitto, "
            "server and publishers share the machine",
            "",
            "| published points | stored points | seconds (until drained) | stored points/s |",
            "|---:|---:|---:|---:|",
            f"| {total:,} | {stored:,.0f} | {elapsed:.1f} | {stored / elapsed:,.0f} |",
        ]
    )
    print(report)
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write(report + "\n")
    return 0 if stored >= total else 1

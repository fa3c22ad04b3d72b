"""GPS boxes over MQTT: `topic/vehicle/{vehicle_id}/gps` and `.../emergency` (the spec's IoT rule).

trucktrack subscribes as one client with a persistent session (clean_session off) at QoS 1 and
acknowledges a message only once what it carries is durably stored: if trucktrack stops first,
the broker delivers it again, and the store's idempotency (vehicle, timestamp) makes the repeat
harmless. paho-mqtt runs its network loop in a thread and reconnects by itself after a broker
restart; each message is handed to the server's event loop and goes through the same decoding,
validation and ingest service as `POST /tracking/gps` (emergencies: as `POST
/tracking/emergency`). A message that could not be stored is logged and left unacknowledged,
and the bridge reconnects on its session so that the broker delivers it again.

Who may post for a vehicle: the broker authenticates devices (password file) and its ACL lets a
device publish only under its own vehicle id; trucktrack then takes the fleet from the device
token created for that vehicle (`trucktrack token create --role device --vehicle V`), so
device credentials map to a fleet. Messages for a vehicle no fleet's device token names are
refused. Rejections are published back, at QoS 0, on `{topic}/rejected` for the device to see.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

import msgspec
import paho.mqtt.client as mqtt

from trucktrack.api.alerts import EmergencyIn
from trucktrack.api.decoding import decode_batch
from trucktrack.bootstrap import Services
from trucktrack.domain.model import Principal, Role
from trucktrack.errors import BadRequest, Overloaded, StorageUnavailable, TrucktrackError
from trucktrack.services.ingest import wall_clock_ms

log = logging.getLogger(__name__)

RECONNECT_EVERY_S = 5.0
"""The least time between two reconnects made to have unacknowledged messages redelivered."""

DEVICE_CACHE_S = 5.0
"""How long the fleet of a vehicle's device token is cached."""

CONCURRENT_MESSAGES = 64
"""Messages stored at once; the rest wait (unacknowledged, so the broker holds back more)."""


class MqttBridge:
    """Subscribes to the device topics and feeds the ingest and alert services."""

    def __init__(self, services: Services, url: str, *, prefix: str, client_id: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError("mqtt_url must look like mqtt://user:password@host:1883")
        self._services = services
        self._host, self._port = parts.hostname, parts.port or 1883
        self._prefix = prefix.rstrip("/")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            manual_ack=True,
        )
        if parts.username:
            self._client.username_pw_set(
                urllib.parse.unquote(parts.username),
                urllib.parse.unquote(parts.password or ""),
            )
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self.connected = False
        """Connected and subscribed (the `mqtt_connected` gauge)."""
        self._devices: dict[str, tuple[float, frozenset[str]]] = {}
        self._working = asyncio.Semaphore(CONCURRENT_MESSAGES)
        self._retry_for_s = services.settings.mqtt_retry_s
        self._reconnect: asyncio.Task[None] | None = None
        self._next_reconnect = 0.0
        self._running = threading.Lock()  # start, stop and reconnects one at a time
        self._stopped = False
        services.metrics.watch(
            "mqtt_connected",
            "1 while connected and subscribed to the MQTT broker, else 0",
            lambda: 1.0 if self.connected else 0.0,
        )

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        with self._running:
            self._stopped = True
            self._client.disconnect()
            self._client.loop_stop()
        self.connected = False

    def _reopen(self) -> None:
        """A new connection on the same persistent session (in a thread: loop_stop joins)."""
        with self._running:
            if self._stopped:
                return
            self._client.disconnect()
            self._client.loop_stop()
            self.connected = False
            self._client.connect_async(self._host, self._port, keepalive=30)
            self._client.loop_start()

    async def _reconnect_for_redelivery(self) -> None:
        """MQTT 3.1.1 brokers send an unacknowledged message again only when the session
        reconnects, and until then it holds a slot of the in-flight window: without this a
        message that could not be stored would sit there, and enough of them stop delivery."""
        try:
            await asyncio.sleep(max(0.0, self._next_reconnect - time.monotonic()))
            self._next_reconnect = time.monotonic() + RECONNECT_EVERY_S
            log.warning("MQTT: reconnecting so that the broker delivers unacknowledged messages")
            await asyncio.to_thread(self._reopen)
        finally:
            self._reconnect = None

    def _redeliver_later(self) -> None:
        """On the event loop: one reconnect at a time, at most every RECONNECT_EVERY_S."""
        if self._reconnect is None and not self._stopped:
            self._reconnect = asyncio.ensure_future(self._reconnect_for_redelivery())

    # --- on paho's network thread -----------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        log.info("MQTT connected to %s:%s", self._host, self._port)
        client.subscribe([(f"{self._prefix}/+/gps", 1), (f"{self._prefix}/+/emergency", 1)])

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            log.error("MQTT broker refused the subscriptions: %s", failed)
        self.connected = not failed

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self.connected:
            log.warning("MQTT disconnected from %s:%s: %s", self._host, self._port, reason)
        self.connected = False

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._handle(message), self._loop)

        def done(f: Future[bool]) -> None:  # on the event loop, where the future is settled
            if f.cancelled():  # shutting down: the broker keeps it for the next session
                return
            error = f.exception()
            if error is None and f.result():
                client.ack(message.mid, message.qos)
                return
            if error is not None:
                log.error("MQTT message on %s failed; left unacknowledged", message.topic,
                          exc_info=error)  # fmt: skip
            else:
                log.warning("MQTT message on %s could not be stored for %.0f s; left "
                            "unacknowledged", message.topic, self._retry_for_s)  # fmt: skip
            self._redeliver_later()

        future.add_done_callback(done)

    # --- on the event loop ------------------------------------------------------------------
    async def _handle(self, message: mqtt.MQTTMessage) -> bool:
        """Store what the message carries; True once it may be acknowledged."""
        async with self._working:
            return await self._store(message)

    async def _store(self, message: mqtt.MQTTMessage) -> bool:
        metrics = self._services.metrics
        parts = message.topic.split("/")
        vehicle_id, kind = parts[-2], parts[-1]
        principal = self._principal_for(vehicle_id)
        if principal is None:
            metrics.mqtt_messages.labels(kind, "unknown_vehicle").inc()
            log.info("MQTT message on %s refused: no device token names the vehicle", message.topic)
            self._reply(message.topic, {"error": f"no device is registered for {vehicle_id!r}"})
            return True  # nothing to retry: acknowledged and dropped
        try:
            if kind == "gps":
                store = self._gps(principal, vehicle_id, message.payload)
            else:
                store = self._emergency(principal, vehicle_id, message.payload)
        except TrucktrackError as exc:
            metrics.mqtt_messages.labels(kind, "rejected").inc()
            log.info("MQTT message on %s rejected: %s", message.topic, exc.message)
            self._reply(message.topic, {"error": exc.message})
            return True
        deadline = time.monotonic() + self._retry_for_s
        delay = 0.05
        while True:
            try:
                rejected = await store()
            except (Overloaded, StorageUnavailable):
                if time.monotonic() > deadline:
                    metrics.mqtt_messages.labels(kind, "unacknowledged").inc()
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except TrucktrackError as exc:
                metrics.mqtt_messages.labels(kind, "rejected").inc()
                log.info("MQTT message on %s rejected: %s", message.topic, exc.message)
                self._reply(message.topic, {"error": exc.message})
                return True
            else:
                metrics.mqtt_messages.labels(kind, "stored").inc()
                if rejected is not None:
                    self._reply(message.topic, rejected)
                return True

    def _gps(
        self, principal: Principal, vehicle_id: str, payload: bytes
    ) -> Callable[[], Awaitable[dict[str, object] | None]]:
        """Decode and validate once; the returned call stores (and may be retried)."""
        services = self._services
        now_ms = wall_clock_ms()
        points, rejected = decode_batch(
            _as_batch(payload, vehicle_id), principal.fleet_id, now_ms,
            services.settings.max_batch_points,
        )  # fmt: skip

        async def store() -> dict[str, object] | None:
            result = await services.ingest.ingest(principal, points, rejected, now_ms)
            if not result.rejected:
                return None
            return {"processed": result.processed, "rejected": [
                {"index": r.index, "reason": r.reason} for r in result.rejected]}  # fmt: skip

        return store

    def _emergency(
        self, principal: Principal, vehicle_id: str, payload: bytes
    ) -> Callable[[], Awaitable[dict[str, object] | None]]:
        """The same schema and checks as POST /tracking/emergency; the topic gives the vehicle
        (a payload naming another is out of the device's scope)."""
        try:
            body = msgspec.json.decode(payload or b"{}")
            if isinstance(body, dict):
                body.setdefault("vehicle_id", vehicle_id)
            press = msgspec.convert(body, EmergencyIn)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BadRequest(f"bad emergency payload: {exc}") from None
        now_ms = wall_clock_ms()
        ts = press.press_time(now_ms, self._services.settings.max_future_s)

        async def store() -> None:
            await self._services.alerts.raise_emergency(
                principal, press.vehicle_id, ts=ts, now_ms=now_ms, lat=press.lat, lng=press.lng,
                trip_id=press.trip_id, note=press.note,
            )  # fmt: skip

        return store

    def _principal_for(self, vehicle_id: str) -> Principal | None:
        """The fleet a vehicle's device token belongs to (its owner, if it has posted).

        Token lookups are cached for DEVICE_CACHE_S: a device sends many messages a minute,
        and a token created or revoked from the CLI takes effect within that time."""
        now = time.monotonic()
        cached = self._devices.get(vehicle_id)
        if cached is None or cached[0] < now:
            if len(self._devices) > 100_000:
                self._devices.clear()
            fleets = frozenset(self._services.tokens.device_fleets(vehicle_id))
            cached = (now + DEVICE_CACHE_S, fleets)
            self._devices[vehicle_id] = cached
        fleets = cached[1]
        owner = self._services.writer.owner_of(vehicle_id)
        if owner is not None:
            fleets = fleets & {owner}
        if len(fleets) != 1:
            return None
        return Principal(
            fleet_id=next(iter(fleets)), role=Role.DEVICE, vehicles=frozenset({vehicle_id}),
            token_id="mqtt",
        )  # fmt: skip

    def _reply(self, topic: str, body: dict[str, object]) -> None:
        self._client.publish(topic + "/rejected", msgspec.json.encode(body), qos=0)


def _as_batch(payload: bytes, vehicle_id: str) -> bytes:
    """One point, a list of points or `{"updates": [...]}`, as a batch body; the topic's
    vehicle is filled in where a point names none (one naming another vehicle is refused by
    the device's scope)."""
    try:
        data = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return payload  # decode_batch names the error
    if isinstance(data, dict) and "updates" in data:
        items = data["updates"]
    elif isinstance(data, list):
        items = data
    else:
        items = [data]
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                item.setdefault("vehicle_id", vehicle_id)
    return msgspec.json.encode({"updates": items})

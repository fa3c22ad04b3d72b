"""GPS boxes over MQTT: `topic/vehicle/{vehicle_id}/gps` and `.../emergency` (the spec's IoT rule).

trucktrack subscribes as one client with a persistent session (clean_session off) at QoS 1 and
acknowledges a message only once what it carries is durably stored: if trucktrack stops first,
the broker delivers it again, and the store's idempotency (vehicle, timestamp) makes the repeat
harmless. paho-mqtt runs its network loop in a thread and reconnects by itself after a broker
restart; each message is handed to the server's event loop and goes through the same decoding,
validation and ingest service as `POST /tracking/gps`.

Who may post for a vehicle: the broker authenticates devices (password file) and its ACL lets a
device publish only under its own vehicle id; trucktrack then takes the fleet from the device
token created for that vehicle (`trucktrack token create --role device --vehicle V`), so
device credentials map to a fleet. Messages for a vehicle no fleet's device token names are
refused. Rejections are published back, at QoS 0, on `{topic}/rejected` for the device to see.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

import msgspec
import paho.mqtt.client as mqtt

from trucktrack.api.decoding import decode_batch
from trucktrack.bootstrap import Services
from trucktrack.domain.model import Principal, Role
from trucktrack.domain.timefmt import BadTimestamp, parse_timestamp
from trucktrack.errors import BadRequest, Overloaded, StorageUnavailable, TrucktrackError
from trucktrack.services.ingest import wall_clock_ms

log = logging.getLogger(__name__)

RETRY_FOR_S = 60.0
"""How long a message that could not be stored (overload, storage down) is retried before it
is left unacknowledged for the broker to deliver again after a reconnect."""

DEVICE_CACHE_S = 5.0
"""How long the fleet of a vehicle's device token is cached."""

CONCURRENT_MESSAGES = 64
"""Messages stored at once; the rest wait (unacknowledged, so the broker holds back more)."""


class EmergencyPayload(msgspec.Struct, forbid_unknown_fields=True):
    timestamp: int | str | None = None
    lat: float | None = None
    lng: float | None = None
    trip_id: str | None = None
    note: str | None = None


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
        self._client.on_message = self._on_message
        self.connected = False
        self._devices: dict[str, tuple[float, frozenset[str]]] = {}
        self._working = asyncio.Semaphore(CONCURRENT_MESSAGES)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # --- on paho's network thread -----------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        self.connected = True
        log.info("MQTT connected to %s:%s", self._host, self._port)
        client.subscribe([(f"{self._prefix}/+/gps", 1), (f"{self._prefix}/+/emergency", 1)])

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._handle(message), self._loop)

        def done(f: Future[bool]) -> None:
            if not f.cancelled() and f.exception() is None and f.result():
                client.ack(message.mid, message.qos)

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
            self._reply(message.topic, {"error": f"no device is registered for {vehicle_id!r}"})
            return True  # nothing to retry: acknowledged and dropped
        try:
            if kind == "gps":
                store = self._gps(principal, vehicle_id, message.payload)
            else:
                store = self._emergency(principal, vehicle_id, message.payload)
        except TrucktrackError as exc:
            metrics.mqtt_messages.labels(kind, "rejected").inc()
            self._reply(message.topic, {"error": exc.message})
            return True
        deadline = time.monotonic() + RETRY_FOR_S
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
        try:
            press = msgspec.json.decode(payload or b"{}", type=EmergencyPayload)
            ts = wall_clock_ms() if press.timestamp is None else parse_timestamp(press.timestamp)
        except (msgspec.DecodeError, msgspec.ValidationError, BadTimestamp) as exc:
            raise BadRequest(f"bad emergency payload: {exc}") from None

        async def store() -> None:
            await self._services.alerts.raise_emergency(
                principal, vehicle_id, ts=ts, lat=press.lat, lng=press.lng,
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

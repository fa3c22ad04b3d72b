"""Live tracking: who watches which vehicles, and pushing them positions and alerts.

Each connected client (a dispatcher's screen, a shipper following a trip) subscribes to
vehicles, a map area or a trip. Stored points and new alerts are offered to the clients of the
same fleet that want them; each client has its own sender task that sends only what changed
since its last message, at most one update per vehicle per `min_interval_s` (a newer position
replaces a waiting one: coalesced, never queued without bound). A client that cannot take its
messages (a send blocked for `send_timeout_s`, or too many alerts waiting) is disconnected, so
no client ever slows ingestion or the others: publishing only updates dictionaries.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

import msgspec

from trucktrack.domain.alerts import Alert
from trucktrack.domain.live import Area, AreaView, View, delta, view_of
from trucktrack.domain.model import GpsPoint, Principal
from trucktrack.metrics import Metrics
from trucktrack.ports import CurrentLocations

log = logging.getLogger(__name__)

MAX_TRACKED = 100
MAX_AREA_VEHICLES = 5000
MAX_WAITING_ALERTS = 200
MAX_WAITING_REPLIES = 50
LATEST_PRUNE_MIN = 10_000
VehicleIds = Annotated[
    list[Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]],
    msgspec.Meta(min_length=1, max_length=MAX_TRACKED),
]
TripId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class Track(msgspec.Struct, tag="track", tag_field="action", forbid_unknown_fields=True):
    vehicle_ids: VehicleIds


class Untrack(msgspec.Struct, tag="untrack", tag_field="action", forbid_unknown_fields=True):
    vehicle_ids: VehicleIds


class TrackArea(msgspec.Struct, tag="track_area", tag_field="action", forbid_unknown_fields=True):
    bbox: Annotated[list[float], msgspec.Meta(min_length=4, max_length=4)]
    """[west, south, east, north] in degrees."""
    zoom: Annotated[int, msgspec.Meta(ge=0, le=22)] = 12


class UntrackArea(
    msgspec.Struct, tag="untrack_area", tag_field="action", forbid_unknown_fields=True
):
    pass


class TrackTrip(msgspec.Struct, tag="track_trip", tag_field="action", forbid_unknown_fields=True):
    trip_id: TripId


class UntrackTrip(
    msgspec.Struct, tag="untrack_trip", tag_field="action", forbid_unknown_fields=True
):
    trip_id: TripId


class Ping(msgspec.Struct, tag="ping", tag_field="action", forbid_unknown_fields=True):
    pass


Request = Track | Untrack | TrackArea | UntrackArea | TrackTrip | UntrackTrip | Ping
_decode_request = msgspec.json.Decoder(Request).decode
_encode = msgspec.json.Encoder().encode
Send = Callable[[str], Awaitable[None]]


class BadMessage(ValueError):
    """A client message that cannot be acted on; the reply says why, the connection stays."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LiveClient:
    """One connection's subscriptions and what waits to be sent to it."""

    def __init__(
        self, principal: Principal, send: Send, alert_out: Callable[[Alert], object]
    ) -> None:
        self.principal = principal
        self.send = send
        self.alert_out = alert_out
        """How the entry point shows an alert (the same shape as its REST replies)."""
        self.vehicles: set[str] = set()
        self.trips: set[str] = set()
        self.area: AreaView | None = None
        self.pending: dict[str, GpsPoint] = {}
        self.gone: set[str] = set()
        """Vehicles whose marker the client should remove (they left its area): `left_area`."""
        self.last_sent: dict[str, View] = {}
        self.next_ok: dict[str, float] = {}
        """vehicle -> when (wall clock, s) its next update may go: the arrival of the last one
        sent plus the interval."""
        self.alerts: collections.deque[Alert] = collections.deque()
        self.replies: collections.deque[bytes] = collections.deque()
        self.wake = asyncio.Event()
        self.closed: str | None = None
        """Why the hub dropped this client (the connection should close with it)."""

    def follows(self, vehicle_id: str, trip_id: str | None) -> bool:
        """Followed by vehicle or trip (not only through the area)."""
        return vehicle_id in self.vehicles or (trip_id is not None and trip_id in self.trips)

    def wants(self, p: GpsPoint) -> bool:
        """Whether the client is sent this fix; notes the vehicles that leave its area."""
        if not self.principal.may_see_point(p.vehicle_id, p.trip_id):
            return False
        shown = False
        if self.area is not None:
            shown, left = self.area.offer(p.vehicle_id, p.lat, p.lng, p.ts)
            for vid in left:
                trip = p.trip_id if vid == p.vehicle_id else self._trip_shown(vid)
                if not self.follows(vid, trip):
                    self._left(vid)
        return shown or self.follows(p.vehicle_id, p.trip_id)

    def _trip_shown(self, vehicle_id: str) -> str | None:
        waiting = self.pending.get(vehicle_id)
        if waiting is not None:
            return waiting.trip_id
        trip = self.last_sent.get(vehicle_id, {}).get("trip_id")
        return trip if isinstance(trip, str) else None

    def _left(self, vehicle_id: str) -> None:
        self.pending.pop(vehicle_id, None)
        if vehicle_id in self.last_sent:  # the client has a marker to remove
            self.gone.add(vehicle_id)
            self.wake.set()


class LiveHub:
    """Every live client of this process, indexed by what they watch."""

    def __init__(
        self,
        current: CurrentLocations,
        metrics: Metrics,
        *,
        location_ttl_h: float,
        min_interval_s: float = 1.0,
        send_timeout_s: float = 5.0,
    ) -> None:
        self._current = current
        self._metrics = metrics
        self._ttl_ms = int(location_ttl_h * 3_600_000)
        self._min_interval_s = min_interval_s
        self._send_timeout_s = send_timeout_s
        self._clients: set[LiveClient] = set()
        self._by_vehicle: dict[tuple[str, str], set[LiveClient]] = {}
        self._by_trip: dict[tuple[str, str], set[LiveClient]] = {}
        self._by_area: dict[str, set[LiveClient]] = {}
        self._latest: dict[tuple[str, str], int] = {}
        """The newest fix time per vehicle offered, so a late point never moves a marker back;
        pruned of vehicles silent for the location TTL once it doubles."""
        self._prune_latest_at = LATEST_PRUNE_MIN
        self.loop: asyncio.AbstractEventLoop | None = None
        metrics.watch("websocket_connections", "Live WebSocket clients", lambda: len(self._clients))
        metrics.watch(
            "websocket_subscriptions",
            "Entries in the live hub's indexes (vehicles, trips, areas watched)",
            lambda: self.subscriptions,
        )

    # --- connections ------------------------------------------------------------------------
    def connect(
        self,
        principal: Principal,
        send: Send,
        alert_out: Callable[[Alert], object] = lambda alert: alert,
    ) -> LiveClient:
        self.loop = asyncio.get_running_loop()
        client = LiveClient(principal, send, alert_out)
        self._clients.add(client)
        return client

    def disconnect(self, client: LiveClient) -> None:
        """Forget every subscription of the client (idempotent)."""
        self._clients.discard(client)
        fleet = client.principal.fleet_id
        for vid in client.vehicles:
            _discard(self._by_vehicle, (fleet, vid), client)
        for trip in client.trips:
            _discard(self._by_trip, (fleet, trip), client)
        _discard(self._by_area, fleet, client)
        client.vehicles.clear()
        client.trips.clear()
        client.area = None
        client.closed = client.closed or "disconnected"
        client.wake.set()

    @property
    def subscriptions(self) -> int:
        """Index entries left (0 once every client is gone): for tests and leak checks."""
        return len(self._by_vehicle) + len(self._by_trip) + len(self._by_area)

    # --- what clients ask -------------------------------------------------------------------
    async def handle(self, client: LiveClient, text: str | bytes) -> None:
        """Act on one client message; a bad one gets an error reply, not a disconnect."""
        try:
            request = _parse(text)
            reply = await self._apply(client, request)
        except BadMessage as exc:
            reply = {"type": "error", "error": {"code": exc.code, "message": str(exc)}}
        self._queue_reply(client, reply)

    async def _apply(self, client: LiveClient, request: Request) -> dict[str, object]:
        fleet, principal = client.principal.fleet_id, client.principal
        if isinstance(request, Ping):
            return {"type": "pong"}
        if isinstance(request, Track):
            wanted = [v for v in dict.fromkeys(request.vehicle_ids) if principal.may_see(v)]
            if len(client.vehicles | set(wanted)) > MAX_TRACKED:
                raise BadMessage("too_many", f"at most {MAX_TRACKED} vehicles per connection")
            for vid in wanted:
                client.vehicles.add(vid)
                self._by_vehicle.setdefault((fleet, vid), set()).add(client)
            found = await asyncio.to_thread(self._current.get_many, fleet, wanted)
            shown = [p for p in found.values() if principal.may_see_trip(p.trip_id)]
            return self._snapshot("track", client, shown, vehicle_ids=wanted)
        if isinstance(request, Untrack):
            for vid in request.vehicle_ids:
                if vid in client.vehicles:
                    client.vehicles.discard(vid)
                    _discard(self._by_vehicle, (fleet, vid), client)
                    self._forget(client, vid)
            return {"type": "untracked", "vehicle_ids": request.vehicle_ids}
        if isinstance(request, TrackArea):
            west, south, east, north = request.bbox
            if not (-90 <= south <= north <= 90 and -180 <= west <= 180 and -180 <= east <= 180):
                raise BadMessage("bad_request", "bbox must be [west, south, east, north] degrees")
            view = AreaView(Area(west, south, east, north, request.zoom))
            self._replace_area(client, view)
            self._by_area.setdefault(fleet, set()).add(client)
            inside = await asyncio.to_thread(self._area_candidates, principal, view.area)
            shown = []
            for p in inside[:MAX_AREA_VEHICLES]:
                visible = principal.may_see_point(p.vehicle_id, p.trip_id)
                if visible and view.offer(p.vehicle_id, p.lat, p.lng, p.ts)[0]:
                    shown.append(p)
            truncated = len(inside) > MAX_AREA_VEHICLES
            return self._snapshot(
                "track_area", client, shown, bbox=request.bbox, truncated=truncated
            )
        if isinstance(request, UntrackArea):
            self._replace_area(client, None)
            _discard(self._by_area, fleet, client)
            return {"type": "untracked_area"}
        if isinstance(request, TrackTrip):
            if not principal.may_see_trip(request.trip_id):
                raise BadMessage("forbidden", "this token may not follow that trip")
            client.trips.add(request.trip_id)
            self._by_trip.setdefault((fleet, request.trip_id), set()).add(client)
            on_trip = await asyncio.to_thread(self._current.on_trip, fleet, request.trip_id)
            shown = [p for p in on_trip if principal.may_see_point(p.vehicle_id, p.trip_id)]
            return self._snapshot("track_trip", client, shown, trip_id=request.trip_id)
        assert isinstance(request, UntrackTrip)
        client.trips.discard(request.trip_id)
        _discard(self._by_trip, (fleet, request.trip_id), client)
        return {"type": "untracked_trip", "trip_id": request.trip_id}

    def _area_candidates(self, principal: Principal, area: Area) -> list[GpsPoint]:
        """The fresh current locations inside the area, newest first, thinned to one per cell
        below full detail: the store thins a whole fleet (the newest fix of each cell), the
        few vehicles of a limited token are read and thinned here, so a vehicle it may not see
        never takes a cell from one it may."""
        fresh_after = _now_ms() - self._ttl_ms
        fleet = principal.fleet_id
        if principal.vehicles is None and principal.trips is None:
            return self._current.in_area(
                fleet, area.west, area.south, area.east, area.north,
                newer_than_ms=fresh_after, cell_deg=area.cell_deg, limit=MAX_AREA_VEHICLES + 1,
            )  # fmt: skip
        if principal.vehicles is not None:
            found = list(self._current.get_many(fleet, sorted(principal.vehicles)).values())
        else:
            found = [
                p for trip in principal.trips or () for p in self._current.on_trip(fleet, trip)
            ]
        inside = [p for p in found if p.ts >= fresh_after and area.contains(p.lat, p.lng)]
        return sorted(inside, key=lambda p: (-p.ts, p.vehicle_id))

    def _replace_area(self, client: LiveClient, view: AreaView | None) -> None:
        """A new area (or none) replaces the old one: its snapshot redraws the map, so nothing
        waiting for the old area's vehicles is sent any more."""
        client.area = view
        client.gone.clear()
        client.pending = {
            vid: p for vid, p in client.pending.items() if client.follows(vid, p.trip_id)
        }

    def _snapshot(
        self, action: str, client: LiveClient, points: Sequence[GpsPoint], **what: object
    ) -> dict[str, object]:
        """The current positions for a new subscription; they become the base of later deltas."""
        fresh_after = _now_ms() - self._ttl_ms
        views = []
        for p in points:
            if p.ts < fresh_after:
                continue
            view = view_of(p)
            client.last_sent[p.vehicle_id] = view
            views.append(view)
        return {"type": "snapshot", "action": action, **what, "vehicles": views}

    def _forget(self, client: LiveClient, vid: str) -> None:
        if vid not in client.vehicles and client.area is None and not client.trips:
            client.pending.pop(vid, None)
            client.last_sent.pop(vid, None)

    # --- what happens -----------------------------------------------------------------------
    def publish_points(self, fleet: str, points: Sequence[GpsPoint]) -> None:
        """Offer newly stored points to the clients that watch them (never blocks)."""
        if not self._clients:
            return
        if len(self._latest) >= self._prune_latest_at:
            self._prune_latest()
        latest = self._latest
        areas = self._by_area.get(fleet)
        for p in points:
            key = (fleet, p.vehicle_id)
            if latest.get(key, -1) >= p.ts:  # a late point: the map already shows a newer one
                continue
            latest[key] = p.ts
            targets = set(self._by_vehicle.get(key, ()))
            if p.trip_id is not None:
                targets.update(self._by_trip.get((fleet, p.trip_id), ()))
            if areas:
                targets.update(areas)
            for client in targets:
                if client.wants(p):
                    if p.vehicle_id in client.pending:
                        self._metrics.live_coalesced.inc()
                    client.pending[p.vehicle_id] = p
                    client.gone.discard(p.vehicle_id)
                    client.wake.set()

    def _prune_latest(self) -> None:
        """Forget vehicles silent for the location TTL (their markers are gone anyway)."""
        fresh_after = _now_ms() - self._ttl_ms
        self._latest = {k: ts for k, ts in self._latest.items() if ts >= fresh_after}
        self._prune_latest_at = max(LATEST_PRUNE_MIN, 2 * len(self._latest))

    def publish_alerts(self, alerts: Sequence[Alert]) -> None:
        """Offer new alerts to the clients watching their vehicle, trip or area."""
        for alert in alerts:
            fleet = alert.fleet_id
            targets = set(self._by_vehicle.get((fleet, alert.vehicle_id), ()))
            if alert.trip_id is not None:
                targets.update(self._by_trip.get((fleet, alert.trip_id), ()))
            if alert.lat is not None and alert.lng is not None:
                for client in self._by_area.get(fleet, ()):
                    area = client.area
                    if area is not None and area.area.contains(alert.lat, alert.lng):
                        targets.add(client)
            for client in targets:
                if not client.principal.may_see_point(alert.vehicle_id, alert.trip_id):
                    continue
                if len(client.alerts) >= MAX_WAITING_ALERTS:
                    self._drop(client, "too many alerts waiting: the client is not reading")
                    continue
                client.alerts.append(alert)
                client.wake.set()

    def publish_trip_event(
        self, fleet: str, trip_id: str, vehicle_id: str, message: dict[str, object]
    ) -> None:
        """Send a trip's event (a milestone) to the clients following the trip, in order with
        their other replies."""
        for client in list(self._by_trip.get((fleet, trip_id), ())):
            if client.principal.may_see_point(vehicle_id, trip_id):
                self._queue_reply(client, message)

    def publish_alerts_threadsafe(self, alerts: Sequence[Alert]) -> None:
        """From another thread (the writer's reply reader)."""
        loop = self.loop
        if loop is not None and alerts and self._clients:
            loop.call_soon_threadsafe(self.publish_alerts, list(alerts))

    # --- sending ----------------------------------------------------------------------------
    def _queue_reply(self, client: LiveClient, reply: dict[str, object]) -> None:
        if len(client.replies) >= MAX_WAITING_REPLIES:
            self._drop(client, "too many replies waiting: the client is not reading")
            return
        client.replies.append(_encode(reply))
        client.wake.set()

    async def run_sender(self, client: LiveClient) -> None:
        """Send the client what waits for it until it is dropped; returns the reason."""
        while client.closed is None:
            await client.wake.wait()
            client.wake.clear()
            if client.closed is not None:
                break
            messages: list[tuple[bytes, list[int]]] = [(r, []) for r in client.replies]
            client.replies.clear()
            messages += self._updates(client)
            while client.alerts:
                alert = client.alerts.popleft()
                body = {"type": "alert", "alert": client.alert_out(alert)}
                messages.append((_encode(body), []))
            for message, received_at in messages:
                try:
                    await asyncio.wait_for(
                        client.send(message.decode()), timeout=self._send_timeout_s
                    )
                except TimeoutError:
                    self._drop(client, "too slow: messages could not be sent")
                    break
                self._metrics.live_sent.inc()
                if received_at:  # from the point's arrival to its hand-over to the socket
                    now_ms = _now_ms()
                    for at in received_at:
                        self._metrics.tracking_latency.observe(max(0.0, (now_ms - at) / 1000))

    def _updates(self, client: LiveClient) -> list[tuple[bytes, list[int]]]:
        """The waiting `location_update` (what may go under the rate limit) and `left_area`,
        each with the arrival times of the points it carries."""
        messages: list[tuple[bytes, list[int]]] = []
        if client.gone:
            gone = sorted(client.gone)
            client.gone.clear()
            for vid in gone:  # a vehicle coming back is sent in full
                client.last_sent.pop(vid, None)
            messages.append((_encode({"type": "left_area", "vehicle_ids": gone}), []))
        if not client.pending:
            return messages
        # Paced by the points' arrival, not by when they were sent: a truck reporting every
        # second is never held back, and one late send (a slow commit) does not delay every
        # later update of that vehicle by as much.
        now = time.time()
        ready, later = [], []
        for vid, p in client.pending.items():
            (ready if client.next_ok.get(vid, 0.0) <= now else later).append((vid, p))
        if later:  # rate-limited: wake again when the first of them may go
            wait = min(client.next_ok[vid] for vid, _ in later) - now
            assert self.loop is not None
            self.loop.call_later(max(wait, 0.001), client.wake.set)
        client.pending = dict(later)
        if not ready:
            return messages
        updates = []
        for vid, p in ready:
            view = view_of(p)
            updates.append(delta(client.last_sent.get(vid), view))
            client.last_sent[vid] = view
            client.next_ok[vid] = p.received_at / 1000 + self._min_interval_s
        body = _encode({"type": "location_update", "updates": updates})
        return [*messages, (body, [p.received_at for _, p in ready])]

    def _drop(self, client: LiveClient, reason: str) -> None:
        log.info("dropping a live client of %s: %s", client.principal.fleet_id, reason)
        self._metrics.live_dropped_clients.inc()
        client.closed = reason
        self.disconnect(client)


def _parse(text: str | bytes) -> Request:
    try:
        return _decode_request(text)
    except msgspec.ValidationError as exc:
        raise BadMessage("bad_request", str(exc)) from None
    except msgspec.DecodeError:
        raise BadMessage("bad_request", "a message must be a JSON object") from None


def _discard[K](index: dict[K, set[LiveClient]], key: K, client: LiveClient) -> None:
    clients = index.get(key)
    if clients is not None:
        clients.discard(client)
        if not clients:
            del index[key]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

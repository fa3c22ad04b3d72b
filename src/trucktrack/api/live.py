"""`/tracking/ws`: the live map's WebSocket. Authenticates, then hands messages to the hub.

The token comes in the `Authorization: Bearer` header or, for browsers (which cannot set
headers on a WebSocket), as `?token=`. A missing or bad token closes the connection with 1008
(policy violation); a client the hub drops for not keeping up is closed with 1013 (try again
later). Protocol-level ping/pong keeps idle connections alive (uvicorn pings every
`ws_ping_interval_s` and closes a peer that does not answer within `ws_ping_timeout_s`);
`{"action": "ping"}` gets `{"type": "pong"}` too.
"""

from __future__ import annotations

import asyncio
import contextlib

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from trucktrack.api.alerts import AlertOut
from trucktrack.api.ingest import bearer_token
from trucktrack.bootstrap import Services
from trucktrack.errors import Unauthenticated
from trucktrack.services.live import LiveClient, LiveHub

POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013
MAX_MESSAGE_BYTES = 64 * 1024


@websocket("/tracking/ws")
async def tracking_ws(socket: WebSocket) -> None:
    services: Services = socket.app.state.services
    token = bearer_token(socket.headers.get("authorization")) or socket.query_params.get("token")
    await socket.accept()
    try:
        principal = services.tokens.authenticate(token)
    except Unauthenticated as exc:
        await socket.close(code=POLICY_VIOLATION, reason=str(exc))
        return
    hub = services.live
    client = hub.connect(principal, socket.send_text, AlertOut.of)
    sender = asyncio.create_task(hub.run_sender(client))
    try:
        receiver = asyncio.create_task(_receive(socket, hub, client))
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if sender in done and client.closed is not None:  # dropped by the hub
            receiver.cancel()
            with contextlib.suppress(Exception):
                await socket.close(code=TRY_AGAIN_LATER, reason=client.closed[:120])
    finally:
        hub.disconnect(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


async def _receive(socket: WebSocket, hub: LiveHub, client: LiveClient) -> None:
    try:
        while True:
            message = await socket.receive_data(mode="text")
            if len(message) > MAX_MESSAGE_BYTES:
                await hub.handle(client, b"{}")  # answered as a bad message
                continue
            await hub.handle(client, message)
    except WebSocketDisconnect:
        return

"""Sockets (and close beacons) that reached a node which does not own their room.

The load balancer hashes on the roomID, so a room's sockets mostly land on its owner; one that
lands elsewhere (a node joined or left, a failover) is carried to the owner: this node has
accepted the client's WebSocket already (the gate ran here), opens a WebSocket to the owner's
advertised URL with the same path, query and subprotocol, and pipes text frames both ways.
Either side closing closes the other. The upstream request carries ``PROXIED_HEADER``, signed
with the cluster's secret (``reflectd.server.peers``), so that the owner never proxies it
again: if it no longer owns the room, it takes the room if the lease is free, else it closes
and the client reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, WebSocketException
from websockets.typing import Subprotocol

from reflectd.engine.streamed import PIECE_BYTES, WholeMessage
from reflectd.server.peers import PROXIED_HEADER, PeerAuth
from reflectd.server.sockets import ClientSocket

logger = logging.getLogger(__name__)

#: how long opening the socket to the owner may take (s)
OPEN_TIMEOUT_S = 5.0


def ws_url(advertise_url: str, path: str, query: str) -> str:
    """The WebSocket URL of ``path?query`` on the node advertised as ``advertise_url``."""
    base = advertise_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return f"{base}{path}?{query}" if query else f"{base}{path}"


async def proxy_socket(
    socket: ClientSocket,
    owner_url: str,
    *,
    protocol: str | None,
    peers: PeerAuth,
) -> bool:
    """Pipe ``socket`` (accepted) to the room's owner until either side closes; False if the
    owner could not be reached at all. The caller closes ``socket`` afterwards."""
    websocket = socket.websocket
    url = ws_url(owner_url, websocket.url.path, websocket.url.query)
    signed = peers.header(websocket.url.path, websocket.query_params.multi_items())
    try:
        async with connect(
            url,
            subprotocols=[Subprotocol(protocol)] if protocol is not None else None,
            additional_headers={PROXIED_HEADER: signed},
            compression=None,
            proxy=None,
            open_timeout=OPEN_TIMEOUT_S,
            max_size=None,  # the owner is one of ours; a big fast-forward may be any size
            user_agent_header=None,
        ) as upstream:
            logger.info("proxying a socket to %s", owner_url, extra={"room_id": socket.room_id})
            await _pipe(socket, upstream)
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        logger.warning("proxy to %s failed: %s", owner_url, exc, extra={"room_id": socket.room_id})
        return False
    except WebSocketException:
        pass  # the owner's socket broke: close the client's, it reconnects
    return True


async def _pipe(socket: ClientSocket, upstream: ClientConnection) -> None:
    tasks = [
        asyncio.create_task(_client_to_owner(socket, upstream)),
        asyncio.create_task(_owner_to_client(socket, upstream)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _client_to_owner(socket: ClientSocket, upstream: ClientConnection) -> None:
    while True:
        message = await socket.receive()
        if message is None or message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await upstream.send(text)
        elif message.get("bytes") is not None:
            await upstream.send(message["bytes"])


async def _owner_to_client(socket: ClientSocket, upstream: ClientConnection) -> None:
    async for frame in upstream:
        if socket.closing:
            return
        data = frame.encode() if isinstance(frame, str) else frame
        if len(data) > PIECE_BYTES:
            socket.send_stream(WholeMessage(data))  # a big fast-forward: as the client reads
        else:
            socket.send(data)


#: the headers a forwarded request keeps
_FORWARDED_HEADERS = (
    "authorization",
    "x-reflect-api-key",
    "x-reflect-auth-api-key",
    "content-type",
    "idempotency-key",
)


async def forward_request(
    request: Request, owner_url: str, *, peers: PeerAuth, body: bytes | None = None
) -> Response:
    """Forward an HTTP request (a close beacon, a REST change to a room) to the room's owner;
    its answer is ours. ``body``: the request's body, when it was read already."""
    url = owner_url.rstrip("/") + request.url.path
    headers = {
        name: value for name, value in request.headers.items() if name.lower() in _FORWARDED_HEADERS
    }
    headers[PROXIED_HEADER] = peers.header(request.url.path, request.query_params.multi_items())
    try:
        async with httpx.AsyncClient(timeout=OPEN_TIMEOUT_S) as client:
            answer = await client.request(
                request.method,
                url,
                params=request.url.query,
                content=await request.body() if body is None else body,
                headers=headers,
            )
    except httpx.HTTPError as exc:
        logger.warning("forwarding %s to %s failed: %s", request.url.path, owner_url, exc)
        return PlainTextResponse("Room owner unreachable, try again", 503)
    return Response(
        answer.content,
        answer.status_code,
        media_type=answer.headers.get("content-type"),
    )

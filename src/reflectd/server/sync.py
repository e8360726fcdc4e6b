"""The sync endpoints: the WebSocket ``/api/sync/v1/connect`` and the close beacon.

The adapter between the sockets and the rooms: it parses what arrives (the protocol's rules
are in ``reflectd.protocol``), applies the server's own limits, hands the rest to the room's
actor, and reports errors (``send_error_frame``). Connect failures are delivered inside an
accepted socket, as the client expects: accept with the ``Sec-WebSocket-Protocol`` echoed
verbatim, send ``["error", kind, message]``, close.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from functools import partial

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket

from reflectd.app import App
from reflectd.clock import now_ms
from reflectd.engine.room import BeaconOutcome, ConnectRequest, Room
from reflectd.errors import (
    InvalidConnectionRequest,
    InvalidMessage,
    LimitExceeded,
    NotOwner,
    ProtocolError,
    ReflectdError,
    RoomUnavailable,
    Unauthorized,
)
from reflectd.logs import bind_log_fields, new_request_id
from reflectd.protocol.beacon import beacon_query_problem, bearer_token, decode_beacon_body
from reflectd.protocol.codec import PONG_FRAME, parse_upstream
from reflectd.protocol.connect import (
    check_gate,
    parse_connect_query,
    parse_version,
    single_valued,
)
from reflectd.protocol.messages import PingBody, PullBody, PushBody
from reflectd.server import metrics
from reflectd.server.actor import RoomActor
from reflectd.server.auth import Authenticator
from reflectd.server.errors import (
    RETRY_AFTER_S,
    api_error,
    internal_error,
    send_error_frame,
    unavailable,
)
from reflectd.server.http import client_address
from reflectd.server.peers import PeerAuth
from reflectd.server.proxy import forward_request, proxy_socket
from reflectd.server.rooms import RoomRegistry
from reflectd.server.settings import ServerSettings
from reflectd.server.sockets import ClientSocket

logger = logging.getLogger(__name__)

#: how often a socket whose room's owner is unreachable tries again to reach or take it (s)
_OWNER_RETRY_S = 0.25


def bad_version(segment: str) -> Response:
    """The original's plain-text 500 for a version segment that is not ``v<digits>``."""
    return PlainTextResponse(f"invalid version found by withVersion, {segment}", 500)


def is_version_segment(segment: str) -> bool:
    return parse_version(segment) is not None


#: the log fields of the connect query's parameters
_CLAIMED = {"room_id": "roomID", "client_id": "clientID", "user_id": "userID"}


def _claimed(websocket: WebSocket) -> dict[str, str]:
    """The room, client and user a connect names, as log fields (before they are checked)."""
    params = websocket.query_params
    return {field: params[name] for field, name in _CLAIMED.items() if name in params}


class SyncEndpoints:
    def __init__(
        self,
        app: App,
        registry: RoomRegistry,
        settings: ServerSettings,
        *,
        peers: PeerAuth | None = None,
    ) -> None:
        self.app = app
        self.registry = registry
        self.settings = settings
        #: tells the requests other nodes forward from clients' (without: trusts none)
        self.peers = peers or PeerAuth(None, registry.node_id)
        self.sockets: set[ClientSocket] = set()
        self.authenticate = Authenticator(
            app, timeout_ms=settings.auth_timeout_ms, threads=settings.auth_threads
        )
        #: the server is shutting down: the close beacon answers 503
        self.draining = False
        #: open sockets per client address (``max_connections_per_address``)
        self._per_address: Counter[str] = Counter()
        self._connection_ids = itertools.count(1)

    # ----------------------------------------------------------------------- connect

    async def connect(self, websocket: WebSocket) -> None:
        version = parse_version(websocket.path_params["version"])
        if version is None:
            await websocket.send_denial_response(bad_version(websocket.path_params["version"]))
            return
        protocol = websocket.headers.get("sec-websocket-protocol")
        await websocket.accept(subprotocol=protocol)
        bind_log_fields(request_id=new_request_id())  # this socket's task, to its end
        socket = ClientSocket(
            websocket,
            connection_id=next(self._connection_ids),
            max_buffer_bytes=self.settings.limits.max_send_buffer_bytes,
            opened_ms=now_ms(),
            max_stall_ms=self.settings.limits.max_send_stall_ms,
        )
        self.sockets.add(socket)
        metrics.connection_opened()
        address = client_address(websocket)
        self._per_address[address] += 1
        try:
            actor = await self._open_or_proxy(socket, version, protocol)
        except ProtocolError as e:
            metrics.connect_refused(e.kind)
            logger.info("connect refused: %s: %s", e.kind, e.message, extra=_claimed(websocket))
            send_error_frame(socket, e)
        except ReflectdError:
            socket.close()  # the room stopped meanwhile: the client reconnects at once
        except Exception:  # e.g. the room-start handler raised: close, no details
            logger.exception("connect failed", extra=_claimed(websocket))
            socket.close()
        else:
            if actor is None:
                return  # proxied to the room's owner, now closed
            bind_log_fields(
                room_id=socket.room_id, client_id=socket.client_id, user_id=socket.user_id
            )
            logger.info("connection opened")
            try:
                await self._receive_loop(socket, actor)
            except RoomUnavailable:
                pass  # the room stopped (shutdown, failed commit): close; the client reconnects
            finally:
                actor.detach(socket)
                logger.info("connection closed")
        finally:
            self.sockets.discard(socket)
            metrics.CONNECTIONS_OPEN.dec()
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]
            socket.close()
            await socket.closed()

    async def _open_or_proxy(
        self, socket: ClientSocket, version: int, protocol: str | None
    ) -> RoomActor | None:
        """``_open``; when another node owns the room, carry the socket to it and return None
        once that ends. A socket proxied here already is closed rather than proxied again
        (the client reconnects). While the owner cannot be reached (it died: its lease ends
        within ``lease_ms``), try again, so that this node takes the room when it can."""
        deadline = time.monotonic() + self.settings.lease_ms / 1000 + 1
        proxied = self.peers.sender(socket.websocket) is not None
        while True:
            try:
                return await self._open(socket, version, protocol, proxied=proxied)
            except NotOwner as e:
                if proxied:
                    logger.info("proxied socket refused: %s", e, extra={"room_id": socket.room_id})
                    return None
                reached = await proxy_socket(
                    socket,
                    e.owner.address,
                    protocol=protocol,
                    peers=self.peers,
                )
                if reached or socket.closing or time.monotonic() >= deadline:
                    return None
                await asyncio.sleep(_OWNER_RETRY_S)

    async def _open(
        self, socket: ClientSocket, version: int, protocol: str | None, *, proxied: bool
    ) -> RoomActor:
        """The server's connection limits, the gate, the auth handler, the room, then the
        room's connect. Returns the room's actor once ``connected`` is queued (after the
        client record is durable). A socket ``proxied`` by another node was counted against
        its client's address there."""
        websocket = socket.websocket
        limits = self.settings.limits
        if len(self.sockets) > limits.max_connections:
            raise InvalidConnectionRequest(
                f"the server is at its limit of {limits.max_connections} connections"
            )
        address = client_address(websocket)
        per_address = limits.max_connections_per_address
        if per_address and not proxied and self._per_address[address] > per_address:
            raise InvalidConnectionRequest(
                f"too many connections from {address} (the limit is {per_address})"
            )
        query = single_valued(websocket.query_params.multi_items())
        gate = check_gate(
            query,
            version=version,
            protocol=protocol,
            auth_required=self.app.auth_handler is not None,
        )
        auth = await self.authenticate(token=gate.token, room_id=gate.room_id, user_id=gate.user_id)
        socket.user_id, socket.room_id = gate.user_id, gate.room_id
        actor = await self.registry.open_room(gate.room_id, gate.jurisdiction)
        parsed = parse_connect_query(query, str(websocket.url))
        socket.client_id = parsed.client_id
        if len(actor.sockets) >= limits.max_connections_per_room:
            raise InvalidConnectionRequest(
                f"room {gate.room_id} is at its limit of "
                f"{limits.max_connections_per_room} connections"
            )
        request = ConnectRequest.of(parsed, connection_id=socket.connection_id, auth=auth)
        actor.attach(socket)
        try:
            await actor.call(partial(_connect, request))
        except BaseException:
            actor.sockets.pop(socket.connection_id, None)
            raise
        return actor

    async def _receive_loop(self, socket: ClientSocket, actor: RoomActor) -> None:
        limit = self.settings.limits.max_message_bytes
        max_mutations = self.settings.limits.max_mutations_per_push
        while True:
            message = await socket.receive()
            if message is None or message["type"] == "websocket.disconnect":
                return  # closing (after an error, say): what the client sent since is ignored
            text = message.get("text")
            try:
                if text is None:
                    raise InvalidMessage("binary frames are not supported; send JSON text")
                if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
                    raise InvalidMessage(f"message is larger than the limit of {limit} bytes")
                upstream = parse_upstream(text)
            except InvalidMessage as e:
                send_error_frame(socket, e)
                continue
            if isinstance(upstream, PingBody):
                socket.send(PONG_FRAME)
            elif isinstance(upstream, PushBody):
                if len(upstream.mutations) > max_mutations:
                    error = LimitExceeded(
                        f"push has {len(upstream.mutations)} mutations, more than the "
                        f"limit of {max_mutations}"
                    )
                    send_error_frame(socket, error)
                    continue
                actor.post(partial(_push, socket.client_id, socket.connection_id, upstream), socket)
            elif isinstance(upstream, PullBody):
                actor.post(partial(_pull, socket.client_id, socket.connection_id, upstream), socket)

    # ----------------------------------------------------------------------- close beacon

    async def close_beacon(self, request: Request) -> Response:
        """``POST /api/sync/v1/close``: the client is gone for good. Unexpected
        failures are a 500 naming an error id (the details are in the log, not the body)."""
        if self.draining:
            return unavailable("the server is shutting down")
        try:
            return await self._close_beacon(request)
        except RoomUnavailable:
            return unavailable("the room is not available")
        except Exception:
            if self.draining:
                return unavailable("the server is shutting down")
            return internal_error(logger, "close beacon")

    async def _close_beacon(self, request: Request) -> Response:
        query = request.query_params
        problem = beacon_query_problem(query.multi_items())
        if problem is not None:
            return api_error(400, f"Query string error. {problem}")
        token = None
        header = request.headers.get("authorization")
        if header is not None:
            try:
                token = bearer_token(header)
            except ValueError as e:
                return api_error(401, str(e))
        elif self.app.auth_handler is not None:
            return api_error(401, "Missing Authorization header")
        try:
            await self.authenticate(token=token, room_id=query["roomID"], user_id=query["userID"])
        except Unauthorized as e:
            metrics.AUTH_FAILURES.labels("sync").inc()
            return PlainTextResponse(e.message, 403)
        record = await self.registry.store.get_room(query["roomID"])
        if record is None:
            return PlainTextResponse("Room not found", 404)
        if record.status != "open":
            return PlainTextResponse("Room closed", 410)
        try:
            body = decode_beacon_body(await request.body())
        except ValueError as e:
            return api_error(400, str(e))
        try:
            actor = await self.registry.actor(query["roomID"])
        except NotOwner as e:
            if self.peers.sender(request) is not None:
                return PlainTextResponse(
                    "Room moved, try again", 503, headers={"Retry-After": str(RETRY_AFTER_S)}
                )
            return await forward_request(request, e.owner.address, peers=self.peers)
        outcome = await actor.call(
            partial(_close_beacon, query["clientID"], query["userID"], body.last_mutation_id)
        )
        return PlainTextResponse(outcome.text, outcome.status)


# The engine calls an actor runs for a socket (module-level, so no closure captures a loop
# variable by mistake).


def _connect(request: ConnectRequest, room: Room) -> None:
    room.connect(request, now_ms=now_ms())


def _push(client_id: str, connection_id: int, push: PushBody, room: Room) -> None:
    room.push(client_id, connection_id, push, now_ms=now_ms())


def _pull(client_id: str, connection_id: int, pull: PullBody, room: Room) -> None:
    room.pull(client_id, connection_id, pull)


def _close_beacon(client_id: str, user_id: str, last_mutation_id: int, room: Room) -> BeaconOutcome:
    return room.close_beacon(client_id, last_mutation_id, user_id=user_id)

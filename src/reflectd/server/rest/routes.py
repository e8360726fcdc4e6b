"""The REST API's routes, in two shapes with one set of commands:

- the ``/v1/apps/{app-id}/...`` API with ``Authorization: Basic <key>``;
- the original server's ``/api/v1/...`` API (and its legacy forms) with ``x-reflect-api-key``.

Each route is declared once, below, as a decorated function (``endpoint.py`` says how); the
server and the OpenAPI document both read ``ROUTES``.

Order of checks, as in the original: the key first (401 before any 404 or 405), then the
app-id, the route (404), the method (405), the key's permission (403), the body's size (413),
then the strict query and body parsing (400) and the command itself. Before all of them, an
address that failed to authenticate too often gets 429 (``throttle``; the original has no such
limit).
"""

from __future__ import annotations

import logging
import re
import time
from typing import TypeVar
from urllib.parse import parse_qsl, unquote

import msgspec
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from reflectd.clock import now_ms
from reflectd.errors import ApiError, NotOwner, RoomUnavailable
from reflectd.logs import LOG_LEVELS, bind_log_fields, new_request_id, unbind_log_fields
from reflectd.server.errors import api_error, internal_error, unavailable
from reflectd.server.http import client_address
from reflectd.server.log_tail import LogTail, TailFilter
from reflectd.server.peers import PeerAuth
from reflectd.server.proxy import forward_request
from reflectd.server.rest import failures as F
from reflectd.server.rest.commands import (
    INVALID_CONTENTS,
    INVALID_ROOM_ID,
    MUTATOR_FAILED,
    ROOM_CLOSED,
    ROOM_DELETED,
    ROOM_EXISTS,
    ROOM_GONE,
    ROOM_NOT_FOUND,
    ROOM_OPEN,
    UNKNOWN_MUTATOR,
    RoomCommands,
)
from reflectd.server.rest.endpoint import RestRoute, RouteTable
from reflectd.server.rest.failures import (
    IMPORT_MAX_BODY_BYTES,
    MAX_BODY_BYTES,
    ORIGINAL_PLAIN_TEXT,
)
from reflectd.server.rest.keys import KeyRing, Principal
from reflectd.server.rest.parsing import read_body
from reflectd.server.rest.throttle import FailedAuthThrottle
from reflectd.server.rest.wire import (
    ROOM_EXAMPLE,
    TIME_EXAMPLE,
    USER_EXAMPLE,
    ApiKey,
    CreateRoomRequest,
    Empty,
    GetRoomContentsResult,
    IdempotencyHeaders,
    ImportRequest,
    ImportResult,
    ListRoomsQuery,
    ListRoomsResult,
    MutateRequest,
    MutateResult,
    NewRoomQuery,
    NoQuery,
    Room,
    RoomClient,
    RoomClientsResult,
    RoomQuery,
    UserQuery,
)
from reflectd.storage.base import PERMISSIONS, Permission

logger = logging.getLogger(__name__)
#: one line per REST call: method, route template, status, duration, key name
access_logger = logging.getLogger("reflectd.access")

#: the header that returns a REST call's request id (also the ``request_id`` of its log lines)
REQUEST_ID_HEADER = "X-Request-Id"
#: the log stream of ``reflectd tail`` (server-sent events, not a table route: see ``_tail``)
TAIL_PATH = "/logs:tail"
TAIL_PERMISSION: Permission = "logs:read"

T = TypeVar("T")

__all__ = ["MAX_BODY_BYTES", "ROUTES", "RestApi", "RestRoute"]

APPS_PREFIX = re.compile(r"/v1/apps/([^/]+)(/.*)?")
ORIGINAL_PREFIX = "/api/v1"

table = RouteTable()

API_KEY_EXAMPLE = ApiKey("ops", ["rooms:read", "logs:read"])

# ------------------------------------------------------------------------------ the routes


@table.route(
    "GET",
    "/rooms",
    permission="rooms:read",
    summary="List rooms",
    example=ListRoomsResult([Room(ROOM_EXAMPLE, "", "open", TIME_EXAMPLE)], 1, False),
)
async def list_rooms(commands: RoomCommands, query: ListRoomsQuery) -> ListRoomsResult:
    """Rooms of every status, in lexicographic roomID order. `startKey`, `startAfterKey` and
    `roomID` are mutually exclusive. Without `roomID`, the list starts at the beginning, at
    `startKey` (inclusive) or after `startAfterKey` (exclusive); page with
    `?startAfterKey=<roomID of the last result>` while `more` is true. With `roomID`, exactly
    those rooms are looked up (unknown ones are left out). `maxResults` is capped at 1000, the
    default: `more` can be true even without `maxResults`."""
    return await commands.list_rooms(
        start_key=_given(query.start_key),
        start_after_key=_given(query.start_after_key),
        room_ids=_given(query.room_ids),
        max_results=_given(query.max_results),
    )


@table.route(
    "GET",
    "/rooms/contents",
    permission="rooms:read",
    summary="Get room contents",
    example=GetRoomContentsResult({"count": msgspec.Raw(b"3"), "title": msgspec.Raw(b'"hello"')}),
    failures=(
        ROOM_NOT_FOUND,
        ROOM_GONE,
        F.INTERNAL.because("the room could not be loaded (for example its start handler raised)"),
    ),
)
async def get_room_contents(commands: RoomCommands, query: RoomQuery) -> GetRoomContentsResult:
    """The room's whole current content as one JSON object: every live key and its value, in
    key order. Closed rooms still have contents; deleted rooms have none."""
    return await commands.contents(query.room_id)


@table.route(
    "GET",
    "/rooms/clients",
    permission="rooms:read",
    summary="List room clients",
    example=RoomClientsResult(
        [RoomClient("c1a2b3", "g4d5e6", USER_EXAMPLE, TIME_EXAMPLE, 17)], ["c1a2b3"], True
    ),
    failures=(ROOM_NOT_FOUND,),
)
async def list_room_clients(commands: RoomCommands, query: RoomQuery) -> RoomClientsResult:
    """The clients connected to the room now (clientID, userID, since when, last mutation
    id) and the room's presence: the clientIDs its clients see as present. A reflectd
    addition. In a cluster, the node that runs the room answers (the request is forwarded to
    it). A room that no node runs is read from storage, where no client is connected to it
    (`live` false). A deleted room has no clients."""
    return await commands.clients(query.room_id)


@table.route(
    "POST",
    "/rooms:create",
    legacy="/rooms/{roomID}:create",
    permission="rooms:create",
    summary="Create room",
    failures=(
        INVALID_ROOM_ID,
        ROOM_EXISTS,
        F.INTERNAL.because("the room's start handler raised (nothing is recorded)"),
    ),
)
async def create_room(
    commands: RoomCommands, query: NewRoomQuery, body: CreateRoomRequest
) -> Empty:
    """Creates the room explicitly (a client's first connect also creates it): its start
    handler runs, then the room is recorded as open. A roomID is never reusable: creating a room
    that exists in any status, deleted included, is a conflict. The body is required JSON: `{}`
    or `{"jurisdiction":"eu"}` (the jurisdiction is only stored and reported)."""
    return await commands.create(query.room_id, _given(body.jurisdiction) or "")


@table.route(
    "POST",
    "/rooms:close",
    legacy="/rooms/{roomID}:close",
    permission="rooms:close",
    summary="Close room",
    failures=(ROOM_NOT_FOUND, ROOM_DELETED),
)
async def close_room(commands: RoomCommands, query: RoomQuery) -> Empty:
    """The room accepts no new connections (they get `["error","RoomClosed",<roomID>]`);
    connected clients stay until their connections are invalidated or the room is deleted. A
    closed room never reopens. Closing a closed room succeeds."""
    return await commands.close(query.room_id)


@table.route(
    "POST",
    "/rooms:delete",
    legacy="/rooms/{roomID}:delete",
    permission="rooms:delete",
    summary="Delete room",
    failures=(ROOM_NOT_FOUND, ROOM_OPEN),
)
async def delete_room(commands: RoomCommands, query: RoomQuery) -> Empty:
    """Deletes a closed room for good: closes every connection to it (no error frame), deletes
    all of its data and keeps its record as deleted, so the roomID can never be used again
    (create: 409; connect: `RoomClosed`). Deleting a deleted room succeeds."""
    return await commands.delete(query.room_id)


@table.route(
    "POST",
    "/rooms:mutate",
    permission="rooms:write",
    summary="Run a mutator",
    example=MutateResult(42),
    failures=(
        ROOM_NOT_FOUND,
        ROOM_CLOSED,
        ROOM_GONE,
        UNKNOWN_MUTATOR,
        MUTATOR_FAILED,
        F.INTERNAL.because("the room could not be loaded (for example its start handler raised)"),
    ),
)
async def mutate(
    commands: RoomCommands,
    query: RoomQuery,
    body: MutateRequest,
    headers: IdempotencyHeaders,
    key: Principal,
) -> MutateResult:
    """Runs one of the app's mutators in the room, for the app's backend, as the server runs a
    client's mutation: `tx.reason` is `"authoritative"`, `tx.clientID` is `"$server"` (no
    client may connect with that clientID) and `tx.auth` is
    `{"userID": "$server", "apiKeyName": <the key's name>}`. The room's next turn applies it
    at a version of its own, and every connected client receives its writes in its next
    poke. Answers once the change is durable. A mutator that throws changes nothing: 422 with
    its message. With `Idempotency-Key`, a retry (even concurrent) applies once."""
    idempotency_key = _given(headers.idempotency_key)
    return await commands.mutate(
        query.room_id,
        body.name,
        body.args,
        key_name=key.key_name,
        idempotency_key=idempotency_key,
    )


@table.route(
    "POST",
    "/rooms:import",
    permission="rooms:write",
    summary="Import room contents",
    example=ImportResult(43, 2, 0, 0),
    failures=(
        INVALID_ROOM_ID,
        ROOM_CLOSED,
        ROOM_GONE,
        INVALID_CONTENTS,
        F.INTERNAL.because("the room could not be loaded (for example its start handler raised)"),
    ),
    max_body_bytes=IMPORT_MAX_BODY_BYTES,
)
async def import_room_contents(
    commands: RoomCommands, query: RoomQuery, body: ImportRequest
) -> ImportResult:
    """Writes keys into the room as one change at a new version, which connected clients
    receive as one patch; values equal to the stored ones are left alone. `merge` keeps the
    keys not given, `replace` deletes them. Keys under `-/p/` (a client's own state, such as
    presence) are neither written nor deleted. A room that does not exist is created first,
    as a client's first connect does. The body may be up to 64 MiB; each key and value must
    be within the room's limits (`--max-key-bytes`, `--max-value-bytes`), or nothing is
    written."""
    return await commands.import_contents(query.room_id, body.contents, body.mode)


@table.route(
    "POST",
    "/connections/all:invalidate",
    permission="connections:invalidate",
    summary="Invalidate all connections",
)
async def invalidate_all_connections(commands: RoomCommands, query: NoQuery) -> Empty:
    """Closes every connection of the server (a plain close, no error frame); the clients
    reconnect at once and their auth is checked again."""
    return await commands.invalidate_all()


@table.route(
    "POST",
    "/connections/rooms:invalidate",
    legacy="/connections/rooms/{roomID}:invalidate",
    permission="connections:invalidate",
    summary="Invalidate room connections",
    failures=(ROOM_NOT_FOUND.because("the room has connections but no record"),),
)
async def invalidate_room_connections(commands: RoomCommands, query: RoomQuery) -> Empty:
    """Closes every connection to the room (a plain close, no error frame); the clients
    reconnect at once (and get `RoomClosed` if the room is closed). A room without connections,
    even an unknown one, succeeds."""
    return await commands.invalidate_room(query.room_id)


@table.route(
    "POST",
    "/connections/users:invalidate",
    legacy="/connections/users/{userID}:invalidate",
    permission="connections:invalidate",
    summary="Invalidate user connections",
)
async def invalidate_user_connections(commands: RoomCommands, query: UserQuery) -> Empty:
    """Closes every connection whose auth userID is the given one, in every room (a plain
    close, no error frame); the clients reconnect at once. An unknown userID succeeds."""
    return await commands.invalidate_user(query.user_id)


@table.route(
    "GET", "/key", permission=None, summary="Get the request's key", example=API_KEY_EXAMPLE
)
async def get_key(commands: RoomCommands, query: NoQuery, key: Principal) -> ApiKey:
    """The name and permissions of the key that made the request, so that a tool (the
    dashboard) can offer only what the key may do. Any valid key may call it. A reflectd
    addition."""
    return ApiKey(key.key_name, sorted(key.permissions, key=PERMISSIONS.index))


@table.route(
    "GET",
    legacy="/rooms/{roomID}",
    permission="rooms:read",
    summary="Get room (legacy)",
    example=Room(ROOM_EXAMPLE, "", "open", TIME_EXAMPLE),
    failures=(ROOM_NOT_FOUND,),
)
async def get_room(commands: RoomCommands, query: RoomQuery) -> Room:
    """One room's record. Only in the original server's `/api/v1` API; the
    `/v1/apps/{app-id}` API lists rooms with `?roomID=`. A room named `contents` cannot be
    fetched this way."""
    return await commands.get_room(query.room_id)


ROUTES: tuple[RestRoute, ...] = table.routes


def _given(value: T | msgspec.UnsetType) -> T | None:
    return None if isinstance(value, msgspec.UnsetType) else value


# ------------------------------------------------------------------------------ dispatch


class RestApi:
    """The one place where REST requests are authenticated, routed and answered."""

    def __init__(
        self,
        commands: RoomCommands,
        keys: KeyRing,
        *,
        app_id: str,
        throttle: FailedAuthThrottle,
        log_tail: LogTail | None = None,
        peers: PeerAuth | None = None,
    ) -> None:
        self.commands = commands
        #: how this node forwards a request to a room's owner (None: no other nodes)
        self.peers = peers
        self.keys = keys
        self.app_id = app_id
        self.throttle = throttle
        #: the live log stream of ``reflectd tail`` (None: not offered)
        self.log_tail = log_tail
        #: the server is shutting down: every request is answered 503 with Retry-After
        self.draining = False

    async def __call__(self, request: Request) -> Response:
        """Answer, with a request id in the response's header and the log lines' fields, and
        one access log line."""
        request_id = new_request_id()
        token = bind_log_fields(request_id=request_id)
        started = time.monotonic()
        try:
            response = await self._answer(request)
            response.headers[REQUEST_ID_HEADER] = request_id
            access_logger.info(
                "REST call",
                extra={
                    "method": request.method,
                    "route": getattr(request.state, "route", None),
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 3),
                    "key_name": getattr(request.state, "key_name", None),
                },
            )
            return response
        finally:
            unbind_log_fields(token)

    async def _answer(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1").partition("?")[0]
        original = path == ORIGINAL_PREFIX or path.startswith(ORIGINAL_PREFIX + "/")
        if self.draining:
            return unavailable(F.SHUTTING_DOWN.message, envelope=not original)
        try:
            return await self._handle(request, path, original=original)
        except ApiError as e:
            if original and e.status in ORIGINAL_PLAIN_TEXT:
                return PlainTextResponse(ORIGINAL_PLAIN_TEXT[e.status], e.status)
            return api_error(e.status, e.message, e.resource)
        except RoomUnavailable:  # the room stopped (shutdown, storage failure): try again
            return unavailable(F.ROOM_UNAVAILABLE.message, envelope=not original)
        except Exception:  # e.g. a start handler that raised: 500 naming an error id
            if self.draining:  # storage closed under a request that began before the drain
                return unavailable(F.SHUTTING_DOWN.message, envelope=not original)
            return internal_error(logger, f"REST {request.method} {path}")

    async def _handle(self, request: Request, path: str, *, original: bool) -> Response:
        source = client_address(request)
        wait = self.throttle.retry_after(source)
        if wait is not None:
            headers = {"Retry-After": str(wait)}
            if original:
                return PlainTextResponse(F.THROTTLED_ORIGINAL.text(), 429, headers=headers)
            response = api_error(429, F.THROTTLED.text(source=source, wait=wait))
            response.headers.update(headers)
            return response
        if original:
            presented = request.headers.get("x-reflect-api-key")
            if presented is None:
                presented = request.headers.get("x-reflect-auth-api-key")
        else:
            presented = _basic_key(request.headers.get("authorization"))
        principal = await self.keys.authenticate(presented, now_ms())
        if principal is None:
            self.throttle.failed(source)
            if original:
                return PlainTextResponse(F.NO_KEY_ORIGINAL.text(), 401)
            raise F.NO_KEY.error()
        request.state.key_name = principal.key_name
        bind_log_fields(key_name=principal.key_name)
        if original:
            rest = path[len(ORIGINAL_PREFIX) :]
        else:
            match = APPS_PREFIX.fullmatch(path)
            if match is None or unquote(match.group(1)) != self.app_id:
                raise F.OTHER_APP.error()
            rest = match.group(2) or ""
        if rest == TAIL_PATH and not original:
            return self._tail(request, principal.permissions)
        route, segment = _find(rest, request.method, original=original)
        request.state.route = (
            ORIGINAL_PREFIX if original else "/v1/apps/{app-id}"
        ) + route.template
        if route.permission is not None and route.permission not in principal.permissions:
            raise F.FORBIDDEN.error(key_name=principal.key_name, permission=route.permission)
        body = await read_body(request, route.command.max_body_bytes)
        items = parse_qsl(request.url.query, keep_blank_values=True)
        named = (route.segment, segment) if route.segment is not None else None
        try:
            result = await route.command.run(
                self.commands, items, body, named, request.headers, key=principal
            )
        except NotOwner as e:  # a room's change is made by the node that owns the room
            if self.peers is None or self.peers.sender(request) is not None:
                return unavailable(F.ROOM_UNAVAILABLE.message, envelope=not original)
            return await forward_request(request, e.owner.address, peers=self.peers, body=body)
        return Response(msgspec.json.encode({"result": result}), media_type="application/json")

    def _tail(self, request: Request, permissions: frozenset[Permission]) -> Response:
        """``GET /v1/apps/{app-id}/logs:tail``: the server's log lines as server-sent events
        (``log_tail.py``), with ``logs:read``. Not a table route: its result is a stream, not
        one JSON object. Query: ``level`` (the lowest shown), ``roomID``, ``userID``."""
        request.state.route = "/v1/apps/{app-id}" + TAIL_PATH
        if request.method not in ("GET", "HEAD"):
            raise F.WRONG_METHOD.error()
        if TAIL_PERMISSION not in permissions:
            key_name = getattr(request.state, "key_name", "")
            raise F.FORBIDDEN.error(key_name=key_name, permission=TAIL_PERMISSION)
        if self.log_tail is None:
            raise F.UNKNOWN_URL.error()
        query = dict(parse_qsl(request.url.query, keep_blank_values=True))
        unknown = set(query) - {"level", "roomID", "userID"}
        level = query.get("level", "debug")
        if unknown or level not in LOG_LEVELS:
            raise ApiError(
                400,
                f"logs:tail takes level (one of {', '.join(LOG_LEVELS)}), roomID and userID",
            )
        if self.log_tail.full:
            raise ApiError(503, f"{self.log_tail.max_subscribers} log streams are open already")
        wanted = TailFilter(
            logging.getLevelName(level.upper()), query.get("roomID"), query.get("userID")
        )
        return self.log_tail.stream(wanted)


def _find(rest: str, method: str, *, original: bool) -> tuple[RestRoute, str]:
    path_matched = False
    for route in ROUTES:
        if route.legacy and not original:
            continue
        match = route.path.fullmatch(rest)
        if match is None:
            continue
        path_matched = True
        if route.method == method or (method == "HEAD" and route.method == "GET"):
            segment = match.groupdict().get("segment") or ""
            try:
                decoded = unquote(segment, errors="strict")
            except UnicodeDecodeError:
                raise F.MALFORMED_SEGMENT.error() from None
            if "\x00" in decoded:
                raise F.NUL_IN_SEGMENT.error()
            return route, decoded
    if path_matched:
        raise F.WRONG_METHOD.error()
    raise F.UNKNOWN_URL.error()


def _basic_key(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    return value.strip() or None

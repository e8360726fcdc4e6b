"""The REST API's routes, in two shapes with one set of commands (spec 5.3, the seed):

- the seed's ``/v1/apps/{app-id}/...`` with ``Authorization: Basic <key>``;
- the original server's ``/api/v1/...`` (and its legacy forms) with ``x-reflect-api-key``.

Order of checks, as in the original: the key first (401 before any 404 or 405), then the
app-id, the route (404), the method (405), the key's permission (403), then the command's
strict query and body parsing (400) and the command itself. Before all of them, an address
that failed to authenticate too often gets 429 (``throttle``; the original has no such limit).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import msgspec
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from reflectd.errors import ApiError
from reflectd.server.actor import RoomUnavailable, now_ms
from reflectd.server.errors import api_error, internal_error, unavailable
from reflectd.server.http import client_address
from reflectd.server.rest.commands import RoomCommands
from reflectd.server.rest.keys import KeyRing
from reflectd.server.rest.parsing import (
    Query,
    expect_empty_body,
    number,
    parse_create_body,
    parse_query,
    single,
)
from reflectd.server.rest.throttle import FailedAuthThrottle
from reflectd.storage.base import Permission

logger = logging.getLogger(__name__)

#: the largest REST request body accepted
MAX_BODY_BYTES = 64 * 1024

SEED_PREFIX = re.compile(r"/v1/apps/([^/]+)(/.*)?")
ORIGINAL_PREFIX = "/api/v1"
#: a legacy path segment (roomID or userID), percent-encoded
_SEGMENT = r"(?P<segment>[^:/@$^&=\[\];|,]+)"

Run = Callable[[RoomCommands, list[tuple[str, str]], bytes, str], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class RestRoute:
    method: str
    path: re.Pattern[str]
    permission: Permission
    run: Run
    #: only in the original's ``/api/v1`` shape
    legacy: bool = False


# ------------------------------------------------------------------------------ commands


async def _list(commands: RoomCommands, items: list[tuple[str, str]], body: bytes, _: str) -> Any:
    query = parse_query(
        items, optional=("startKey", "startAfterKey", "maxResults"), repeatable=("roomID",)
    )
    expect_empty_body(body)
    if sum(key in query for key in ("startKey", "startAfterKey", "roomID")) > 1:
        raise ApiError(
            400,
            "Query string error. startKey, startAfterKey, and roomID are mutually exclusive. "
            "Got object",
        )
    room_ids = query.get("roomID")
    return await commands.list_rooms(
        start_key=single(query, "startKey"),
        start_after_key=single(query, "startAfterKey"),
        room_ids=room_ids if isinstance(room_ids, list) else None,
        max_results=number(query, "maxResults"),
    )


def _room_query(items: list[tuple[str, str]], body: bytes, *, body_required: bool) -> Query:
    query = parse_query(items, required=("roomID",))
    if not body_required:
        expect_empty_body(body)
    return query


async def _contents(
    commands: RoomCommands, items: list[tuple[str, str]], body: bytes, _: str
) -> Any:
    query = _room_query(items, body, body_required=False)
    return await commands.contents(_str(single(query, "roomID")))


async def _create(commands: RoomCommands, items: list[tuple[str, str]], body: bytes, _: str) -> Any:
    query = _room_query(items, body, body_required=True)
    parsed = parse_create_body(body)
    return await commands.create(_str(single(query, "roomID")), parsed.jurisdiction or "")


async def _close(commands: RoomCommands, items: list[tuple[str, str]], body: bytes, _: str) -> Any:
    query = _room_query(items, body, body_required=False)
    return await commands.close(_str(single(query, "roomID")))


async def _delete(commands: RoomCommands, items: list[tuple[str, str]], body: bytes, _: str) -> Any:
    query = _room_query(items, body, body_required=False)
    return await commands.delete(_str(single(query, "roomID")))


async def _invalidate_all(
    commands: RoomCommands, items: list[tuple[str, str]], body: bytes, _: str
) -> Any:
    parse_query(items)
    expect_empty_body(body)
    return await commands.invalidate_all()


async def _invalidate_room(
    commands: RoomCommands, items: list[tuple[str, str]], body: bytes, _: str
) -> Any:
    query = _room_query(items, body, body_required=False)
    return await commands.invalidate_room(_str(single(query, "roomID")))


async def _invalidate_user(
    commands: RoomCommands, items: list[tuple[str, str]], body: bytes, _: str
) -> Any:
    query = parse_query(items, required=("userID",))
    expect_empty_body(body)
    return await commands.invalidate_user(_str(single(query, "userID")))


def _legacy(run: Run, parameter: str = "roomID") -> Run:
    """A legacy route: the roomID (or userID) is a path segment; no query is allowed."""

    async def legacy(
        commands: RoomCommands, items: list[tuple[str, str]], body: bytes, segment: str
    ) -> Any:
        parse_query(items)
        return await run(commands, [(parameter, segment)], body, "")

    return legacy


async def _legacy_get(
    commands: RoomCommands, items: list[tuple[str, str]], body: bytes, segment: str
) -> Any:
    parse_query(items)
    expect_empty_body(body)
    return await commands.get_room(segment)


def _str(value: str | None) -> str:
    assert value is not None
    return value


def _route(
    method: str, path: str, permission: Permission, run: Run, *, legacy: bool = False
) -> RestRoute:
    return RestRoute(method, re.compile(path), permission, run, legacy)


ROUTES: tuple[RestRoute, ...] = (
    _route("GET", r"/rooms", "rooms:read", _list),
    _route("GET", r"/rooms/contents", "rooms:read", _contents),
    _route("POST", r"/rooms:create", "rooms:create", _create),
    _route("POST", r"/rooms:close", "rooms:close", _close),
    _route("POST", r"/rooms:delete", "rooms:delete", _delete),
    _route("POST", r"/connections/all:invalidate", "connections:invalidate", _invalidate_all),
    _route("POST", r"/connections/rooms:invalidate", "connections:invalidate", _invalidate_room),
    _route("POST", r"/connections/users:invalidate", "connections:invalidate", _invalidate_user),
    _route("GET", rf"/rooms/{_SEGMENT}", "rooms:read", _legacy_get, legacy=True),
    _route("POST", rf"/rooms/{_SEGMENT}:create", "rooms:create", _legacy(_create), legacy=True),
    _route("POST", rf"/rooms/{_SEGMENT}:close", "rooms:close", _legacy(_close), legacy=True),
    _route("POST", rf"/rooms/{_SEGMENT}:delete", "rooms:delete", _legacy(_delete), legacy=True),
    _route(
        "POST",
        rf"/connections/rooms/{_SEGMENT}:invalidate",
        "connections:invalidate",
        _legacy(_invalidate_room),
        legacy=True,
    ),
    _route(
        "POST",
        rf"/connections/users/{_SEGMENT}:invalidate",
        "connections:invalidate",
        _legacy(_invalidate_user, "userID"),
        legacy=True,
    ),
)


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
    ) -> None:
        self.commands = commands
        self.keys = keys
        self.app_id = app_id
        self.throttle = throttle
        #: the server is shutting down: every request is answered 503 with Retry-After
        self.draining = False

    async def __call__(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1").partition("?")[0]
        original = path == ORIGINAL_PREFIX or path.startswith(ORIGINAL_PREFIX + "/")
        if self.draining:
            return unavailable("the server is shutting down", envelope=not original)
        try:
            return await self._handle(request, path, original=original)
        except ApiError as e:
            if original and e.status == 410:
                return PlainTextResponse("deleted", 410)  # the original forwards the room's text
            return api_error(e.status, e.message, e.resource)
        except RoomUnavailable:  # the room stopped (shutdown, storage failure): try again
            return unavailable("the room is not available", envelope=not original)
        except Exception:  # e.g. a start handler that raised: 500 naming an error id
            if self.draining:  # storage closed under a request that began before the drain
                return unavailable("the server is shutting down", envelope=not original)
            return internal_error(logger, f"REST {request.method} {path}")

    async def _handle(self, request: Request, path: str, *, original: bool) -> Response:
        source = client_address(request)
        wait = self.throttle.retry_after(source)
        if wait is not None:
            headers = {"Retry-After": str(wait)}
            if original:
                return PlainTextResponse("Too Many Requests", 429, headers=headers)
            response = api_error(
                429, f"Too many failed authentications from {source}; retry in {wait} s"
            )
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
                return PlainTextResponse("Unauthorized", 401)
            raise ApiError(401, "Missing or unknown API key: send Authorization: Basic <api-key>")
        if original:
            rest = path[len(ORIGINAL_PREFIX) :]
        else:
            match = SEED_PREFIX.fullmatch(path)
            if match is None or unquote(match.group(1)) != self.app_id:
                raise ApiError(404, "Unknown or invalid URL")
            rest = match.group(2) or ""
        route, segment = _find(rest, request.method, original=original)
        if route.permission not in principal.permissions:
            raise ApiError(
                403, f'API key "{principal.key_name}" lacks the permission {route.permission}'
            )
        body = await _read_body(request)
        items = parse_qsl(request.url.query, keep_blank_values=True)
        result = await route.run(self.commands, items, body, segment)
        return Response(msgspec.json.encode({"result": result}), media_type="application/json")


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
                raise ApiError(400, "Malformed path segment") from None
            if "\x00" in decoded:
                raise ApiError(400, "Invalid character (NUL) in path segment")
            return route, decoded
    if path_matched:
        raise ApiError(405, "unsupported method")
    raise ApiError(404, "Unknown or invalid URL")


def _basic_key(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    return value.strip() or None


async def _read_body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, f"Request body larger than {MAX_BODY_BYTES} bytes")
    return body

"""The REST API as an OpenAPI 3.1 document, and its rendering for humans.

``build_openapi()`` describes every route of ``routes.ROUTES`` in each shape it is served in:
the seed's ``/v1/apps/{app-id}/...`` (``Authorization: Basic <key>``) and the original
server's ``/api/v1/...`` with its legacy forms (``x-reflect-api-key``). The server serves it at
``GET /openapi.json`` (no key needed); ``render_markdown()`` writes the route reference of
``docs/rest.md`` from it. Print the document, or regenerate that reference, with::

    python -m reflectd.server.rest.openapi [--markdown docs/rest.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reflectd import __version__
from reflectd.protocol.jsparse import MAX_SAFE_INTEGER
from reflectd.server.rest.commands import MAX_LIST_RESULTS
from reflectd.server.rest.routes import _SEGMENT, MAX_BODY_BYTES, ROUTES, RestRoute

JSON = dict[str, Any]

OPENAPI_PATH = "/openapi.json"
SEED_PREFIX = "/v1/apps/{app-id}"
ORIGINAL_PREFIX = "/api/v1"
#: the markers around the generated part of docs/rest.md
BEGIN_MARKER = (
    "<!-- BEGIN GENERATED REFERENCE: python -m reflectd.server.rest.openapi --markdown "
    "docs/rest.md -->"
)
END_MARKER = "<!-- END GENERATED REFERENCE -->"

ROOM_EXAMPLE = "my-room"
USER_EXAMPLE = "user-42"
#: a 500's body: it names the error id under which the server logged the error, nothing more
INTERNAL_ERROR_EXAMPLE = "Internal Server Error (error id 3f9a1c2b7d4e)"


# ------------------------------------------------------------------------------ the routes


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    description: str
    schema: JSON
    example: Any
    required: bool = False


@dataclass(frozen=True, slots=True)
class Failure:
    """One way a command fails: its status, when, and the exact message (or plain text)."""

    status: int
    when: str
    message: str
    resource: str = "request"
    #: about the query string (legacy routes take none: their query failures differ)
    query: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    """What the document says about one command, whatever the route shape."""

    key: str
    summary: str
    description: str
    result: str
    result_example: Any
    query: tuple[Param, ...] = ()
    body: bool = False
    failures: tuple[Failure, ...] = ()
    #: the name of a legacy route's path segment
    segment: str = "roomID"
    #: statuses that have a plain-text body in the original shape (the room's own answer)
    plain_text: dict[int, str] = field(default_factory=dict)


def _room_id_param(description: str = "The room's ID.") -> Param:
    return Param("roomID", description, {"type": "string"}, ROOM_EXAMPLE, required=True)


def _not_found(what: str = "there is no room with this roomID (in any status)") -> Failure:
    return Failure(404, what, f'Room "{ROOM_EXAMPLE}" not found', "rooms")


_MISSING_ROOM_ID = Failure(
    400, "`roomID` is missing", "Query string error. Missing property roomID", query=True
)
_REPEATED_ROOM_ID = Failure(
    400,
    "`roomID` is given more than once",
    "Query string error. Expected string at roomID. Got array",
    query=True,
)
_UNEXPECTED_BODY = Failure(
    400, "the request has a body (this command takes none)", "Unexpected request body."
)

_ROOM = {"roomID": ROOM_EXAMPLE, "jurisdiction": "", "status": "open"}

COMMANDS: dict[str, Command] = {
    c.key: c
    for c in (
        Command(
            "list",
            "List rooms",
            "Rooms of every status, in lexicographic roomID order. `startKey`, `startAfterKey` "
            "and `roomID` are mutually exclusive. Without `roomID`, the list starts at the "
            "beginning, at `startKey` (inclusive) or after `startAfterKey` (exclusive); page "
            "with `?startAfterKey=<roomID of the last result>` while `more` is true. With "
            "`roomID`, exactly those rooms are looked up (unknown ones are left out). "
            f"`maxResults` is capped at {MAX_LIST_RESULTS}, the default: `more` can be true "
            "even without `maxResults`.",
            "ListRoomsResult",
            {"results": [_ROOM], "numResults": 1, "more": False},
            query=(
                Param(
                    "startKey",
                    "The earliest roomID to list (inclusive).",
                    {"type": "string"},
                    "a",
                ),
                Param(
                    "startAfterKey",
                    "The roomID after which to list (exclusive).",
                    {"type": "string"},
                    ROOM_EXAMPLE,
                ),
                Param(
                    "roomID",
                    "A room to list; repeat for several.",
                    {"type": "array", "items": {"type": "string"}},
                    [ROOM_EXAMPLE],
                ),
                Param(
                    "maxResults",
                    f"The most rooms to return (read as JavaScript's `parseInt`; capped at "
                    f"{MAX_LIST_RESULTS}; 0 or less returns none).",
                    {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
                    100,
                ),
            ),
            failures=(
                Failure(
                    400,
                    "more than one of `startKey`, `startAfterKey`, `roomID`",
                    "Query string error. startKey, startAfterKey, and roomID are mutually "
                    "exclusive. Got object",
                    query=True,
                ),
                Failure(
                    400,
                    "`maxResults` is not a number",
                    'Query string error. Expected valid number at maxResults. Got "abc"',
                    query=True,
                ),
                Failure(
                    400,
                    "`maxResults` is beyond JavaScript's safe integers (2^53 - 1 either way)",
                    "Query string error. Expected safe integer at maxResults. "
                    'Got "9007199254740992"',
                    query=True,
                ),
                Failure(
                    400,
                    "`startKey`, `startAfterKey` or `maxResults` is given more than once",
                    "Query string error. Expected string at startKey. Got array",
                    query=True,
                ),
                _UNEXPECTED_BODY,
            ),
        ),
        Command(
            "contents",
            "Get room contents",
            "The room's whole current content as one JSON object: every live key and its "
            "value, in key order. Closed rooms still have contents; deleted rooms have none.",
            "GetRoomContentsResult",
            {"contents": {"count": 3, "title": "hello"}},
            query=(_room_id_param(),),
            failures=(
                _MISSING_ROOM_ID,
                _REPEATED_ROOM_ID,
                _UNEXPECTED_BODY,
                _not_found(),
                Failure(410, "the room is deleted", f'Room "{ROOM_EXAMPLE}" is deleted', "rooms"),
                Failure(
                    500,
                    "the room could not be loaded (for example its start handler raised)",
                    INTERNAL_ERROR_EXAMPLE,
                ),
            ),
            plain_text={410: "deleted"},
        ),
        Command(
            "create",
            "Create room",
            "Creates the room explicitly (a client's first connect also creates it): its "
            "start handler runs, then the room is recorded as open. A roomID is never "
            "reusable: creating a room that exists in any status, deleted included, is a "
            'conflict. The body is required JSON: `{}` or `{"jurisdiction":"eu"}` '
            "(the jurisdiction is only stored and reported).",
            "Empty",
            {},
            query=(_room_id_param("The new room's ID; must match `^[A-Za-z0-9_/-]+$`."),),
            body=True,
            failures=(
                _MISSING_ROOM_ID,
                _REPEATED_ROOM_ID,
                Failure(
                    400,
                    "the roomID has characters outside `A-Za-z0-9_/-`",
                    'Invalid roomID "bad id!" (must match /^[A-Za-z0-9_/-]+$/)',
                    "rooms",
                ),
                Failure(400, "the body is empty or not JSON", "Body must be valid json."),
                Failure(
                    400,
                    "the jurisdiction is not `eu`",
                    'Body schema error. Expected literal value "eu" at jurisdiction Got "us"',
                ),
                Failure(
                    400,
                    "the body has another property",
                    "Body schema error. Unexpected property foo",
                ),
                Failure(
                    400,
                    "the body is not an object",
                    "Body schema error. Expected object. Got array",
                ),
                Failure(
                    409,
                    "the roomID exists (open, closed or deleted)",
                    f'Room "{ROOM_EXAMPLE}" already exists',
                    "rooms",
                ),
                Failure(
                    500,
                    "the room's start handler raised (nothing is recorded)",
                    INTERNAL_ERROR_EXAMPLE,
                ),
            ),
        ),
        Command(
            "close",
            "Close room",
            'The room accepts no new connections (they get `["error","RoomClosed",'
            "<roomID>]`); connected clients stay until their connections are invalidated or "
            "the room is deleted. A closed room never reopens. Closing a closed room succeeds.",
            "Empty",
            {},
            query=(_room_id_param(),),
            failures=(
                _MISSING_ROOM_ID,
                _REPEATED_ROOM_ID,
                _UNEXPECTED_BODY,
                _not_found(),
                Failure(409, "the room is deleted", f'Room "{ROOM_EXAMPLE}" is deleted', "rooms"),
            ),
        ),
        Command(
            "delete",
            "Delete room",
            "Deletes a closed room for good: closes every connection to it (no error frame), "
            "deletes all of its data and keeps its record as deleted, so the roomID can never "
            "be used again (create: 409; connect: `RoomClosed`). Deleting a deleted room "
            "succeeds.",
            "Empty",
            {},
            query=(_room_id_param(),),
            failures=(
                _MISSING_ROOM_ID,
                _REPEATED_ROOM_ID,
                _UNEXPECTED_BODY,
                _not_found(),
                Failure(
                    409,
                    "the room is open (close it first)",
                    f'Room "{ROOM_EXAMPLE}" must first be closed',
                    "rooms",
                ),
            ),
        ),
        Command(
            "invalidate-all",
            "Invalidate all connections",
            "Closes every connection of the server (a plain close, no error frame); the "
            "clients reconnect at once and their auth is checked again.",
            "Empty",
            {},
            failures=(_UNEXPECTED_BODY,),
        ),
        Command(
            "invalidate-room",
            "Invalidate room connections",
            "Closes every connection to the room (a plain close, no error frame); the clients "
            "reconnect at once (and get `RoomClosed` if the room is closed). A room without "
            "connections, even an unknown one, succeeds.",
            "Empty",
            {},
            query=(_room_id_param(),),
            failures=(
                _MISSING_ROOM_ID,
                _REPEATED_ROOM_ID,
                _UNEXPECTED_BODY,
                _not_found("the room has connections but no record"),
            ),
        ),
        Command(
            "invalidate-user",
            "Invalidate user connections",
            "Closes every connection whose auth userID is the given one, in every room (a "
            "plain close, no error frame); the clients reconnect at once. An unknown userID "
            "succeeds.",
            "Empty",
            {},
            query=(Param("userID", "The user's ID.", {"type": "string"}, USER_EXAMPLE, True),),
            segment="userID",
            failures=(
                Failure(
                    400,
                    "`userID` is missing",
                    "Query string error. Missing property userID",
                    query=True,
                ),
                Failure(
                    400,
                    "`userID` is given more than once",
                    "Query string error. Expected string at userID. Got array",
                    query=True,
                ),
                _UNEXPECTED_BODY,
            ),
        ),
        Command(
            "get",
            "Get room (legacy)",
            "One room's record. Only in the original's shape; the seed's shape lists rooms "
            "with `?roomID=`. A room named `contents` cannot be fetched this way.",
            "Room",
            _ROOM,
            failures=(_UNEXPECTED_BODY, _not_found()),
        ),
    )
}

#: which command each route runs, by its method and path (the segment written {segment})
ROUTE_COMMANDS: dict[str, str] = {
    "GET /rooms": "list",
    "GET /rooms/contents": "contents",
    "POST /rooms:create": "create",
    "POST /rooms:close": "close",
    "POST /rooms:delete": "delete",
    "POST /connections/all:invalidate": "invalidate-all",
    "POST /connections/rooms:invalidate": "invalidate-room",
    "POST /connections/users:invalidate": "invalidate-user",
    "GET /rooms/{segment}": "get",
    "POST /rooms/{segment}:create": "create",
    "POST /rooms/{segment}:close": "close",
    "POST /rooms/{segment}:delete": "delete",
    "POST /connections/rooms/{segment}:invalidate": "invalidate-room",
    "POST /connections/users/{segment}:invalidate": "invalidate-user",
}


def route_template(route: RestRoute) -> str:
    """The route's path below the prefix, its path segment (if any) written ``{segment}``."""
    return route.path.pattern.replace(_SEGMENT, "{segment}")


def route_command(route: RestRoute) -> Command:
    key = f"{route.method} {route_template(route)}"
    try:
        return COMMANDS[ROUTE_COMMANDS[key]]
    except KeyError:
        raise LookupError(f"the OpenAPI document does not describe the route {key}") from None


def documented_paths(route: RestRoute) -> list[tuple[str, str]]:
    """The (shape, OpenAPI path) of each form the route is served in."""
    command = route_command(route)
    template = route_template(route).replace("{segment}", "{" + command.segment + "}")
    if route.legacy:
        return [("legacy", ORIGINAL_PREFIX + template)]
    return [("seed", SEED_PREFIX + template), ("original", ORIGINAL_PREFIX + template)]


# ------------------------------------------------------------------------------ the document

SHAPE_TAGS = {
    "seed": "Rooms API: /v1/apps/{app-id}",
    "original": "Original API: /api/v1",
    "legacy": "Original API, legacy forms: /api/v1",
}
SHAPE_SECURITY: dict[str, list[JSON]] = {
    "seed": [{"BasicApiKey": []}],
    "original": [{"ReflectApiKey": []}, {"LegacyReflectApiKey": []}],
    "legacy": [{"ReflectApiKey": []}, {"LegacyReflectApiKey": []}],
}
STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def failures(shape: str, command: Command, permission: str) -> list[Failure]:
    """Every way a route fails, in the order the server checks."""
    found = [
        Failure(
            429,
            "this address failed to authenticate too often in the last minute (see "
            "`--max-failed-auth-per-minute`; checked first, with `Retry-After`)",
            "Too many failed authentications from 203.0.113.7; retry in 42 s"
            if shape == "seed"
            else "Too Many Requests",
        )
    ]
    if shape == "seed":
        found += [
            Failure(
                401,
                "the `Authorization: Basic <api-key>` header is missing or names no key "
                "(checked before anything else)",
                "Missing or unknown API key: send Authorization: Basic <api-key>",
            ),
            Failure(404, "the app-id is not this server's", "Unknown or invalid URL"),
        ]
    else:
        found.append(
            Failure(
                401,
                "the `x-reflect-api-key` header is missing or names no key (checked before "
                "anything else)",
                "Unauthorized",
            )
        )
    found += [
        Failure(405, "the path exists, but not with this method", "unsupported method"),
        Failure(
            403,
            f"the key lacks the permission `{permission}`",
            f'API key "ops" lacks the permission {permission}',
        ),
    ]
    if shape == "legacy":
        found += [
            Failure(
                404,
                "the path segment holds one of `:/@$^&=[];|,` unencoded (not matched)",
                "Unknown or invalid URL",
            ),
            Failure(400, "the path segment is not percent-encoded UTF-8", "Malformed path segment"),
            Failure(
                400,
                "the path segment holds a NUL (`%00`)",
                "Invalid character (NUL) in path segment",
            ),
        ]
    takes_query = bool(command.query) and shape != "legacy"
    if takes_query:
        found.append(
            Failure(
                400,
                "the query has a parameter this command does not take",
                "Query string error. Unexpected property foo",
            )
        )
    else:
        found.append(Failure(400, "the request has a query string", "Unexpected query parameters"))
    if takes_query:
        name = command.query[0].name
        found.append(
            Failure(
                400,
                "a query value holds a NUL (`%00`), which no ID holds",
                f"Query string error. Invalid character (NUL) at {name}",
            )
        )
    found += [f for f in command.failures if takes_query or not f.query]
    found.append(
        Failure(
            413,
            f"the body is larger than {MAX_BODY_BYTES} bytes",
            f"Request body larger than {MAX_BODY_BYTES} bytes",
        )
    )
    if not any(f.status == 500 for f in found):
        found.append(
            Failure(
                500,
                "an unexpected server error (e.g. storage failed); the server's log has the "
                "error under the id named",
                INTERNAL_ERROR_EXAMPLE,
            )
        )
    found += [
        Failure(
            503,
            "the server is shutting down (answered with `Retry-After: 5`; another node, or "
            "this one restarted, will answer)",
            "the server is shutting down",
        ),
        Failure(
            503,
            "the room stopped while the request ran (answered with `Retry-After: 5`)",
            "the room is not available",
        ),
    ]
    return found


def _ref(kind: str, name: str) -> JSON:
    return {"$ref": f"#/components/{kind}/{name}"}


def _plain_text(shape: str, command: Command, status: int) -> bool:
    """Whether the answer is plain text: 500s, and in the original's shapes its 401 and the
    answers it forwards from a room (as the original does), and its 429."""
    if status == 500:
        return True
    return shape != "seed" and (status in (401, 429, 503) or status in command.plain_text)


def _failure_body(shape: str, command: Command, failure: Failure) -> Any:
    if _plain_text(shape, command, failure.status):
        return command.plain_text.get(failure.status, failure.message)
    return {
        "error": {"code": failure.status, "resource": failure.resource, "message": failure.message}
    }


def _responses(shape: str, command: Command, permission: str) -> JSON:
    responses: JSON = {
        "200": {
            "description": "OK.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"result": _ref("schemas", command.result)},
                        "required": ["result"],
                        "additionalProperties": False,
                    },
                    "example": {"result": command.result_example},
                }
            },
        }
    }
    by_status: dict[int, list[Failure]] = {}
    for failure in failures(shape, command, permission):
        by_status.setdefault(failure.status, []).append(failure)
    for status in sorted(by_status):
        group = by_status[status]
        examples = {
            f"{status}-{i}": {"summary": f.when, "value": _failure_body(shape, command, f)}
            for i, f in enumerate(group, 1)
        }
        content: JSON
        if _plain_text(shape, command, status):
            content = {"text/plain": {"schema": {"type": "string"}, "examples": examples}}
        else:
            schema = {
                "allOf": [
                    _ref("schemas", "Error"),
                    {"properties": {"error": {"properties": {"code": {"const": status}}}}},
                ]
            }
            content = {"application/json": {"schema": schema, "examples": examples}}
        responses[str(status)] = {
            "description": f"{STATUS_TEXT[status]}: " + "; ".join(f.when for f in group) + ".",
            "content": content,
        }
    return responses


def _parameters(shape: str, command: Command, app_id: str | None) -> list[JSON]:
    parameters: list[JSON] = []
    if shape == "seed":
        schema: JSON = {"type": "string", "minLength": 1}
        if app_id is not None:
            schema["enum"] = [app_id]
        parameters.append(
            {
                "name": "app-id",
                "in": "path",
                "required": True,
                "description": "The server's app-id (`reflectd serve --app-id`, default "
                "`default`); any other gives 404.",
                "schema": schema,
                "example": app_id or "default",
            }
        )
    if shape == "legacy":
        parameters.append(
            {
                "name": command.segment,
                "in": "path",
                "required": True,
                "description": f"The {command.segment}, percent-encoded (send `/` as `%2F`).",
                "schema": {"type": "string", "minLength": 1},
                "example": USER_EXAMPLE if command.segment == "userID" else ROOM_EXAMPLE,
            }
        )
        return parameters
    for param in command.query:
        spec: JSON = {
            "name": param.name,
            "in": "query",
            "required": param.required,
            "description": param.description,
            "schema": param.schema,
            "example": param.example,
        }
        if param.schema.get("type") == "array":
            spec["style"] = "form"
            spec["explode"] = True
        parameters.append(spec)
    return parameters


def _operation(shape: str, route: RestRoute, app_id: str | None) -> JSON:
    command = route_command(route)
    operation: JSON = {
        "operationId": f"{shape}-{command.key}",
        "summary": command.summary,
        "description": f"{command.description}\n\nPermission: `{route.permission}`.",
        "tags": [SHAPE_TAGS[shape]],
        "security": SHAPE_SECURITY[shape],
        "x-permission": route.permission,
        "x-command": command.key,
        "x-shape": shape,
    }
    parameters = _parameters(shape, command, app_id)
    if parameters:
        operation["parameters"] = parameters
    if command.body:
        operation["requestBody"] = {
            "required": True,
            "description": 'Required JSON: `{}` or `{"jurisdiction":"eu"}`.',
            "content": {
                "application/json": {
                    "schema": _ref("schemas", "CreateRoomRequest"),
                    "examples": {
                        "plain": {"summary": "no jurisdiction", "value": {}},
                        "eu": {"summary": "EU jurisdiction", "value": {"jurisdiction": "eu"}},
                    },
                }
            },
        }
    operation["responses"] = _responses(shape, command, route.permission)
    return operation


_SCHEMAS: JSON = {
    "Error": {
        "type": "object",
        "description": "The error envelope.",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer", "description": "The HTTP status."},
                    "resource": {"type": "string", "enum": ["request", "rooms", "connections"]},
                    "message": {"type": "string"},
                },
                "required": ["code", "resource", "message"],
                "additionalProperties": False,
            }
        },
        "required": ["error"],
        "additionalProperties": False,
    },
    "Room": {
        "type": "object",
        "properties": {
            "roomID": {"type": "string"},
            "jurisdiction": {"type": "string", "enum": ["", "eu"]},
            "status": {"type": "string", "enum": ["open", "closed", "deleted"]},
        },
        "required": ["roomID", "jurisdiction", "status"],
        "additionalProperties": False,
    },
    "ListRoomsResult": {
        "type": "object",
        "properties": {
            "results": {"type": "array", "items": _ref("schemas", "Room")},
            "numResults": {"type": "integer", "minimum": 0, "maximum": MAX_LIST_RESULTS},
            "more": {
                "type": "boolean",
                "description": "Whether rooms follow the last result (fetch them with "
                "`?startAfterKey=<its roomID>`).",
            },
        },
        "required": ["results", "numResults", "more"],
        "additionalProperties": False,
    },
    "GetRoomContentsResult": {
        "type": "object",
        "properties": {
            "contents": {
                "type": "object",
                "description": "Every live key of the room and its JSON value.",
                "additionalProperties": True,
            }
        },
        "required": ["contents"],
        "additionalProperties": False,
    },
    "Empty": {"type": "object", "additionalProperties": False, "maxProperties": 0},
    "CreateRoomRequest": {
        "type": "object",
        "properties": {"jurisdiction": {"type": "string", "const": "eu"}},
        "additionalProperties": False,
    },
}

_SECURITY_SCHEMES: JSON = {
    "BasicApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "`Authorization: Basic <api-key>`: the key's value itself follows "
        "`Basic ` (it is not base64 of user:password). Keys are made with "
        "`reflectd keys create`; `REFLECTD_API_KEY` in the server's environment is a key "
        "with every permission.",
    },
    "ReflectApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-reflect-api-key",
        "description": "The original server's header; any key of this server is accepted, "
        "with its permissions. A missing or unknown key gets a plain-text 401.",
    },
    "LegacyReflectApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-reflect-auth-api-key",
        "description": "The original's legacy header, read when `x-reflect-api-key` is absent.",
    },
}

_DESCRIPTION = """\
The Rooms REST API of reflectd, in two shapes with the same commands and semantics:

- `/v1/apps/{app-id}/...` with `Authorization: Basic <api-key>` (the hosted Reflect docs);
- `/api/v1/...` with `x-reflect-api-key: <api-key>`, and its legacy forms (the original
  server), where a missing or unknown key gets plain text `Unauthorized`.

Every key has permissions: `rooms:read` (list, contents), `rooms:create`, `rooms:close`,
`rooms:delete`, `connections:invalidate`. The key is checked first (401), then the path (404),
the method (405), the permission (403), the query and body (400, strict: what a command does
not take must be absent) and the command itself. Before all of these, an address that failed
to authenticate too often in the last minute gets 429 with `Retry-After`.

Success is `200 {"result": ...}`; errors are `{"error": {"code", "resource", "message"}}`
with `code` the HTTP status. See docs/rest.md.
"""


def build_openapi(app_id: str | None = None) -> JSON:
    """The OpenAPI 3.1 document of every REST route. With ``app_id``, the seed shape's
    ``{app-id}`` is that server's (the served copy); without, any (the docs' copy)."""
    paths: JSON = {}
    for route in ROUTES:
        for shape, path in documented_paths(route):
            operations = paths.setdefault(path, {})
            method = route.method.lower()
            if method in operations:
                raise LookupError(f"two routes for {route.method} {path}")
            operations[method] = _operation(shape, route, app_id)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "reflectd REST API",
            "version": __version__,
            "description": _DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/", "description": "this reflectd server"}],
        "tags": [{"name": tag} for tag in SHAPE_TAGS.values()],
        "paths": paths,
        "components": {"schemas": _SCHEMAS, "securitySchemes": _SECURITY_SCHEMES},
    }


def openapi_endpoint(app_id: str) -> Callable[[Request], Awaitable[Response]]:
    """``GET /openapi.json``: the document for this server's app-id (no key needed)."""
    document = build_openapi(app_id)

    async def endpoint(request: Request) -> Response:
        return JSONResponse(document)

    return endpoint


# ------------------------------------------------------------------------------ for humans


def _operations(document: JSON) -> Iterable[tuple[str, str, JSON]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


def _example_url(path: str, operation: JSON) -> str:
    query: list[tuple[str, str]] = []
    for param in operation.get("parameters", []):
        example = param["example"]
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", quote(str(example), safe=""))
        elif param["required"]:
            query.append((param["name"], str(example)))
    return "$REFLECTD_URL" + path + (f"?{urlencode(query)}" if query else "")


def _curl(method: str, path: str, operation: JSON) -> str:
    header = (
        '-H "Authorization: Basic $KEY"'
        if operation["x-shape"] == "seed"
        else '-H "x-reflect-api-key: $KEY"'
    )
    line = f'curl -X {method} "{_example_url(path, operation)}" {header}'
    if "requestBody" in operation:
        line += " -d '{}'"
    return line


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return "`" + text.replace("|", "\\|") + "`"


def _error_rows(forms: list[tuple[str, str, JSON]]) -> list[str]:
    """One row per distinct failure of a command, marked with its shapes unless all have it."""
    shapes_of: dict[tuple[str, str, str], list[str]] = {}
    for _, _, operation in forms:
        for status, response in operation["responses"].items():
            if status == "200":
                continue
            for media in response["content"].values():
                for example in media["examples"].values():
                    row = (status, example["summary"], _cell(example["value"]))
                    shapes = shapes_of.setdefault(row, [])
                    if operation["x-shape"] not in shapes:
                        shapes.append(operation["x-shape"])
    every = list(dict.fromkeys(o["x-shape"] for _, _, o in forms))
    rows = []
    for (status, when, answer), shapes in sorted(shapes_of.items(), key=lambda item: item[0][0]):
        note = "" if shapes == every else f" ({', '.join(shapes)} only)"
        when = when.replace("|", "\\|")
        rows.append(f"| {status} | {when}{note} | {answer} |")
    return rows


def render_markdown(document: JSON) -> str:
    """The route reference of docs/rest.md, from the document."""
    by_command: dict[str, list[tuple[str, str, JSON]]] = {}
    for method, path, operation in _operations(document):
        by_command.setdefault(operation["x-command"], []).append((method, path, operation))
    lines: list[str] = []
    for key, command in COMMANDS.items():
        forms = by_command.get(key, [])
        if not forms:
            continue
        main = forms[0][2]
        lines += [f"### {command.summary}", ""]
        lines += [f"- `{m} {p}` ({o['x-shape']})" for m, p, o in forms]
        lines += ["", f"Permission: `{main['x-permission']}`.", "", command.description, ""]
        query = [p for p in main.get("parameters", []) if p["in"] == "query"]
        if query:
            lines += ["| query parameter | required | meaning |", "|---|---|---|"]
            lines += [
                f"| `{p['name']}` | {'yes' if p['required'] else 'no'} | {p['description']} |"
                for p in query
            ]
            lines.append("")
        if "requestBody" in main:
            lines += [
                'Body (required JSON): `{}` or `{"jurisdiction":"eu"}`; nothing else.',
                "",
            ]
        else:
            lines += ["Body: none (a non-empty body is refused).", ""]
        result = main["responses"]["200"]["content"]["application/json"]["example"]
        lines += ["Answer: `200`", "", "```json", json.dumps(result), "```", ""]
        lines += ["```sh"] + [_curl(m, p, o) for m, p, o in forms] + ["```", ""]
        lines += ["Errors:", ""]
        lines += ["| status | when | answer |", "|---|---|---|"]
        lines += _error_rows(forms)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def splice_markdown(text: str, reference: str) -> str:
    """``text`` (docs/rest.md) with its generated part replaced by ``reference``."""
    head, begin, rest = text.partition(BEGIN_MARKER)
    _, end, tail = rest.partition(END_MARKER)
    if not begin or not end:
        raise ValueError(f"docs/rest.md lacks the markers {BEGIN_MARKER} ... {END_MARKER}")
    return f"{head}{BEGIN_MARKER}\n\n{reference}\n{END_MARKER}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print the OpenAPI document, or update the reference in docs/rest.md."
    )
    parser.add_argument("--markdown", metavar="REST_MD", help="update this file's reference")
    args = parser.parse_args(argv)
    document = build_openapi()
    if args.markdown is None:
        json.dump(document, sys.stdout, indent=2)
        print()
        return 0
    path = Path(args.markdown)
    path.write_text(splice_markdown(path.read_text(), render_markdown(document)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

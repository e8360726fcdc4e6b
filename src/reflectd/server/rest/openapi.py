"""The REST API as an OpenAPI 3.1 document, derived from ``routes.ROUTES``.

Each route is described in every shape it is served in: the ``/v1/apps/{app-id}/...`` API
(``Authorization: Basic <key>``) and the original server's ``/api/v1/...`` API with its legacy
forms (``x-reflect-api-key``). Schemas come from the ``wire.py`` Structs, failures from the
``Failure``s the code raises. The server serves the document at ``GET /openapi.json`` (no key
needed); ``markdown.py`` renders it into docs/rest.md. Print it with::

    python -m reflectd.server.rest.openapi
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reflectd import __version__
from reflectd.server.rest import failures as F
from reflectd.server.rest.endpoint import RestRoute, example_of
from reflectd.server.rest.parsing import (
    INVALID_HEADER,
    UNEXPECTED_QUERY,
    body_failures,
    query_failures,
    query_fields,
)
from reflectd.server.rest.routes import ORIGINAL_PREFIX, ROUTES
from reflectd.server.rest.wire import Error

JSON = dict[str, Any]
Shape = Literal["apps", "original", "legacy"]

OPENAPI_PATH = "/openapi.json"
APPS_PREFIX = "/v1/apps/{app-id}"
_SCHEMAS = "#/components/schemas/{name}"

#: each shape's tag and security
SHAPE_TAGS: dict[Shape, str] = {
    "apps": "The /v1/apps/{app-id} API",
    "original": "The original server's /api/v1 API",
    "legacy": "The original server's /api/v1 API, legacy forms",
}
_SECURITY: dict[Shape, list[JSON]] = {
    "apps": [{"BasicApiKey": []}],
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
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def shapes(route: RestRoute) -> list[tuple[Shape, str]]:
    """The (shape, OpenAPI path) of each form the route is served in."""
    if route.legacy:
        return [("legacy", ORIGINAL_PREFIX + route.template)]
    return [("apps", APPS_PREFIX + route.template), ("original", ORIGINAL_PREFIX + route.template)]


def failures(shape: Shape, route: RestRoute) -> list[F.Failure]:
    """Every way a route fails, in the order the server checks."""
    command = route.command
    apps = shape == "apps"
    found = [F.THROTTLED if apps else F.THROTTLED_ORIGINAL, F.NO_KEY if apps else F.NO_KEY_ORIGINAL]
    if apps:
        found.append(F.OTHER_APP)
    if route.legacy:
        found += [F.UNENCODED_SEGMENT, F.MALFORMED_SEGMENT, F.NUL_IN_SEGMENT]
    found.append(F.WRONG_METHOD)
    if route.permission is not None:
        found.append(F.FORBIDDEN.at(permission=route.permission))
    found.append(F.TOO_LARGE.at(max_bytes=command.max_body_bytes))
    found += query_failures(command.query) if not route.legacy else [UNEXPECTED_QUERY]
    found += body_failures(command.body)
    if command.headers is not None:
        found.append(INVALID_HEADER)
    found += command.failures
    if not any(f.status == 500 for f in command.failures):
        found.append(F.INTERNAL)
    return [*found, F.SHUTTING_DOWN, F.ROOM_UNAVAILABLE]


def permission_text(route: RestRoute) -> str:
    """The route's permission as the documentation says it."""
    return "any valid key" if route.permission is None else f"`{route.permission}`"


def _ref(name: str) -> JSON:
    return {"$ref": _SCHEMAS.format(name=name)}


def _answer(shape: Shape, failure: F.Failure) -> tuple[str, Any]:
    """The media type and body of a failure's answer in a shape."""
    if failure.plain:
        return "text/plain", failure.example_message
    if shape != "apps" and failure.status in F.ORIGINAL_PLAIN_TEXT:
        return "text/plain", F.ORIGINAL_PLAIN_TEXT[failure.status]
    if shape != "apps" and failure.plain_in_original:
        return "text/plain", failure.example_message
    error = {"code": failure.status, "resource": failure.resource}
    return "application/json", {"error": {**error, "message": failure.example_message}}


def _responses(shape: Shape, route: RestRoute) -> JSON:
    command = route.command
    responses: JSON = {
        "200": {
            "description": "OK.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"result": _ref(command.result.__name__)},
                        "required": ["result"],
                        "additionalProperties": False,
                    },
                    "example": {"result": example_of(command)},
                }
            },
        }
    }
    by_status: dict[int, list[F.Failure]] = {}
    for failure in failures(shape, route):
        by_status.setdefault(failure.status, []).append(failure)
    for status in sorted(by_status):
        group = by_status[status]
        content: JSON = {}
        for i, failure in enumerate(group, 1):
            media_type, body = _answer(shape, failure)
            media = content.setdefault(media_type, {"schema": _error_schema(media_type, status)})
            examples = media.setdefault("examples", {})
            examples[f"{status}-{i}"] = {"summary": failure.example_when, "value": body}
        responses[str(status)] = {
            "description": f"{STATUS_TEXT[status]}: "
            + "; ".join(f.example_when for f in group)
            + ".",
            "content": content,
        }
    return responses


def _error_schema(media_type: str, status: int) -> JSON:
    if media_type == "text/plain":
        return {"type": "string"}
    code = {"properties": {"error": {"properties": {"code": {"const": status}}}}}
    return {"allOf": [_ref(Error.__name__), code]}


def _parameters(shape: Shape, route: RestRoute, app_id: str | None) -> list[JSON]:
    parameters: list[JSON] = []
    if shape == "apps":
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
    parameters += _header_parameters(route)
    properties = _query_schema(route)["properties"]
    if route.segment is not None:
        parameters.append(
            {
                "name": route.segment,
                "in": "path",
                "required": True,
                "description": f"The {route.segment}, percent-encoded (send `/` as `%2F`).",
                "schema": {"type": "string", "minLength": 1},
                "example": properties[route.segment]["examples"][0],
            }
        )
        return parameters
    for field in query_fields(route.command.query):
        schema = dict(properties[field.name])
        if "description" not in schema or "examples" not in schema:
            raise LookupError(
                f"{route.command.query.__name__}: the query field {field.name} needs "
                "Meta(description=..., examples=[...]) for the documentation"
            )
        description = schema.pop("description")
        example = schema.pop("examples")[0]
        spec: JSON = {
            "name": field.name,
            "in": "query",
            "required": field.required,
            "description": description,
            "schema": schema,
            "example": example,
        }
        if field.kind == "strings":
            spec["style"] = "form"
            spec["explode"] = True
        parameters.append(spec)
    return parameters


def _header_parameters(route: RestRoute) -> list[JSON]:
    headers = route.command.headers
    if headers is None:
        return []
    (_,), components = msgspec.json.schema_components([headers], ref_template=_SCHEMAS)
    found = []
    for name, schema in components[headers.__name__]["properties"].items():
        schema = dict(schema)
        found.append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": schema.pop("description"),
                "example": schema.pop("examples")[0],
                "schema": schema,
            }
        )
    return found


def _query_schema(route: RestRoute) -> JSON:
    (_,), components = msgspec.json.schema_components([route.command.query], ref_template=_SCHEMAS)
    schema: JSON = components[route.command.query.__name__]
    return schema


def _operation(shape: Shape, route: RestRoute, app_id: str | None) -> JSON:
    command = route.command
    operation: JSON = {
        "operationId": f"{shape}-{command.key}",
        "summary": command.summary,
        "description": f"{command.description}\n\nPermission: {permission_text(route)}.",
        "tags": [SHAPE_TAGS[shape]],
        "security": _SECURITY[shape],
        "x-permission": route.permission,
        "x-command": command.key,
        "x-shape": shape,
    }
    parameters = _parameters(shape, route, app_id)
    if parameters:
        operation["parameters"] = parameters
    if command.body is not None:
        examples = getattr(command.body, "examples", {})
        operation["requestBody"] = {
            "required": True,
            "description": inspect.getdoc(command.body),
            "content": {
                "application/json": {
                    "schema": _ref(command.body.__name__),
                    "examples": {
                        summary: {
                            "summary": summary,
                            "value": msgspec.json.decode(msgspec.json.encode(value)),
                        }
                        for summary, value in examples.items()
                    },
                }
            },
        }
    operation["responses"] = _responses(shape, route)
    return operation


def _schemas() -> JSON:
    types: list[type[msgspec.Struct]] = [Error]
    for route in ROUTES:
        types += [route.command.result] + ([route.command.body] if route.command.body else [])
    _, components = msgspec.json.schema_components(dict.fromkeys(types), ref_template=_SCHEMAS)
    return components


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

- the `/v1/apps/{app-id}/...` API with `Authorization: Basic <api-key>` (as the hosted
  Reflect service documented it);
- the original server's `/api/v1/...` API with `x-reflect-api-key: <api-key>`, and its legacy
  forms, where a missing or unknown key gets plain text `Unauthorized`.

Every key has permissions: `rooms:read` (list, contents, clients), `rooms:create`,
`rooms:close`, `rooms:delete`, `rooms:write` (run a mutator, import contents),
`connections:invalidate`, `logs:read` (the log stream of `reflectd tail`,
`GET /v1/apps/{app-id}/logs:tail`, server-sent events, not described here); `GET .../key`
tells any valid key its own. The key is checked first (401), then the path (404),
the method (405), the permission (403), the body's size (413), the query and body (400,
strict: what a command does not take must be absent) and the command itself. Before all of
these, an address that failed to authenticate too often in the last minute gets 429 with
`Retry-After`.

Success is `200 {"result": ...}`; errors are `{"error": {"code", "resource", "message"}}`
with `code` the HTTP status. See docs/rest.md.
"""


def build_openapi(app_id: str | None = None) -> JSON:
    """The OpenAPI 3.1 document of every REST route. With ``app_id``, the ``{app-id}`` of the
    ``/v1/apps`` API is that server's (the served copy); without, any (the docs' copy)."""
    paths: JSON = {}
    for route in ROUTES:
        for shape, path in shapes(route):
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
        "components": {"schemas": _schemas(), "securitySchemes": _SECURITY_SCHEMES},
    }


def openapi_endpoint(app_id: str) -> Callable[[Request], Awaitable[Response]]:
    """``GET /openapi.json``: the document for this server's app-id (no key needed)."""
    document = build_openapi(app_id)

    async def endpoint(request: Request) -> Response:
        return JSONResponse(document)

    return endpoint


if __name__ == "__main__":
    json.dump(build_openapi(), sys.stdout, indent=2)
    print()

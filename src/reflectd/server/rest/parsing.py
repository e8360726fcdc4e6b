"""Strict parsing of REST query strings and bodies into a route's Structs (``wire.py``), with
the original server's messages: what a route does not declare must be absent.

The checks run in this order: the query's names and repetitions, the body, then the query's
values (mutually exclusive parameters, numbers). ``query_failures`` and ``body_failures`` list
the same failures for the documentation, from the same Structs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec
from msgspec import inspect
from starlette.requests import Request

from reflectd.protocol.jsparse import MAX_SAFE_INTEGER, is_safe_integer, parse_int
from reflectd.server.rest.failures import MAX_BODY_BYTES, TOO_LARGE, Failure

S = TypeVar("S", bound=msgspec.Struct)

# ------------------------------------------------------------------------------ the failures

UNEXPECTED_QUERY = Failure(400, "the request has a query string", "Unexpected query parameters")
UNEXPECTED_PROPERTY = Failure(
    400,
    "the query has a parameter this command does not take",
    "Query string error. Unexpected property {key}",
    example={"key": "foo"},
)
MISSING_PROPERTY = Failure(400, "`{key}` is missing", "Query string error. Missing property {key}")
REPEATED_PROPERTY = Failure(
    400, "{keys} is given more than once", "Query string error. Expected string at {key}. Got array"
)
NUL_IN_QUERY = Failure(
    400,
    "a query value holds a NUL (`%00`), which no ID holds",
    "Query string error. Invalid character (NUL) at {key}",
)
EXCLUSIVE_PROPERTIES = Failure(
    400, "more than one of {keys}", "Query string error. {names} are mutually exclusive. Got object"
)
NOT_A_NUMBER = Failure(
    400,
    "`{key}` is not a number",
    'Query string error. Expected valid number at {key}. Got "{text}"',
    example={"text": "abc"},
)
NOT_A_SAFE_INTEGER = Failure(
    400,
    "`{key}` is beyond JavaScript's safe integers (2^53 - 1 either way)",
    'Query string error. Expected safe integer at {key}. Got "{text}"',
    example={"text": str(MAX_SAFE_INTEGER + 1)},
)
UNEXPECTED_BODY = Failure(
    400, "the request has a body (this command takes none)", "Unexpected request body."
)
INVALID_JSON = Failure(400, "the body is empty or not JSON", "Body must be valid json.")
NOT_AN_OBJECT = Failure(
    400,
    "the body is not an object",
    "Body schema error. Expected object. Got {type}",
    example={"type": "array"},
)
UNEXPECTED_BODY_PROPERTY = Failure(
    400,
    "the body has another property",
    "Body schema error. Unexpected property {key}",
    example={"key": "foo"},
)
BODY_SCHEMA = Failure(
    400,
    "a property of the body is missing or of the wrong type",
    "Body schema error. {detail}",
    example={"detail": "Expected `str`, got `int` - at `$.name`"},
)
#: the longest value of a header a route reads
MAX_HEADER_CHARS = 255
INVALID_HEADER = Failure(
    400,
    "the {name} header is not 1 to {max_chars} printable ASCII characters",
    "Header error. {name} must be 1 to {max_chars} printable ASCII characters",
    example={"name": "Idempotency-Key", "max_chars": MAX_HEADER_CHARS},
)
NOT_THE_LITERAL = Failure(
    400,
    "the {key} is not `{value}`",
    "Body schema error. Expected literal value {expected} at {key} Got {got}",
    example={"got": '"us"'},
)

# ------------------------------------------------------------------------------ the Structs


@dataclass(frozen=True, slots=True)
class QueryField:
    #: as in the query string
    name: str
    #: ``strings`` may repeat; ``integer`` is read as JavaScript's ``parseInt`` reads it
    kind: Literal["string", "strings", "integer"]
    required: bool


@functools.cache
def query_fields(query_type: type[msgspec.Struct]) -> tuple[QueryField, ...]:
    fields = []
    for field in _struct_info(query_type).fields:
        kind = _unwrap(field.type)
        if isinstance(kind, inspect.StrType):
            name: Literal["string", "strings", "integer"] = "string"
        elif isinstance(kind, inspect.ListType) and isinstance(
            _unwrap(kind.item_type), inspect.StrType
        ):
            name = "strings"
        elif isinstance(kind, inspect.IntType):
            name = "integer"
        else:
            raise TypeError(
                f"{query_type.__name__}.{field.name}: a query field is a str, a list[str] or an int"
            )
        fields.append(QueryField(field.encode_name, name, field.required))
    return tuple(fields)


@functools.cache
def body_literals(body_type: type[msgspec.Struct]) -> dict[str, str]:
    """The body's fields that may have one value only (the original's), and that value.
    Other fields are typed: msgspec checks them (``BODY_SCHEMA``)."""
    literals = {}
    for field in _struct_info(body_type).fields:
        kind = _unwrap(field.type)
        if isinstance(kind, inspect.LiteralType) and len(kind.values) == 1:
            literals[field.encode_name] = str(kind.values[0])
    return literals


@functools.cache
def body_fields(body_type: type[msgspec.Struct]) -> frozenset[str]:
    return frozenset(field.encode_name for field in _struct_info(body_type).fields)


@functools.cache
def header_fields(headers_type: type[msgspec.Struct]) -> tuple[str, ...]:
    """The headers a route reads (each an optional string)."""
    names = []
    for field in _struct_info(headers_type).fields:
        if field.required:
            raise TypeError(f"{headers_type.__name__}.{field.name}: a header is optional")
        names.append(field.encode_name)
    return tuple(names)


def exclusive(query_type: type[msgspec.Struct]) -> tuple[str, ...]:
    names: tuple[str, ...] = getattr(query_type, "exclusive", ())
    return names


def _struct_info(struct_type: type[msgspec.Struct]) -> inspect.StructType:
    info = inspect.type_info(struct_type)
    assert isinstance(info, inspect.StructType)
    return info


def _unwrap(kind: inspect.Type) -> inspect.Type:
    while isinstance(kind, inspect.Metadata):
        kind = kind.type
    return kind


# ------------------------------------------------------------------------------ parsing


def parse_request(
    query_type: type[S],
    body_type: type[msgspec.Struct] | None,
    items: Iterable[tuple[str, str]],
    body: bytes,
    *,
    segment: tuple[str, str] | None = None,
) -> tuple[S, msgspec.Struct | None]:
    """The query and the body. A legacy route passes its path ``segment`` as (name, value):
    it stands for the query, which must then be empty."""
    if segment is not None:
        if any(True for _ in items):
            raise UNEXPECTED_QUERY.error()
        collected = {segment[0]: [segment[1]]}
    else:
        collected = _collect(query_type, items)
    parsed_body = parse_body(body_type, body)
    values = _values(query_type, collected)
    return msgspec.convert(values, query_type), parsed_body


def _collect(
    query_type: type[msgspec.Struct], items: Iterable[tuple[str, str]]
) -> dict[str, list[str]]:
    fields = {field.name: field for field in query_fields(query_type)}
    collected: dict[str, list[str]] = {}
    for key, value in items:
        collected.setdefault(key, []).append(value)
    if not fields and collected:
        raise UNEXPECTED_QUERY.error()
    for key in collected:
        if key not in fields:
            raise UNEXPECTED_PROPERTY.error(key=key)
    for field in fields.values():
        if field.required and field.name not in collected:
            raise MISSING_PROPERTY.error(key=field.name)
    for key, values in collected.items():
        if len(values) > 1 and fields[key].kind != "strings":
            raise REPEATED_PROPERTY.error(key=key)
        if any("\x00" in value for value in values):  # no ID holds one; PostgreSQL text cannot
            raise NUL_IN_QUERY.error(key=key)
    return collected


def _values(query_type: type[msgspec.Struct], collected: dict[str, list[str]]) -> dict[str, Any]:
    names = exclusive(query_type)
    if sum(name in collected for name in names) > 1:
        raise EXCLUSIVE_PROPERTIES.error(names=_and(names))
    values: dict[str, Any] = {}
    for field in query_fields(query_type):
        given = collected.get(field.name)
        if given is None:
            continue
        if field.kind == "strings":
            values[field.name] = given
        elif field.kind == "integer":
            values[field.name] = _integer(field.name, given[0])
        else:
            values[field.name] = given[0]
    return values


def _integer(key: str, text: str) -> int:
    """Read as JavaScript's ``parseInt`` reads it (``"10abc"`` is 10), within JavaScript's safe
    integers."""
    value = parse_int(text)
    if value is None:
        raise NOT_A_NUMBER.error(key=key, text=text)
    if not is_safe_integer(value):
        raise NOT_A_SAFE_INTEGER.error(key=key, text=text)
    return value


def parse_body(body_type: type[msgspec.Struct] | None, body: bytes) -> msgspec.Struct | None:
    """No body at all, or required JSON: an object with at most the declared properties."""
    if body_type is None:
        if body:
            raise UNEXPECTED_BODY.error()
        return None
    try:
        value = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):  # the latter: a string not UTF-8
        raise INVALID_JSON.error() from None
    if not isinstance(value, dict):
        raise NOT_AN_OBJECT.error(type=_js_type(value))
    names = body_fields(body_type)
    for key in value:
        if key not in names:
            raise UNEXPECTED_BODY_PROPERTY.error(key=key)
    for key, expected in body_literals(body_type).items():
        if key in value and value[key] != expected:
            got = msgspec.json.encode(value[key]).decode()
            raise NOT_THE_LITERAL.error(key=key, expected=_json(expected), got=got)
    try:
        return msgspec.json.decode(body, type=body_type)
    except msgspec.ValidationError as e:
        raise BODY_SCHEMA.error(detail=str(e)) from None


def parse_headers(headers_type: type[S], headers: Mapping[str, str]) -> S:
    """The route's headers: each a string of 1 to ``MAX_HEADER_CHARS`` printable ASCII
    characters, when given."""
    values = {}
    for name in header_fields(headers_type):
        value = headers.get(name)
        if value is None:
            continue
        if not (0 < len(value) <= MAX_HEADER_CHARS and value.isascii() and value.isprintable()):
            raise INVALID_HEADER.error(name=name, max_chars=MAX_HEADER_CHARS)
        values[name] = value
    return msgspec.convert(values, headers_type)


async def read_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    chunks = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise TOO_LARGE.error(max_bytes=max_bytes)
    return b"".join(chunks)


# ------------------------------------------------------------------------------ documentation


def query_failures(query_type: type[msgspec.Struct]) -> list[Failure]:
    """Every way the query fails, in the order checked."""
    fields = query_fields(query_type)
    if not fields:
        return [UNEXPECTED_QUERY]
    found = [UNEXPECTED_PROPERTY]
    found += [MISSING_PROPERTY.at(key=f.name) for f in fields if f.required]
    singles = [f.name for f in fields if f.kind != "strings"]
    if singles:
        found.append(REPEATED_PROPERTY.at(key=singles[0], keys=_or(singles)))
    found.append(NUL_IN_QUERY.at(key=fields[0].name))
    names = exclusive(query_type)
    if names:
        found.append(EXCLUSIVE_PROPERTIES.at(names=_and(names), keys=_quoted(names)))
    for field in fields:
        if field.kind == "integer":
            found += [NOT_A_NUMBER.at(key=field.name), NOT_A_SAFE_INTEGER.at(key=field.name)]
    return found


def body_failures(body_type: type[msgspec.Struct] | None) -> list[Failure]:
    if body_type is None:
        return [UNEXPECTED_BODY]
    found = [INVALID_JSON, NOT_AN_OBJECT, UNEXPECTED_BODY_PROPERTY]
    literals = body_literals(body_type)
    for key, value in literals.items():
        found.append(NOT_THE_LITERAL.at(key=key, value=value, expected=_json(value)))
    if body_fields(body_type) - literals.keys():
        found.append(BODY_SCHEMA)
    return found


def _and(names: tuple[str, ...]) -> str:
    """``a, b, and c``, as the original's messages list names."""
    return ", ".join(names[:-1]) + ", and " + names[-1] if len(names) > 1 else names[0]


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _or(names: list[str]) -> str:
    """The names, code-quoted, joined with commas and a last "or"."""
    return f"{_quoted(names[:-1])} or `{names[-1]}`" if len(names) > 1 else f"`{names[0]}`"


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _js_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"

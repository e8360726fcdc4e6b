"""Strict parsing of REST query strings and bodies, with the original server's messages
(spec 5.2): what a command does not declare must be absent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from reflectd.errors import ApiError
from reflectd.protocol.jsparse import is_safe_integer, parse_int

Query = dict[str, str | list[str]]


def parse_query(
    items: Iterable[tuple[str, str]],
    *,
    required: Iterable[str] = (),
    optional: Iterable[str] = (),
    repeatable: Iterable[str] = (),
) -> Query:
    """The query as a dict; repeated keys become lists (allowed only for ``repeatable``)."""
    collected: dict[str, list[str]] = {}
    for key, value in items:
        collected.setdefault(key, []).append(value)
    declared = {*required, *optional, *repeatable}
    if not declared and collected:
        raise ApiError(400, "Unexpected query parameters")
    for key in collected:
        if key not in declared:
            raise ApiError(400, f"Query string error. Unexpected property {key}")
    for key in required:
        if key not in collected:
            raise ApiError(400, f"Query string error. Missing property {key}")
    for key, values in collected.items():
        if len(values) > 1 and key not in repeatable:
            raise ApiError(400, f"Query string error. Expected string at {key}. Got array")
        if any("\x00" in value for value in values):  # no ID holds one; PostgreSQL text cannot
            raise ApiError(400, f"Query string error. Invalid character (NUL) at {key}")
    query: Query = {
        key: values if key in repeatable else values[0] for key, values in collected.items()
    }
    return query


def single(query: Query, key: str) -> str | None:
    value = query.get(key)
    assert not isinstance(value, list)
    return value


def number(query: Query, key: str) -> int | None:
    """A number parameter, read as JavaScript's ``parseInt`` reads it (``"10abc"`` is 10),
    within JavaScript's safe integers."""
    text = single(query, key)
    if text is None:
        return None
    value = parse_int(text)
    if value is None:
        raise ApiError(400, f'Query string error. Expected valid number at {key}. Got "{text}"')
    if not is_safe_integer(value):
        raise ApiError(400, f'Query string error. Expected safe integer at {key}. Got "{text}"')
    return value


def expect_empty_body(body: bytes) -> None:
    if body:
        raise ApiError(400, "Unexpected request body.")


class CreateRoomBody(msgspec.Struct, forbid_unknown_fields=True):
    jurisdiction: Literal["eu"] | None = None


def parse_create_body(body: bytes) -> CreateRoomBody:
    """The create command's body: required JSON, ``{}`` or ``{"jurisdiction": "eu"}``."""
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ApiError(400, "Body must be valid json.") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"Body schema error. Expected object. Got {_js_type(value)}")
    for key in value:
        if key != "jurisdiction":
            raise ApiError(400, f"Body schema error. Unexpected property {key}")
    jurisdiction = value.get("jurisdiction", "eu")
    if "jurisdiction" in value and jurisdiction != "eu":
        got = msgspec.json.encode(jurisdiction).decode()
        raise ApiError(
            400, f'Body schema error. Expected literal value "eu" at jurisdiction Got {got}'
        )
    return CreateRoomBody(jurisdiction="eu" if "jurisdiction" in value else None)


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

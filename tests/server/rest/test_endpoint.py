"""A route is declared once: its function's types and decorator are all the server, the
OpenAPI document and docs/rest.md read, and a declaration they cannot read fails at import."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from reflectd.errors import ApiError
from reflectd.server.rest.commands import RoomCommands
from reflectd.server.rest.endpoint import RouteTable
from reflectd.server.rest.keys import Principal
from reflectd.server.rest.markdown import main as markdown_main
from reflectd.server.rest.openapi import build_openapi
from reflectd.server.rest.routes import ROUTES
from reflectd.server.rest.wire import MAX_LIST_RESULTS, Empty, RoomQuery

KEY = Principal("key", frozenset())
REST_MD = Path(__file__).parents[3] / "docs" / "rest.md"


class FloatQuery(msgspec.Struct):
    ratio: float


class StringBody(msgspec.Struct):
    name: str


class RequiredHeader(msgspec.Struct):
    token: str = msgspec.field(name="X-Token")


async def takes_a_float(commands: RoomCommands, query: FloatQuery) -> Empty:
    return Empty()


async def takes_a_string_body(commands: RoomCommands, query: RoomQuery, body: StringBody) -> Empty:
    return Empty()


async def takes_a_required_header(
    commands: RoomCommands, query: RoomQuery, headers: RequiredHeader
) -> Empty:
    return Empty()


async def takes_a_room(commands: RoomCommands, query: RoomQuery) -> Empty:
    return Empty()


def test_a_query_field_the_parser_cannot_read_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match=r"FloatQuery\.ratio"):
        RouteTable().route("GET", "/x", permission="rooms:read", summary="x")(takes_a_float)


def test_a_required_header_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match=r"RequiredHeader\.token"):
        RouteTable().route("POST", "/x", permission="rooms:read", summary="x")(
            takes_a_required_header
        )


@pytest.mark.anyio
async def test_a_typed_body_field_is_checked_with_a_schema_error() -> None:
    table = RouteTable()
    table.route("POST", "/x", permission="rooms:read", summary="x")(takes_a_string_body)
    command = table.routes[0].command
    with pytest.raises(ApiError) as refused:
        await command.run(None, [("roomID", "r")], b'{"name": 1}', None, {}, key=KEY)  # type: ignore[arg-type]
    assert refused.value.status == 400
    assert refused.value.message == "Body schema error. Expected `str`, got `int` - at `$.name`"
    result = await command.run(None, [("roomID", "r")], b'{"name": "n"}', None, {}, key=KEY)  # type: ignore[arg-type]
    assert result == Empty()


def test_a_legacy_path_must_name_a_query_field() -> None:
    with pytest.raises(ValueError, match="userID"):
        RouteTable().route("POST", legacy="/x/{userID}", permission="rooms:read", summary="x")(
            takes_a_room
        )


def test_an_example_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match="example"):
        RouteTable().route(
            "POST", "/x", permission="rooms:read", summary="x", example=RoomQuery("r")
        )(takes_a_room)


def test_a_declared_route_is_served_in_both_shapes_and_its_legacy_path() -> None:
    table = RouteTable()
    table.route("POST", "/x", legacy="/x/{roomID}", permission="rooms:read", summary="X")(
        takes_a_room
    )
    plain, legacy = table.routes
    assert (plain.template, plain.legacy, plain.segment) == ("/x", False, None)
    assert (legacy.template, legacy.legacy, legacy.segment) == ("/x/{roomID}", True, "roomID")
    assert legacy.path.fullmatch("/x/a%2Fb") and not legacy.path.fullmatch("/x/a/b")
    assert plain.command is legacy.command
    assert plain.command.key == "takes-a-room"
    assert plain.command.query is RoomQuery and plain.command.body is None
    assert plain.command.result is Empty


def test_descriptions_state_the_list_cap_the_code_applies() -> None:
    (list_rooms,) = [r for r in ROUTES if r.command.key == "list-rooms"]
    assert f"capped at {MAX_LIST_RESULTS}" in list_rooms.command.description


def test_no_operation_id_or_tag_speaks_of_a_seed() -> None:
    document = build_openapi()
    for item in document["paths"].values():
        for operation in item.values():
            assert "seed" not in operation["operationId"]
            assert "seed" not in " ".join(operation["tags"]).lower()
    assert "seed" not in REST_MD.read_text().lower()


def test_the_docs_tool_finds_a_stale_reference_and_rewrites_it(tmp_path: Path) -> None:
    text = REST_MD.read_text()
    copy = tmp_path / "rest.md"
    copy.write_text(text.replace("### List rooms", "### Rooms"))
    assert markdown_main(["--check", str(copy)]) == 1
    assert markdown_main([str(copy)]) == 0
    assert copy.read_text() == text
    assert markdown_main(["--check", str(copy)]) == 0

"""Every route and every error of the REST API, with the exact messages (the original
server's where it has one), in both route shapes: the ``/v1/apps/{app-id}`` API and the
original server's ``/api/v1`` API (with its legacy forms)."""

from __future__ import annotations

import re

import pytest

from reflectd.server.rest.routes import MAX_BODY_BYTES

from .conftest import (
    APP_ID,
    BOTH_BACKENDS,
    CREATED_MS,
    ENV_KEY,
    SHAPES,
    Rest,
    assert_error,
    assert_unauthorized,
)

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("shape", SHAPES)]

ROOM_ID_RULE = "/^[A-Za-z0-9_/-]+$/"

#: (method, command, query) of every route, with valid parameters
ROUTES = [
    ("GET", "rooms", {}),
    ("GET", "rooms/contents", {"roomID": "r1"}),
    ("POST", "rooms:create", {"roomID": "r1"}),
    ("POST", "rooms:close", {"roomID": "r1"}),
    ("POST", "rooms:delete", {"roomID": "r1"}),
    ("POST", "connections/all:invalidate", {}),
    ("POST", "connections/rooms:invalidate", {"roomID": "r1"}),
    ("POST", "connections/users:invalidate", {"userID": "u1"}),
]
ROOM_COMMANDS = ["rooms/contents", "rooms:close", "rooms:delete", "connections/rooms:invalidate"]
NO_BODY_COMMANDS = [
    ("GET", "rooms", {}),
    ("GET", "rooms/contents", {"roomID": "r1"}),
    ("POST", "rooms:close", {"roomID": "r1"}),
    ("POST", "rooms:delete", {"roomID": "r1"}),
    ("POST", "connections/all:invalidate", {}),
    ("POST", "connections/rooms:invalidate", {"roomID": "r1"}),
    ("POST", "connections/users:invalidate", {"userID": "u1"}),
]


def _other(method: str) -> str:
    return "POST" if method == "GET" else "GET"


# ------------------------------------------------------------------------------ auth, routing


@pytest.mark.parametrize(("method", "command", "query"), ROUTES)
@pytest.mark.parametrize("key", [None, "", "wrong-key"])
async def test_missing_or_unknown_key_is_401_first(
    rest: Rest, shape: str, method: str, command: str, query: dict[str, str], key: str | None
) -> None:
    # before the 405 of a wrong method, the 400 of bad parameters and the 404 of a room
    for m in (method, _other(method)):
        response = await rest.call(shape, m, command, {"foo": "1"}, body="not json", key=key)
        assert_unauthorized(response, shape)
    assert_unauthorized(await rest.call(shape, "GET", "nope", key=key), shape)


async def test_key_check_precedes_unknown_app_id(rest: Rest, shape: str) -> None:
    if shape == "apps":
        assert_unauthorized(await rest.call(shape, "GET", "rooms", key="x", app_id="other"), shape)
        response = await rest.call(shape, "GET", "rooms", app_id="other")
        assert_error(response, 404, "Unknown or invalid URL")


async def test_basic_scheme_is_case_insensitive_and_others_are_refused(
    rest: Rest, shape: str
) -> None:
    if shape != "apps":
        return
    path = f"/v1/apps/{APP_ID}/rooms"
    assert (
        await rest.http.get(path, headers={"Authorization": f"basic {ENV_KEY}"})
    ).status_code == 200
    for header in (f"Bearer {ENV_KEY}", ENV_KEY, "Basic", "Basic  "):
        response = await rest.http.get(path, headers={"Authorization": header})
        assert_unauthorized(response, shape)
    # the other shape's header is not read by this shape
    assert_unauthorized(await rest.http.get(path, headers={"x-reflect-api-key": ENV_KEY}), shape)


async def test_original_accepts_the_legacy_key_header(rest: Rest, shape: str) -> None:
    if shape != "original":
        return
    response = await rest.http.get(
        "/api/v1/rooms?roomID=a", headers={"x-reflect-auth-api-key": ENV_KEY}
    )
    assert response.status_code == 200
    assert response.json() == {"result": {"results": [], "numResults": 0, "more": False}}
    assert response.headers["access-control-allow-origin"] == "*"
    # x-reflect-api-key is read first
    response = await rest.http.get(
        "/api/v1/rooms", headers={"x-reflect-api-key": "wrong", "x-reflect-auth-api-key": ENV_KEY}
    )
    assert_unauthorized(response, shape)
    # the Basic header is not read by the original's routes
    response = await rest.http.get("/api/v1/rooms", headers={"Authorization": f"Basic {ENV_KEY}"})
    assert_unauthorized(response, shape)


@pytest.mark.parametrize(
    "command", ["nope", "rooms/", "rooms%3Acreate", "rooms:create/", "connections", "rooms:nope"]
)
async def test_unknown_path_is_404(rest: Rest, shape: str, command: str) -> None:
    response = await rest.call(shape, "POST", command)
    assert_error(response, 404, "Unknown or invalid URL")


async def test_unknown_path_without_key_is_still_401(rest: Rest, shape: str) -> None:
    # the key is checked before the route is looked up
    assert_unauthorized(await rest.call(shape, "GET", "nope", key=None), shape)


async def test_legacy_forms_exist_only_in_the_original_shape(rest: Rest, shape: str) -> None:
    await rest.create("a")
    response = await rest.call(shape, "GET", "rooms/a")
    if shape == "apps":
        assert_error(response, 404, "Unknown or invalid URL")
    else:
        assert response.json() == {
            "result": {"roomID": "a", "jurisdiction": "", "status": "open", "createdMs": CREATED_MS}
        }


@pytest.mark.parametrize(("method", "command", "query"), ROUTES)
async def test_wrong_method_is_405(
    rest: Rest, shape: str, method: str, command: str, query: dict[str, str]
) -> None:
    for wrong in {"GET", "POST", "PUT", "PATCH", "DELETE"} - {method}:
        response = await rest.call(shape, wrong, command, query)
        assert_error(response, 405, "unsupported method")


async def test_head_is_get_without_a_body(rest: Rest, shape: str) -> None:
    response = await rest.call(shape, "HEAD", "rooms")
    assert response.status_code == 200
    assert response.content == b""


async def test_every_answer_allows_any_origin(rest: Rest, shape: str) -> None:
    for response in (
        await rest.call(shape, "GET", "rooms"),
        await rest.call(shape, "GET", "rooms", key=None),
        await rest.call(shape, "POST", "rooms"),
        await rest.call(shape, "GET", "nope"),
    ):
        assert response.headers["access-control-allow-origin"] == "*"


async def test_cors_preflight(rest: Rest, shape: str) -> None:
    path = f"/v1/apps/{APP_ID}/rooms" if shape == "apps" else "/api/v1/rooms"
    response = await rest.http.options(
        path,
        headers={
            "Origin": "http://example.test",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-methods"] == "GET,HEAD,POST,OPTIONS"
    assert response.headers["access-control-allow-headers"] == "authorization"
    assert response.headers["access-control-max-age"] == "86400"
    plain = await rest.http.options(path)
    assert plain.status_code == 200
    assert plain.headers["allow"] == "GET, HEAD, POST, OPTIONS"


# ------------------------------------------------------------------------------ strict input


@pytest.mark.parametrize(("method", "command", "query"), ROUTES)
async def test_unexpected_query_parameter(
    rest: Rest, shape: str, method: str, command: str, query: dict[str, str]
) -> None:
    body = "{}" if command == "rooms:create" else None
    response = await rest.call(shape, method, command, {**query, "foo": "1"}, body=body)
    if query or command == "rooms":
        assert_error(response, 400, "Query string error. Unexpected property foo")
    else:
        assert_error(response, 400, "Unexpected query parameters")


@pytest.mark.parametrize(("method", "command", "query"), NO_BODY_COMMANDS)
async def test_unexpected_body(
    rest: Rest, shape: str, method: str, command: str, query: dict[str, str]
) -> None:
    await rest.create("r1")
    response = await rest.call(shape, method, command, query, body="{}")
    assert_error(response, 400, "Unexpected request body.")


@pytest.mark.parametrize(
    ("method", "command", "name"),
    [
        ("GET", "rooms/contents", "roomID"),
        ("POST", "rooms:create", "roomID"),
        ("POST", "rooms:close", "roomID"),
        ("POST", "rooms:delete", "roomID"),
        ("POST", "connections/rooms:invalidate", "roomID"),
        ("POST", "connections/users:invalidate", "userID"),
    ],
)
async def test_missing_and_repeated_parameter(
    rest: Rest, shape: str, method: str, command: str, name: str
) -> None:
    body = "{}" if command == "rooms:create" else None
    response = await rest.call(shape, method, command, body=body)
    assert_error(response, 400, f"Query string error. Missing property {name}")
    response = await rest.call(shape, method, command, [(name, "a"), (name, "b")], body=body)
    assert_error(response, 400, f"Query string error. Expected string at {name}. Got array")


@pytest.mark.parametrize(("method", "command", "query"), ROUTES)
async def test_oversized_body_is_413(
    rest: Rest, shape: str, method: str, command: str, query: dict[str, str]
) -> None:
    body = "{" + " " * MAX_BODY_BYTES + "}"
    response = await rest.call(shape, method, command, query, body=body)
    assert_error(response, 413, f"Request body larger than {MAX_BODY_BYTES} bytes")
    # a body of exactly the limit is read (and refused for what it is)
    response = await rest.call(shape, method, command, query, body=" " * MAX_BODY_BYTES)
    assert response.status_code == 400


# ------------------------------------------------------------------------------ create


@BOTH_BACKENDS
async def test_create(rest: Rest, shape: str) -> None:
    await rest.create("a", shape)
    listed = await rest.ok(shape, "GET", "rooms", {"roomID": "a"})
    assert listed == {
        "results": [{"roomID": "a", "jurisdiction": "", "status": "open", "createdMs": CREATED_MS}],
        "numResults": 1,
        "more": False,
    }
    response = await rest.call(shape, "POST", "rooms:create", {"roomID": "a"}, body="{}")
    assert_error(response, 409, 'Room "a" already exists', "rooms")


@BOTH_BACKENDS
async def test_create_eu(rest: Rest, shape: str) -> None:
    body = '{"jurisdiction":"eu"}'
    assert await rest.ok(shape, "POST", "rooms:create", {"roomID": "e"}, body=body) == {}
    room = await rest.ok(shape, "GET", "rooms", {"roomID": "e"})
    assert room["results"] == [
        {"roomID": "e", "jurisdiction": "eu", "status": "open", "createdMs": CREATED_MS}
    ]


async def test_create_with_slash_dash_and_underscore(rest: Rest, shape: str) -> None:
    await rest.create("a/sub-room_1", shape)
    assert (await rest.ok(shape, "GET", "rooms"))["results"][0]["roomID"] == "a/sub-room_1"


@pytest.mark.parametrize("room_id", ["bad id!", "", "é", "a.b", "a:b", "a%2F"])
async def test_create_invalid_room_id(rest: Rest, shape: str, room_id: str) -> None:
    response = await rest.call(shape, "POST", "rooms:create", {"roomID": room_id}, body="{}")
    assert_error(response, 400, f'Invalid roomID "{room_id}" (must match {ROOM_ID_RULE})', "rooms")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "Body must be valid json."),
        ("", "Body must be valid json."),
        ("{nope", "Body must be valid json."),
        ("not json", "Body must be valid json."),
        (
            '{"jurisdiction":"us"}',
            'Body schema error. Expected literal value "eu" at jurisdiction Got "us"',
        ),
        (
            '{"jurisdiction":null}',
            'Body schema error. Expected literal value "eu" at jurisdiction Got null',
        ),
        (
            '{"jurisdiction":""}',
            'Body schema error. Expected literal value "eu" at jurisdiction Got ""',
        ),
        ('{"foo":1}', "Body schema error. Unexpected property foo"),
        ("[]", "Body schema error. Expected object. Got array"),
        ("null", "Body schema error. Expected object. Got null"),
        ('"eu"', "Body schema error. Expected object. Got string"),
        ("1", "Body schema error. Expected object. Got number"),
    ],
)
async def test_create_bad_body(rest: Rest, shape: str, body: str | None, message: str) -> None:
    response = await rest.call(shape, "POST", "rooms:create", {"roomID": "x"}, body=body)
    assert_error(response, 400, message)
    assert (await rest.ok(shape, "GET", "rooms"))["results"] == []


@BOTH_BACKENDS
async def test_create_when_the_start_handler_fails_is_500_naming_a_logged_error_id(
    rest: Rest, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = await rest.call(shape, "POST", "rooms:create", {"roomID": "boom"}, body="{}")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    match = re.fullmatch(r"Internal Server Error \(error id ([0-9a-f]{12})\)", response.text)
    assert match is not None, response.text
    [logged] = [r for r in caplog.records if match.group(1) in r.getMessage()]
    assert logged.exc_info is not None
    assert "the start handler refused boom" in str(logged.exc_info[1])
    assert await rest.store.get_room("boom") is None


# ------------------------------------------------------------------------------ list


async def test_list_exclusive_parameters(rest: Rest, shape: str) -> None:
    message = (
        "Query string error. startKey, startAfterKey, and roomID are mutually exclusive. Got object"
    )
    for query in (
        [("startKey", "a"), ("startAfterKey", "b")],
        [("roomID", "a"), ("startKey", "a")],
        [("roomID", "a"), ("startAfterKey", "a")],
        [("roomID", "a"), ("roomID", "b"), ("startAfterKey", "a"), ("startKey", "a")],
    ):
        assert_error(await rest.call(shape, "GET", "rooms", query), 400, message)


@pytest.mark.parametrize("value", ["abc", "", "x1", "-"])
async def test_list_bad_max_results(rest: Rest, shape: str, value: str) -> None:
    response = await rest.call(shape, "GET", "rooms", {"maxResults": value})
    assert_error(
        response, 400, f'Query string error. Expected valid number at maxResults. Got "{value}"'
    )


@pytest.mark.parametrize("name", ["startKey", "startAfterKey", "maxResults"])
async def test_list_repeated_single_parameter(rest: Rest, shape: str, name: str) -> None:
    response = await rest.call(shape, "GET", "rooms", [(name, "1"), (name, "2")])
    assert_error(response, 400, f"Query string error. Expected string at {name}. Got array")


@BOTH_BACKENDS
async def test_list(rest: Rest, shape: str) -> None:
    for room_id in ("b", "a", "c-d", "c", "c/e"):
        await rest.create(room_id)

    async def ids(query: list[tuple[str, str]]) -> tuple[list[str], int, bool]:
        result = await rest.ok(shape, "GET", "rooms", query)
        assert result["numResults"] == len(result["results"])
        return [r["roomID"] for r in result["results"]], result["numResults"], result["more"]

    assert await ids([]) == (["a", "b", "c", "c-d", "c/e"], 5, False)
    assert await ids([("maxResults", "2")]) == (["a", "b"], 2, True)
    assert await ids([("maxResults", "2abc")]) == (["a", "b"], 2, True)  # parseInt
    assert await ids([("maxResults", "5")]) == (["a", "b", "c", "c-d", "c/e"], 5, False)
    assert await ids([("maxResults", "0")]) == ([], 0, True)
    assert await ids([("maxResults", "-3")]) == ([], 0, True)
    assert await ids([("startKey", "b")]) == (["b", "c", "c-d", "c/e"], 4, False)
    assert await ids([("startKey", "bb"), ("maxResults", "1")]) == (["c"], 1, True)
    assert await ids([("startAfterKey", "b"), ("maxResults", "2")]) == (["c", "c-d"], 2, True)
    assert await ids([("startAfterKey", "c/e")]) == ([], 0, False)
    assert await ids([("startKey", "")]) == (["a", "b", "c", "c-d", "c/e"], 5, False)
    # roomID: exactly those, unknown ones left out, in roomID order
    assert await ids([("roomID", "c"), ("roomID", "nope"), ("roomID", "a")]) == (
        ["a", "c"],
        2,
        False,
    )
    assert await ids([("roomID", "c"), ("roomID", "a"), ("maxResults", "1")]) == (["c"], 1, True)
    assert await ids([("roomID", "a"), ("roomID", "a")]) == (["a"], 1, False)


@BOTH_BACKENDS
async def test_list_shows_every_status(rest: Rest, shape: str) -> None:
    for room_id in ("a", "b", "c"):
        await rest.create(room_id)
    await rest.ok(shape, "POST", "rooms:close", {"roomID": "b"})
    await rest.ok(shape, "POST", "rooms:close", {"roomID": "c"})
    await rest.ok(shape, "POST", "rooms:delete", {"roomID": "c"})
    result = await rest.ok(shape, "GET", "rooms")
    assert [r["status"] for r in result["results"]] == ["open", "closed", "deleted"]


# ------------------------------------------------------------------------------ contents


async def test_contents(rest: Rest, shape: str) -> None:
    await rest.create("a")
    assert await rest.ok(shape, "GET", "rooms/contents", {"roomID": "a"}) == {"contents": {}}


@BOTH_BACKENDS
@pytest.mark.parametrize("command", ROOM_COMMANDS[:3])
async def test_unknown_room_is_404(rest: Rest, shape: str, command: str) -> None:
    method = "GET" if command == "rooms/contents" else "POST"
    response = await rest.call(shape, method, command, {"roomID": "unknown"})
    assert_error(response, 404, 'Room "unknown" not found', "rooms")


@BOTH_BACKENDS
async def test_contents_of_a_deleted_room_is_410(rest: Rest, shape: str) -> None:
    await rest.create("a")
    await rest.ok(shape, "POST", "rooms:close", {"roomID": "a"})
    await rest.ok(shape, "POST", "rooms:delete", {"roomID": "a"})
    response = await rest.call(shape, "GET", "rooms/contents", {"roomID": "a"})
    if shape == "apps":
        assert_error(response, 410, 'Room "a" is deleted', "rooms")
    else:  # the original forwards the room's own plain-text answer
        assert response.status_code == 410
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "deleted"


# ------------------------------------------------------------------------------ close, delete


@BOTH_BACKENDS
async def test_lifecycle(rest: Rest, shape: str) -> None:
    await rest.create("a")
    response = await rest.call(shape, "POST", "rooms:delete", {"roomID": "a"})
    assert_error(response, 409, 'Room "a" must first be closed', "rooms")
    assert await rest.ok(shape, "POST", "rooms:close", {"roomID": "a"}) == {}
    assert await rest.ok(shape, "POST", "rooms:close", {"roomID": "a"}) == {}  # idempotent
    assert (await rest.store.get_room("a")).status == "closed"  # type: ignore[union-attr]
    assert await rest.ok(shape, "GET", "rooms/contents", {"roomID": "a"}) == {"contents": {}}
    response = await rest.call(shape, "POST", "rooms:create", {"roomID": "a"}, body="{}")
    assert_error(response, 409, 'Room "a" already exists', "rooms")
    assert await rest.ok(shape, "POST", "rooms:delete", {"roomID": "a"}) == {}
    assert await rest.ok(shape, "POST", "rooms:delete", {"roomID": "a"}) == {}  # idempotent
    result = await rest.ok(shape, "GET", "rooms", {"roomID": "a"})
    assert result["results"] == [
        {"roomID": "a", "jurisdiction": "", "status": "deleted", "createdMs": CREATED_MS}
    ]
    response = await rest.call(shape, "POST", "rooms:close", {"roomID": "a"})
    assert_error(response, 409, 'Room "a" is deleted', "rooms")
    response = await rest.call(shape, "POST", "rooms:create", {"roomID": "a"}, body="{}")
    assert_error(response, 409, 'Room "a" already exists', "rooms")
    assert await rest.ok(shape, "POST", "connections/rooms:invalidate", {"roomID": "a"}) == {}


# ------------------------------------------------------------------------------ invalidate


@pytest.mark.parametrize(
    ("command", "query"),
    [
        ("connections/all:invalidate", {}),
        ("connections/rooms:invalidate", {"roomID": "unknown"}),
        ("connections/users:invalidate", {"userID": "nobody"}),
    ],
)
async def test_invalidate_without_connections(
    rest: Rest, shape: str, command: str, query: dict[str, str]
) -> None:
    assert await rest.ok(shape, "POST", command, query) == {}


# ------------------------------------------------------------------------------ legacy forms


@BOTH_BACKENDS
async def test_legacy_forms(rest: Rest, shape: str) -> None:
    if shape != "original":
        return
    assert await rest.ok(shape, "POST", "rooms/legacy:create", body="{}") == {}
    assert await rest.ok(shape, "POST", "rooms/a%2Fb:create", body='{"jurisdiction":"eu"}') == {}
    assert await rest.ok(shape, "GET", "rooms/a%2Fb") == {
        "roomID": "a/b",
        "jurisdiction": "eu",
        "status": "open",
        "createdMs": CREATED_MS,
    }
    response = await rest.call(shape, "POST", "rooms/legacy:create", body="{}")
    assert_error(response, 409, 'Room "legacy" already exists', "rooms")
    response = await rest.call(shape, "POST", "rooms/bad%20id!:create", body="{}")
    assert_error(response, 400, f'Invalid roomID "bad id!" (must match {ROOM_ID_RULE})', "rooms")
    response = await rest.call(shape, "POST", "rooms/x:create")
    assert_error(response, 400, "Body must be valid json.")
    response = await rest.call(shape, "POST", "rooms/legacy:delete")
    assert_error(response, 409, 'Room "legacy" must first be closed', "rooms")
    assert await rest.ok(shape, "POST", "rooms/legacy:close") == {}
    assert await rest.ok(shape, "POST", "rooms/legacy:delete") == {}
    assert await rest.ok(shape, "GET", "rooms/legacy") == {
        "roomID": "legacy",
        "jurisdiction": "",
        "status": "deleted",
        "createdMs": CREATED_MS,
    }
    response = await rest.call(shape, "GET", "rooms/unknown")
    assert_error(response, 404, 'Room "unknown" not found', "rooms")
    for command in ("rooms/unknown:close", "rooms/unknown:delete"):
        response = await rest.call(shape, "POST", command)
        assert_error(response, 404, 'Room "unknown" not found', "rooms")
    assert await rest.ok(shape, "POST", "connections/rooms/legacy:invalidate") == {}
    assert await rest.ok(shape, "POST", "connections/users/someone:invalidate") == {}
    # no query string, no body where none is taken
    response = await rest.call(shape, "POST", "rooms/x:close", {"roomID": "x"})
    assert_error(response, 400, "Unexpected query parameters")
    response = await rest.call(shape, "GET", "rooms/a%2Fb", {"x": "1"})
    assert_error(response, 400, "Unexpected query parameters")
    response = await rest.call(shape, "POST", "rooms/a%2Fb:close", body="{}")
    assert_error(response, 400, "Unexpected request body.")
    response = await rest.call(shape, "POST", "rooms/%FF:close")
    assert_error(response, 400, "Malformed path segment")
    # the contents route wins over the legacy get of a room named "contents"
    response = await rest.call(shape, "GET", "rooms/contents")
    assert_error(response, 400, "Query string error. Missing property roomID")
    response = await rest.call(shape, "GET", "rooms/legacy:close")
    assert_error(response, 405, "unsupported method")

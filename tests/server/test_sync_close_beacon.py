"""The close beacon ``POST /api/sync/v1/close``: its checks, then the room's answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from .conftest import make_app
from .harness import Client, Harness, connect_params, serve, wait_until

pytestmark = pytest.mark.anyio

QUERY = {"roomID": "r1", "userID": "u1", "clientID": "c1"}


async def beacon(
    harness: Harness,
    last_mutation_id: int | None = None,
    *,
    query: Mapping[str, Any] | list[tuple[str, str]] = QUERY,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    if content is None:
        content = b'{"lastMutationID":%d}' % (last_mutation_id or 0)
    async with harness.http() as http:
        return await http.post(
            "/api/sync/v1/close",
            params=query,
            headers={"content-type": "application/json", **(headers or {})},
            content=content,
        )


def assert_text(response: httpx.Response, status: int, text: str) -> None:
    assert (response.status_code, response.text) == (status, text)
    assert response.headers["content-type"].startswith("text/plain")


def assert_json_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status
    assert response.json() == {"error": {"code": status, "resource": "request", "message": message}}


async def gone(harness: Harness, client: Client) -> None:
    """Close ``client`` and wait until a turn has taken it out of ``connectedclients``."""
    await client.close()

    async def left() -> bool:
        return client.client_id not in (await harness.snapshot()).connected_clients

    await wait_until(left)


@pytest.fixture
async def left_after_two(server: Harness) -> AsyncIterator[tuple[Harness, Client]]:
    """c1 made mutations 1 and 2 (one of them a per-client key) and left; a watcher stays."""
    watcher = await server.connect("watcher")
    client = await server.connect("c1")
    await client.mutate("put", {"key": "-/p/c1/cursor", "value": [1, 2]})
    await client.mutate("put", {"key": "shared", "value": "kept"})
    await watcher.sync_until(lambda c: "shared" in c.data)
    await gone(server, client)
    await watcher.sync_until(lambda c: c.presence == {"watcher"})
    yield server, watcher


# ------------------------------------------------------------------------- the gate


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"roomID": "r1", "userID": "u1"}, "Query string error. Missing property clientID"),
        ({}, "Query string error. Missing property clientID"),
        ({**QUERY, "foo": "1"}, "Query string error. Unexpected property foo"),
        (
            [("roomID", "r1"), ("roomID", "r2"), ("userID", "u1"), ("clientID", "c1")],
            "Query string error. Expected string at roomID. Got array",
        ),
    ],
)
async def test_beacon_query_must_be_exactly_room_user_and_client(
    server: Harness, query: Any, message: str
) -> None:
    assert_json_error(await beacon(server, 0, query=query), 400, message)


@pytest.mark.parametrize(
    "authorization", ["Basic abc", "Bearer", "Bearer a b", "tok", "Bearer\ta b"]
)
async def test_beacon_with_a_bad_authorization_header_gets_401(
    server: Harness, authorization: str
) -> None:
    response = await beacon(server, 0, headers={"authorization": authorization})
    assert_json_error(response, 401, "Invalid Authorization header")


async def test_beacon_with_a_malformed_token_gets_401(server: Harness) -> None:
    response = await beacon(server, 0, headers={"authorization": "Bearer %E0%A4%A"})
    assert_json_error(response, 401, "Malformed Authorization header")


def auth_handler(token: str, room_id: str, env: Any) -> Any:
    if token == "raise":
        raise PermissionError("revoked")
    if token == "none":
        return None
    if token == "other-user":
        return {"userID": "u2"}
    assert token == "tok+en"
    return {"userID": "u1"}


@pytest.fixture
async def authed() -> AsyncIterator[Harness]:
    async with serve(make_app(auth_handler=auth_handler)) as harness:
        yield harness


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("raise", "authHandler rejected: PermissionError: revoked"),
        ("none", "no authData"),
        (
            "other-user",
            "userID returned by authHandler must match userID specified in Reflect constructor.",
        ),
    ],
)
async def test_beacon_refused_by_the_auth_handler_gets_403_text(
    authed: Harness, token: str, message: str
) -> None:
    response = await beacon(authed, 0, headers={"authorization": f"Bearer {token}"})
    assert_text(response, 403, message)


async def test_beacon_without_a_token_when_auth_is_configured_gets_401(authed: Harness) -> None:
    response = await beacon(authed, 0)
    assert response.status_code == 401


async def test_beacon_token_is_uri_decoded_and_scheme_is_case_insensitive(
    authed: Harness,
) -> None:
    await authed.connect(protocol="tok%2Ben")
    response = await beacon(authed, 0, headers={"authorization": "bEaReR tok%2Ben"})
    assert_text(response, 200, "Client is still connected")


async def test_beacon_for_an_unknown_room_gets_404_room_not_found(server: Harness) -> None:
    assert_text(await beacon(server, 0), 404, "Room not found")
    assert await server.store.get_room("r1") is None


async def test_beacon_for_a_closed_room_gets_410(server: Harness) -> None:
    await server.connect()
    await server.store.set_room_status("r1", "closed")
    assert_text(await beacon(server, 0), 410, "Room closed")


async def test_beacon_with_a_bad_body_gets_400(server: Harness) -> None:
    await server.connect()
    for body in [b"", b"{}", b'{"lastMutationID":"1"}', b'{"lastMutationID":1,"x":2}']:
        response = await beacon(server, content=body)
        assert response.status_code == 400, body


async def test_beacon_for_a_client_of_another_user_is_refused(server: Harness) -> None:
    client = await server.connect()
    await gone(server, client)
    response = await beacon(server, 0, query={**QUERY, "userID": "mallory"})
    assert response.status_code == 403
    assert "c1" in (await server.snapshot()).clients


# ------------------------------------------------------------------------- the outcome table


async def test_beacon_for_an_unknown_client_gets_404_client_record_not_found(
    server: Harness,
) -> None:
    await server.connect("someone-else")
    assert_text(await beacon(server, 0), 404, "client record not found")


async def test_beacon_while_connected_is_remembered_and_the_client_deleted_at_disconnect(
    server: Harness,
) -> None:
    watcher = await server.connect("watcher")
    client = await server.connect("c1")
    await client.mutate("put", {"key": "-/p/c1/x", "value": 1})
    await watcher.sync_until(lambda c: "-/p/c1/x" in c.data)
    assert_text(await beacon(server, 1), 200, "Client is still connected")
    assert (await server.snapshot()).clients["c1"].last_mutation_id_at_close == 1
    await client.close()
    await watcher.sync_until(lambda c: c.presence == {"watcher"} and "-/p/c1/x" not in c.data)
    snapshot = await server.snapshot()
    assert "c1" not in snapshot.clients
    assert snapshot.entries["-/p/c1/x"].deleted


async def test_beacon_with_a_lower_id_gets_500_and_changes_nothing(
    left_after_two: tuple[Harness, Client],
) -> None:
    server, _ = left_after_two
    before = await server.snapshot()
    response = await beacon(server, 1)
    assert_text(response, 500, "Client mutationID is less than existing")
    assert await server.snapshot() == before


async def test_beacon_with_a_higher_id_stores_nothing(
    left_after_two: tuple[Harness, Client],
) -> None:
    server, _ = left_after_two
    before = await server.snapshot()
    assert_text(await beacon(server, 3), 200, "Client has pending mutations")
    assert await server.snapshot() == before


async def test_beacon_with_the_equal_id_deletes_the_client_without_a_poke(
    left_after_two: tuple[Harness, Client],
) -> None:
    server, watcher = left_after_two
    version = (await server.snapshot()).version
    assert_text(await beacon(server, 2), 200, "ok")
    await watcher.expect_silence()
    snapshot = await server.snapshot()
    assert "c1" not in snapshot.clients
    assert snapshot.entries["-/p/c1/cursor"].deleted
    assert not snapshot.entries["shared"].deleted
    assert snapshot.version == (version or 0) + 1
    # the watcher catches up by fast-forward in the next turn
    await watcher.mutate("put", {"key": "later", "value": 1})
    assert watcher.data == {"shared": "kept", "later": 1}
    # a deleted client is new again: its old lmid is ahead of the server
    params = connect_params(client_group_id="g-c1", lmid=2, base_cookie=watcher.cookie)
    await server.refused(params, "InvalidConnectionRequestLastMutationID", "Unexpected lmid.")


async def test_close_beacon_preflight_is_answered_for_cors(server: Harness) -> None:
    async with server.http() as http:
        response = await http.options(
            "/api/sync/v1/close",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET,HEAD,POST,OPTIONS"
    assert response.headers["access-control-allow-headers"] == "authorization,content-type"
    assert response.headers["access-control-max-age"] == "86400"


async def test_close_beacon_answers_carry_the_cors_header(server: Harness) -> None:
    response = await beacon(server, 0)
    assert response.headers["access-control-allow-origin"] == "*"

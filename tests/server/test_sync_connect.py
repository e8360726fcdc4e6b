"""The connect gate and the room side of connect, over real sockets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from reflectd.engine.records import RoomRecord
from reflectd.server.settings import ServerSettings

from .conftest import make_app
from .harness import Client, Harness, connect_params, serve, wait_until

pytestmark = pytest.mark.anyio

ROOM_ID_RULE = "/^[A-Za-z0-9_/-]+$/"


def auth_handler(token: str, room_id: str, env: Mapping[str, str]) -> Any:
    """Accepts any token but a few that name a way to fail."""
    if token == "raise":
        raise ValueError("bad token")
    if token == "none":
        return None
    if token == "no-user":
        return {"role": "guest"}
    if token == "other-user":
        return {"userID": "someone-else"}
    return {"userID": "u1", "token": token, "roomID": room_id, "role": "admin"}


async def async_auth_handler(token: str, room_id: str, env: Mapping[str, str]) -> Any:
    await asyncio.sleep(0)
    if token == "slow":
        await asyncio.sleep(10)
    return auth_handler(token, room_id, env)


@pytest.fixture
async def authed() -> Any:
    """reflectd whose app has an (async) auth handler, with a short auth timeout."""
    settings = ServerSettings(db="memory://", auth_timeout_ms=200)
    async with serve(make_app(auth_handler=async_auth_handler), settings) as harness:
        yield harness


# ------------------------------------------------------------------------- HTTP answers


async def test_bad_version_segment_on_upgrade_gets_plain_text_500(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InvalidStatus) as caught:
        await connect(server.connect_url(connect_params(), version="foo"))
    response = caught.value.response
    assert response.status_code == 500
    assert bytes(response.body) == b"invalid version found by withVersion, foo"
    # a denial is an answer, not a failed handshake: nothing for the operator to look at
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_bad_version_segment_without_upgrade_gets_500_before_the_upgrade_check(
    server: Harness,
) -> None:
    async with server.http() as http:
        response = await http.get("/api/sync/foo/connect")
    assert response.status_code == 500
    assert response.text == "invalid version found by withVersion, foo"


async def test_plain_get_of_connect_gets_400_expected_websocket(server: Harness) -> None:
    async with server.http() as http:
        response = await http.get("/api/sync/v1/connect", params=connect_params())
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "expected websocket"


@pytest.mark.parametrize("path", ["/api/sync/v1/connect", "/api/sync/foo/connect"])
async def test_post_to_connect_gets_405_json(server: Harness, path: str) -> None:
    async with server.http() as http:
        response = await http.post(path)
    assert response.status_code == 405
    assert response.json() == {
        "error": {"code": 405, "resource": "request", "message": "unsupported method"}
    }


# ------------------------------------------------------------------------- gate, in order


async def test_handler_configured_and_no_subprotocol_is_refused_with_auth_required(
    authed: Harness,
) -> None:
    await authed.refused(connect_params(), "InvalidConnectionRequest", "auth required")


async def test_auth_required_is_checked_before_the_version(authed: Harness) -> None:
    await authed.refused({}, "InvalidConnectionRequest", "auth required", version="v2")


async def test_version_2_is_refused_with_version_not_supported(server: Harness) -> None:
    await server.refused(
        connect_params(), "VersionNotSupported", "unsupported version", version="v2"
    )


async def test_version_is_checked_before_the_parameters(server: Harness) -> None:
    await server.refused({}, "VersionNotSupported", "unsupported version", version="v0")


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        (["clientID", "roomID", "userID"], "clientID parameter required"),
        (["roomID", "userID"], "roomID parameter required"),
        (["userID"], "userID parameter required"),
    ],
)
@pytest.mark.parametrize("empty", [False, True], ids=["absent", "empty"])
async def test_missing_or_empty_gate_parameter_is_refused_in_order(
    server: Harness, missing: list[str], message: str, empty: bool
) -> None:
    params = connect_params()
    for name in missing:
        if empty:
            params[name] = ""
        else:
            del params[name]
    await server.refused(params, "InvalidConnectionRequest", message)


@pytest.mark.parametrize("room_id", ["a b", "room!", "é", "r1?x", "r.1"])
async def test_room_id_outside_the_pattern_is_refused_with_the_regex_message(
    server: Harness, room_id: str
) -> None:
    params = connect_params(room_id=room_id, jurisdiction="us")
    await server.refused(
        params,
        "InvalidConnectionRequest",
        f'Invalid roomID "{room_id}" (must match {ROOM_ID_RULE})',
    )


async def test_jurisdiction_other_than_eu_is_refused(server: Harness) -> None:
    params = connect_params(jurisdiction="us")
    await server.refused(params, "InvalidConnectionRequest", "invalid jurisdiction parameter")


@pytest.mark.parametrize("jurisdiction", ["", "eu"])
async def test_jurisdiction_empty_or_eu_connects_and_is_stored_on_auto_create(
    server: Harness, jurisdiction: str
) -> None:
    await server.connect(room_id="j", jurisdiction=jurisdiction)
    record = await server.store.get_room("j")
    assert record is not None and record.created_ms is not None  # auto-created, with its time
    assert record == RoomRecord("j", jurisdiction, created_ms=record.created_ms)


async def test_malformed_auth_is_refused_even_without_a_handler(server: Harness) -> None:
    await server.refused(
        connect_params(), "InvalidConnectionRequest", "malformed auth", protocol="%E0%A4%A"
    )


async def test_malformed_auth_is_checked_after_jurisdiction(server: Harness) -> None:
    params = connect_params(jurisdiction="us")
    await server.refused(
        params, "InvalidConnectionRequest", "invalid jurisdiction parameter", protocol="%E0%A4%A"
    )


async def test_token_without_a_handler_is_ignored(server: Harness) -> None:
    client = await server.connect(protocol="anything")
    assert client.ws.subprotocol == "anything"


# ------------------------------------------------------------------------- the auth handler


UNAUTHORIZED = [
    ("raise", "authHandler rejected: ValueError: bad token"),
    ("none", "no authData"),
    ("no-user", "no authData"),
    (
        "other-user",
        "userID returned by authHandler must match userID specified in Reflect constructor.",
    ),
]


@pytest.mark.parametrize(("token", "message"), UNAUTHORIZED)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_auth_handler_refusal_gives_unauthorized_with_the_original_message(
    token: str, message: str, kind: str
) -> None:
    handler = auth_handler if kind == "sync" else async_auth_handler
    async with serve(make_app(auth_handler=handler)) as server:
        client = await server.refused(connect_params(), "Unauthorized", message, protocol=token)
        assert client.ws.subprotocol == token


async def test_auth_handler_that_times_out_gives_unauthorized(authed: Harness) -> None:
    await authed.refused(
        connect_params(),
        "Unauthorized",
        "authHandler rejected: Error: authHandler timed out",
        protocol="slow",
    )


async def test_sync_auth_handler_that_times_out_gives_unauthorized() -> None:
    def slow_handler(token: str, room_id: str, env: Mapping[str, str]) -> Any:
        time.sleep(0.3)
        return {"userID": "u1"}

    settings = ServerSettings(db="memory://", auth_timeout_ms=50)
    async with serve(make_app(auth_handler=slow_handler), settings) as server:
        await server.refused(
            connect_params(),
            "Unauthorized",
            "authHandler rejected: Error: authHandler timed out",
            protocol="t",
        )


async def test_auth_handler_refusal_creates_no_room(authed: Harness) -> None:
    await authed.refused(connect_params(), "Unauthorized", protocol="none")
    assert await authed.store.get_room("r1") is None


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_auth_handler_result_becomes_tx_auth(kind: str) -> None:
    handler = auth_handler if kind == "sync" else async_auth_handler
    async with serve(make_app(auth_handler=handler)) as server:
        client = await server.connect(room_id="r-auth", protocol="tok%2Bx")
        assert client.ws.subprotocol == "tok%2Bx"
        await client.mutate("saveAuth")
        assert client.data["auth"] == {
            "userID": "u1",
            "token": "tok+x",
            "roomID": "r-auth",
            "role": "admin",
        }


async def test_auth_handler_gets_the_apps_env() -> None:
    seen: list[Mapping[str, str]] = []

    def handler(token: str, room_id: str, env: Mapping[str, str]) -> Any:
        seen.append(env)
        return {"userID": "u1"}

    app = make_app(auth_handler=handler)
    app.env = {"REGION": "eu-west"}
    async with serve(app) as server:
        await server.connect(protocol="t")
    assert seen == [{"REGION": "eu-west"}]


# ------------------------------------------------------------------------- subprotocol echo


@pytest.mark.parametrize(
    ("params", "version", "kind"),
    [
        (connect_params(), "v2", "VersionNotSupported"),
        (connect_params(room_id="bad room"), "v1", "InvalidConnectionRequest"),
        (connect_params(lmid=3), "v1", "InvalidConnectionRequestLastMutationID"),
    ],
)
async def test_subprotocol_is_echoed_verbatim_on_error_paths(
    server: Harness, params: dict[str, str], version: str, kind: str
) -> None:
    protocol = "a%20token%2Fwith%25escapes"
    client = await server.refused(params, kind, version=version, protocol=protocol)
    assert client.ws.subprotocol == protocol
    assert client.ws.response is not None
    assert client.ws.response.headers["Sec-WebSocket-Protocol"] == protocol


async def test_subprotocol_is_echoed_verbatim_on_success(authed: Harness) -> None:
    client = await authed.connect(protocol="e30.eyJ1c2VySUQiOiJ1MSJ9.c2ln")
    assert client.ws.response is not None
    assert client.ws.response.headers["Sec-WebSocket-Protocol"] == "e30.eyJ1c2VySUQiOiJ1MSJ9.c2ln"


async def test_no_subprotocol_header_when_none_is_offered(server: Harness) -> None:
    client = await server.connect()
    assert client.ws.subprotocol is None
    assert client.ws.response is not None
    assert "Sec-WebSocket-Protocol" not in client.ws.response.headers
    refused = await server.refused(
        connect_params(client_id="c9", lmid=9), "InvalidConnectionRequestLastMutationID"
    )
    assert refused.ws.response is not None
    assert "Sec-WebSocket-Protocol" not in refused.ws.response.headers


# ------------------------------------------------------------------------- room side


@pytest.mark.parametrize("name", ["clientGroupID", "ts", "lmid"])
@pytest.mark.parametrize("empty", [False, True], ids=["absent", "empty"])
async def test_missing_room_parameter_is_refused(server: Harness, name: str, empty: bool) -> None:
    params = connect_params()
    if empty:
        params[name] = ""
    else:
        del params[name]
    await server.refused(
        params, "InvalidConnectionRequest", f"invalid querystring - missing {name}"
    )


@pytest.mark.parametrize(("name", "value"), [("lmid", "x"), ("ts", "abc"), ("baseCookie", "-")])
async def test_non_integer_parameter_is_refused_with_the_url(
    server: Harness, name: str, value: str
) -> None:
    params = connect_params()
    params[name] = value
    url = server.connect_url(params)
    await server.refused(
        params,
        "InvalidConnectionRequest",
        f"invalid querystring parameter {name}, got: {value}, url: {url}",
    )


@pytest.mark.parametrize("ts", ["5123.400000095367", "0", "12abc", " 7"])
async def test_ts_is_parsed_like_parse_int(server: Harness, ts: str) -> None:
    await server.connect(ts=ts)


async def test_empty_base_cookie_means_null_and_the_first_poke_starts_from_null(
    server: Harness,
) -> None:
    client = await server.connect(first_poke=False)
    [poke] = await client.next_pokes()
    assert poke == {
        "baseCookie": None,
        "cookie": 0,
        "lastMutationIDChanges": {},
        "patch": [],
        "presence": [{"op": "clear"}, {"op": "put", "key": "c1", "value": 1}],
    }


async def test_lmid_ahead_of_the_server_is_refused(server: Harness) -> None:
    client = await server.connect()
    await client.mutate("put", {"key": "a", "value": 1})
    await client.close()
    params = connect_params(client_group_id=client.client_group_id, lmid=2)
    await server.refused(params, "InvalidConnectionRequestLastMutationID", "Unexpected lmid.")
    await server.connect(client_group_id=client.client_group_id, lmid=1, base_cookie=1)


async def test_lmid_of_an_unknown_client_must_be_zero(server: Harness) -> None:
    params = connect_params(lmid=1)
    await server.refused(params, "InvalidConnectionRequestLastMutationID", "Unexpected lmid.")


async def test_any_base_cookie_against_a_room_without_a_version_is_refused(
    server: Harness,
) -> None:
    params = connect_params(base_cookie=0)
    await server.refused(params, "InvalidConnectionRequestBaseCookie", "Unexpected baseCookie.")


async def test_base_cookie_ahead_of_the_room_version_is_refused(server: Harness) -> None:
    client = await server.connect()
    await client.mutate("put", {"key": "a", "value": 1})
    assert client.cookie == 1
    params = connect_params(client_id="c2", base_cookie=2)
    await server.refused(params, "InvalidConnectionRequestBaseCookie", "Unexpected baseCookie.")


async def test_known_client_with_another_client_group_is_refused(server: Harness) -> None:
    client = await server.connect(client_group_id="g1")
    await client.close()
    params = connect_params(client_group_id="g2")
    await server.refused(params, "InvalidConnectionRequest", "Unexpected clientGroupID.")


async def test_known_client_with_another_user_is_refused(server: Harness) -> None:
    client = await server.connect(client_group_id="g1")
    await client.close()
    params = connect_params(client_group_id="g1", user_id="mallory")
    await server.refused(params, "InvalidConnectionRequest", "Unexpected userID")


async def test_refused_room_side_connect_stores_no_client_record(server: Harness) -> None:
    await server.refused(connect_params(lmid=1), "InvalidConnectionRequestLastMutationID")
    snapshot = await server.snapshot()
    assert snapshot.clients == {}


async def test_closed_room_is_refused_with_room_closed(server: Harness) -> None:
    await server.connect(room_id="shut")
    await server.store.set_room_status("shut", "closed")
    await server.refused(connect_params(room_id="shut", client_id="c2"), "RoomClosed", "shut")


async def test_room_whose_start_handler_fails_on_auto_create_is_refused_and_not_created() -> None:
    def start(tx: Any, room_id: str) -> None:
        raise RuntimeError("cannot start")

    async with serve(make_app(room_start_handler=start)) as server:
        await server.refused(connect_params(), "RoomClosed", "r1")
        assert await server.store.get_room("r1") is None


async def test_client_gone_during_a_slow_auth_handler_leaves_no_connection_behind() -> None:
    async def slow_handler(token: str, room_id: str, env: Mapping[str, str]) -> Any:
        await asyncio.sleep(0.2)
        return {"userID": "u1"}

    async with serve(make_app(auth_handler=slow_handler)) as server:
        watcher = await server.connect("watcher", protocol="t")
        quitter = await server.open(connect_params(client_id="quitter"), protocol="t")
        await quitter.close()

        async def settled() -> bool:
            snapshot = await server.snapshot()
            return "quitter" in snapshot.clients and snapshot.connected_clients == {"watcher"}

        await wait_until(settled)
        registry = server.server.registry
        assert registry is not None
        assert set(registry.actors["r1"].room.connections) == {"watcher"}
        version = (await server.snapshot()).version
        await watcher.sync_until(lambda c: c.cookie == version)
        assert watcher.presence == {"watcher"}


@pytest.mark.parametrize("name", ["roomID", "clientID", "lmid"])
async def test_a_repeated_query_parameter_is_refused_and_connects_to_no_room(
    server: Harness, name: str
) -> None:
    """``roomID=first&roomID=second``: the original reads the first, nginx's ``$arg_roomID``
    hashes on the first, Starlette would read the last; refused, so they cannot disagree."""
    params = [*connect_params(room_id="first").items(), (name, "second")]
    ws = await connect(f"{server.ws_url}/api/sync/v1/connect?{urlencode(params)}", compression=None)
    client = Client(ws, client_id="c1", client_group_id="g1")
    server.clients.append(client)
    await client.expect_error("InvalidConnectionRequest", f"query parameter {name} is repeated")
    await client.expect_closed()
    assert await server.store.get_room("first") is None
    assert await server.store.get_room("second") is None

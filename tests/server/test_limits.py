"""Limits on what clients send (ServerSettings.limits, EngineSettings key/value sizes)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import ConnectionClosed

from reflectd.engine.handlers import EngineSettings
from reflectd.server.settings import Limits, ServerSettings
from reflectd.server.uvicorn_ws import WebSocketProtocol

from .conftest import make_app
from .harness import (
    FRAME_TIMEOUT_S,
    Harness,
    connect_params,
    now_ms,
    push_frame,
    serve,
    wait_until,
)

pytestmark = pytest.mark.anyio

MAX_MESSAGE_BYTES = 2000
MAX_MUTATIONS = 3
MAX_KEY_BYTES = 16
MAX_VALUE_BYTES = 64


@pytest.fixture
async def limited() -> AsyncIterator[Harness]:
    settings = ServerSettings(
        db="memory://",
        limits=Limits(max_message_bytes=MAX_MESSAGE_BYTES, max_mutations_per_push=MAX_MUTATIONS),
        engine=EngineSettings(max_key_bytes=MAX_KEY_BYTES, max_value_bytes=MAX_VALUE_BYTES),
    )
    async with serve(make_app(), settings) as harness:
        yield harness


def size(frame: object) -> int:
    return len(json.dumps(frame).encode())


async def test_message_over_the_size_limit_gets_invalid_message_and_nothing_is_stored(
    limited: Harness,
) -> None:
    client = await limited.connect()
    frame = client.push_frame("put", {"key": "a", "value": "x" * MAX_MESSAGE_BYTES})
    await client.send(frame)
    message = await client.expect_error("InvalidMessage")
    assert str(MAX_MESSAGE_BYTES) in message
    await client.ping()
    assert await limited.values() == {}
    assert (await limited.snapshot()).clients["c1"].last_mutation_id == 0


async def test_message_size_is_counted_in_utf8_bytes(limited: Harness) -> None:
    client = await limited.connect()
    frame = client.push_frame("put", {"key": "a", "value": "é" * (MAX_MESSAGE_BYTES // 2)})
    assert len(json.dumps(frame, ensure_ascii=False)) < MAX_MESSAGE_BYTES
    await client.ws.send(json.dumps(frame, ensure_ascii=False))
    await client.expect_error("InvalidMessage")
    assert await limited.values() == {}


async def test_message_at_the_size_limit_is_accepted(limited: Harness) -> None:
    client = await limited.connect()
    frame = client.push_frame("put", {"key": "a", "value": ""}, mutation_id=1)
    padding = MAX_MESSAGE_BYTES - size(frame)
    frame[1]["mutations"][0]["args"]["value"] = "y" * padding
    assert size(frame) == MAX_MESSAGE_BYTES
    await client.send(frame)
    [poke] = await client.next_pokes()
    assert poke["lastMutationIDChanges"] == {"c1": 1}


async def test_push_with_too_many_mutations_is_refused_and_nothing_is_stored(
    limited: Harness,
) -> None:
    client = await limited.connect()
    mutations = [
        {
            "id": i,
            "clientID": "c1",
            "name": "put",
            "args": {"key": f"k{i}", "value": i},
            "timestamp": now_ms(),
        }
        for i in range(1, MAX_MUTATIONS + 2)
    ]
    await client.send(push_frame(mutations, client.client_group_id))
    await client.expect_error(
        "InvalidPush",
        f"push has {MAX_MUTATIONS + 1} mutations, more than the limit of {MAX_MUTATIONS}",
    )
    await client.expect_closed()
    snapshot = await limited.snapshot()
    assert snapshot.entries == {}
    assert snapshot.clients["c1"].last_mutation_id == 0


async def test_push_with_as_many_mutations_as_the_limit_is_applied(limited: Harness) -> None:
    client = await limited.connect()
    mutations = [
        {
            "id": i,
            "clientID": "c1",
            "name": "put",
            "args": {"key": f"k{i}", "value": i},
            "timestamp": now_ms(),
        }
        for i in range(1, MAX_MUTATIONS + 1)
    ]
    await client.send(push_frame(mutations, client.client_group_id))
    await client.sync_until(lambda c: c.lmid == MAX_MUTATIONS)
    assert len(await limited.values()) == MAX_MUTATIONS


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("k" * (MAX_KEY_BYTES + 1), 1),
        ("é" * (MAX_KEY_BYTES // 2 + 1), 1),
        ("big", "v" * MAX_VALUE_BYTES),
    ],
    ids=["long-key", "long-key-in-utf8", "big-value"],
)
async def test_key_or_value_over_the_limit_consumes_the_mutation_with_an_empty_patch(
    limited: Harness, key: str, value: object
) -> None:
    client = await limited.connect()
    [poke] = await client.mutate("put", {"key": key, "value": value})
    assert poke["patch"] == []
    assert poke["lastMutationIDChanges"] == {"c1": 1}
    assert key not in (await limited.snapshot()).entries
    [poke] = await client.mutate("put", {"key": "ok", "value": 1})
    assert poke["patch"] == [{"op": "put", "key": "ok", "value": 1}]


async def test_frames_sent_after_a_refused_push_are_not_processed(limited: Harness) -> None:
    client = await limited.connect()
    too_many = [
        {
            "id": i,
            "clientID": "c1",
            "name": "put",
            "args": {"key": "k", "value": i},
            "timestamp": now_ms(),
        }
        for i in range(1, MAX_MUTATIONS + 2)
    ]
    await client.send(push_frame(too_many, client.client_group_id))
    await client.send(push_frame(too_many[:1], client.client_group_id))
    await client.send(["ping", {}])
    await client.expect_error("InvalidPush")
    await client.expect_closed()
    snapshot = await limited.snapshot()
    assert snapshot.entries == {}
    assert snapshot.clients["c1"].last_mutation_id == 0


# reflectd's protocol writes frames at once; any other one sends through ASGI messages
@pytest.mark.parametrize("ws", [WebSocketProtocol, "websockets-sansio"], ids=["direct", "asgi"])
async def test_client_that_stops_reading_is_dropped_and_its_room_lets_it_go(
    ws: type[asyncio.Protocol] | str,
) -> None:
    settings = ServerSettings(db="memory://", limits=Limits(max_send_buffer_bytes=200_000))
    async with serve(make_app(), settings, ws=ws) as server:
        writer = await server.connect("writer")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up quickly
        sock.connect(("127.0.0.1", server.port))
        stuck = await server.connect("stuck", options={"sock": sock, "max_queue": 1})
        await writer.sync_until(lambda c: c.presence == {"writer", "stuck"})
        # from now on, stuck reads nothing
        for _ in range(500):
            await writer.mutate("put", {"key": "big", "value": "x" * 100_000})
            if writer.presence == {"writer"}:
                break
        assert writer.presence == {"writer"}
        assert (await server.snapshot()).connected_clients == {"writer"}
        # when it reads again, it finds the socket gone, and it can reconnect
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(stuck.ws.recv(), FRAME_TIMEOUT_S)
        stuck = await server.reconnect(stuck)
        assert stuck.data["big"] == "x" * 100_000


async def test_a_connection_over_the_room_limit_is_refused_and_other_rooms_still_connect() -> None:
    settings = ServerSettings(db="memory://", limits=Limits(max_connections_per_room=2))
    async with serve(make_app(), settings) as harness:
        await harness.connect("c1")
        await harness.connect("c2")
        refused = await harness.open(
            connect_params(client_id="c3", client_group_id="g-c3"), client_id="c3"
        )
        message = await refused.expect_error("InvalidConnectionRequest")
        assert message == "room r1 is at its limit of 2 connections"
        await harness.connect("c4", room_id="r2")


async def test_a_connection_over_the_process_limit_is_refused() -> None:
    settings = ServerSettings(db="memory://", limits=Limits(max_connections=2))
    async with serve(make_app(), settings) as harness:
        await harness.connect("c1")
        await harness.connect("c2", room_id="r2")
        refused = await harness.open(
            connect_params(client_id="c3", room_id="r3", client_group_id="g-c3"), client_id="c3"
        )
        message = await refused.expect_error("InvalidConnectionRequest")
        assert message == "the server is at its limit of 2 connections"


async def test_connections_over_the_per_address_limit_are_refused_and_counted_per_client() -> None:
    settings = ServerSettings(db="memory://", limits=Limits(max_connections_per_address=2))
    async with serve(make_app(), settings) as harness:
        first = await harness.connect("c1")
        await harness.connect("c2", room_id="r2")
        refused = await harness.open(
            connect_params(client_id="c3", room_id="r3", client_group_id="g-c3"), client_id="c3"
        )
        message = await refused.expect_error("InvalidConnectionRequest")
        assert message == "too many connections from 127.0.0.1 (the limit is 2)"
        await refused.expect_closed()
        # behind a trusted proxy (127.0.0.1 here) each forwarded client counts apart
        forwarded = {"additional_headers": {"X-Forwarded-For": "203.0.113.5"}}
        await harness.connect("c4", room_id="r4", options=forwarded)
        # a closed socket frees its place
        await first.ws.close()
        await wait_until(
            lambda: harness.server.sync is not None and len(harness.server.sync.sockets) == 2
        )
        await harness.connect("c5", room_id="r5")


async def test_a_client_sending_the_proxied_header_is_still_counted_against_its_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``x-reflectd-proxied`` from a client (not signed by a node of a cluster) is ignored:
    it used to exempt the socket from the per-address limit (20 sockets where 3 were
    allowed)."""
    settings = ServerSettings(db="memory://", limits=Limits(max_connections_per_address=3))
    forged = {"additional_headers": {"x-reflectd-proxied": "node0"}}
    async with serve(make_app(), settings) as harness:
        for i in range(3):
            await harness.connect(f"c{i}", room_id=f"r{i}", options=forged)
        refused = await harness.open(
            connect_params(client_id="c3", room_id="r3", client_group_id="g-c3"),
            client_id="c3",
            **forged,
        )
        message = await refused.expect_error("InvalidConnectionRequest")
        assert message == "too many connections from 127.0.0.1 (the limit is 3)"
    assert "ignored a x-reflectd-proxied header from 127.0.0.1" in caplog.text

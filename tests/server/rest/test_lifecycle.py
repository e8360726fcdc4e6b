"""Closing, deleting and invalidating with protocol-level WebSocket clients connected."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from .conftest import BOTH_BACKENDS, CREATED_MS, SHAPES, Live, Socket, assert_error

pytestmark = [pytest.mark.anyio, BOTH_BACKENDS]


async def push(sock: Socket, client_id: str, key: str, value: Any) -> None:
    mutation = {
        "id": 1,
        "clientID": client_id,
        "name": "put",
        "args": {"key": key, "value": value},
        "timestamp": 1,
    }
    body = {
        "clientGroupID": f"g-{client_id}",
        "mutations": [mutation],
        "pushVersion": 1,
        "schemaVersion": "",
        "timestamp": 1,
        "requestID": "r1",
    }
    await sock.ws.send(json.dumps(["push", body]))
    while True:  # until the poke that confirms the mutation
        frame = await sock.next()
        if frame[0] == "poke" and any(
            p["lastMutationIDChanges"].get(client_id) == 1 for p in frame[1]["pokes"]
        ):
            return


async def refused(live: Live, room_id: str, client_id: str) -> None:
    sock = await live.open(room_id, client_id)
    assert await sock.closed() == [["error", "RoomClosed", room_id]]


async def closed_quietly(sock: Socket) -> None:
    """The server closed the socket without an error frame."""
    frames = await sock.closed()
    assert all(frame[0] != "error" for frame in frames), frames


@pytest.mark.parametrize("shape", SHAPES)
async def test_close_keeps_connected_clients_and_refuses_new_ones(live: Live, shape: str) -> None:
    a = await live.connect("r", "a")
    b = await live.connect("r", "b", "u2")
    await push(a, "a", "title", "hello")
    assert await live.ok(shape, "POST", "rooms:close", {"roomID": "r"}) == {}
    await a.still_open()
    await b.still_open()
    await push(b, "b", "count", 3)  # a closed room still processes its connected clients
    await refused(live, "r", "c")
    await refused(live, "r", "a")  # a reconnect of a connected client too
    await a.still_open()
    contents = await live.ok(shape, "GET", "rooms/contents", {"roomID": "r"})
    assert contents == {"contents": {"count": 3, "title": "hello"}}
    # invalidating the room closes them; they cannot come back
    assert await live.ok(shape, "POST", "connections/rooms:invalidate", {"roomID": "r"}) == {}
    await closed_quietly(a)
    await closed_quietly(b)
    await refused(live, "r", "a")


@pytest.mark.parametrize("shape", SHAPES)
async def test_delete_closes_every_socket_and_the_room_id_is_gone_for_good(
    live: Live, shape: str
) -> None:
    a = await live.connect("r", "a")
    b = await live.connect("r", "b", "u2")
    other = await live.connect("s", "c")
    await push(a, "a", "title", "hello")
    response = await live.call(shape, "POST", "rooms:delete", {"roomID": "r"})
    assert_error(response, 409, 'Room "r" must first be closed', "rooms")
    await a.still_open()
    await live.ok(shape, "POST", "rooms:close", {"roomID": "r"})
    assert await live.ok(shape, "POST", "rooms:delete", {"roomID": "r"}) == {}
    await closed_quietly(a)
    await closed_quietly(b)
    await other.still_open()  # another room is untouched
    # the data is gone; the record stays, deleted
    snapshot = await live.store.load_room("r")
    assert not snapshot.entries
    listed = await live.ok(shape, "GET", "rooms", {"roomID": "r"})
    assert listed["results"] == [
        {"roomID": "r", "jurisdiction": "", "status": "deleted", "createdMs": CREATED_MS}
    ]
    response = await live.call(shape, "GET", "rooms/contents", {"roomID": "r"})
    assert response.status_code == 410
    # never reusable: not by create, not by connect
    response = await live.call(shape, "POST", "rooms:create", {"roomID": "r"}, body="{}")
    assert_error(response, 409, 'Room "r" already exists', "rooms")
    await refused(live, "r", "a")
    await refused(live, "r", "new")
    assert await live.ok(shape, "POST", "rooms:delete", {"roomID": "r"}) == {}
    assert await live.ok(shape, "POST", "connections/rooms:invalidate", {"roomID": "r"}) == {}
    await refused(live, "r", "new")
    await other.still_open()


async def test_a_room_closed_before_any_connection_refuses_connects(live: Live) -> None:
    await live.create("first")
    await live.ok("apps", "POST", "rooms:close", {"roomID": "first"})
    await refused(live, "first", "a")
    await live.ok("apps", "POST", "rooms:delete", {"roomID": "first"})
    await refused(live, "first", "a")


@pytest.mark.parametrize("shape", SHAPES)
async def test_invalidate_closes_exactly_the_matching_sockets(live: Live, shape: str) -> None:
    sockets = {
        ("r1", "u1"): await live.connect("r1", "a", "u1"),
        ("r1", "u2"): await live.connect("r1", "b", "u2"),
        ("r2", "u1"): await live.connect("r2", "c", "u1"),
        ("r2", "u3"): await live.connect("r2", "d", "u3"),
    }
    names = {("r1", "u1"): "a", ("r1", "u2"): "b", ("r2", "u1"): "c", ("r2", "u3"): "d"}

    async def check(closed: set[tuple[str, str]]) -> None:
        for where, sock in sockets.items():
            if where in closed:
                await closed_quietly(sock)
            else:
                await sock.still_open()
        for where in closed:  # the clients reconnect, as the Reflect client does
            sockets[where] = await live.connect(where[0], names[where], where[1])

    assert await live.ok(shape, "POST", "connections/users:invalidate", {"userID": "u1"}) == {}
    await check({("r1", "u1"), ("r2", "u1")})
    assert await live.ok(shape, "POST", "connections/users:invalidate", {"userID": "u9"}) == {}
    await check(set())
    assert await live.ok(shape, "POST", "connections/rooms:invalidate", {"roomID": "r2"}) == {}
    await check({("r2", "u1"), ("r2", "u3")})
    assert await live.ok(shape, "POST", "connections/rooms:invalidate", {"roomID": "r9"}) == {}
    await check(set())
    assert await live.ok(shape, "POST", "connections/all:invalidate") == {}
    await check(set(sockets))
    if shape == "original":  # the legacy forms
        assert await live.ok(shape, "POST", "connections/rooms/r1:invalidate") == {}
        await check({("r1", "u1"), ("r1", "u2")})
        assert await live.ok(shape, "POST", "connections/users/u3:invalidate") == {}
        await check({("r2", "u3")})
    for sock in sockets.values():
        await sock.close()


async def test_invalidate_a_room_whose_record_vanished_is_404(live: Live, db: str) -> None:
    """A room with connections but no record answers 404. Only reachable by tampering (with
    the memory store's index)."""
    if db != "memory://":
        return
    sock = await live.connect("r", "a")
    del live.store._rooms["r"]  # type: ignore[attr-defined]
    response = await live.call("apps", "POST", "connections/rooms:invalidate", {"roomID": "r"})
    assert_error(response, 404, 'Room "r" not found', "rooms")
    await sock.still_open()
    await sock.close()
    await asyncio.sleep(0)

"""The control messages between nodes (``reflectd.server.cluster``), with two nodes in this
process on one ``MemoryLeaseStore``: a REST command given to any node acts on the sockets and
rooms of every node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from reflectd import App
from reflectd.storage.control import ControlMessage
from server.conftest import MUTATORS
from server.harness import FRAME_TIMEOUT_S, Client, Harness, wait_until

from .in_process import SharedLeaseStore, node

pytestmark = pytest.mark.anyio

KEY = "control-test-key"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[Harness, Harness, SharedLeaseStore]]:
    """Nodes ``a`` and ``b`` on one store."""
    store = SharedLeaseStore()
    app = App(mutators=MUTATORS, env={})
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(node(app, store, "a", api_key=KEY))
        b = await stack.enter_async_context(node(app, store, "b", api_key=KEY))
        yield a, b, store


async def rest(harness: Harness, command: str, **params: str) -> httpx.Response:
    async with harness.http() as http:
        return await http.post(
            f"/v1/apps/default/{command}",
            params=params,
            headers={"Authorization": f"Basic {KEY}"},
        )


async def closes(client: Client) -> None:
    """The server closes ``client``'s socket; pokes (of presence) may come first."""
    with pytest.raises(ConnectionClosed):
        while True:
            frame = await asyncio.wait_for(client.ws.recv(), FRAME_TIMEOUT_S)
            assert frame.startswith('["poke"'), frame


async def stays_open(client: Client) -> None:
    """``client``'s socket still answers a ping (pokes may come first)."""
    await client.send(["ping", {}])
    while (frame := await client.recv()) != ["pong", {}]:
        assert isinstance(frame, list) and frame[0] == "poke", frame


def live(harness: Harness) -> set[str]:
    assert harness.server.registry is not None
    return set(harness.server.registry.actors)


async def test_a_user_invalidated_on_one_node_loses_their_sockets_on_every_node(
    nodes: tuple[Harness, Harness, SharedLeaseStore],
) -> None:
    a, b, _ = nodes
    alice = await a.connect("alice", room_id="r1", user_id="u1")
    bob = await a.connect("bob", room_id="r1", user_id="u2")
    alice_elsewhere = await b.connect("alice2", room_id="r2", user_id="u1")
    assert live(a) == {"r1"} and live(b) == {"r2"}

    response = await rest(b, "connections/users:invalidate", userID="u1")
    assert response.status_code == 200, response.text
    await closes(alice)
    await closes(alice_elsewhere)
    await stays_open(bob)


async def test_a_room_invalidated_on_a_node_that_does_not_own_it_closes_it_on_its_owner(
    nodes: tuple[Harness, Harness, SharedLeaseStore],
) -> None:
    a, b, _ = nodes
    alice = await a.connect("alice", room_id="r1")
    other = await a.connect("other", room_id="r2")

    response = await rest(b, "connections/rooms:invalidate", roomID="r1")
    assert response.status_code == 200, response.text
    await closes(alice)
    await stays_open(other)
    assert live(b) == set(), "b did not load the room to invalidate it"


async def test_all_connections_invalidated_on_one_node_close_on_every_node(
    nodes: tuple[Harness, Harness, SharedLeaseStore],
) -> None:
    a, b, _ = nodes
    on_a = await a.connect("c1", room_id="r1")
    on_b = await b.connect("c2", room_id="r2")

    response = await rest(a, "connections/all:invalidate")
    assert response.status_code == 200, response.text
    await closes(on_a)
    await closes(on_b)


async def test_a_room_deleted_on_a_node_that_does_not_own_it_is_dropped_by_its_owner(
    nodes: tuple[Harness, Harness, SharedLeaseStore],
) -> None:
    a, b, store = nodes
    alice = await a.connect("alice", room_id="r1")
    await alice.mutate("put", {"key": "x", "value": 1})
    assert (await rest(b, "rooms:close", roomID="r1")).status_code == 200

    response = await rest(b, "rooms:delete", roomID="r1")
    assert response.status_code == 200, response.text
    await closes(alice)
    await wait_until(lambda: live(a) == set())
    record = await store.get_room("r1")
    assert record is not None and record.status == "deleted"
    assert (await store.load_room("r1")).entries == {}


async def test_the_contents_of_a_room_owned_by_another_node_are_read_from_the_store(
    nodes: tuple[Harness, Harness, SharedLeaseStore],
) -> None:
    a, b, _ = nodes
    alice = await a.connect("alice", room_id="r1")
    await alice.mutate("put", {"key": "x", "value": 1})

    async with b.http() as http:
        response = await http.get(
            "/v1/apps/default/rooms/contents",
            params={"roomID": "r1"},
            headers={"Authorization": f"Basic {KEY}"},
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"result": {"contents": {"x": 1}}}
    assert live(b) == set()


async def test_a_node_ignores_a_command_for_a_room_it_does_not_have(
    nodes: tuple[Harness, Harness, SharedLeaseStore],
) -> None:
    a, b, _ = nodes
    alice = await a.connect("alice", room_id="r1")
    control = b.server.control
    assert control is not None
    await control.obey(ControlMessage("delete_room", "a", room_id="r1"))
    await control.obey(ControlMessage("invalidate_room", "a", room_id="r1"))
    await stays_open(alice)
    assert live(a) == {"r1"}


async def test_the_clients_of_a_room_owned_by_another_node_are_asked_of_it(
    nodes: tuple[Harness, Harness, SharedLeaseStore],
) -> None:
    a, b, _ = nodes
    alice = await a.connect("alice", room_id="r1")
    await alice.mutate("put", {"key": "x", "value": 1})

    async with b.http() as http:
        response = await http.get(
            "/v1/apps/default/rooms/clients",
            params={"roomID": "r1"},
            headers={"Authorization": f"Basic {KEY}"},
        )
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["live"] is True  # forwarded to a, which answers from memory
    assert result["presence"] == [alice.client_id]
    (client,) = result["clients"]
    assert client["clientID"] == alice.client_id
    assert client["userID"] == "u1" and client["lastMutationID"] == 1
    assert isinstance(client["connectedMs"], int)
    assert live(b) == set()

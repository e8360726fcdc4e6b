"""Several clients and several rooms on one server: writes and presence reach every client
of a room and no other room; rooms load, unload, run their start handler and are closed."""

from __future__ import annotations

import asyncio

import pytest

from reflectd import WriteTransaction
from reflectd.engine.records import RoomRecord
from reflectd.server.settings import ServerSettings

from .conftest import make_app
from .harness import Client, Harness, connect_params, serve, wait_until

pytestmark = pytest.mark.anyio


async def test_two_clients_in_a_room_see_each_others_writes_and_presence(
    server: Harness,
) -> None:
    alice = await server.connect("alice")
    await alice.mutate("put", {"key": "x", "value": 1})
    bob = await server.connect("bob")
    assert bob.data == {"x": 1}
    assert bob.presence == {"alice", "bob"}
    await alice.sync_until(lambda c: c.presence == {"alice", "bob"})

    [poke] = await bob.mutate("put", {"key": "y", "value": 2})
    assert poke["lastMutationIDChanges"] == {"bob": 1}
    await alice.sync_until(lambda c: c.data == {"x": 1, "y": 2})
    assert alice.frames[-1][1]["pokes"][0]["lastMutationIDChanges"] == {}
    assert alice.cookie == bob.cookie


async def test_a_client_leaving_is_poked_to_the_others_as_a_presence_del(server: Harness) -> None:
    alice = await server.connect("alice")
    bob = await server.connect("bob")
    await alice.sync_until(lambda c: c.presence == {"alice", "bob"})
    version = alice.cookie
    await bob.close()
    [poke] = await alice.next_pokes()
    assert poke == {
        "baseCookie": version,
        "cookie": version + 1,
        "lastMutationIDChanges": {},
        "patch": [],
        "presence": [{"op": "del", "key": "bob"}],
    }
    assert (await server.snapshot()).connected_clients == {"alice"}


async def test_clients_of_one_group_see_each_others_confirmations(server: Harness) -> None:
    tab1 = await server.connect("tab1", client_group_id="g")
    tab2 = await server.connect("tab2", client_group_id="g")
    other = await server.connect("other", client_group_id="h")
    await tab1.push("put", {"key": "x", "value": 1})
    await tab2.sync_until(lambda c: "x" in c.data)
    await other.sync_until(lambda c: "x" in c.data)
    assert tab2.frames[-1][1]["pokes"][-1]["lastMutationIDChanges"] == {"tab1": 1}
    assert other.frames[-1][1]["pokes"][-1]["lastMutationIDChanges"] == {}


async def test_fifty_rooms_are_isolated(server: Harness) -> None:
    rooms = [f"room-{i}" for i in range(50)]
    clients = await asyncio.gather(
        *(server.connect(f"c{i}", room_id=room) for i, room in enumerate(rooms))
    )

    async def write(i: int, client: Client) -> None:
        await client.mutate("put", {"key": "owner", "value": i})
        await client.mutate("put", {"key": f"only-{i}", "value": True})

    await asyncio.gather(*(write(i, c) for i, c in enumerate(clients)))
    for i, (room, client) in enumerate(zip(rooms, clients, strict=True)):
        assert client.data == {"owner": i, f"only-{i}": True}
        assert client.presence == {f"c{i}"}
        assert client.cookie == 2
        assert await server.values(room) == {"owner": i, f"only-{i}": True}
    await asyncio.gather(*(c.expect_silence() for c in clients))


async def test_clients_connecting_at_once_to_a_new_room_all_connect(server: Harness) -> None:
    clients = await asyncio.gather(*(server.connect(f"c{i}", room_id="new") for i in range(10)))
    everyone = {f"c{i}" for i in range(10)}
    for client in clients:
        await client.sync_until(lambda c: c.presence == everyone)
    record = await server.store.get_room("new")
    assert record is not None and record.created_ms is not None
    assert record == RoomRecord(room_id="new", created_ms=record.created_ms)


async def test_idle_room_is_unloaded_and_reloaded_from_storage() -> None:
    settings = ServerSettings(db="memory://", room_idle_unload_ms=50)
    async with serve(make_app(), settings) as server:
        client = await server.connect()
        await client.mutate("put", {"key": "a", "value": 1})
        await client.close()
        registry = server.server.registry
        assert registry is not None
        await wait_until(lambda: "r1" not in registry.actors)
        client = await server.reconnect(client)
        assert client.data == {"a": 1}
        await client.mutate("put", {"key": "b", "value": 2})
        assert await server.values() == {"a": 1, "b": 2}


async def test_room_start_handler_runs_once_per_load_and_its_writes_reach_clients() -> None:
    starts: list[str] = []

    def start(tx: WriteTransaction, room_id: str) -> None:
        starts.append(room_id)
        tx.set("starts", len(starts))

    settings = ServerSettings(db="memory://", room_idle_unload_ms=50)
    async with serve(make_app(room_start_handler=start), settings) as server:
        first = await server.connect("c1")
        second = await server.connect("c2")
        assert first.data == second.data == {"starts": 1}
        await first.close()
        await second.close()
        registry = server.server.registry
        assert registry is not None
        await wait_until(lambda: "r1" not in registry.actors)
        again = await server.reconnect(first)
        assert again.data == {"starts": 2}
        assert starts == ["r1", "r1"]


async def test_connect_to_a_room_whose_start_handler_fails_is_closed_without_a_crash() -> None:
    failing = False

    def start(tx: WriteTransaction, room_id: str) -> None:
        if failing:
            raise RuntimeError("start failed")

    settings = ServerSettings(db="memory://", room_idle_unload_ms=50)
    async with serve(make_app(room_start_handler=start), settings) as server:
        client = await server.connect()
        await client.close()
        registry = server.server.registry
        assert registry is not None
        await wait_until(lambda: "r1" not in registry.actors)
        failing = True
        refused = await server.open(connect_params(client_group_id="g-c1"))
        await refused.expect_closed()
        assert refused.frames == []
        failing = False
        await server.reconnect(client)


async def test_deleted_room_is_refused_with_room_closed(server: Harness) -> None:
    await server.connect(room_id="gone")
    await server.store.set_room_status("gone", "deleted")
    await server.refused(connect_params(room_id="gone", client_id="c2"), "RoomClosed", "gone")

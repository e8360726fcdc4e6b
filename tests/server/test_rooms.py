"""Several clients and several rooms on one server (spec 3.4, 3.7, Appendix A)."""

from __future__ import annotations

import asyncio

import pytest

from .harness import Client, Harness

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

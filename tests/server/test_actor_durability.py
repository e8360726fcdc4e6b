"""Commit before send: nothing leaves a room (no poke, no confirmation) before the
writes it depends on are durable, and a failed commit acknowledges nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from websockets.exceptions import ConnectionClosed

from reflectd.server.settings import ServerSettings

from .conftest import make_app
from .harness import FRAME_TIMEOUT_S, GatedStore, Harness, connect_params, serve, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gated() -> AsyncIterator[tuple[Harness, GatedStore]]:
    store = GatedStore()
    async with serve(make_app(), store=store) as harness:
        yield harness, store


async def held(store: GatedStore) -> None:
    await asyncio.wait_for(store.commit_entered.wait(), FRAME_TIMEOUT_S)


async def test_connected_is_not_sent_before_the_client_record_commit_returns(
    gated: tuple[Harness, GatedStore],
) -> None:
    server, store = gated
    store.pause()
    client = await server.open(connect_params(), client_id="c1", client_group_id="g1")
    await held(store)
    await client.expect_silence()
    assert (await server.snapshot()).clients == {}
    store.resume()
    await client.expect_connected()
    assert store.commits_done >= 1
    assert (await server.snapshot()).clients["c1"].client_group_id == "g1"


async def test_pokes_are_not_sent_before_the_turns_commit_returns(
    gated: tuple[Harness, GatedStore],
) -> None:
    server, store = gated
    writer = await server.connect("writer")
    reader = await server.connect("reader")
    await writer.sync_until(lambda c: c.presence == {"writer", "reader"})
    store.pause()
    await writer.push("put", {"key": "a", "value": 1})
    await held(store)
    await asyncio.gather(writer.expect_silence(), reader.expect_silence())
    assert await server.values() == {}
    commits = store.commits_done
    store.resume()
    [poke] = await writer.next_pokes()
    assert poke["lastMutationIDChanges"] == {"writer": 1}
    assert store.commits_done == commits + 1
    assert await server.values() == {"a": 1}
    await reader.sync_until(lambda c: c.data == {"a": 1})


async def test_ping_is_answered_while_a_commit_is_held(gated: tuple[Harness, GatedStore]) -> None:
    server, store = gated
    client = await server.connect()
    store.pause()
    await client.push("put", {"key": "a", "value": 1})
    await held(store)
    await client.ping()
    store.resume()
    await client.next_pokes()


async def test_a_failed_commit_sends_nothing_and_its_replay_pokes_once_closing_no_socket(
    gated: tuple[Harness, GatedStore],
) -> None:
    server, store = gated
    alice = await server.connect("alice")
    bob = await server.connect("bob")
    await alice.mutate("put", {"key": "a", "value": 1})
    await bob.sync_until(lambda c: c.data == {"a": 1})

    store.fail_next = 1  # a transient fault: the replay of the round commits
    await alice.push("put", {"key": "b", "value": 2})
    [poke] = await alice.next_pokes()
    assert poke["lastMutationIDChanges"] == {"alice": 2}
    await bob.sync_until(lambda c: c.data == {"a": 1, "b": 2})
    assert await server.values() == {"a": 1, "b": 2}
    await alice.ping()
    await bob.ping()


async def test_a_mutation_whose_commit_fails_again_closes_only_its_pushers_socket(
    gated: tuple[Harness, GatedStore],
) -> None:
    server, store = gated
    alice = await server.connect("alice")
    bob = await server.connect("bob")
    await alice.mutate("put", {"key": "a", "value": 1})
    await bob.sync_until(lambda c: c.data == {"a": 1})

    store.fail_next = 2  # the round, then its replay
    await alice.push("put", {"key": "b", "value": 2})
    await alice.expect_closed()
    await bob.sync_until(lambda c: c.presence == {"bob"})  # bob stays, alice left
    await bob.ping()
    assert await server.values() == {"a": 1}
    assert alice.lmid == 1

    alice = await server.reconnect(alice)
    await alice.push("put", {"key": "b", "value": 2}, mutation_id=2)  # the client re-sends
    await alice.sync_until(lambda c: c.lmid == 2)
    await bob.sync_until(lambda c: c.data == {"a": 1, "b": 2})
    assert await server.values() == {"a": 1, "b": 2}


async def test_a_turn_without_mutations_whose_commit_fails_again_closes_the_rooms_sockets(
    gated: tuple[Harness, GatedStore],
) -> None:
    """Nobody to blame: the storage itself fails. The room stops; its clients reconnect."""
    server, store = gated
    alice = await server.connect("alice")
    bob = await server.connect("bob")
    carol = await server.connect("carol")
    await alice.mutate("put", {"key": "a", "value": 1})
    await bob.sync_until(lambda c: c.data == {"a": 1})

    store.fail_next = 2
    await carol.close()  # the turn that records carol's departure fails, and its replay
    await asyncio.gather(alice.expect_closed(), bob.expect_closed())
    alice = await server.reconnect(alice)
    assert alice.data == {"a": 1}


async def test_failed_connect_commit_closes_the_socket_and_the_client_can_connect_again(
    gated: tuple[Harness, GatedStore],
) -> None:
    server, store = gated
    store.fail_next = 2  # the round, then its replay
    client = await server.open(connect_params(), client_id="c1", client_group_id="g1")
    await client.expect_closed()
    assert client.frames == []
    assert (await server.snapshot()).clients == {}
    await server.connect(client_group_id="g1")


async def test_messages_arriving_while_the_server_shuts_down_are_not_applied() -> None:
    """After the rooms are drained, sockets are closed in batches; a push that arrives on a
    socket still open is dropped (the client re-sends it after reconnecting)."""
    settings = ServerSettings(db="memory://", shutdown_close_batch=1, shutdown_batch_pause_ms=500)
    store = GatedStore()
    async with serve(make_app(), settings, store=store) as server:
        clients = [await server.connect(f"c{i}", room_id=f"r{i}") for i in range(2)]
        commits = store.commits_done
        shutdown = asyncio.create_task(server.server.shutdown())
        assert server.server.registry is not None
        registry = server.server.registry
        await wait_until(lambda: registry.closing and not registry.actors)
        await asyncio.sleep(0.05)
        for client in clients:
            try:
                await client.push("put", {"key": "late", "value": 1})
                await client.send(
                    ["pull", {"clientGroupID": "g", "cookie": None, "requestID": "p"}]
                )
            except ConnectionClosed:
                pass
        for client in clients:
            await client.expect_closed()
        await shutdown
        assert store.commits_done == commits

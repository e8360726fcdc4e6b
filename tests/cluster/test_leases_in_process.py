"""Room ownership by lease, with two nodes in this process sharing one ``MemoryLeaseStore``
(no PostgreSQL needed): one owner per room, proxied sockets, a lost lease drops the room with
nothing of its round sent, and the next owner processes the disconnects of the last one."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from reflectd import App, WriteTransaction
from reflectd.server.settings import Limits, ServerSettings
from server.conftest import MUTATORS
from server.harness import Harness, serve, wait_until

from .in_process import LEASE_MS, SharedLeaseStore, node

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _app(**kwargs: Any) -> App:
    return App(mutators=MUTATORS, env={}, **kwargs)


def _live(harness: Harness) -> set[str]:
    assert harness.server.registry is not None
    return set(harness.server.registry.actors)


async def test_a_room_lives_on_the_node_holding_its_lease_and_other_nodes_proxy_to_it() -> None:
    store = SharedLeaseStore()
    async with node(_app(), store, "a") as a, node(_app(), store, "b") as b:
        alice = await a.connect("alice")
        lease = await store.current_lease("r1")
        assert lease is not None and (lease.node_id, lease.address) == ("a", a.http_url)

        bob = await b.connect("bob")  # reaches b, carried to a
        await bob.mutate("put", {"key": "x", "value": 1})
        await alice.sync_until(lambda c: c.data == {"x": 1} and c.presence == {"alice", "bob"})
        assert _live(a) == {"r1"} and _live(b) == set()
        assert await a.values() == {"x": 1}


async def test_a_node_that_lost_its_lease_sends_nothing_of_its_round_and_closes_sockets() -> None:
    store = SharedLeaseStore()
    async with node(_app(), store, "a") as a:
        alice = await a.connect("alice")
        await alice.mutate("put", {"key": "x", "value": 1})
        # a stalls past its lease; another node takes the room
        store.clock_offset_ms = 10 * LEASE_MS
        taken = await store.acquire_lease("r1", "thief", "http://elsewhere", LEASE_MS)
        assert taken is not None and taken.epoch == 2

        frames = len(alice.frames)
        await alice.push("put", {"key": "x", "value": 2})
        await alice.expect_closed()
        assert alice.frames[frames:] == [], "no poke, no error of that round"
        assert await a.values() == {"x": 1}, "the fenced commit applied nothing"
        await wait_until(lambda: _live(a) == set())
        assert (await store.current_lease("r1")) == taken, "a did not release the thief's lease"


async def test_the_next_owner_processes_the_disconnects_of_clients_of_the_previous_one() -> None:
    store = SharedLeaseStore()
    gone: list[str] = []

    def on_client_disconnect(tx: WriteTransaction) -> None:
        gone.append(tx.client_id)
        tx.set(f"gone/{tx.client_id}", True)

    app = _app(on_client_disconnect=on_client_disconnect)
    async with node(app, store, "b") as b, node(app, store, "a") as a:
        await a.connect("alice")
        await a.connect("carol")
        # a dies as far as the room is concerned: its lease ends, and its commits (of the
        # disconnects too) are refused, so the stored room still lists its clients
        store.clock_offset_ms = 10 * LEASE_MS
        thief = await store.acquire_lease("r1", "thief", "", LEASE_MS)
        assert thief is not None and await store.release_lease(thief)
        await wait_until(lambda: _live(a) == set(), timeout=5)
        assert (await store.load_room("r1")).connected_clients == {"alice", "carol"}
        assert gone == []

        bob = await b.connect("bob")
        await bob.sync_until(
            lambda c: c.presence == {"bob"} and c.data == {"gone/alice": True, "gone/carol": True}
        )
        assert sorted(gone) == ["alice", "carol"]
        assert (await store.load_room("r1")).connected_clients == {"bob"}


async def test_idle_unload_releases_the_lease() -> None:
    store = SharedLeaseStore()
    settings = ServerSettings(
        db="memory://", node_id="a", lease_ms=LEASE_MS, room_idle_unload_ms=50
    )
    async with serve(_app(), settings, store=store) as a:
        alice = await a.connect("alice")
        assert (await store.current_lease("r1")) is not None
        await alice.close()
        for _ in range(100):
            if await store.current_lease("r1") is None:
                break
            await asyncio.sleep(0.02)
        assert await store.current_lease("r1") is None
        assert _live(a) == set()


async def test_a_close_beacon_that_reaches_another_node_is_forwarded_to_the_owner() -> None:
    store = SharedLeaseStore()
    async with node(_app(), store, "a") as a, node(_app(), store, "b") as b:
        watcher = await a.connect("watcher")
        client = await a.connect("c1", user_id="u1")
        await client.mutate("put", {"key": "shared", "value": "kept"})
        await client.close()
        await watcher.sync_until(lambda c: c.presence == {"watcher"})

        async with b.http() as http:
            response = await http.post(
                "/api/sync/v1/close",
                params={"roomID": "r1", "userID": "u1", "clientID": "c1"},
                headers={"content-type": "application/json"},
                content=b'{"lastMutationID":1}',
            )
        assert (response.status_code, response.text) == (200, "ok")
        assert "c1" not in (await store.load_room("r1")).clients
        assert _live(b) == set(), "b forwarded the beacon rather than taking the room"


async def test_a_client_sending_the_proxied_header_is_still_proxied_to_the_owner() -> None:
    """A client's ``x-reflectd-proxied`` is not signed with the cluster's secret: the node
    treats the socket as any client's and carries it to the room's owner, instead of
    refusing it as a socket that was proxied already."""
    store = SharedLeaseStore()
    forged = {"additional_headers": {"x-reflectd-proxied": "a"}}
    async with node(_app(), store, "a") as a, node(_app(), store, "b") as b:
        alice = await a.connect("alice")
        mallory = await b.connect("mallory", options=forged)
        await mallory.mutate("put", {"key": "x", "value": 1})
        await alice.sync_until(lambda c: c.data == {"x": 1})
        assert _live(b) == set()
        assert b.server.sync is not None and b.server.sync.peers.ignored == 1
        assert a.server.sync is not None and a.server.sync.peers.ignored == 0


def _fill(tx: WriteTransaction, args: Any) -> None:
    for i in range(args["count"]):
        tx.set(f"k/{args['start'] + i:05d}", "x" * args["bytes"])


async def test_a_room_bigger_than_the_send_buffer_reaches_a_proxied_client_whole() -> None:
    store = SharedLeaseStore()
    app = App(mutators={**MUTATORS, "fill": _fill}, env={})
    limits = Limits(max_send_buffer_bytes=1024 * 1024)
    async with node(app, store, "a", limits=limits) as a, node(app, store, "b", limits=limits) as b:
        alice = await a.connect("alice")
        for start in range(0, 3000, 500):  # 3,000 keys of 2 KB: 6 MB
            await alice.mutate("fill", {"start": start, "count": 500, "bytes": 2000})

        # a small receive window, so that the kernel does not take the room at once
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(b.http_url.rsplit(":", 1)[1])))
        bob = await b.connect("bob", options={"max_size": None, "sock": sock})  # carried to a
        await bob.sync_until(lambda c: len(c.data) == 3000)
        assert bob.data["k/02999"] == "x" * 2000
        assert _live(b) == set()

"""The control bus (``reflectd.storage.control``): the same rules in memory and in PostgreSQL.

Each test joins "nodes" to one store, as the nodes of a cluster do: in memory, buses of one
``MemoryLeaseStore``; in PostgreSQL, a store of each node on one schema. Silence is checked
with a marker: every node hears messages in the order they were published, so once a node has
heard a marker published last, it has heard everything it ever will of what came before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg  # type: ignore[import-untyped]
import pytest

from reflectd.errors import StorageError
from reflectd.storage import PostgresStore
from reflectd.storage.control import ControlBus, ControlMessage, decode_message, encode_message
from reflectd.storage.leases import ClusterStore, MemoryLeaseStore
from reflectd.storage.postgres_bus import PostgresControlBus, channel_name

from .conftest import POSTGRES_URL, drop_schema, new_schema, require_postgres

pytestmark = pytest.mark.anyio

#: how long a message may take to arrive (s)
WITHIN_S = 5.0


@dataclass
class Node:
    """One node's end of the bus and what it heard."""

    name: str
    bus: ControlBus
    heard: asyncio.Queue[ControlMessage] = field(default_factory=asyncio.Queue)

    async def start(self) -> None:
        await self.bus.start(self.heard.put_nowait)

    async def publish(self, op: str = "invalidate_all", **fields: str) -> ControlMessage:
        message = ControlMessage(op, self.name, **fields)  # type: ignore[arg-type]
        await self.bus.publish(message)
        return message

    async def next(self) -> ControlMessage:
        return await asyncio.wait_for(self.heard.get(), WITHIN_S)

    async def hears_only_until(self, marker: ControlMessage) -> list[ControlMessage]:
        """What the node hears up to ``marker`` (excluded)."""
        before = []
        while (message := await self.next()) != marker:
            before.append(message)
        return before


class Cluster:
    """Nodes on one store: one ``MemoryLeaseStore``, or a ``PostgresStore`` per node on one
    schema."""

    def __init__(self, backend: str, schema: str) -> None:
        self.backend = backend
        self.schema = schema
        self.nodes: list[Node] = []
        self._stores: list[ClusterStore] = []

    async def _store(self) -> ClusterStore:
        store: ClusterStore
        if self.backend == "memory":
            if self._stores:
                return self._stores[0]
            store = MemoryLeaseStore()
        else:
            store = PostgresStore(POSTGRES_URL, schema=self.schema, pool_size=1)
        await store.open()
        self._stores.append(store)
        return store

    async def join(self, name: str, *, start: bool = True) -> Node:
        store = await self._store()
        node = Node(name, store.control_bus(name))
        self.nodes.append(node)
        if start:
            await node.start()
        return node

    async def close(self) -> None:
        for node in self.nodes:
            await node.bus.close()
        for store in self._stores:
            await store.close()


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
async def clusters(request: pytest.FixtureRequest) -> AsyncIterator[list[Cluster]]:
    """Two clusters of the same backend, on two stores (two schemas)."""
    backend: str = request.param
    if backend == "postgres":
        await require_postgres()
    made = [Cluster(backend, new_schema()), Cluster(backend, new_schema())]
    try:
        yield made
        for cluster in made:
            await cluster.close()
    finally:
        if backend == "postgres":
            for cluster in made:
                await drop_schema(cluster.schema)


@pytest.fixture
def cluster(clusters: list[Cluster]) -> Cluster:
    return clusters[0]


# ---------------------------------------------------------------------- delivery


async def test_a_message_reaches_every_other_node_with_its_fields(cluster: Cluster) -> None:
    a, b, c = [await cluster.join(name) for name in ("a", "b", "c")]
    sent = await a.publish("invalidate_room", room_id="lobby")
    assert await b.next() == sent == ControlMessage("invalidate_room", "a", room_id="lobby")
    assert await c.next() == sent


async def test_a_node_does_not_hear_its_own_messages(cluster: Cluster) -> None:
    a, b = await cluster.join("a"), await cluster.join("b")
    await a.publish("invalidate_user", user_id="u1")
    assert (await b.next()).user_id == "u1"
    marker = await b.publish("delete_room", room_id="marker")
    assert await a.hears_only_until(marker) == []


async def test_the_messages_of_one_node_arrive_in_the_order_it_sent_them(
    cluster: Cluster,
) -> None:
    a, b = await cluster.join("a"), await cluster.join("b")
    sent = [await a.publish("invalidate_room", room_id=f"r{i}") for i in range(20)]
    assert [await b.next() for _ in sent] == sent


async def test_a_node_not_listening_yet_never_gets_what_was_sent_before(
    cluster: Cluster,
) -> None:
    a = await cluster.join("a")
    late = await cluster.join("late", start=False)
    await a.publish("invalidate_all")
    await late.start()
    marker = await a.publish("delete_room", room_id="marker")
    assert await late.hears_only_until(marker) == []


async def test_a_closed_node_hears_nothing_more(cluster: Cluster) -> None:
    a, b, c = [await cluster.join(name) for name in ("a", "b", "c")]
    await b.bus.close()
    await a.publish("invalidate_all")
    assert (await c.next()).op == "invalidate_all"
    await asyncio.sleep(0.05)
    assert b.heard.empty()


async def test_the_nodes_of_another_store_hear_nothing(clusters: list[Cluster]) -> None:
    ours, theirs = clusters
    a, b = await ours.join("a"), await ours.join("b")
    stranger, stranger_peer = await theirs.join("c"), await theirs.join("d")
    await a.publish("invalidate_all")
    assert (await b.next()).op == "invalidate_all"
    marker = await stranger_peer.publish("delete_room", room_id="marker")
    assert await stranger.hears_only_until(marker) == []


# ---------------------------------------------------------------------- failures


async def test_publishing_before_start_or_after_close_raises_storage_error(
    cluster: Cluster,
) -> None:
    node = await cluster.join("a", start=False)
    with pytest.raises(StorageError, match="not started"):
        await node.publish()
    await node.start()
    await node.bus.close()
    with pytest.raises(StorageError, match="closed"):
        await node.publish()
    await node.bus.close()  # twice is harmless


async def test_starting_a_bus_twice_raises_storage_error(cluster: Cluster) -> None:
    node = await cluster.join("a")
    with pytest.raises(StorageError):
        await node.start()


# ---------------------------------------------------------------------- the wire


def test_messages_travel_as_the_json_every_node_version_reads() -> None:
    message = ControlMessage("invalidate_room", "n1", room_id="r")
    assert encode_message(message) == '{"op":"invalidate_room","from":"n1","room_id":"r"}'
    assert encode_message(ControlMessage("invalidate_all", "n1")) == (
        '{"op":"invalidate_all","from":"n1"}'
    )
    assert decode_message('{"op":"invalidate_user","from":"n2","user_id":"u"}') == (
        ControlMessage("invalidate_user", "n2", user_id="u")
    )


@pytest.mark.parametrize(
    "payload", ["not json", "[1]", '{"op":"reboot","from":"n1"}', '{"op":"invalidate_all"}']
)
def test_an_unreadable_message_decodes_to_none(payload: str) -> None:
    assert decode_message(payload) is None


def test_the_channel_is_named_after_the_schema_within_63_bytes() -> None:
    assert channel_name("reflectd") == "reflectd.reflectd"
    assert len(channel_name("s" * 100)) == 63


# ---------------------------------------------------------------------- PostgreSQL


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    await require_postgres()
    schema = new_schema()
    yield f"{POSTGRES_URL}?schema={schema}"
    await drop_schema(schema)


@pytest.mark.postgres
async def test_an_unreadable_notification_is_ignored_and_later_ones_arrive(
    postgres_url: str,
) -> None:
    store = PostgresStore(postgres_url, pool_size=1)
    a = Node("a", store.control_bus("a"))
    await a.start()
    try:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            channel = channel_name(store.schema)
            await conn.execute("SELECT pg_notify($1, 'garbage')", channel)
            await conn.execute(
                "SELECT pg_notify($1, $2)", channel, '{"op":"invalidate_all","from":"b"}'
            )
        finally:
            await conn.close()
        assert await a.next() == ControlMessage("invalidate_all", "b")
    finally:
        await a.bus.close()


@pytest.mark.postgres
async def test_the_postgres_bus_listens_again_after_losing_its_connection(
    postgres_url: str,
) -> None:
    store = PostgresStore(postgres_url, pool_size=1)
    bus = PostgresControlBus(store.url, "a", reconnect_delay_s=0.05)
    a = Node("a", bus)
    await a.start()
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        terminated = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = $1",
            f'LISTEN "{bus.channel}"',
        )
        assert terminated == 1
        payload = '{"op":"invalidate_room","from":"b","room_id":"after"}'
        for _ in range(100):  # until a, connected again, hears it
            await conn.execute("SELECT pg_notify($1, $2)", bus.channel, payload)
            with contextlib.suppress(TimeoutError):
                heard = await asyncio.wait_for(a.heard.get(), 0.1)
                assert heard.room_id == "after"
                return
        pytest.fail("the bus never listened again")
    finally:
        await conn.close()
        await bus.close()

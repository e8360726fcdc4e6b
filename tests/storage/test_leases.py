"""Room leases (``reflectd.storage.leases``): the same rules in memory and in PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from reflectd.engine.records import Entry, RoomSnapshot, RoomWrites
from reflectd.errors import StorageError
from reflectd.storage import PostgresStore
from reflectd.storage.leases import Lease, LeaseLost, MemoryLeaseStore

from .conftest import POSTGRES_URL, drop_schema, new_schema, require_postgres

pytestmark = pytest.mark.anyio

LONG = 60_000
#: a ttl that is over by the time ``expire()`` returns
SHORT = 1


async def expire() -> None:
    await asyncio.sleep(0.02)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


AnyLeaseStore = MemoryLeaseStore | PostgresStore


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
async def leases(request: pytest.FixtureRequest) -> AsyncIterator[AnyLeaseStore]:
    if request.param == "memory":
        memory = MemoryLeaseStore()
        await memory.open()
        yield memory
        await memory.close()
        return
    await require_postgres()
    schema = new_schema()
    store = PostgresStore(POSTGRES_URL, schema=schema)
    try:
        await store.open()
        yield store
        await store.close()
    finally:
        await drop_schema(schema)


# ---------------------------------------------------------------------- acquire


async def test_a_free_lease_is_acquired_with_epoch_1(leases: AnyLeaseStore) -> None:
    before = now_ms()
    lease = await leases.acquire_lease("r", "node-a", "10.0.0.1:8080", LONG)
    assert lease is not None
    assert (lease.room_id, lease.node_id, lease.address, lease.epoch) == (
        "r",
        "node-a",
        "10.0.0.1:8080",
        1,
    )
    assert before + LONG - 5_000 <= lease.expires_at_ms <= now_ms() + LONG + 5_000
    assert await leases.current_lease("r") == lease
    assert await leases.current_lease("other") is None


async def test_a_live_lease_of_another_node_is_not_acquired(leases: AnyLeaseStore) -> None:
    lease = await leases.acquire_lease("r", "node-a", "a", LONG)
    assert await leases.acquire_lease("r", "node-b", "b", LONG) is None
    assert await leases.current_lease("r") == lease


async def test_the_holder_acquiring_again_renews_with_the_same_epoch(
    leases: AnyLeaseStore,
) -> None:
    first = await leases.acquire_lease("r", "node-a", "a", 10_000)
    again = await leases.acquire_lease("r", "node-a", "a2", LONG)
    assert first is not None and again is not None
    assert again.epoch == first.epoch == 1
    assert again.address == "a2"
    assert again.expires_at_ms > first.expires_at_ms


async def test_an_expired_lease_is_taken_over_with_the_next_epoch(leases: AnyLeaseStore) -> None:
    await leases.acquire_lease("r", "node-a", "a", SHORT)
    await expire()
    assert await leases.current_lease("r") is None
    taken = await leases.acquire_lease("r", "node-b", "b", LONG)
    assert taken is not None
    assert (taken.node_id, taken.address, taken.epoch) == ("node-b", "b", 2)
    assert await leases.current_lease("r") == taken


async def test_taking_back_ones_own_expired_lease_starts_a_new_epoch(
    leases: AnyLeaseStore,
) -> None:
    await leases.acquire_lease("r", "node-a", "a", SHORT)
    await expire()
    again = await leases.acquire_lease("r", "node-a", "a", LONG)
    assert again is not None and again.epoch == 2


async def test_rooms_have_separate_leases(leases: AnyLeaseStore) -> None:
    a = await leases.acquire_lease("r1", "node-a", "a", LONG)
    b = await leases.acquire_lease("r2", "node-b", "b", LONG)
    assert a is not None and b is not None
    assert (a.epoch, b.epoch) == (1, 1)
    assert await leases.acquire_lease("r1", "node-b", "b", LONG) is None


@pytest.mark.parametrize(("node_id", "ttl_ms"), [("", LONG), ("node-a", 0), ("node-a", -5)])
async def test_an_empty_node_id_or_a_ttl_that_is_not_positive_is_refused(
    leases: AnyLeaseStore, node_id: str, ttl_ms: int
) -> None:
    with pytest.raises(ValueError):
        await leases.acquire_lease("r", node_id, "a", ttl_ms)


# ---------------------------------------------------------------------- renew and release


async def test_renew_pushes_the_expiry_back(leases: AnyLeaseStore) -> None:
    lease = await leases.acquire_lease("r", "node-a", "a", 10_000)
    assert lease is not None
    renewed = await leases.renew_lease(lease, LONG)
    assert renewed.epoch == lease.epoch
    assert renewed.expires_at_ms > lease.expires_at_ms
    assert await leases.current_lease("r") == renewed


async def test_an_expired_lease_nobody_took_can_still_be_renewed(leases: AnyLeaseStore) -> None:
    lease = await leases.acquire_lease("r", "node-a", "a", SHORT)
    assert lease is not None
    await expire()
    renewed = await leases.renew_lease(lease, LONG)
    assert renewed.epoch == 1
    assert await leases.current_lease("r") == renewed


async def test_renewing_a_lease_taken_over_raises_lease_lost(leases: AnyLeaseStore) -> None:
    lease = await leases.acquire_lease("r", "node-a", "a", SHORT)
    assert lease is not None
    await expire()
    taken = await leases.acquire_lease("r", "node-b", "b", LONG)
    with pytest.raises(LeaseLost, match="'r'"):
        await leases.renew_lease(lease, LONG)
    assert await leases.current_lease("r") == taken
    assert issubclass(LeaseLost, StorageError)


async def test_a_released_lease_is_free_at_once_and_its_epoch_is_not_reused(
    leases: AnyLeaseStore,
) -> None:
    lease = await leases.acquire_lease("r", "node-a", "a", LONG)
    assert lease is not None
    assert await leases.release_lease(lease) is True
    assert await leases.current_lease("r") is None
    assert await leases.release_lease(lease) is False
    with pytest.raises(LeaseLost):
        await leases.renew_lease(lease, LONG)
    taken = await leases.acquire_lease("r", "node-b", "b", LONG)
    assert taken is not None and taken.epoch == 2


async def test_releasing_a_stale_lease_leaves_the_new_owners_alone(leases: AnyLeaseStore) -> None:
    stale = await leases.acquire_lease("r", "node-a", "a", SHORT)
    assert stale is not None
    await expire()
    taken = await leases.acquire_lease("r", "node-b", "b", LONG)
    assert await leases.release_lease(stale) is False
    assert await leases.current_lease("r") == taken


async def test_leases_are_not_room_data(leases: AnyLeaseStore) -> None:
    lease = await leases.acquire_lease("r", "node-a", "a", LONG)
    await leases.delete_room_data("r")
    assert await leases.current_lease("r") == lease


# ---------------------------------------------------------------------- fenced commits

WRITES = RoomWrites(version=2, entries={"k": Entry(2, False, b"2")})


async def seed(leases: AnyLeaseStore) -> RoomSnapshot:
    await leases.commit("r", RoomWrites(version=1, entries={"k": Entry(1, False, b"1")}))
    return await leases.load_room("r")


async def test_a_commit_under_the_live_lease_lands(leases: AnyLeaseStore) -> None:
    lease = await leases.acquire_lease("r", "node-a", "a", LONG)
    await leases.commit("r", WRITES, lease=lease)
    assert (await leases.load_room("r")).version == 2


async def test_a_commit_under_a_lease_taken_over_raises_lease_lost_and_applies_nothing(
    leases: AnyLeaseStore,
) -> None:
    before = await seed(leases)
    lease = await leases.acquire_lease("r", "node-a", "a", SHORT)
    await expire()
    await leases.acquire_lease("r", "node-b", "b", LONG)
    with pytest.raises(LeaseLost, match="commit to room 'r'"):
        await leases.commit("r", WRITES, lease=lease)
    assert await leases.load_room("r") == before


async def test_a_commit_under_a_released_lease_raises_lease_lost(leases: AnyLeaseStore) -> None:
    before = await seed(leases)
    lease = await leases.acquire_lease("r", "node-a", "a", LONG)
    assert lease is not None
    await leases.release_lease(lease)
    with pytest.raises(LeaseLost):
        await leases.commit("r", WRITES, lease=lease)
    assert await leases.load_room("r") == before


async def test_a_commit_under_the_lease_of_another_room_raises_lease_lost(
    leases: AnyLeaseStore,
) -> None:
    other = await leases.acquire_lease("r2", "node-a", "a", LONG)
    await leases.acquire_lease("r", "node-a", "a", LONG)
    with pytest.raises(LeaseLost):
        await leases.commit("r", WRITES, lease=other)
    assert (await leases.load_room("r")).version is None


async def test_a_commit_under_a_lease_that_never_existed_raises_lease_lost(
    leases: AnyLeaseStore,
) -> None:
    with pytest.raises(LeaseLost):
        await leases.commit("r", WRITES, lease=Lease("r", "node-a", "a", 1, now_ms() + LONG))
    assert (await leases.load_room("r")).version is None


async def test_a_commit_under_an_expired_lease_nobody_took_lands(leases: AnyLeaseStore) -> None:
    lease = await leases.acquire_lease("r", "node-a", "a", SHORT)
    await expire()
    await leases.commit("r", WRITES, lease=lease)
    assert (await leases.load_room("r")).version == 2


# ---------------------------------------------------------------------- PostgreSQL: several nodes


@pytest.fixture
async def nodes(pg_schema: str) -> AsyncIterator[list[PostgresStore]]:
    """Three stores on one schema: three nodes."""
    stores = [PostgresStore(POSTGRES_URL, schema=pg_schema) for _ in range(3)]
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


@pytest.mark.postgres
async def test_of_nodes_acquiring_at_once_exactly_one_gets_the_lease(
    nodes: list[PostgresStore],
) -> None:
    results = await asyncio.gather(
        *(
            nodes[n % 3].acquire_lease(f"room-{room}", f"node-{n}", f"addr-{n}", LONG)
            for room in range(10)
            for n in range(6)
        )
    )
    for room in range(10):
        granted = [lease for lease in results[room * 6 : room * 6 + 6] if lease is not None]
        assert len(granted) == 1
        assert granted[0].epoch == 1
        assert await nodes[2].current_lease(f"room-{room}") == granted[0]


@pytest.mark.postgres
async def test_no_commit_of_the_old_owner_lands_after_a_takeover(
    nodes: list[PostgresStore],
) -> None:
    """Node A commits versions 1, 2, 3... under a short lease it does not renew; node B takes the
    room over as soon as the lease expires and loads it. Every commit A saw succeed must be in
    B's snapshot, and none may land after it."""
    a, b, _ = nodes
    lease = await a.acquire_lease("r", "node-a", "a", 200)
    acknowledged: list[int] = []

    async def owner_a() -> None:
        for version in range(1, 1000):
            try:
                await a.commit("r", RoomWrites(version=version), lease=lease)
            except LeaseLost:
                return
            acknowledged.append(version)
        pytest.fail("node A never lost its lease")

    async def node_b() -> RoomSnapshot:
        while (taken := await b.acquire_lease("r", "node-b", "b", LONG)) is None:
            await asyncio.sleep(0.01)
        assert taken.epoch == 2
        return await b.load_room("r")

    _, snapshot = await asyncio.gather(owner_a(), node_b())
    assert acknowledged, "node A committed nothing before the takeover"
    assert snapshot.version == acknowledged[-1]
    assert (await b.load_room("r")).version == acknowledged[-1]


@pytest.mark.postgres
async def test_a_takeover_is_seen_by_every_node(nodes: list[PostgresStore]) -> None:
    a, b, c = nodes
    first = await a.acquire_lease("r", "node-a", "a", SHORT)
    assert first is not None
    await expire()
    taken = await b.acquire_lease("r", "node-b", "b", LONG)
    assert await c.current_lease("r") == taken
    assert await a.acquire_lease("r", "node-a", "a", LONG) is None


# ---------------------------------------------------------------------- cluster secret


async def test_the_cluster_secret_is_made_once_and_is_the_same_for_every_call(
    leases: AnyLeaseStore,
) -> None:
    secret = await leases.cluster_secret()
    assert len(secret) == 32
    assert await leases.cluster_secret() == secret


@pytest.mark.postgres
async def test_nodes_on_one_postgresql_schema_share_the_cluster_secret_and_others_do_not() -> None:
    await require_postgres()
    schema, other_schema = new_schema(), new_schema()
    stores = [PostgresStore(POSTGRES_URL, schema=s) for s in (schema, schema, other_schema)]
    try:
        for store in stores:
            await store.open()
        secrets = await asyncio.gather(*(store.cluster_secret() for store in stores))
        assert secrets[0] == secrets[1]
        assert secrets[2] != secrets[0]
    finally:
        for store in stores:
            await store.close()
        await drop_schema(schema)
        await drop_schema(other_schema)

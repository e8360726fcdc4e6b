"""The contract every ``Store`` backend honours, run against each of them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reflectd.engine.records import (
    ClientRecord,
    Entry,
    RememberedCall,
    RoomRecord,
    RoomSnapshot,
    RoomStatus,
    RoomWrites,
)
from reflectd.errors import StorageError

from .conftest import BACKENDS, AnyStore, Faults, InjectedFault, make_store

pytestmark = pytest.mark.anyio

FULL_CLIENT = ClientRecord(
    client_group_id="g1",
    base_cookie=7,
    last_mutation_id=3,
    last_mutation_id_version=6,
    last_seen_ms=1_700_000_000_000,
    user_id="alice",
    last_mutation_id_at_close=3,
)
BARE_CLIENT = ClientRecord(
    client_group_id="g2",
    base_cookie=None,
    last_mutation_id=0,
    last_mutation_id_version=None,
    last_seen_ms=None,
    user_id=None,
)


def utf8_order(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda key: key.encode())


def entry(version: int, value: str, *, deleted: bool = False) -> Entry:
    return Entry(version=version, deleted=deleted, value=value.encode())


async def seeded(store: AnyStore, room_id: str = "r") -> RoomSnapshot:
    """Commit a first state with every kind of record to ``room_id``; return it as loaded."""
    await store.commit(
        room_id,
        RoomWrites(
            version=5,
            connected_clients=frozenset({"c1"}),
            clients={"c1": FULL_CLIENT, "c2": BARE_CLIENT},
            entries={"a": entry(4, '"A"'), "b": entry(5, "1", deleted=True)},
        ),
    )
    return await store.load_room(room_id)


# ---------------------------------------------------------------------- rooms index


async def test_get_room_of_an_unknown_room_id_returns_none(store: AnyStore) -> None:
    assert await store.get_room("nope") is None


async def test_create_room_stores_a_record_that_get_room_returns(store: AnyStore) -> None:
    record = RoomRecord(room_id="r1", jurisdiction="eu", status="open")
    assert await store.create_room(record) is True
    assert await store.get_room("r1") == record


async def test_a_rooms_created_time_is_kept_and_listed(store: AnyStore) -> None:
    record = RoomRecord(room_id="r1", created_ms=1_765_000_000_123)
    await store.create_room(record)
    await store.set_room_status("r1", "closed")
    assert await store.get_room("r1") == RoomRecord(
        "r1", status="closed", created_ms=record.created_ms
    )
    assert [r.created_ms for r in await store.list_rooms(limit=10)] == [record.created_ms]


@pytest.mark.parametrize("status", ["open", "closed", "deleted"])
async def test_create_room_with_an_existing_room_id_returns_false_and_changes_nothing(
    store: AnyStore, status: RoomStatus
) -> None:
    await store.create_room(RoomRecord(room_id="r1", jurisdiction="eu"))
    await store.set_room_status("r1", status)
    assert await store.create_room(RoomRecord(room_id="r1")) is False
    assert await store.get_room("r1") == RoomRecord(room_id="r1", jurisdiction="eu", status=status)


async def test_set_room_status_changes_only_that_rooms_status(store: AnyStore) -> None:
    await store.create_room(RoomRecord(room_id="r1", jurisdiction="eu"))
    await store.create_room(RoomRecord(room_id="r2"))
    await store.set_room_status("r1", "closed")
    assert await store.get_room("r1") == RoomRecord(
        room_id="r1", jurisdiction="eu", status="closed"
    )
    assert await store.get_room("r2") == RoomRecord(room_id="r2")


async def test_set_room_status_of_an_unknown_room_changes_nothing(store: AnyStore) -> None:
    await store.set_room_status("ghost", "closed")
    assert await store.get_room("ghost") is None
    assert await store.list_rooms(limit=10) == []


ROOM_IDS = [
    "abc",
    "abc-d",
    "abc/d",
    "abc_",
    "abc0",
    "abc9",
    "ABC",
    "a",
    "",
    "z",
    "é",
    "\u07ff",
    "\u0800",
    "\ud7ff",
    "\ue000",
    "\uffff",
    "\U00010000",
    "😀",
    "\U0010ffff",
]


async def test_list_rooms_orders_room_ids_in_utf8_byte_order(store: AnyStore) -> None:
    for room_id in ROOM_IDS:
        await store.create_room(RoomRecord(room_id=room_id))
    listed = [r.room_id for r in await store.list_rooms(limit=100)]
    assert listed == utf8_order(ROOM_IDS)
    # astral characters (4 UTF-8 bytes, F0..F4) sort after U+E000..U+FFFF (EE..EF), unlike UTF-16
    assert listed.index("\uffff") < listed.index("\U00010000")


async def test_list_rooms_starts_at_start_key_inclusively_unless_exclusive(
    store: AnyStore,
) -> None:
    for room_id in ["a", "b", "c", "d"]:
        await store.create_room(RoomRecord(room_id=room_id))
    assert [r.room_id for r in await store.list_rooms(start_key="b", limit=10)] == ["b", "c", "d"]
    listed = await store.list_rooms(start_key="b", exclusive=True, limit=10)
    assert [r.room_id for r in listed] == ["c", "d"]
    listed = await store.list_rooms(start_key="bb", exclusive=True, limit=10)
    assert [r.room_id for r in listed] == ["c", "d"]
    assert await store.list_rooms(start_key="e", limit=10) == []


async def test_list_rooms_returns_at_most_limit_rooms_and_pages_through_all(
    store: AnyStore,
) -> None:
    for room_id in ROOM_IDS:
        await store.create_room(RoomRecord(room_id=room_id))
    assert await store.list_rooms(limit=0) == []
    pages: list[list[str]] = []
    start_key, exclusive = "", False
    while page := await store.list_rooms(start_key=start_key, exclusive=exclusive, limit=4):
        assert len(page) <= 4
        pages.append([r.room_id for r in page])
        start_key, exclusive = page[-1].room_id, True
    assert [room_id for page in pages for room_id in page] == utf8_order(ROOM_IDS)
    assert len(pages) == 5


async def test_list_rooms_returns_every_status(store: AnyStore) -> None:
    statuses: list[tuple[str, RoomStatus]] = [("a", "open"), ("b", "closed"), ("c", "deleted")]
    for room_id, status in statuses:
        await store.create_room(RoomRecord(room_id=room_id))
        await store.set_room_status(room_id, status)
    assert [r.status for r in await store.list_rooms(limit=10)] == ["open", "closed", "deleted"]


async def test_list_rooms_with_a_negative_limit_raises_value_error(store: AnyStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.list_rooms(limit=-1)


# ---------------------------------------------------------------------- room data


async def test_a_room_without_data_loads_as_an_empty_snapshot(store: AnyStore) -> None:
    assert await store.load_room("empty") == RoomSnapshot()
    await store.commit("empty", RoomWrites())
    assert await store.load_room("empty") == RoomSnapshot()


async def test_commit_then_load_round_trips_every_field_of_every_record(store: AnyStore) -> None:
    writes = RoomWrites(
        version=9,
        connected_clients=frozenset({"c1", "c3"}),
        clients={"c1": FULL_CLIENT, "c2": BARE_CLIENT},
        entries={
            "live": entry(8, '{"x":[1,2.5,null,"\\u00e9"]}'),
            "gone": entry(9, "true", deleted=True),
            "raw": Entry(version=0, deleted=False, value=b"\x00\xff not JSON"),
        },
    )
    await store.commit("r", writes)
    assert await store.load_room("r") == RoomSnapshot(
        version=9,
        connected_clients=frozenset({"c1", "c3"}),
        clients={"c1": FULL_CLIENT, "c2": BARE_CLIENT},
        entries=writes.entries,
    )


async def test_round_trip_keeps_large_integers_exact(store: AnyStore) -> None:
    big = 2**53 - 1
    client = ClientRecord("g", big, big, big, big, "u", big)
    await store.commit(
        "r", RoomWrites(version=big, clients={"c": client}, entries={"k": entry(big, "0")})
    )
    snapshot = await store.load_room("r")
    assert (snapshot.version, snapshot.clients["c"], snapshot.entries["k"].version) == (
        big,
        client,
        big,
    )


async def test_keys_with_nul_astral_and_private_use_characters_load_in_utf8_byte_order(
    store: AnyStore,
) -> None:
    keys = ["a", "a\x00", "a\x00b", "", "\ue000", "😀", "\uffff", "-/p/c1", "/", "0", "_"]
    await store.commit("r", RoomWrites(entries={key: entry(1, "1") for key in keys}))
    snapshot = await store.load_room("r")
    assert list(snapshot.entries) == utf8_order(keys)


async def test_commit_leaves_unchanged_what_the_writes_do_not_mention(store: AnyStore) -> None:
    before = await seeded(store)
    await store.commit("r", RoomWrites(entries={"c": entry(5, "2")}))
    after = await store.load_room("r")
    assert (after.version, after.connected_clients, after.clients) == (
        before.version,
        before.connected_clients,
        before.clients,
    )
    assert after.entries == {**before.entries, "c": entry(5, "2")}


async def test_commit_replaces_entries_and_keeps_tombstones(store: AnyStore) -> None:
    await seeded(store)
    await store.commit(
        "r", RoomWrites(version=6, entries={"a": entry(6, '"A"', deleted=True), "b": entry(6, "2")})
    )
    snapshot = await store.load_room("r")
    assert snapshot.entries == {"a": entry(6, '"A"', deleted=True), "b": entry(6, "2")}


async def test_commit_replaces_client_records_and_the_connected_set(store: AnyStore) -> None:
    await seeded(store)
    changed = ClientRecord("g1", 8, 4, 8, 1_700_000_000_001, "alice")
    await store.commit("r", RoomWrites(connected_clients=frozenset(), clients={"c1": changed}))
    snapshot = await store.load_room("r")
    assert snapshot.connected_clients == frozenset()
    assert snapshot.clients == {"c1": changed, "c2": BARE_CLIENT}


async def test_deleting_a_client_removes_its_record_and_writes_a_tombstone(
    store: AnyStore,
) -> None:
    await seeded(store)
    await store.commit("r", RoomWrites(deleted_clients={"c1": "alice", "c2": None}))
    assert (await store.load_room("r")).clients == {}
    assert await store.client_tombstones("r") == {"c1": "alice", "c2": None}


async def test_deleting_a_client_again_replaces_its_tombstone(store: AnyStore) -> None:
    await store.commit("r", RoomWrites(deleted_clients={"c1": "alice"}))
    await store.commit("r", RoomWrites(deleted_clients={"c1": None}))
    assert await store.client_tombstones("r") == {"c1": None}


async def test_a_client_both_written_and_deleted_in_one_commit_ends_deleted(
    store: AnyStore,
) -> None:
    await store.commit("r", RoomWrites(clients={"c1": FULL_CLIENT}, deleted_clients={"c1": "u"}))
    assert (await store.load_room("r")).clients == {}
    assert await store.client_tombstones("r") == {"c1": "u"}


async def test_a_loaded_snapshot_is_a_copy_the_caller_may_change(store: AnyStore) -> None:
    snapshot = await seeded(store)
    snapshot.entries.clear()
    snapshot.clients.clear()
    assert await store.load_room("r") == await seeded(store)


@pytest.mark.parametrize(
    "point", ["before_entries", "after_entries", "after_clients", "before_commit"]
)
async def test_commit_that_fails_halfway_leaves_nothing_behind(
    store: AnyStore, faults: Faults, point: str
) -> None:
    before = await seeded(store)
    faults.fail_at = point
    with pytest.raises(StorageError, match="commit to room 'r'") as raised:
        await store.commit(
            "r",
            RoomWrites(
                version=6,
                connected_clients=frozenset({"c2"}),
                clients={"c3": BARE_CLIENT},
                deleted_clients={"c1": "alice"},
                entries={"a": entry(6, "0", deleted=True), "new": entry(6, "1")},
            ),
        )
    assert isinstance(raised.value.__cause__, InjectedFault)
    assert await store.load_room("r") == before
    assert await store.client_tombstones("r") == {}


async def test_a_store_commits_again_after_a_failed_commit(store: AnyStore, faults: Faults) -> None:
    faults.fail_at, faults.fail_on_call = "after_entries", 1
    with pytest.raises(StorageError):
        await store.commit("r", RoomWrites(version=1))
    await store.commit("r", RoomWrites(version=2))
    assert (await store.load_room("r")).version == 2


async def test_delete_room_data_clears_the_room_but_keeps_its_record(store: AnyStore) -> None:
    await store.create_room(RoomRecord(room_id="r", jurisdiction="eu"))
    await seeded(store)
    await store.commit("r", RoomWrites(deleted_clients={"c2": None}))
    await store.set_room_status("r", "deleted")
    await store.delete_room_data("r")
    assert await store.load_room("r") == RoomSnapshot()
    assert await store.client_tombstones("r") == {}
    assert await store.get_room("r") == RoomRecord(room_id="r", jurisdiction="eu", status="deleted")


async def test_delete_room_data_leaves_other_rooms_untouched(store: AnyStore) -> None:
    other = await seeded(store, "r2")
    await seeded(store, "r")
    await store.commit("r2", RoomWrites(deleted_clients={"gone": "u"}))
    await store.delete_room_data("r")
    assert await store.load_room("r2") == other
    assert await store.client_tombstones("r2") == {"gone": "u"}


async def test_many_concurrent_commits_to_50_rooms_all_land(store: AnyStore) -> None:
    room_ids = [f"room-{n}" for n in range(50)]

    async def turns(room_id: str) -> None:
        for version in range(1, 4):
            await store.commit(
                room_id, RoomWrites(version=version, entries={f"k{version}": entry(version, "1")})
            )

    await asyncio.gather(*(turns(room_id) for room_id in room_ids))
    for room_id in room_ids:
        snapshot = await store.load_room(room_id)
        assert snapshot.version == 3
        assert list(snapshot.entries) == ["k1", "k2", "k3"]


async def test_a_store_refuses_calls_after_close(store: AnyStore) -> None:
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.load_room("r")
    with pytest.raises(StorageError, match="closed"):
        await store.commit("r", RoomWrites(version=1))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_store_refuses_calls_before_open(backend: str, tmp_path: Path) -> None:
    store = make_store(backend, tmp_path / "reflectd.db")
    with pytest.raises(StorageError, match="not open yet"):
        await store.get_room("r")


# ---------------------------------------------------------------------- remembered calls


async def test_a_remembered_call_is_committed_with_its_writes_and_found_by_key(
    store: AnyStore,
) -> None:
    call = RememberedCall(version=6, at_ms=1_000)
    await store.commit("r", RoomWrites(version=6, remembered={"order-17": call}))
    assert await store.find_remembered_call("r", "order-17") == call
    assert await store.find_remembered_call("r", "order-18") is None
    assert await store.find_remembered_call("other", "order-17") is None


async def test_committing_a_remembered_key_again_fails_the_whole_commit(store: AnyStore) -> None:
    await store.commit("r", RoomWrites(version=6, remembered={"k": RememberedCall(6, 1_000)}))
    with pytest.raises(StorageError):
        await store.commit(
            "r",
            RoomWrites(
                version=7,
                entries={"x": entry(7, "1")},
                remembered={"k": RememberedCall(7, 2_000)},
            ),
        )
    assert (await store.load_room("r")).version == 6
    assert (await store.load_room("r")).entries == {}
    assert await store.find_remembered_call("r", "k") == RememberedCall(6, 1_000)


async def test_forget_calls_before_drops_only_older_calls_and_delete_drops_a_rooms(
    store: AnyStore,
) -> None:
    await store.commit("r", RoomWrites(remembered={"old": RememberedCall(1, 1_000)}))
    await store.commit("r", RoomWrites(remembered={"new": RememberedCall(2, 5_000)}))
    await store.commit("s", RoomWrites(remembered={"old": RememberedCall(1, 1_000)}))
    assert await store.forget_calls_before(5_000) == 2
    assert await store.find_remembered_call("r", "old") is None
    assert await store.find_remembered_call("r", "new") == RememberedCall(2, 5_000)
    await store.delete_room_data("r")
    assert await store.find_remembered_call("r", "new") is None

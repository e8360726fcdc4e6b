"""Property: any sequence of commits and deletes leaves both backends in the same state."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reflectd.engine.records import ClientRecord, Entry, RoomWrites

from .conftest import make_store

pytestmark = pytest.mark.anyio

ROOMS = ["r1", "r2"]

# a few keys that collide often, plus arbitrary text (NUL, astral characters...)
keys = st.one_of(st.sampled_from(["", "a", "a\x00", "b", "-/p/c1", "\ue000", "😀"]), st.text())
client_ids = st.sampled_from(["c1", "c2", "c3", "\U0001f600"])
user_ids = st.none() | st.sampled_from(["u1", "u2"]) | st.text(max_size=5)
ints = st.integers(min_value=0, max_value=2**53)
optional_ints = st.none() | ints

entries = st.builds(Entry, version=ints, deleted=st.booleans(), value=st.binary(max_size=10))
clients = st.builds(
    ClientRecord,
    client_group_id=st.text(max_size=5),
    base_cookie=optional_ints,
    last_mutation_id=ints,
    last_mutation_id_version=optional_ints,
    last_seen_ms=optional_ints,
    user_id=user_ids,
    last_mutation_id_at_close=optional_ints,
)
room_writes = st.builds(
    RoomWrites,
    version=optional_ints,
    connected_clients=st.none() | st.frozensets(client_ids),
    clients=st.dictionaries(client_ids, clients, max_size=3),
    deleted_clients=st.dictionaries(client_ids, user_ids, max_size=2),
    entries=st.dictionaries(keys, entries, max_size=5),
)
#: a commit of writes to a room, or (writes None) a delete of the room's data
operations = st.lists(st.tuples(st.sampled_from(ROOMS), st.none() | room_writes), max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=operations)
async def test_any_sequence_of_writes_leaves_memory_and_sqlite_in_the_same_state(
    operations: list[tuple[str, RoomWrites | None]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stores = [
            make_store(backend, Path(tmp) / "reflectd.db") for backend in ["memory", "sqlite"]
        ]
        for store in stores:
            await store.open()
        try:
            for room_id, writes in operations:
                for store in stores:
                    if writes is None:
                        await store.delete_room_data(room_id)
                    else:
                        await store.commit(room_id, writes)
            for room_id in ROOMS:
                memory, sqlite = [await store.load_room(room_id) for store in stores]
                assert memory == sqlite
                assert list(memory.entries) == list(sqlite.entries)
                memory_tombstones, sqlite_tombstones = [
                    await store.client_tombstones(room_id) for store in stores
                ]
                assert memory_tombstones == sqlite_tombstones
        finally:
            for store in stores:
                await store.close()

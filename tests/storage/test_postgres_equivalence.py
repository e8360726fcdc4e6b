"""Property: any sequence of commits and deletes leaves memory and PostgreSQL in the same state.

The twin of ``test_equivalence`` for the PostgreSQL backend: its examples share one schema,
emptied before each.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from reflectd.engine.records import RoomWrites
from reflectd.storage import MemoryStore, PostgresStore
from reflectd.storage.migrations.postgres import TABLES, quote_ident

from .conftest import POSTGRES_URL
from .test_equivalence import ROOMS, operations

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(operations=operations)
async def test_any_sequence_of_writes_leaves_memory_and_postgres_in_the_same_state(
    pg_schema: str, operations: list[tuple[str, RoomWrites | None]]
) -> None:
    memory = MemoryStore()
    postgres = PostgresStore(POSTGRES_URL, schema=pg_schema, pool_size=2)
    await memory.open()
    await postgres.open()
    try:
        # DELETE, not TRUNCATE: much faster on tables this small
        statements = ";".join(f"DELETE FROM {quote_ident(pg_schema)}.{t}" for t in TABLES)

        async def empty(conn: Any) -> object:
            return await conn.execute(statements)

        await postgres._call(empty, "empty the schema")
        for room_id, writes in operations:
            for store in (memory, postgres):
                if writes is None:
                    await store.delete_room_data(room_id)
                else:
                    await store.commit(room_id, writes)
        for room_id in ROOMS:
            expected, loaded = await memory.load_room(room_id), await postgres.load_room(room_id)
            assert loaded == expected
            assert list(loaded.entries) == list(expected.entries)
            assert list(loaded.clients) == list(expected.clients)
            assert await postgres.client_tombstones(room_id) == await memory.client_tombstones(
                room_id
            )
    finally:
        await memory.close()
        await postgres.close()

"""What the PostgreSQL backend promises beyond the contract: schema, migrations, sharing."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from reflectd.engine.records import ClientRecord, Entry, RoomRecord, RoomSnapshot, RoomWrites
from reflectd.errors import StorageError
from reflectd.storage import PostgresStore, open_store
from reflectd.storage.base import ApiKeyRecord
from reflectd.storage.migrations import postgres as pg_migrations
from reflectd.storage.migrations.postgres import MIGRATIONS, SCHEMA_VERSION, TABLES, quote_ident
from reflectd.storage.postgres import DEFAULT_POOL_SIZE
from reflectd.storage.postgres_url import PostgresURL

from .conftest import POSTGRES_URL

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

CLIENT = ClientRecord("g\x00", 1, 2, 3, 4, "u\x00", None)


@asynccontextmanager
async def admin() -> AsyncIterator[Any]:
    """A plain asyncpg connection to the test database."""
    conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def opened(schema: str, **kwargs: Any) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(POSTGRES_URL, schema=schema, **kwargs)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def recorded_version(schema: str) -> int:
    async with admin() as conn:
        return int(await conn.fetchval(f"SELECT version FROM {quote_ident(schema)}.schema_version"))


def with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


# ---------------------------------------------------------------------- URLs


def test_the_schema_comes_from_the_url_or_the_keyword_and_defaults_to_reflectd() -> None:
    assert PostgresURL.parse("postgresql://h/db").schema == "reflectd"
    url = PostgresURL.parse("postgres://h/db?schema=s1&sslmode=disable")
    assert (url.schema, url.dsn) == ("s1", "postgres://h/db?sslmode=disable")
    assert PostgresURL.parse("postgresql://h/db", "s2").schema == "s2"
    assert PostgresURL.parse("postgresql://h/db?schema=s2", "s2").schema == "s2"


@pytest.mark.parametrize(
    "url",
    ["postgresql://h/db?schema=a&schema=b", "postgresql://h/db?schema=", "mysql://h/db"],
)
def test_a_bad_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        PostgresURL.parse(url, "b" if url.endswith("schema=b") else None)


def test_the_password_never_shows_in_the_store_name() -> None:
    store = PostgresStore("postgresql://alice:s3cret@db.example:5432/app?schema=x")
    assert "s3cret" not in store.name
    assert "alice:***@db.example:5432/app" in store.name
    store = PostgresStore("postgresql://db.example/app?user=bob&password=s3cret&sslmode=require")
    assert "s3cret" not in store.name
    assert "user=bob&password=***&sslmode=require" in store.name


def test_every_connection_commits_synchronously() -> None:
    url = PostgresURL.parse("postgresql://h/db?synchronous_commit=off&application_name=me")
    assert url.server_settings == {"synchronous_commit": "on"}
    assert PostgresURL.parse("postgresql://h/db").server_settings["application_name"] == "reflectd"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_open_store_opens_a_postgres_store_in_the_schema_of_the_url(
    pg_schema: str, scheme: str
) -> None:
    url = with_query(
        POSTGRES_URL.replace("postgresql://", f"{scheme}://", 1), f"schema={pg_schema}"
    )
    store = await open_store(url)
    try:
        assert isinstance(store, PostgresStore)
        assert store.schema == pg_schema
        assert store.pool_size == DEFAULT_POOL_SIZE
        await store.create_room(RoomRecord(room_id="r"))
    finally:
        await store.close()
    async with admin() as conn:
        assert await conn.fetchval(f"SELECT room_id FROM {quote_ident(pg_schema)}.rooms") == "r"


async def test_an_unreachable_server_fails_open_with_storage_error(pg_schema: str) -> None:
    store = PostgresStore(
        f"postgresql://alice:s3cret@127.0.0.1:1/db?schema={pg_schema}", connect_timeout=2
    )
    with pytest.raises(StorageError, match=r"127\.0\.0\.1:1") as raised:
        await store.open()
    assert "s3cret" not in str(raised.value)
    with pytest.raises(StorageError, match="closed"):
        await store.load_room("r")


async def test_a_connection_has_synchronous_commit_on(pg_schema: str) -> None:
    async with opened(pg_schema) as store:

        async def show(conn: Any) -> object:
            return await conn.fetchval("SHOW synchronous_commit")

        assert await store._call(show, "show synchronous_commit") == "on"


# ---------------------------------------------------------------------- schema and migrations


def test_there_is_one_migration_per_schema_version() -> None:
    assert len(MIGRATIONS) == SCHEMA_VERSION


async def test_open_creates_the_schema_and_records_its_version(pg_schema: str) -> None:
    async with opened(pg_schema):
        pass
    assert await recorded_version(pg_schema) == SCHEMA_VERSION
    async with admin() as conn:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", pg_schema
        )
        collations = await conn.fetch(
            "SELECT table_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND column_name = 'room_id'",
            pg_schema,
        )
    assert [row[0] for row in tables] == sorted([*TABLES, "schema_version"])
    assert {row[1] for row in collations} == {"C"}
    # all but api_keys, cluster_secret, webhook_endpoints and webhook_deliveries
    assert len(collations) == len(TABLES) - 4


async def test_an_existing_empty_schema_is_migrated(pg_schema: str) -> None:
    async with admin() as conn:
        await conn.execute(f"CREATE SCHEMA {quote_ident(pg_schema)}")
    async with opened(pg_schema) as store:
        await store.commit("r", RoomWrites(version=1))
    assert await recorded_version(pg_schema) == SCHEMA_VERSION


async def test_a_schema_with_a_newer_version_is_refused_with_a_clear_error(
    pg_schema: str,
) -> None:
    async with opened(pg_schema):
        pass
    async with admin() as conn:
        await conn.execute(
            f"UPDATE {quote_ident(pg_schema)}.schema_version SET version = $1", SCHEMA_VERSION + 1
        )
    store = PostgresStore(POSTGRES_URL, schema=pg_schema)
    with pytest.raises(
        StorageError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade reflectd"
    ):
        await store.open()
    assert await recorded_version(pg_schema) == SCHEMA_VERSION + 1


async def test_a_schema_holding_tables_of_another_application_is_refused(pg_schema: str) -> None:
    async with admin() as conn:
        await conn.execute(f"CREATE SCHEMA {quote_ident(pg_schema)}")
        await conn.execute(f"CREATE TABLE {quote_ident(pg_schema)}.rooms (id int)")
    with pytest.raises(StorageError, match=r"not a reflectd schema.*rooms"):
        await PostgresStore(POSTGRES_URL, schema=pg_schema).open()


async def test_a_failing_migration_leaves_nothing_behind(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with opened(pg_schema) as store:
        await store.commit("r", RoomWrites(version=1))
    broken = ("CREATE TABLE {schema}.extra (a int)", "SELECT no_such_function()")
    monkeypatch.setattr(pg_migrations, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(pg_migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StorageError, match="no_such_function"):
        await PostgresStore(POSTGRES_URL, schema=pg_schema).open()
    monkeypatch.undo()
    assert await recorded_version(pg_schema) == SCHEMA_VERSION
    async with admin() as conn:
        assert await conn.fetchval("SELECT to_regclass($1)", f"{pg_schema}.extra") is None
    async with opened(pg_schema) as store:
        assert (await store.load_room("r")).version == 1


async def test_a_migration_step_runs_from_the_recorded_version(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with opened(pg_schema) as store:
        await store.commit("r", RoomWrites(version=1))
    step = ("CREATE TABLE {schema}.extra (a int)", "INSERT INTO {schema}.extra VALUES (7)")
    monkeypatch.setattr(pg_migrations, "MIGRATIONS", (*MIGRATIONS, step))
    monkeypatch.setattr(pg_migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    async with opened(pg_schema) as store:
        assert (await store.load_room("r")).version == 1
    assert await recorded_version(pg_schema) == SCHEMA_VERSION + 1
    async with admin() as conn:
        assert await conn.fetchval(f"SELECT a FROM {quote_ident(pg_schema)}.extra") == 7


async def test_a_schema_of_version_1_is_migrated_to_the_current_version_keeping_its_data(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_migrations, "MIGRATIONS", MIGRATIONS[:1])
    monkeypatch.setattr(pg_migrations, "SCHEMA_VERSION", 1)
    async with opened(pg_schema) as store:
        await store.commit("r", RoomWrites(version=4, entries={"k": Entry(4, False, b"1")}))
    async with admin() as conn:  # a room as version 1 wrote it: no created time
        await conn.execute(f"INSERT INTO {quote_ident(pg_schema)}.rooms VALUES ('r', '', 'open')")
    assert await recorded_version(pg_schema) == 1
    monkeypatch.undo()
    async with opened(pg_schema) as store:
        assert await store.get_room("r") == RoomRecord(room_id="r", created_ms=None)
        assert (await store.load_room("r")).entries == {"k": Entry(4, False, b"1")}
        assert await store.acquire_lease("r", "node", "addr", 1000) is not None
    assert await recorded_version(pg_schema) == SCHEMA_VERSION


async def test_nodes_starting_at_once_migrate_the_schema_once(pg_schema: str) -> None:
    stores = [PostgresStore(POSTGRES_URL, schema=pg_schema) for _ in range(6)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        await asyncio.gather(
            *(store.commit(f"r{n}", RoomWrites(version=n)) for n, store in enumerate(stores))
        )
        assert [(await stores[0].load_room(f"r{n}")).version for n in range(6)] == list(range(6))
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    assert await recorded_version(pg_schema) == SCHEMA_VERSION


async def test_schemas_are_independent(pg_schema: str) -> None:
    other = pg_schema + "_other"
    try:
        async with opened(pg_schema) as a, opened(other) as b:
            await a.create_room(RoomRecord(room_id="r"))
            await a.commit("r", RoomWrites(version=1))
            assert await b.get_room("r") is None
            assert await b.load_room("r") == RoomSnapshot()
    finally:
        async with admin() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(other)} CASCADE")


async def test_a_schema_name_needing_quotes_works(pg_schema: str) -> None:
    odd = pg_schema + ' "Odd" name'
    try:
        async with opened(odd) as store:
            await store.commit("r", RoomWrites(version=3))
            assert (await store.load_room("r")).version == 3
    finally:
        async with admin() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(odd)} CASCADE")


# ---------------------------------------------------------------------- sharing and reopening


async def test_two_stores_on_one_schema_see_each_others_writes(pg_schema: str) -> None:
    async with opened(pg_schema) as a, opened(pg_schema) as b:
        await a.create_room(RoomRecord(room_id="r", jurisdiction="eu"))
        assert await b.get_room("r") == RoomRecord(room_id="r", jurisdiction="eu")
        await b.set_room_status("r", "closed")
        assert (await a.get_room("r")) == RoomRecord(
            room_id="r", jurisdiction="eu", status="closed"
        )
        await a.commit("r", RoomWrites(version=1, clients={"c": CLIENT}))
        await b.commit("r", RoomWrites(version=2, entries={"k": Entry(2, False, b"1")}))
        expected = RoomSnapshot(
            version=2, clients={"c": CLIENT}, entries={"k": Entry(2, False, b"1")}
        )
        assert await a.load_room("r") == expected
        assert await b.load_room("r") == expected
        await b.create_api_key(ApiKeyRecord("k", "h", ("rooms:read",), 1))
        assert [k.name for k in await a.list_api_keys()] == ["k"]
        await a.delete_room_data("r")
        assert await b.load_room("r") == RoomSnapshot()


async def test_data_survives_close_and_reopen(pg_schema: str) -> None:
    writes = RoomWrites(
        version=3,
        connected_clients=frozenset({"c"}),
        clients={"c": CLIENT},
        deleted_clients={"old": "u"},
        entries={"k": Entry(3, False, b"[1]")},
    )
    async with opened(pg_schema) as store:
        await store.create_room(RoomRecord(room_id="r", jurisdiction="eu"))
        await store.commit("r", writes)
        before = await store.load_room("r")
    async with opened(pg_schema) as reopened:
        assert await reopened.get_room("r") == RoomRecord(room_id="r", jurisdiction="eu")
        assert await reopened.load_room("r") == before
        assert await reopened.client_tombstones("r") == {"old": "u"}


async def test_concurrent_commits_to_50_rooms_from_two_stores_all_land(pg_schema: str) -> None:
    async with opened(pg_schema) as a, opened(pg_schema) as b:

        async def turns(store: PostgresStore, room_id: str) -> None:
            for version in range(1, 4):
                await store.commit(
                    room_id,
                    RoomWrites(
                        version=version,
                        clients={"c": CLIENT},
                        entries={f"k{version}": Entry(version, False, b"1")},
                    ),
                )

        await asyncio.gather(*(turns((a, b)[n % 2], f"room-{n}") for n in range(50)))
        for n in range(50):
            snapshot = await (b, a)[n % 2].load_room(f"room-{n}")
            assert snapshot.version == 3
            assert list(snapshot.entries) == ["k1", "k2", "k3"]


async def test_close_lets_calls_under_way_finish(pg_schema: str) -> None:
    store = PostgresStore(POSTGRES_URL, schema=pg_schema)
    await store.open()
    tasks = [asyncio.create_task(store.commit(f"r{n}", RoomWrites(version=n))) for n in range(20)]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*tasks)
    async with opened(pg_schema) as reopened:
        assert [(await reopened.load_room(f"r{n}")).version for n in range(20)] == list(range(20))


async def test_open_twice_is_refused(pg_schema: str) -> None:
    async with opened(pg_schema) as store:
        with pytest.raises(StorageError, match="twice"):
            await store.open()


# ---------------------------------------------------------------------- strings and failures


async def test_nul_characters_round_trip_in_keys_values_and_client_and_user_ids(
    pg_schema: str,
) -> None:
    writes = RoomWrites(
        connected_clients=frozenset({"c\x00"}),
        clients={"c\x00": CLIENT},
        deleted_clients={"d\x00": "u\x00"},
        entries={"\x00": Entry(1, False, b'"\\u0000"'), "k\x00": Entry(1, False, b"\x00")},
    )
    async with opened(pg_schema) as store:
        await store.commit("r", writes)
        assert await store.load_room("r") == RoomSnapshot(
            connected_clients=frozenset({"c\x00"}),
            clients={"c\x00": CLIENT},
            entries=writes.entries,
        )
        assert await store.client_tombstones("r") == {"d\x00": "u\x00"}


async def test_a_room_id_with_a_nul_fails_with_storage_error_and_changes_nothing(
    pg_schema: str,
) -> None:
    async with opened(pg_schema) as store:
        with pytest.raises(StorageError, match="commit to room"):
            await store.commit("r\x00", RoomWrites(version=1, entries={"k": Entry(1, False, b"1")}))
        with pytest.raises(StorageError):
            await store.create_room(RoomRecord(room_id="r\x00"))
        assert await store.list_rooms(limit=10) == []
        await store.commit("r", RoomWrites(version=1))
        assert (await store.load_room("r")).version == 1


async def test_a_lone_surrogate_fails_with_storage_error(pg_schema: str) -> None:
    async with opened(pg_schema) as store:
        with pytest.raises(StorageError, match="commit to room 'r'"):
            await store.commit("r", RoomWrites(version=1, entries={"\ud800": Entry(1, False, b"")}))
        assert (await store.load_room("r")).version is None


async def test_an_integer_out_of_range_fails_with_storage_error(pg_schema: str) -> None:
    async with opened(pg_schema) as store:
        with pytest.raises(StorageError, match="commit to room 'r'"):
            await store.commit("r", RoomWrites(version=2**63, entries={"k": Entry(1, False, b"")}))
        assert await store.load_room("r") == RoomSnapshot()


def terminate_backends(application_name: str) -> None:
    """Kill, from another thread, every server process of connections so named."""

    async def kill() -> None:
        async with admin() as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = $1",
                application_name,
            )

    thread = threading.Thread(target=asyncio.run, args=(kill(),))
    thread.start()
    thread.join(10)


async def test_a_connection_killed_mid_commit_fails_it_and_the_store_recovers(
    pg_schema: str,
) -> None:
    name = f"reflectd-test-{uuid.uuid4().hex[:8]}"
    killed: list[str] = []

    def fault(point: str) -> None:
        if point == "after_entries" and not killed:
            killed.append(point)
            terminate_backends(name)

    url = with_query(POSTGRES_URL, f"application_name={name}")
    store = PostgresStore(url, schema=pg_schema, fault=fault)
    await store.open()
    try:
        with pytest.raises(StorageError, match="commit to room 'r'"):
            await store.commit("r", RoomWrites(version=1, entries={"k": Entry(1, False, b"1")}))
        assert killed
        await store.commit("r", RoomWrites(version=2))
        assert await store.load_room("r") == RoomSnapshot(version=2)
    finally:
        await store.close()


async def test_a_slow_statement_fails_after_the_command_timeout(pg_schema: str) -> None:
    async with opened(pg_schema, command_timeout=0.2) as store:

        async def sleep(conn: Any) -> object:
            return await conn.execute("SELECT pg_sleep(5)")

        with pytest.raises(StorageError, match="sleep failed: TimeoutError"):
            await store._call(sleep, "sleep")
        await store.commit("r", RoomWrites(version=1))

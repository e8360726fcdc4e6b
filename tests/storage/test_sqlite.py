"""What the SQLite backend promises beyond the contract: durability, schema, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from reflectd.engine.records import ClientRecord, Entry, RoomRecord, RoomWrites
from reflectd.errors import StorageError
from reflectd.storage import SQLiteStore
from reflectd.storage.base import SCHEMA_VERSION
from reflectd.storage.migrations.sqlite import APPLICATION_ID, MIGRATIONS

from .conftest import Faults

pytestmark = pytest.mark.anyio


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "reflectd.db"


@pytest.fixture
async def sqlite_store(db: Path, faults: Faults) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(db, fault=faults)
    await store.open()
    yield store
    faults.release()
    await store.close()


def pragma(db: Path, name: str) -> object:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def set_pragma(db: Path, name: str, value: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA {name} = {value}")
    conn.close()


async def hold_writer(
    store: SQLiteStore, faults: Faults, room_id: str = "holder"
) -> asyncio.Task[None]:
    """Start a commit that blocks the writer thread until ``faults.release()``."""
    faults.block_at = "before_entries"
    task = asyncio.create_task(store.commit(room_id, RoomWrites(version=1)))
    await anyio.to_thread.run_sync(faults.blocked.wait, 10)
    return task


# ---------------------------------------------------------------------- file and durability


async def test_data_survives_close_and_reopen(db: Path) -> None:
    client = ClientRecord("g", 1, 2, 3, 4, "u", None)
    store = SQLiteStore(db)
    await store.open()
    await store.create_room(RoomRecord(room_id="r", jurisdiction="eu"))
    await store.commit(
        "r",
        RoomWrites(
            version=3,
            connected_clients=frozenset({"c"}),
            clients={"c": client},
            deleted_clients={"old": "u"},
            entries={"k": Entry(3, False, b"[1]")},
        ),
    )
    before = await store.load_room("r")
    await store.close()

    reopened = SQLiteStore(db)
    await reopened.open()
    assert await reopened.get_room("r") == RoomRecord(room_id="r", jurisdiction="eu")
    assert await reopened.load_room("r") == before
    assert await reopened.client_tombstones("r") == {"old": "u"}
    await reopened.close()


async def test_the_file_is_in_wal_mode(sqlite_store: SQLiteStore, db: Path) -> None:
    assert pragma(db, "journal_mode") == "wal"


async def test_parent_directories_of_the_file_are_created(
    sqlite_store: SQLiteStore, db: Path
) -> None:
    assert db.is_file()


@pytest.mark.parametrize("path", ["", ":memory:", "file::memory:?cache=shared"])
def test_a_path_that_is_not_a_file_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="needs a file path"):
        SQLiteStore(path)


async def test_a_file_that_cannot_be_opened_raises_storage_error(tmp_path: Path) -> None:
    (tmp_path / "garbage.db").write_bytes(b"this is not a SQLite file" * 100)
    store = SQLiteStore(tmp_path / "garbage.db")
    with pytest.raises(StorageError, match=r"garbage\.db"):
        await store.open()
    with pytest.raises(StorageError, match="closed"):
        await store.load_room("r")


async def test_close_lets_queued_commits_finish(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    tasks = [asyncio.create_task(store.commit(f"r{n}", RoomWrites(version=n))) for n in range(20)]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*tasks)
    reopened = SQLiteStore(db)
    await reopened.open()
    assert [(await reopened.load_room(f"r{n}")).version for n in range(20)] == list(range(20))
    await reopened.close()


# ---------------------------------------------------------------------- schema


def test_there_is_one_migration_per_schema_version() -> None:
    assert len(MIGRATIONS) == SCHEMA_VERSION


async def test_the_file_records_its_schema_version_and_application(
    sqlite_store: SQLiteStore, db: Path
) -> None:
    assert pragma(db, "user_version") == SCHEMA_VERSION
    assert pragma(db, "application_id") == APPLICATION_ID


async def test_a_file_with_a_newer_schema_version_is_refused_with_a_clear_error(
    db: Path,
) -> None:
    store = SQLiteStore(db)
    await store.open()
    await store.close()
    set_pragma(db, "user_version", SCHEMA_VERSION + 1)
    with pytest.raises(
        StorageError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade reflectd"
    ):
        await SQLiteStore(db).open()
    assert pragma(db, "user_version") == SCHEMA_VERSION + 1


async def test_a_file_of_another_application_is_refused(db: Path) -> None:
    db.parent.mkdir()
    set_pragma(db, "user_version", 1)
    with pytest.raises(StorageError, match="not a reflectd database"):
        await SQLiteStore(db).open()


async def test_an_empty_file_is_migrated_to_the_current_schema(db: Path) -> None:
    db.parent.mkdir()
    sqlite3.connect(db).close()
    store = SQLiteStore(db)
    await store.open()
    await store.commit("r", RoomWrites(version=1))
    await store.close()
    assert pragma(db, "user_version") == SCHEMA_VERSION


async def test_a_file_from_before_created_times_is_migrated_keeping_its_rooms_without_one(
    db: Path,
) -> None:
    adds_created = next(
        i for i, step in enumerate(MIGRATIONS) if any("ADD COLUMN created_ms" in s for s in step)
    )
    db.parent.mkdir()
    conn = sqlite3.connect(db, isolation_level=None)
    for step in MIGRATIONS[:adds_created]:
        for statement in step:
            conn.execute(statement)
    conn.execute("INSERT INTO rooms VALUES ('old', 'eu', 'closed')")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {adds_created}")
    conn.close()
    store = SQLiteStore(db)
    await store.open()
    try:
        assert await store.get_room("old") == RoomRecord("old", "eu", "closed", created_ms=None)
        await store.create_room(RoomRecord("new", created_ms=5))
        assert [r.created_ms for r in await store.list_rooms(limit=10)] == [5, None]
    finally:
        await store.close()
    assert pragma(db, "user_version") == SCHEMA_VERSION


# ---------------------------------------------------------------------- group commit


async def test_queued_commits_share_one_transaction(
    sqlite_store: SQLiteStore, faults: Faults
) -> None:
    holder = await hold_writer(sqlite_store, faults)
    commits = [sqlite_store.commit(f"room-{n}", RoomWrites(version=n)) for n in range(50)]
    gathered = asyncio.gather(*commits)
    await asyncio.sleep(0.05)
    faults.release()
    await holder
    await gathered
    assert faults.calls["before_commit"] == 2  # the holder's group, then all 50 at once
    assert [(await sqlite_store.load_room(f"room-{n}")).version for n in range(50)] == list(
        range(50)
    )


async def test_a_commit_failing_in_a_group_fails_alone(
    sqlite_store: SQLiteStore, faults: Faults
) -> None:
    holder = await hold_writer(sqlite_store, faults)
    faults.fail_at, faults.fail_on_call = "after_entries", 3  # the holder's is call 1
    results = asyncio.gather(
        *(sqlite_store.commit(room_id, RoomWrites(version=7)) for room_id in ["a", "bad", "c"]),
        return_exceptions=True,
    )
    await asyncio.sleep(0.05)
    faults.release()
    await holder
    a, bad, c = await results
    assert (a, c) == (None, None)
    assert isinstance(bad, StorageError)
    assert "commit to room 'bad'" in str(bad)
    assert faults.calls["before_commit"] == 2
    versions = [(await sqlite_store.load_room(r)).version for r in ["a", "bad", "c"]]
    assert versions == [7, None, 7]


async def test_a_failing_transaction_commit_fails_every_commit_of_the_group(
    sqlite_store: SQLiteStore, faults: Faults
) -> None:
    holder = await hold_writer(sqlite_store, faults)
    faults.fail_at, faults.fail_on_call = "before_commit", 2
    results = asyncio.gather(
        sqlite_store.commit("a", RoomWrites(version=1)),
        sqlite_store.create_room(RoomRecord(room_id="a")),
        return_exceptions=True,
    )
    await asyncio.sleep(0.05)
    faults.release()
    await holder
    assert all(isinstance(result, StorageError) for result in await results)
    assert (await sqlite_store.load_room("a")).version is None
    assert await sqlite_store.get_room("a") is None
    assert (await sqlite_store.load_room("holder")).version == 1


async def test_a_cancelled_commit_that_has_not_started_is_not_applied(
    sqlite_store: SQLiteStore, faults: Faults
) -> None:
    holder = await hold_writer(sqlite_store, faults)
    cancelled = asyncio.create_task(sqlite_store.commit("r", RoomWrites(version=1)))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    faults.release()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert (await sqlite_store.load_room("r")).version is None


async def test_a_read_sees_every_write_queued_before_it(
    sqlite_store: SQLiteStore, faults: Faults
) -> None:
    holder = await hold_writer(sqlite_store, faults)
    commit = asyncio.create_task(sqlite_store.commit("r", RoomWrites(version=4)))
    load = asyncio.create_task(sqlite_store.load_room("r"))
    await asyncio.sleep(0.01)
    faults.release()
    await holder
    await commit
    assert (await load).version == 4

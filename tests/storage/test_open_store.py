"""``open_store``: the forms of ``--db``."""

from __future__ import annotations

from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from reflectd.errors import DatabaseNotFound, StorageError
from reflectd.storage import MemoryStore, SQLiteStore, open_store

from .conftest import POSTGRES_URL, drop_schema, new_schema, require_postgres

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("db", ["memory://", "memory:"])
async def test_memory_url_opens_a_memory_store(db: str) -> None:
    store = await open_store(db)
    assert isinstance(store, MemoryStore)
    assert await store.list_rooms(limit=1) == []
    await store.close()


@pytest.mark.parametrize("form", ["path", "sqlite_url"])
async def test_a_path_or_sqlite_url_opens_a_sqlite_store_on_that_file(
    tmp_path: Path, form: str
) -> None:
    path = tmp_path / "sub" / "reflectd.db"
    store = await open_store(path if form == "path" else f"sqlite:///{path}")
    assert isinstance(store, SQLiteStore)
    assert store.path == path
    assert path.is_file()
    await store.close()


async def test_a_relative_sqlite_url_names_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///data/reflectd.db")
    assert isinstance(store, SQLiteStore)
    assert store.path == Path("data/reflectd.db")
    await store.close()
    assert (tmp_path / "data" / "reflectd.db").is_file()


@pytest.mark.parametrize(
    "db", ["mysql://localhost/reflectd", "sqlite://", "sqlite:///", "sqlite:data.db"]
)
async def test_an_unsupported_db_is_refused_with_the_forms_it_accepts(db: str) -> None:
    with pytest.raises(
        ValueError, match="expected a file path, sqlite:///path, memory:// or postgresql://"
    ):
        await open_store(db)


# ------------------------------------------------------------------ create=False (admin commands)


async def test_without_create_a_missing_sqlite_file_is_not_found_and_nothing_is_made(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no" / "x.db"
    with pytest.raises(DatabaseNotFound, match=f"no SQLite database at {missing}"):
        await open_store(missing, create=False)
    assert not (tmp_path / "no").exists()
    made = await open_store(missing)  # as the server opens it
    await made.close()
    store = await open_store(missing, create=False)
    await store.close()


async def test_a_folder_is_not_a_sqlite_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a folder, not a SQLite database file"):
        await open_store(tmp_path)


async def test_without_create_memory_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing is kept"):
        await open_store("memory://", create=False)


@pytest.mark.postgres
async def test_without_create_a_missing_postgresql_schema_is_not_found_and_not_made() -> None:
    await require_postgres()
    schema = new_schema()
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}schema={schema}"
    try:
        with pytest.raises(DatabaseNotFound, match=f"no reflectd schema '{schema}'"):
            await open_store(url, create=False)
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            assert not await conn.fetchval(
                "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema
            )
        finally:
            await conn.close()
        made = await open_store(url)
        await made.close()
        store = await open_store(url, create=False)
        await store.close()
    finally:
        await drop_schema(schema)

"""``open_store``: the forms of ``--db``."""

from __future__ import annotations

from pathlib import Path

import pytest

from reflectd.storage import MemoryStore, SQLiteStore, open_store

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

"""Storage backends: a ``Store`` protocol with memory and SQLite implementations."""

from __future__ import annotations

import os

from reflectd.storage.base import Backend, Store
from reflectd.storage.memory import MemoryStore
from reflectd.storage.sqlite import SQLiteStore

__all__ = ["Backend", "MemoryStore", "SQLiteStore", "Store", "open_store"]

_SQLITE_PREFIX = "sqlite:///"


async def open_store(db: str | os.PathLike[str]) -> Backend:
    """Create and open the store named by ``--db``.

    ``db`` is a SQLite file path or ``sqlite:///path`` (``sqlite:////abs/path`` for an absolute
    path), or ``memory://`` (also ``memory:``) for a store kept only in this process.
    """
    store = _store_for(os.fspath(db))
    await store.open()
    return store


def _store_for(db: str) -> Backend:
    if db in ("memory://", "memory:"):
        return MemoryStore()
    if db.startswith(_SQLITE_PREFIX) and len(db) > len(_SQLITE_PREFIX):
        return SQLiteStore(db[len(_SQLITE_PREFIX) :])
    if "://" in db or db.startswith("sqlite:"):
        raise ValueError(
            f"unsupported --db {db!r}: expected a file path, sqlite:///path or memory://"
        )
    return SQLiteStore(db)

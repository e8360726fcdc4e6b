"""Storage backends: a ``Store`` protocol with memory, SQLite and PostgreSQL implementations."""

from __future__ import annotations

import os

from reflectd.storage.base import Backend, Store
from reflectd.storage.memory import MemoryStore
from reflectd.storage.postgres import PostgresStore
from reflectd.storage.sqlite import SQLiteStore

__all__ = [
    "Backend",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "Store",
    "open_store",
    "sqlite_file",
]

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")


async def open_store(db: str | os.PathLike[str], *, create: bool = True) -> Backend:
    """Create and open the store named by ``--db``.

    ``db`` is a SQLite file path or ``sqlite:///path`` (``sqlite:////abs/path`` for an absolute
    path), ``memory://`` (also ``memory:``) for a store kept only in this process, or a
    PostgreSQL URL ``postgresql://user@host:port/database`` (also ``postgres://``; add
    ``?schema=NAME`` to use a schema other than ``reflectd``).

    Without ``create``, the database must exist already: a missing SQLite file or PostgreSQL
    schema raises ``DatabaseNotFound`` (and ``memory://``, always new, ``ValueError``).
    """
    store = _store_for(os.fspath(db), create=create)
    await store.open()
    return store


def sqlite_file(db: str) -> str | None:
    """The file of a SQLite ``--db``; None for ``memory://`` or PostgreSQL. ``ValueError``
    for a ``--db`` of no kind reflectd knows."""
    if db in ("memory://", "memory:") or db.startswith(_POSTGRES_PREFIXES):
        return None
    if db.startswith(_SQLITE_PREFIX) and len(db) > len(_SQLITE_PREFIX):
        return db[len(_SQLITE_PREFIX) :]
    if "://" in db or db.startswith("sqlite:"):
        raise ValueError(
            f"unsupported --db {db!r}: expected a file path, sqlite:///path, memory:// or"
            " postgresql://user@host/database"
        )
    return db


def _store_for(db: str, *, create: bool) -> Backend:
    path = sqlite_file(db)
    if path is not None:
        return SQLiteStore(path, create=create)
    if db.startswith(_POSTGRES_PREFIXES):
        return PostgresStore(db, create=create)
    if not create:
        raise ValueError(f"--db {db} is a new, empty store that nothing is kept in")
    return MemoryStore()

"""Fixtures for the storage tests: every contract test runs against each backend.

The "postgres" backend runs against the PostgreSQL server at ``REFLECTD_TEST_POSTGRES_URL``
(default ``postgresql://postgres@127.0.0.1:5432/test``), each test in a fresh schema dropped at
teardown. If that server is unreachable, those tests are skipped, or fail if
``REFLECTD_REQUIRE_POSTGRES=1`` (as in CI).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from reflectd.storage import MemoryStore, PostgresStore, SQLiteStore
from reflectd.storage.migrations.postgres import quote_ident

#: the backends of the contract suite
BACKENDS = ["memory", "sqlite", "postgres"]

AnyStore = MemoryStore | SQLiteStore | PostgresStore

POSTGRES_URL = os.environ.get(
    "REFLECTD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_postgres_problem: list[str | None] = []


async def require_postgres() -> None:
    """Skip the calling test if PostgreSQL is unreachable (fail it under
    ``REFLECTD_REQUIRE_POSTGRES=1``). The server is probed once per session."""
    if not _postgres_problem:
        try:
            conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        except Exception as exc:
            _postgres_problem.append(f"{type(exc).__name__}: {exc}")
        else:
            await conn.close()
            _postgres_problem.append(None)
    problem = _postgres_problem[0]
    if problem is None:
        return
    message = (
        f"PostgreSQL not reachable at {POSTGRES_URL}; set REFLECTD_TEST_POSTGRES_URL ({problem})"
    )
    if os.environ.get("REFLECTD_REQUIRE_POSTGRES") == "1":
        pytest.fail(message + " and REFLECTD_REQUIRE_POSTGRES=1", pytrace=False)
    pytest.skip(message)


def new_schema() -> str:
    """A fresh schema name for one test."""
    return f"reflectd_test_{uuid.uuid4().hex[:16]}"


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A schema name no other test uses, dropped (if it was created) at teardown; skips the
    test if PostgreSQL is unreachable."""
    await require_postgres()
    schema = new_schema()
    yield schema
    await drop_schema(schema)


class InjectedFault(Exception):
    """Raised by ``Faults`` at the armed point."""


class Faults:
    """A store's fault hook: counts each point it is called at and raises at ``fail_at``.

    ``fail_on_call`` picks which call of that point raises (1 = the first; None = every one).
    ``block_at`` makes the first call of that point wait for ``release()``, holding the SQLite
    writer thread so that further jobs queue up behind it.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.fail_at: str | None = None
        self.fail_on_call: int | None = None
        self.block_at: str | None = None
        self.blocked = threading.Event()
        self._released = threading.Event()

    def __call__(self, point: str) -> None:
        self.calls[point] += 1
        if point == self.block_at and not self.blocked.is_set():
            self.blocked.set()
            assert self._released.wait(timeout=10), "Faults.release() was never called"
        if point == self.fail_at and self.fail_on_call in (None, self.calls[point]):
            raise InjectedFault(f"injected at {point}")

    def release(self) -> None:
        self._released.set()


def make_store(
    backend: str, path: Path, faults: Faults | None = None, *, schema: str | None = None
) -> AnyStore:
    """A new store of ``backend``: SQLite in ``path``, PostgreSQL in ``schema`` (a fresh
    name by default: the caller drops it)."""
    if backend == "memory":
        return MemoryStore(fault=faults)
    if backend == "postgres":
        return PostgresStore(POSTGRES_URL, schema=schema or new_schema(), fault=faults)
    return SQLiteStore(path, fault=faults)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture(
    params=[pytest.param(b, marks=pytest.mark.postgres) if b == "postgres" else b for b in BACKENDS]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, faults: Faults
) -> AsyncIterator[AnyStore]:
    """An open store of each backend, its fault hook being the ``faults`` fixture."""
    backend: str = request.param
    if backend == "postgres":
        await require_postgres()
    schema = new_schema()
    store = make_store(backend, tmp_path / "reflectd.db", faults, schema=schema)
    try:
        await store.open()
        yield store
        faults.release()
        await store.close()
    finally:
        if backend == "postgres":
            await drop_schema(schema)

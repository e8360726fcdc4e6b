"""Fixtures for the storage tests: every contract test runs against each backend."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reflectd.storage import MemoryStore, SQLiteStore

#: the backends of the contract suite
BACKENDS = ["memory", "sqlite"]

AnyStore = MemoryStore | SQLiteStore


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


def make_store(backend: str, path: Path, faults: Faults | None = None) -> AnyStore:
    if backend == "memory":
        return MemoryStore(fault=faults)
    return SQLiteStore(path, fault=faults)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, faults: Faults
) -> AsyncIterator[AnyStore]:
    """An open store of each backend, its fault hook being the ``faults`` fixture."""
    store = make_store(request.param, tmp_path / "reflectd.db", faults)
    await store.open()
    yield store
    faults.release()
    await store.close()

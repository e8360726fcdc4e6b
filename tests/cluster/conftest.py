"""Fixtures for the cluster tests: several ``reflectd serve`` processes on one PostgreSQL.

Each test gets a fresh schema in the PostgreSQL at ``REFLECTD_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), dropped at teardown; without that server the
tests skip, or fail under ``REFLECTD_REQUIRE_POSTGRES=1``. Nodes serve the interop app
(``tests/interop/app.py:app``) with short leases, and the real client drives them.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from interop.conftest import node_ready
from interop.harness import NodeClients, ServerProcess, ServerStartError

from .nodes import API_KEY, LEASE_MS, Cluster

__all__ = ["node_ready"]

POSTGRES_URL = os.environ.get(
    "REFLECTD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_problem: list[str | None] = []


def _probe() -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        await conn.close()

    if not _problem:
        try:
            asyncio.run(probe())
        except Exception as exc:
            _problem.append(f"{type(exc).__name__}: {exc}")
        else:
            _problem.append(None)
    return _problem[0]


def _drop_schema(schema: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A fresh schema for one test (dropped afterwards); skips without PostgreSQL."""
    problem = _probe()
    if problem is not None:
        message = (
            f"PostgreSQL not reachable at {POSTGRES_URL}; set REFLECTD_TEST_POSTGRES_URL "
            f"({problem})"
        )
        if os.environ.get("REFLECTD_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " and REFLECTD_REQUIRE_POSTGRES=1", pytrace=False)
        pytest.skip(message)
    schema = f"reflectd_cluster_{uuid.uuid4().hex[:12]}"
    yield schema
    _drop_schema(schema)


@pytest.fixture
def cluster(node_ready: str, postgres_schema: str, tmp_path: Path) -> Iterator[Cluster]:
    """Nodes on one schema, started with ``cluster.start(n)``; stopped at teardown."""
    sep = "&" if "?" in POSTGRES_URL else "?"
    nodes = Cluster(
        db=f"{POSTGRES_URL}{sep}schema={postgres_schema}", base=tmp_path, lease_ms=LEASE_MS
    )
    try:
        yield nodes
    finally:
        nodes.stop_all()


@pytest.fixture
def clients(node_ready: str, tmp_path: Path) -> Iterator[NodeClients]:
    driver = NodeClients(log_path=tmp_path / "driver.log")
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture
def room(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:50]
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def record_figure() -> Callable[[str], None]:
    def record(line: str) -> None:
        _figures.append(line)
        print(line)

    return record


_figures: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _figures:
        terminalreporter.section("cluster figures")
        for line in _figures:
            terminalreporter.write_line(line)


__all__ += ["API_KEY", "ServerProcess", "ServerStartError"]

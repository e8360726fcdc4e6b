"""The rooms list with 100,000 rooms: paging and prefix search run on the server (an indexed
range read per page), so each page answers in milliseconds, however many rooms there are.

The rooms are written straight into the database (one bulk insert), as a server that has
run for a long time would hold them; the REST API then reads them. The bound per page is
generous (loaded CI machines): a server that read every room for each page would still be
far slower than it at this size.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from reflectd.storage.migrations.postgres import quote_ident
from storage.conftest import POSTGRES_URL, drop_schema, new_schema, require_postgres

from .conftest import Rest, in_process

pytestmark = pytest.mark.anyio

ROOMS = 100_000
#: the slowest a page of the list may answer (s)
MAX_PAGE_S = 0.5
CREATED_MS = 1_765_000_000_000


def _rows() -> list[tuple[str, str, str, int]]:
    return [(f"room-{n:06d}", "", "open", CREATED_MS + n) for n in range(ROOMS)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def many(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rest]:
    """A server whose database holds ``ROOMS`` rooms."""
    if request.param == "sqlite":
        path = tmp_path / "reflectd.sqlite3"
        async with in_process(str(path)) as rest:
            with sqlite3.connect(path) as db:
                db.executemany("INSERT INTO rooms VALUES (?, ?, ?, ?)", _rows())
            yield rest
        return
    await require_postgres()
    schema = new_schema()
    try:
        async with in_process(f"{POSTGRES_URL}?schema={schema}") as rest:
            conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
            try:
                await conn.copy_records_to_table(
                    "rooms", schema_name=schema, records=_rows(), timeout=60
                )
                await conn.execute(f"ANALYZE {quote_ident(schema)}.rooms")
            finally:
                await conn.close()
            yield rest
    finally:
        await drop_schema(schema)


async def _timed(rest: Rest, **params: str) -> dict[str, object]:
    started = time.monotonic()
    result = await rest.ok("apps", "GET", "rooms", params)
    took = time.monotonic() - started
    assert took < MAX_PAGE_S, f"a page of the list took {took:.3f} s ({params})"
    assert isinstance(result, dict)
    return result


def _names(numbers: range) -> list[str]:
    return [f"room-{n:06d}" for n in numbers]


def _ids(result: dict[str, object]) -> list[str]:
    results = result["results"]
    assert isinstance(results, list)
    return [room["roomID"] for room in results]


async def test_pages_of_100000_rooms_answer_quickly_from_start_middle_and_end(
    many: Rest,
) -> None:
    first = await _timed(many, maxResults="50")
    assert _ids(first) == _names(range(50))
    assert first["more"] is True
    assert first["results"][0]["createdMs"] == CREATED_MS  # type: ignore[index]
    middle = await _timed(many, startAfterKey="room-049999", maxResults="1000")
    assert _ids(middle) == _names(range(50_000, 51_000))
    last = await _timed(many, startAfterKey="room-099989", maxResults="50")
    assert _ids(last) == _names(range(99_990, ROOMS))
    assert last["more"] is False


async def test_a_prefix_search_among_100000_rooms_answers_quickly(many: Rest) -> None:
    """What the dashboard's search asks: a page from the prefix, the next after its last."""
    page = await _timed(many, startKey="room-0421", maxResults="51")
    assert _ids(page) == _names(range(42_100, 42_151))
    page = await _timed(many, startAfterKey="room-042149", maxResults="51")
    assert _ids(page)[:50] == _names(range(42_150, 42_200))
    assert not _ids(page)[50].startswith("room-0421")  # the prefix ends there
    looked_up = await _timed(many, roomID="room-099999")
    assert _ids(looked_up) == ["room-099999"]

"""Listing thousands of rooms page by page: every room exactly once, in lexicographic order."""

from __future__ import annotations

import asyncio
import random
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reflectd.engine.records import RoomRecord
from reflectd.server.rest.commands import MAX_LIST_RESULTS

from .conftest import SHAPES, in_process

ROOM_ID_CHARS = string.ascii_letters + string.digits + "_/-"
#: IDs whose order is easy to get wrong: prefixes, and '-' < '/' < digits < upper < '_' < lower
TRICKY = ["a", "a-", "a-b", "a/", "a/b", "a0", "aA", "a_", "aa", "ab", "-", "/", "_", "Z", "z"]

room_ids = st.text(alphabet=ROOM_ID_CHARS, min_size=1, max_size=12)
page_sizes = st.one_of(st.none(), st.integers(min_value=1, max_value=1500))


async def _scenario(
    db: str, shape: str, ids: list[str], sizes: list[int | None], statuses: list[str]
) -> None:
    async with in_process(db) as rest:
        records = [
            RoomRecord(room_id=room_id, status=statuses[i % len(statuses)])  # type: ignore[arg-type]
            for i, room_id in enumerate(ids)
        ]
        created = await asyncio.gather(*(rest.store.create_room(r) for r in records))
        assert all(created)
        found: list[str] = []
        after: str | None = None
        for page in range(len(ids) + 2):
            size = sizes[page % len(sizes)]
            query = {} if after is None else {"startAfterKey": after}
            if size is not None:
                query["maxResults"] = str(size)
            result = await rest.ok(shape, "GET", "rooms", query)
            limit = MAX_LIST_RESULTS if size is None else min(size, MAX_LIST_RESULTS)
            ids_of_page = [r["roomID"] for r in result["results"]]
            assert result["numResults"] == len(ids_of_page) <= limit
            expected_status = {r.room_id: r.status for r in records}
            for room in result["results"]:
                assert room["status"] == expected_status[room["roomID"]]
            found += ids_of_page
            if not result["more"]:
                break
            assert len(ids_of_page) == limit
            after = ids_of_page[-1]
        else:
            raise AssertionError("paging did not end")
        assert found == sorted(ids)
        assert len(set(found)) == len(found)


@pytest.mark.parametrize("shape", SHAPES)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    extra=st.lists(room_ids, max_size=30),
    bulk=st.integers(min_value=0, max_value=3000),
    seed=st.integers(min_value=0, max_value=2**32),
    sizes=st.lists(page_sizes, min_size=1, max_size=8),
    statuses=st.lists(st.sampled_from(["open", "closed", "deleted"]), min_size=1, max_size=3),
    tricky=st.booleans(),
)
def test_paging_finds_every_room_once_in_order(
    shape: str,
    extra: list[str],
    bulk: int,
    seed: int,
    sizes: list[int | None],
    statuses: list[str],
    tricky: bool,
) -> None:
    rng = random.Random(seed)
    ids = set(extra) | (set(TRICKY) if tricky else set())
    while len(ids) < bulk:
        ids.add("".join(rng.choices(ROOM_ID_CHARS, k=rng.randint(1, 16))))
    asyncio.run(
        _scenario("memory://", shape, sorted(ids, key=lambda _: rng.random()), sizes, statuses)
    )


def test_paging_on_sqlite(tmp_path: Path) -> None:
    rng = random.Random(7)
    ids = set(TRICKY)
    while len(ids) < 2500:
        ids.add("".join(rng.choices(ROOM_ID_CHARS, k=rng.randint(1, 16))))
    db = str(tmp_path / "rooms.sqlite3")
    asyncio.run(_scenario(db, "apps", list(ids), [None, 1, 333, 999, 1000, 1001], ["open"]))


def test_list_without_max_results_is_capped_at_1000() -> None:
    async def main() -> None:
        async with in_process() as rest:
            for i in range(MAX_LIST_RESULTS + 1):
                await rest.store.create_room(RoomRecord(room_id=f"r{i:05}"))
            for shape in SHAPES:
                result = await rest.ok(shape, "GET", "rooms")
                assert result["numResults"] == MAX_LIST_RESULTS and result["more"] is True
                result = await rest.ok(shape, "GET", "rooms", {"maxResults": "100000"})
                assert result["numResults"] == MAX_LIST_RESULTS and result["more"] is True
                result = await rest.ok(shape, "GET", "rooms", {"startKey": "r00001"})
                assert result["numResults"] == MAX_LIST_RESULTS and result["more"] is False
                many = [("roomID", f"r{i:05}") for i in range(1001)]
                result = await rest.ok(shape, "GET", "rooms", many)
                assert result["numResults"] == MAX_LIST_RESULTS and result["more"] is True

    asyncio.run(main())

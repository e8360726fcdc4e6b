"""Crash safety: kill -9 of `reflectd serve` under real clients, again and again; nothing
confirmed is lost and the data is exactly what the applied mutations make (see crash.py).
On SQLite, and on PostgreSQL in a fresh schema (the cluster tests' ``postgres_schema``
fixture: skipped without PostgreSQL, failed under ``REFLECTD_REQUIRE_POSTGRES=1``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster.conftest import POSTGRES_URL, postgres_schema

from .crash import CrashScenario, Op, Stored
from .crash_storage import schema_url

__all__ = ["postgres_schema"]  # the cluster tests' fixture: a fresh schema, dropped afterwards

pytestmark = pytest.mark.interop

#: CI: enough kill points to hit every phase of a round several times, in about 2 minutes
KILLS = int(os.environ.get("REFLECTD_CRASH_KILLS", "30"))


def test_kill_9_under_load_loses_nothing_confirmed(node_ready: str, tmp_path: Path) -> None:
    _run(tmp_path)


@pytest.mark.postgres
def test_kill_9_under_load_on_postgresql_loses_nothing_confirmed(
    node_ready: str, postgres_schema: str, tmp_path: Path
) -> None:
    _run(tmp_path, postgres=schema_url(POSTGRES_URL, postgres_schema))


def _run(tmp_path: Path, *, postgres: str | None = None) -> None:
    seed = os.environ.get("REFLECTD_CRASH_SEED")
    scenario = CrashScenario(
        tmp_path,
        kills=KILLS,
        postgres=postgres,
        seed=None if seed is None else int(seed),
        progress=print,
    )
    print(f"crash scenario seed {scenario.seed} (REFLECTD_CRASH_SEED to repeat)")
    report = scenario.run()
    for line in report.lines():
        print(line)
    assert report.kills == KILLS
    assert report.kills_under_load >= KILLS // 2
    assert report.confirmed_at_kills > 0


def _check(tmp_path: Path, lmid: int, count: int, log: list[str]) -> None:
    """A kill point in miniature: c00 made 3 mutations, all confirmed before the kill."""
    scenario = CrashScenario(tmp_path, kills=1, rooms=1, clients_per_room=1, seed=1)
    room = scenario.rooms[0]
    ops = [
        Op("c00", 1, "increment", {"key": "count", "delta": 2}, id=1),
        Op("c00", 2, "appendToList", {"key": "log", "item": "c00-2"}, id=2),
        Op("c00", 3, "appendToList", {"key": "log", "item": "c00-3"}, id=3),
    ]
    for op in ops:
        scenario._add(op)
    scenario._check_point("test", ops, Stored({"c00": lmid}, {room: count}, {room: log}))


@pytest.mark.parametrize(
    ("lmid", "count", "log", "problem"),
    [
        (2, 2, ["c00-2"], "LOST"),
        (3, 4, ["c00-2", "c00-3"], "count 4"),
        (3, 2, ["c00-2", "c00-3", "c00-3"], "appears twice"),
        (3, 2, ["c00-3", "c00-2"], "out of order"),
        (3, 2, ["c00-2"], "missing"),
        (3, 2, ["c00-2", "c00-3", "c01-1"], "other clients"),
    ],
)
def test_the_crash_checks_catch_lost_duplicated_and_reordered_mutations(
    tmp_path: Path, lmid: int, count: int, log: list[str], problem: str
) -> None:
    _check(tmp_path, 3, 2, ["c00-2", "c00-3"])  # the good case
    with pytest.raises(AssertionError, match=problem):
        _check(tmp_path, lmid, count, log)

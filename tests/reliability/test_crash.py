"""Crash safety: kill -9 of `reflectd serve` under real clients, again and again; nothing
confirmed is lost and the data is exactly what the applied mutations make (see crash.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .crash import CrashScenario

pytestmark = pytest.mark.interop

#: CI: enough kill points to hit every phase of a round several times, in about 2 minutes
KILLS = int(os.environ.get("REFLECTD_CRASH_KILLS", "30"))


def test_kill_9_under_load_loses_nothing_confirmed(node_ready: str, tmp_path: Path) -> None:
    seed = os.environ.get("REFLECTD_CRASH_SEED")
    scenario = CrashScenario(
        tmp_path, kills=KILLS, seed=None if seed is None else int(seed), progress=print
    )
    print(f"crash scenario seed {scenario.seed} (REFLECTD_CRASH_SEED to repeat)")
    report = scenario.run()
    for line in report.lines():
        print(line)
    assert report.kills == KILLS
    assert report.kills_under_load >= KILLS // 2
    assert report.confirmed_at_kills > 0

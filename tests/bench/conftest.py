"""Fixtures for the benchmark tool's own tests: a reflectd process serving bench/app.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.servers import Target, free_port, reflectd_target  # noqa: E402


@pytest.fixture(scope="session")
def reflectd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """``reflectd serve bench/app.py:app`` on a free port, with its own SQLite file."""
    target = reflectd_target(tmp_path_factory.mktemp("bench-server"), free_port())
    target.start(timeout=30)
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture
def fake_runs() -> list[dict[str, Any]]:
    """Three repetitions of the closed loop on both targets, and one failed run."""
    runs = []
    for rep, (ours, theirs) in enumerate([(20.0, 100.0), (30.0, 140.0), (25.0, 120.0)], 1):
        for target, p50 in (("reflectd", ours), ("original", theirs)):
            samples = [p50 - 1, p50, p50 + 1]
            runs.append({"target": target, "workload": "closed", "rep": rep, "result": {
                "ok": True, "roundTrip": {"p50": p50, "p99": p50 + 1},
                "visibility": {"p50": p50, "p99": p50},
                "samples": {"roundTripMs": samples, "visibilityMs": samples},
            }})  # fmt: skip
    runs.append({"target": "original", "workload": "closed", "rep": 4,
                 "result": {"ok": False, "error": "boom"}})  # fmt: skip
    return runs

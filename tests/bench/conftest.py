"""Fixtures for the benchmark tool's own tests: a reflectd process serving bench/app.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.run import Target, free_port, reflectd_target  # noqa: E402


@pytest.fixture(scope="session")
def reflectd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """``reflectd serve bench/app.py:app`` on a free port, with its own SQLite file."""
    target = reflectd_target(tmp_path_factory.mktemp("bench-server"), free_port())
    target.start(timeout=30)
    try:
        yield target
    finally:
        target.stop()

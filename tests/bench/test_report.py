"""bench/report.py: the chart of the latency distributions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import draw_chart


def test_chart_is_a_png(tmp_path: Path, fake_runs: list[dict[str, Any]]) -> None:
    path = tmp_path / "chart.png"
    assert draw_chart(fake_runs, ["reflectd", "original"], path, lambda _: None)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""bench/summary.py: medians over repetitions, ratios between targets, goals."""

from __future__ import annotations

from typing import Any

import pytest

from bench.report import markdown_table, table_rows
from bench.sizes import Sizes
from bench.summary import check_goals, summarize_runs


def test_summary_takes_medians_and_ratios_and_skips_failed_runs(
    fake_runs: list[dict[str, Any]],
) -> None:
    rows = summarize_runs(fake_runs, ["reflectd", "original"])
    row = next(r for r in rows if r["metric"] == "rtt_p50")
    assert row["values"] == {"reflectd": [20.0, 30.0, 25.0], "original": [100.0, 140.0, 120.0]}
    assert row["median"] == {"reflectd": 25.0, "original": 120.0}
    assert row["ratio"] == pytest.approx(25 / 120, abs=1e-3)
    goals = check_goals(rows, vars(Sizes()))
    assert goals == [
        {"goal": "closed loop round trip p50 <= 0.3x the original", "value": row["ratio"],
         "met": True}
    ]  # fmt: skip
    table = markdown_table(["a", "b"], table_rows(rows, ["reflectd", "original"])[:1])
    assert "25.0 (n=3)" in table and "0.21x" in table

"""bench/run.py: its command line and the JSON document it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run
from bench.realclient import node_available


def test_help() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--help"],
        cwd=run.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0
    assert "--side-by-side" in proc.stdout and "--reference-dir" in proc.stdout


def test_missing_reference_dir_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run.main(
        ["--side-by-side", "--targets", "original", "--reference-dir", str(tmp_path), "--no-chart",
         "--out", str(tmp_path / "r.json")]
    )  # fmt: skip
    assert code == 2
    assert "start-reference-server.mjs" in capsys.readouterr().err


def test_side_by_side_reflectd_only_writes_the_documented_json(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    code = run.main(
        ["--side-by-side", "--targets", "reflectd", "--quick", "-n", "2",
         "--workloads", "proto-rooms,idle", "--set", "idle_connections=10",
         "--no-chart", "--plain", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "reflectd-bench/1"
    assert set(doc) >= {"started", "durationS", "machine", "config", "runs", "summary", "goals"}
    assert doc["config"]["targets"] == ["reflectd"]
    assert doc["config"]["sizes"]["idle_connections"] == 10
    # proto-rooms twice, idle once (a heavy workload: --heavy-repetitions 1)
    assert [(r["workload"], r["rep"]) for r in doc["runs"]] == [
        ("proto-rooms", 1),
        ("idle", 1),
        ("proto-rooms", 2),
    ]
    for r in doc["runs"]:
        assert r["target"] == "reflectd"
        assert r["result"]["ok"]
        assert "wallS" in r["result"] and "loadavg" in r["result"]
    rows = {(row["workload"], row["metric"]): row for row in doc["summary"]}
    throughput = rows[("proto-rooms", "throughput")]
    assert len(throughput["values"]["reflectd"]) == 2
    assert throughput["median"]["reflectd"] > 0
    assert "ratio" not in throughput  # one target: nothing to compare with
    assert rows[("idle", "rss")]["unit"] == "KiB"
    goals = {g["goal"]: g for g in doc["goals"]}
    tiny = goals["protocol 100 rooms x 2 clients >= 10,000 confirmed mutations/s"]
    assert tiny["met"] is None  # --quick: not the goal's size, so not judged
    assert "proto_rooms=3" in tiny["note"]


@pytest.mark.skipif(node_available() is not None, reason=f"no Node driver: {node_available()}")
def test_side_by_side_starts_the_original_from_bench_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REFLECTD_REFERENCE_DIR", raising=False)
    out = tmp_path / "results.json"
    code = run.main(
        ["--side-by-side", "--targets", "reflectd,original", "--quick", "-n", "1",
         "--workloads", "proto-rooms,closed", "--no-chart", "--plain", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert {(r["target"], r["workload"]) for r in doc["runs"]} == {
        (t, w) for t in ("reflectd", "original") for w in ("proto-rooms", "closed")
    }
    rows = {(row["workload"], row["metric"]): row for row in doc["summary"]}
    assert rows[("proto-rooms", "throughput")]["ratio"] > 0
    assert rows[("closed", "rtt_p50")]["ratio"] > 0

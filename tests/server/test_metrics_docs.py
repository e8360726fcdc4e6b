"""docs/operations.md lists every metric, in a table generated from their declarations."""

from __future__ import annotations

import json
import re
from pathlib import Path

from reflectd.server import metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_metrics_table_of_the_docs_is_the_one_the_declarations_make() -> None:
    text = DOC.read_text()
    assert metrics.rewrite_docs(text) == text, (
        "docs/operations.md's metrics table is stale: run "
        "`.venv/bin/python -m reflectd.server.metrics docs/operations.md`"
    )


def test_every_metric_family_is_in_the_table() -> None:
    text = DOC.read_text()
    for family in metrics.REGISTRY.collect():
        if not family.name.startswith("process_"):
            assert f"`{family.name}" in text, family.name


def test_the_grafana_dashboard_queries_only_metrics_that_exist() -> None:
    dashboard = json.loads((DOC.parent / "grafana-dashboard.json").read_text())
    names = {family.name for family in metrics.REGISTRY.collect()}
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs
    for expr in exprs:
        for used in re.findall(r"\b((?:reflectd|process)_[a-z_]+)", expr):
            base = re.sub(r"_(total|bucket|count|sum)$", "", used)
            assert base in names or used in names, f"{used} in {expr!r}"

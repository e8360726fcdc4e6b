"""docs/backend.md documents every webhook event type, command, setting and metric."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import typer.main

from reflectd.cli_webhooks import webhooks
from reflectd.server import metrics
from reflectd.server.settings import WebhookSettings
from reflectd.storage.webhooks import EVENT_TYPES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "backend.md").read_text()
SECTION = DOC[DOC.index("## Webhooks") :]


def test_every_event_type_has_a_row_with_its_data() -> None:
    rows = dict(re.findall(r"^\| `([a-z.]+)` \| .*? \| (.*) \|$", SECTION, re.M))
    assert set(rows) == set(EVENT_TYPES)
    assert all("`roomID`" in data for data in rows.values())


def test_every_webhooks_command_is_documented() -> None:
    group = typer.main.get_group(webhooks)
    for name in group.commands:
        assert f"`reflectd webhooks {name}" in SECTION, name


def test_every_webhook_setting_is_documented_with_its_default() -> None:
    for f in fields(WebhookSettings):
        flag = "--" + f.name.replace("_", "-")
        assert f"| `{flag}` | {f.default} |" in SECTION, flag


def test_every_webhook_metric_is_named() -> None:
    names = [m for m in metrics.REGISTRY._names_to_collectors if m.startswith("reflectd_webhook")]
    families = {n.removesuffix("_total").removesuffix("_created") for n in names}
    families = {f for f in families if not f.endswith(("_bucket", "_count", "_sum"))}
    for family in families:
        assert f"`{family}" in SECTION, family

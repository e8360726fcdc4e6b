"""docs/server.md documents every option of ``reflectd serve`` and ``reflectd dev``, with its
environment variable, in tables generated from the settings' declarations."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import pytest
import typer.main

from reflectd.cli import cli
from reflectd.cli_settings import ProcessSettings, Settings, _declared, rewrite_docs
from reflectd.engine.handlers import EngineSettings
from reflectd.js import JsLimits
from reflectd.server.settings import Limits, ServerSettings, WebhookSettings
from reflectd.setting import setting_info

DOC = Path(__file__).resolve().parents[2] / "docs" / "server.md"


def documented_options() -> dict[str, str]:
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(--[a-z-]+)` \| `?([A-Z_]*)`? \|", DOC.read_text(), re.M)
    }


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_every_option_is_in_the_docs_table_with_its_environment_variable(command: str) -> None:
    params = typer.main.get_command(cli).commands[command].params  # type: ignore[attr-defined]
    rows = documented_options()
    options = [p for p in params if p.opts[0].startswith("--")]
    assert options
    for param in options:
        assert param.opts[0] in rows, f"{param.opts[0]} is not in docs/server.md"
        assert rows[param.opts[0]] == (param.envvar or ""), param.opts[0]


def test_the_settings_tables_of_the_docs_are_those_the_declarations_make() -> None:
    text = DOC.read_text()
    assert rewrite_docs(text) == text, (
        "docs/server.md's settings tables are stale: run "
        "`.venv/bin/python -m reflectd.cli_settings docs/server.md`"
    )


@pytest.mark.parametrize(
    "settings", [ProcessSettings, ServerSettings, Limits, WebhookSettings, EngineSettings, JsLimits]
)
def test_every_field_of_a_settings_dataclass_is_a_declared_setting(settings: type) -> None:
    for f in fields(settings):
        nested = f.default_factory
        assert setting_info(f) is not None or (callable(nested) and is_dataclass(nested)), f.name


def test_a_settings_field_declared_without_setting_is_refused() -> None:
    @dataclass
    class Undeclared:
        plain: int = 1

    with pytest.raises(TypeError, match=r"Undeclared\.plain is not declared"):
        list(_declared(Undeclared))
    assert list(_declared(Settings))

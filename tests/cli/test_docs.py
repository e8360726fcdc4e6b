"""docs/server.md documents every option of ``reflectd serve``, with its environment variable."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from reflectd.cli import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "server.md"


def test_every_serve_option_is_in_the_docs_table_with_its_environment_variable() -> None:
    serve = typer.main.get_command(cli).commands["serve"]  # type: ignore[attr-defined]
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(--[a-z-]+)` \| `?([A-Z_]*)`? \|", DOC.read_text(), re.M)
    }
    options = [p for p in serve.params if p.opts[0].startswith("--")]
    assert options
    for param in options:
        assert param.opts[0] in rows, f"{param.opts[0]} is not in docs/server.md"
        assert rows[param.opts[0]] == (param.envvar or ""), param.opts[0]

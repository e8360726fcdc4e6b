"""The route reference of docs/rest.md, rendered from the OpenAPI document.

Everything between the markers in docs/rest.md is generated; the rest is written by hand.
Regenerate it after changing a route, or check that it is current (as the tests do)::

    python -m reflectd.server.rest.markdown docs/rest.md
    python -m reflectd.server.rest.markdown --check docs/rest.md
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from reflectd.server.rest.openapi import JSON, build_openapi

COMMAND = "python -m reflectd.server.rest.markdown docs/rest.md"
#: the markers around the generated part of docs/rest.md
BEGIN_MARKER = f"<!-- BEGIN GENERATED REFERENCE: {COMMAND} -->"
END_MARKER = "<!-- END GENERATED REFERENCE -->"

#: how the reference names each shape where a line holds for some shapes only
SHAPE_LABELS = {"apps": "`/v1/apps`", "original": "`/api/v1`", "legacy": "legacy path"}


def _operations(document: JSON) -> Iterable[tuple[str, str, JSON]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


def _example_url(path: str, operation: JSON) -> str:
    query: list[tuple[str, str]] = []
    for param in operation.get("parameters", []):
        example = param["example"]
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", quote(str(example), safe=""))
        elif param["required"]:
            query.append((param["name"], str(example)))
    return "$REFLECTD_URL" + path + (f"?{urlencode(query)}" if query else "")


def _curl(method: str, path: str, operation: JSON) -> str:
    header = (
        '-H "Authorization: Basic $KEY"'
        if operation["x-shape"] == "apps"
        else '-H "x-reflect-api-key: $KEY"'
    )
    line = f'curl -X {method} "{_example_url(path, operation)}" {header}'
    if "requestBody" in operation:
        line += " -d '{}'"
    return line


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else _json(value)
    return "`" + text.replace("|", "\\|") + "`"


def _error_rows(forms: list[tuple[str, str, JSON]]) -> list[str]:
    """One row per distinct failure of a command, marked with its shapes unless all have it."""
    shapes_of: dict[tuple[str, str, str], list[str]] = {}
    for _, _, operation in forms:
        for status, response in operation["responses"].items():
            if status == "200":
                continue
            for media in response["content"].values():
                for example in media["examples"].values():
                    row = (status, example["summary"], _cell(example["value"]))
                    shapes = shapes_of.setdefault(row, [])
                    if operation["x-shape"] not in shapes:
                        shapes.append(operation["x-shape"])
    every = list(dict.fromkeys(o["x-shape"] for _, _, o in forms))
    rows = []
    for (status, when, answer), shapes in sorted(shapes_of.items(), key=lambda item: item[0][0]):
        only = ", ".join(SHAPE_LABELS[shape] for shape in shapes)
        note = "" if shapes == every else f" ({only} only)"
        when = when.replace("|", "\\|")
        rows.append(f"| {status} | {when}{note} | {answer} |")
    return rows


def _body_line(operation: JSON) -> str:
    body = operation.get("requestBody")
    if body is None:
        return "Body: none (a non-empty body is refused)."
    examples = body["content"]["application/json"]["examples"].values()
    shown = " or ".join(f"`{_json(example['value'])}`" for example in examples)
    return f"Body (required JSON): {shown}; nothing else."


def render_markdown(document: JSON) -> str:
    """The route reference of docs/rest.md, from the document."""
    by_command: dict[str, list[tuple[str, str, JSON]]] = {}
    for method, path, operation in _operations(document):
        by_command.setdefault(operation["x-command"], []).append((method, path, operation))
    lines: list[str] = []
    for forms in by_command.values():
        main = forms[0][2]
        description = main["description"].rpartition("\n\nPermission:")[0]
        lines += [f"### {main['summary']}", ""]
        for method, path, operation in forms:
            legacy = " (legacy path)" if operation["x-shape"] == "legacy" else ""
            lines.append(f"- `{method} {path}`{legacy}")
        permission = main["x-permission"]
        needed = "any valid key" if permission is None else f"`{permission}`"
        lines += ["", f"Permission: {needed}.", "", description, ""]
        query = [p for p in main.get("parameters", []) if p["in"] == "query"]
        if query:
            lines += ["| query parameter | required | meaning |", "|---|---|---|"]
            lines += [
                f"| `{p['name']}` | {'yes' if p['required'] else 'no'} | {p['description']} |"
                for p in query
            ]
            lines.append("")
        lines += [_body_line(main), ""]
        result = main["responses"]["200"]["content"]["application/json"]["example"]
        lines += ["Answer: `200`", "", "```json", json.dumps(result), "```", ""]
        lines += ["```sh"] + [_curl(m, p, o) for m, p, o in forms] + ["```", ""]
        lines += ["Errors:", ""]
        lines += ["| status | when | answer |", "|---|---|---|"]
        lines += _error_rows(forms)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def splice_markdown(text: str, reference: str) -> str:
    """``text`` (docs/rest.md) with its generated part replaced by ``reference``."""
    head, begin, rest = text.partition(BEGIN_MARKER)
    _, end, tail = rest.partition(END_MARKER)
    if not begin or not end:
        raise ValueError(f"docs/rest.md lacks the markers {BEGIN_MARKER} ... {END_MARKER}")
    return f"{head}{BEGIN_MARKER}\n\n{reference}\n{END_MARKER}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Update the route reference of docs/rest.md.")
    parser.add_argument("path", nargs="?", default="docs/rest.md", help="docs/rest.md")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if the reference is stale"
    )
    args = parser.parse_args(argv)
    path = Path(args.path)
    text = path.read_text()
    current = splice_markdown(text, render_markdown(build_openapi()))
    if current == text:
        return 0
    if args.check:
        print(f"{path} is stale: run {COMMAND}", file=sys.stderr)
        return 1
    path.write_text(current)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

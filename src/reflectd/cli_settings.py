"""The settings of ``reflectd serve`` and ``reflectd dev``, derived from their declarations.

Every setting is a field declared with ``reflectd.setting.setting`` in one of the settings
dataclasses gathered by ``Settings`` below: ``ProcessSettings`` (here), ``ServerSettings`` with
its ``Limits`` and ``EngineSettings``, and ``JsLimits``. From those fields this module derives

- the typer options of each command (``command_parameters``): ``--<name>``, with the variable
  ``REFLECTD_<NAME>``, the default, the help text and the ``--help`` panel;
- the ``Settings`` a command runs with (``settings_from_options``);
- the environment that carries them to ``reflectd dev``'s reloaded child process
  (``environment_of``, ``settings_from_environment``);
- the settings tables of docs/server.md (``settings_markdown``; ``python -m
  reflectd.cli_settings docs/server.md`` rewrites them).
"""

from __future__ import annotations

import inspect
import os
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from reflectd.js.runtime import JsLimits
from reflectd.logs import LOG_LEVELS
from reflectd.server.settings import ServerSettings
from reflectd.setting import Panel, SettingInfo, setting, setting_info

#: the environment variables' prefix
ENV_PREFIX = "REFLECTD_"
#: the key of a group's field ``metadata`` that holds the prefix of its settings' names
PREFIX = "reflectd.prefix"


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    """What the process around the server is told: where to listen, how to log."""

    host: str = setting("127.0.0.1", "Interface to listen on.", panel=Panel.LISTENING)
    port: int = setting(8080, "Port to listen on.", panel=Panel.LISTENING)
    log_level: str = setting(
        "info", f"One of: {', '.join(f'`{level}`' for level in LOG_LEVELS)}.", panel=Panel.LISTENING
    )
    log_format: str = setting(
        "text", "`text`, or `json` (one object a line).", panel=Panel.LISTENING
    )
    forwarded_allow_ips: str = setting(
        "127.0.0.1",
        "Proxies trusted to report the client's address in `X-Forwarded-For` "
        "(comma-separated IPs or networks, or `*`); the address is what limits count.",
        panel=Panel.LISTENING,
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``reflectd serve`` and ``reflectd dev`` run with."""

    process: ProcessSettings = field(default_factory=ProcessSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    #: ``--js-cpu-limit-ms``, ``--js-heap-limit-mb``
    js: JsLimits = field(default_factory=JsLimits, metadata={PREFIX: "js_"})


@dataclass(frozen=True, slots=True)
class Declared:
    """One setting, as the command line sees it."""

    #: the option's name in snake case (``max_message_bytes``): ``--max-message-bytes``
    name: str
    #: the attributes that lead to it from ``Settings`` (``server``, ``limits``, ...)
    path: tuple[str, ...]
    #: its type: int, str, or str | None
    type: Any
    default: Any
    info: SettingInfo

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def optional(self) -> bool:
        return isinstance(self.type, types.UnionType)


def _declared(cls: type, path: tuple[str, ...] = (), prefix: str = "") -> Iterator[Declared]:
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        kind = hints[f.name]
        if isinstance(kind, type) and is_dataclass(kind):
            yield from _declared(kind, (*path, f.name), prefix + f.metadata.get(PREFIX, ""))
            continue
        info = setting_info(f)
        if info is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with reflectd.setting")
        assert f.default is not MISSING, f.name
        yield Declared(prefix + f.name, (*path, f.name), kind, f.default, info)


#: every setting, in the order of their panels, then of their declarations
SETTINGS: tuple[Declared, ...] = tuple(
    sorted(_declared(Settings), key=lambda d: list(Panel).index(d.info.panel))
)
BY_NAME: Mapping[str, Declared] = {d.name: d for d in SETTINGS}
assert len(BY_NAME) == len(SETTINGS), "two settings have the same name"
_BY_PATH: Mapping[tuple[str, ...], Declared] = {d.path: d for d in SETTINGS}


def for_command(command: str) -> list[Declared]:
    """The settings ``command`` takes, as flags or as environment variables."""
    return [d for d in SETTINGS if command in d.info.commands]


# ---------------------------------------------------------------------- the command line


def command_parameters(command: str) -> list[inspect.Parameter]:
    """The typer options of ``command``, one per setting with a flag, keyword-only."""
    return [
        inspect.Parameter(
            d.name, inspect.Parameter.KEYWORD_ONLY, default=d.default, annotation=_option(d)
        )
        for d in for_command(command)
        if d.info.flag
    ]


def _option(d: Declared) -> Any:
    info = d.info
    kind: Any = d.type
    if info.folder:
        kind = Path | None
    option = typer.Option(
        d.flag,
        envvar=d.env,
        help=info.help.replace("`", ""),
        rich_help_panel=info.panel.value,
        show_default=info.shown_default or d.default is not None,
        min=info.minimum,
        exists=info.folder,
        file_okay=not info.folder,
    )
    return Annotated[kind, option]


def settings_from_options(values: Mapping[str, Any]) -> Settings:
    """The settings a command runs with: its options' ``values`` by name (typer has applied
    flag > environment > default), and the environment for settings without a flag."""
    chosen = dict(values)
    for d in SETTINGS:
        if not d.info.flag and d.name not in chosen:
            chosen[d.name] = _parse(d, os.environ.get(d.env))
    settings: Settings = _build(Settings, (), chosen)
    return settings


def _build(cls: Any, path: tuple[str, ...], values: Mapping[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        at = (*path, f.name)
        if at in _BY_PATH:
            name = _BY_PATH[at].name
            if name in values:
                kwargs[f.name] = _value(values[name])
        else:
            kwargs[f.name] = _build(typing.get_type_hints(cls)[f.name], at, values)
    return cls(**kwargs)


def _value(value: Any) -> Any:
    return str(value.resolve()) if isinstance(value, Path) else value


def _parse(d: Declared, text: str | None) -> Any:
    if text is None or (text == "" and d.optional):
        return d.default
    return int(text) if d.type is int else text


# ---------------------------------------------------------------------- dev's child process


def environment_of(settings: Settings, command: str) -> dict[str, str | None]:
    """The environment variables that carry ``settings`` (those ``command`` takes as flags) to
    a child process: each value as text, or None for a variable to remove (a None value)."""
    env: dict[str, str | None] = {}
    for d in for_command(command):
        if d.info.flag:
            value = get(settings, d)
            env[d.env] = None if value is None else str(value)
    return env


def settings_from_environment(command: str) -> Settings:
    """The settings ``command`` takes, read from the environment (``environment_of``'s)."""
    values = {d.name: _parse(d, os.environ.get(d.env)) for d in for_command(command)}
    settings: Settings = _build(Settings, (), values)
    return settings


def get(settings: Settings, d: Declared) -> Any:
    """The value of setting ``d`` in ``settings``."""
    value: Any = settings
    for name in d.path:
        value = getattr(value, name)
    return value


# ---------------------------------------------------------------------- docs/server.md

BEGIN = "<!-- generated: python -m reflectd.cli_settings docs/server.md -->"
END = "<!-- end of the generated settings -->"


def settings_markdown() -> str:
    """The settings tables of docs/server.md, a table per panel."""
    out: list[str] = []
    for panel in Panel:
        out += [f"### {panel.value}", ""]
        out += ["| option | environment | default | meaning |", "|---|---|---|---|"]
        for d in SETTINGS:
            if d.info.panel is panel:
                out.append(_row(d))
        out.append("")
    return "\n".join(out).rstrip("\n")


def _row(d: Declared) -> str:
    flag = f"`{d.flag}`" if d.info.flag else "—"
    meaning = d.info.help if not d.info.doc else f"{d.info.help} {d.info.doc}"
    if d.info.commands != ("serve", "dev"):
        meaning += f" ({' and '.join(f'`{c}`' for c in d.info.commands)} only)"
    return f"| {flag} | `{d.env}` | {_shown_default(d)} | {meaning} |"


def _shown_default(d: Declared) -> str:
    if d.info.shown_default is not None:
        return (
            f"`{d.info.shown_default}`" if "://" in d.info.shown_default else d.info.shown_default
        )
    if d.default is None:
        return "none"
    if isinstance(d.default, str):
        return f"`{d.default}`"
    return f"{d.default}{_in_words(d.name, d.default)}"


def _in_words(name: str, value: int) -> str:
    """`` (1 MiB)`` for a large round number of bytes, `` (14 days)`` for milliseconds."""
    if name.endswith("_bytes") and value >= 1024 and value % 1024 == 0:
        kib = value // 1024
        return f" ({kib // 1024} MiB)" if kib % 1024 == 0 else f" ({kib} KiB)"
    units = (("days", 86_400_000), ("hours", 3_600_000), ("min", 60_000), ("s", 1000))
    if name.endswith("_ms") and value >= 1000:
        for unit, ms in units:
            if value % ms == 0:
                return f" ({value // ms} {unit})"
    return ""


def rewrite_docs(text: str) -> str:
    """``text`` (docs/server.md) with its generated settings tables made afresh."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n\n{settings_markdown()}\n\n{text[end:]}"


def main(argv: list[str]) -> int:
    """``python -m reflectd.cli_settings docs/server.md``: rewrite the file's settings tables."""
    if len(argv) != 1:
        print("usage: python -m reflectd.cli_settings docs/server.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(rewrite_docs(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

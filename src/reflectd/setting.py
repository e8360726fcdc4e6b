"""Declaring a setting: one dataclass field carries its name, type, default and help text, and
what the command line makes of it.

A settings dataclass (``ServerSettings``, ``Limits``, ``EngineSettings``, ``JsLimits``) declares
each field with ``setting(default, help, panel=...)``. ``reflectd.cli_settings`` derives from
these fields the options of ``reflectd serve`` and ``reflectd dev`` (flag ``--<name>``,
environment variable ``REFLECTD_<NAME>``), the settings that ``dev`` hands to its reloaded
child process, and the settings table of ``docs/server.md``.

This module imports nothing of reflectd, so that every layer's settings may use it.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, cast

T = TypeVar("T")


class Panel(StrEnum):
    """The groups settings are listed under, in this order."""

    LISTENING = "Listening and logs"
    STORAGE = "Storage and app"
    LIMITS = "Limits"
    TIMINGS = "Timings and threads"
    CLUSTER = "Several nodes (PostgreSQL)"
    WEBHOOKS = "Webhooks"
    JS = "Server modules (JS runtime)"


#: the key of a field's ``metadata`` that holds its ``SettingInfo``
METADATA_KEY = "reflectd.setting"


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """What a setting's field says beyond its name, type and default."""

    #: one or two sentences, for ``--help`` and the docs table (where `code` is code)
    help: str
    #: the group it is listed under, in ``--help`` and in the docs
    panel: Panel
    #: more for the docs table only (Markdown: links, advice)
    doc: str = ""
    #: False: an environment variable only, no flag (e.g. a secret)
    flag: bool = True
    #: the commands that take it
    commands: tuple[str, ...] = ("serve", "dev")
    #: the smallest value accepted (integers)
    minimum: int | None = None
    #: the default as shown, when the value itself says little (``random``)
    shown_default: str | None = None
    #: the value names an existing folder
    folder: bool = False


def setting(default: T, help: str, *, panel: Panel, repr: bool = True, **options: Any) -> T:
    """A dataclass field with ``default``, declared as a setting; ``options`` are the other
    fields of ``SettingInfo`` (``minimum=1``, ``commands=("serve",)``...)."""
    info = SettingInfo(help, panel, **options)
    made: Any = field(default=default, repr=repr, metadata={METADATA_KEY: info})
    return cast(T, made)


def setting_info(declared: Field[Any]) -> SettingInfo | None:
    """The ``SettingInfo`` of a dataclass field, or None for a field that is not a setting."""
    info = declared.metadata.get(METADATA_KEY)
    return info if isinstance(info, SettingInfo) else None

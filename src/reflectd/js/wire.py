"""The JS runtime's answers, as they cross the pipe (JSON, decoded with msgspec).

A batch's answer holds, per call, either its writes or its error: ``[key, value]`` puts the
value (JSON, kept as raw bytes: it is stored and poked as it is), ``[key]`` deletes the key.
"""

from __future__ import annotations

import msgspec


class AppShape(msgspec.Struct, frozen=True, rename="camel"):
    """What the server module's options hold, as the runtime reports after loading it."""

    mutators: list[str]
    auth_handler: bool
    room_start_handler: bool
    on_client_disconnect: bool
    on_client_delete: bool
    log_level: str
    max_mutations_per_turn: int | None
    allow_unconfirmed_writes: bool
    inputs: list[str]
    warnings: list[str]


class LoadFailure(msgspec.Struct, frozen=True):
    kind: str
    message: str


class LoadAnswer(msgspec.Struct, frozen=True):
    error: LoadFailure


DELETED = msgspec.Raw(b"")


class Write(msgspec.Struct, array_like=True, frozen=True):
    """``[key, value]`` puts the value (JSON), ``[key]`` deletes the key."""

    key: str
    value: msgspec.Raw = DELETED


class Result(msgspec.Struct, frozen=True):
    writes: list[Write] | None = None
    error: str | None = None


class BatchAnswer(msgspec.Struct, frozen=True):
    results: list[Result] = []
    logs: list[tuple[str, str, str, str]] = []
    resync: bool = False
    error: LoadFailure | None = None


class Logs(msgspec.Struct, frozen=True):
    logs: list[tuple[str, str, str, str]]


class AuthFailure(msgspec.Struct, frozen=True):
    name: str
    message: str


class AuthAnswer(msgspec.Struct, frozen=True):
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: AuthFailure | None = None

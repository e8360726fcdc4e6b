"""The app's code as the engine calls it: mutators and room handlers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from reflectd.engine.transaction import WriteTransaction

Mutator = Callable[[WriteTransaction, Any], None]
RoomStartHandler = Callable[[WriteTransaction, str], None]
ClientHandler = Callable[[WriteTransaction], None]


@dataclass(frozen=True, slots=True)
class RoomHandlers:
    mutators: Mapping[str, Mutator] = field(default_factory=dict)
    room_start_handler: RoomStartHandler | None = None
    on_client_disconnect: ClientHandler | None = None
    on_client_delete: ClientHandler | None = None
    #: the app's variables, exposed to mutators and handlers as ``tx.env``
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: whether mutation pokes carry their playback ``timestamp`` (see ``App``)
    smooth_playback: bool = True


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Limits and timings of the room engine; every value has a default."""

    #: mutations applied per turn at most (the rest wait for the next turn)
    max_mutations_per_turn: int = 1000
    #: size limit of a user key, in UTF-8 bytes
    max_key_bytes: int = 2048
    #: size limit of a user value, in bytes of JSON
    max_value_bytes: int = 128 * 1024
    #: how often client GC may run, and how long an absent client is kept
    client_gc_interval_ms: int = 10_000
    client_gc_max_age_ms: int = 14 * 24 * 3600 * 1000

"""The app's code as the engine calls it: mutators and room handlers.

An app's code runs in one of two ways. Python apps give callables, which the room calls one
by one with a ``WriteTransaction`` over its own entries. Apps whose code runs elsewhere (a
Reflect server module in the JS runtime) give an ``AppRuntime``: the room hands it a batch of
``AppCall``s (a turn's mutations at once) and applies the writes it answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from reflectd.engine.records import Entry
from reflectd.engine.transaction import NO_MUTATION_ID, WriteTransaction
from reflectd.setting import Panel, setting

if TYPE_CHECKING:
    from reflectd.engine.room import Room

Mutator = Callable[[WriteTransaction, Any], None]
RoomStartHandler = Callable[[WriteTransaction, str], None]
ClientHandler = Callable[[WriteTransaction], None]

#: what app code a call runs: a mutator, or one of the room handlers
CallKind = Literal["mutator", "roomStart", "clientDisconnect", "clientDelete"]


@dataclass(frozen=True, slots=True)
class AppCall:
    """One run of app code in a transaction at ``version``."""

    kind: CallKind
    client_id: str
    version: int
    #: the mutator's name and arguments (kind "mutator")
    name: str = ""
    args: Any = None
    mutation_id: int = NO_MUTATION_ID
    auth: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CallFailed:
    """The app code raised (or was stopped); its writes were dropped."""

    message: str


#: a call's writes (every entry at the call's version), or why it failed
CallResult = dict[str, Entry] | CallFailed


class AppRuntime(Protocol):
    """App code that runs outside this process's Python, a batch of calls at a time."""

    #: the mutators it has, by the client's mutator names
    mutator_names: frozenset[str]
    #: the room handlers it has
    handler_kinds: frozenset[CallKind]

    def run(self, room: Room, calls: Sequence[AppCall]) -> list[CallResult]:
        """Run ``calls`` in order, each seeing the writes of those before it that succeeded,
        against the room's entries. Must not change the room: the room applies the writes."""
        ...

    def reset(self, room: Room) -> None:
        """Forget what the runtime knows of the room: it ran calls whose writes the room
        did not keep (it will see the room afresh next time)."""
        ...


@runtime_checkable
class AsyncAppRuntime(AppRuntime, Protocol):
    """An ``AppRuntime`` that can also run a turn's calls ahead, while the event loop goes
    on (``Room.prepare`` then hands the results to the turn)."""

    async def run_async(self, room: Room, calls: Sequence[AppCall]) -> list[CallResult]: ...


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
    #: runs the app's code instead of the callables above (e.g. a Reflect server module)
    runtime: AppRuntime | None = None

    def has_mutator(self, name: str) -> bool:
        if self.runtime is not None:
            return name in self.runtime.mutator_names
        return name in self.mutators

    def has_handler(self, kind: CallKind) -> bool:
        if self.runtime is not None:
            return kind in self.runtime.handler_kinds
        handler = {
            "roomStart": self.room_start_handler,
            "clientDisconnect": self.on_client_disconnect,
            "clientDelete": self.on_client_delete,
        }.get(kind)
        return handler is not None


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Limits and timings of the room engine; every value has a default."""

    max_mutations_per_turn: int = setting(
        1000,
        "Most mutations applied in one turn (the rest wait for the next turn); a server "
        "module's option of that name overrides it.",
        panel=Panel.LIMITS,
        minimum=1,
    )
    max_key_bytes: int = setting(2048, "Largest user key, in UTF-8 bytes.", panel=Panel.LIMITS)
    max_value_bytes: int = setting(
        128 * 1024, "Largest user value, in bytes of JSON.", panel=Panel.LIMITS
    )
    client_gc_interval_ms: int = setting(
        10_000,
        "How often a room may look for absent clients to delete (ms).",
        panel=Panel.TIMINGS,
        minimum=0,
    )
    client_gc_max_age_ms: int = setting(
        14 * 24 * 3600 * 1000,
        "How long a client that stopped connecting is kept before it is deleted (ms).",
        panel=Panel.TIMINGS,
        minimum=0,
    )

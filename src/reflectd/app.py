"""The user's side of reflectd: an ``App`` names the mutators and handlers of an application.

Example::

    from reflectd import App, WriteTransaction

    def increment(tx: WriteTransaction, args: dict) -> None:
        tx.set(args["key"], (tx.get(args["key"]) or 0) + args["delta"])

    app = App(mutators={"increment": increment})
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

from reflectd.engine.handlers import (
    AppRuntime,
    ClientHandler,
    Mutator,
    RoomHandlers,
    RoomStartHandler,
)

#: ``auth_handler(auth_token, room_id, env)``: returns AuthData (a dict with ``userID``) or a
#: falsy value to refuse; may be a coroutine function; runs with a timeout (5 s by default).
AuthHandler = Callable[
    [str, str, Mapping[str, str]],
    "Mapping[str, Any] | Awaitable[Mapping[str, Any] | None] | None",
]

#: environment variables named ``REFLECTD_VAR_<NAME>`` become ``env["<NAME>"]``
ENV_VAR_PREFIX = "REFLECTD_VAR_"


def env_from_environ(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """The app's variables: ``REFLECTD_VAR_<NAME>`` environment variables, prefix removed."""
    source = os.environ if environ is None else environ
    return MappingProxyType(
        {
            name.removeprefix(ENV_VAR_PREFIX): value
            for name, value in source.items()
            if name.startswith(ENV_VAR_PREFIX) and name != ENV_VAR_PREFIX
        }
    )


class App:
    """An application: its mutators (by the client's mutator names) and handlers.

    Mutators and room handlers are plain (synchronous) functions; they run inside the room's
    turn and must not block. ``auth_handler`` may be synchronous or a coroutine function.

    ``smooth_playback`` (default True, as the original server): pokes of mutations carry the
    mutation's time, and clients play other clients' changes back through a small buffer
    (50 ms at first) for smooth motion. False sends them without it: lower latency, changes
    applied on the next animation frame as they arrive.

    ``runtime`` runs the app's code outside Python instead of ``mutators`` and the room
    handlers (a Reflect server module: ``reflectd.js.load_server_module`` makes such an App);
    ``max_mutations_per_turn`` overrides the server's setting (the module's option of that name).
    """

    def __init__(
        self,
        mutators: Mapping[str, Mutator],
        *,
        auth_handler: AuthHandler | None = None,
        room_start_handler: RoomStartHandler | None = None,
        on_client_disconnect: ClientHandler | None = None,
        on_client_delete: ClientHandler | None = None,
        env: Mapping[str, str] | None = None,
        smooth_playback: bool = True,
        runtime: AppRuntime | None = None,
        max_mutations_per_turn: int | None = None,
    ) -> None:
        for name, mutator in mutators.items():
            _check_sync(f"mutator {name!r}", mutator)
        for what, handler in (
            ("room_start_handler", room_start_handler),
            ("on_client_disconnect", on_client_disconnect),
            ("on_client_delete", on_client_delete),
        ):
            if handler is not None:
                _check_sync(what, handler)
        self.mutators: Mapping[str, Mutator] = MappingProxyType(dict(mutators))
        self.auth_handler = auth_handler
        self.room_start_handler = room_start_handler
        self.on_client_disconnect = on_client_disconnect
        self.on_client_delete = on_client_delete
        self.smooth_playback = smooth_playback
        self.runtime = runtime
        self.max_mutations_per_turn = max_mutations_per_turn
        self.env: Mapping[str, str] = (
            env_from_environ() if env is None else MappingProxyType(dict(env))
        )

    def room_handlers(self) -> RoomHandlers:
        return RoomHandlers(
            mutators=self.mutators,
            room_start_handler=self.room_start_handler,
            on_client_disconnect=self.on_client_disconnect,
            on_client_delete=self.on_client_delete,
            env=self.env,
            smooth_playback=self.smooth_playback,
            runtime=self.runtime,
        )


def _check_sync(what: str, function: Callable[..., Any]) -> None:
    if not callable(function):
        raise TypeError(f"{what} must be callable, got {type(function).__name__}")
    if inspect.iscoroutinefunction(function):
        raise TypeError(
            f"{what} is a coroutine function; mutators and room handlers must be plain "
            "functions (they run inside the room's turn)"
        )

"""Calling the app's auth handler when a client connects, with its timeout and the original
server's error messages.

An ``async def`` handler runs on the event loop and is cancelled at its timeout. A plain
function runs on threads of its own (``HandlerThreads``, ``auth_threads`` of them): one that
passes the timeout cannot be stopped and holds its thread until it returns, so when every
thread is held, connects are refused at once with ``authHandler busy`` rather than each
waiting out the timeout. ``AUTH_HANDLER_COUNTS`` counts calls, timeouts and refusals for the
whole process (the log reports them; a metrics endpoint can read them).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reflectd.app import App
from reflectd.errors import Unauthorized
from reflectd.server.handler_threads import HandlerThreads, HandlerThreadsFull

logger = logging.getLogger(__name__)

AuthData = Mapping[str, Any]

#: each warning about slow or stuck auth handlers is logged at most once in this many seconds
WARN_EVERY_S = 10.0


@dataclass(slots=True)
class AuthHandlerCounts:
    """What the auth handlers of this process did since it started."""

    #: handler calls started
    calls: int = 0
    #: calls that passed the timeout (the client got ``authHandler timed out``)
    timeouts: int = 0
    #: connects and beacons refused without a call: every handler thread was held
    refused_busy: int = 0


#: the counts of every ``Authenticator`` of the process
AUTH_HANDLER_COUNTS = AuthHandlerCounts()


class Authenticator:
    """The app's auth handler, called with a timeout; plain handlers on threads of their own."""

    def __init__(self, app: App, *, timeout_ms: int, threads: int) -> None:
        self.app = app
        self.timeout_ms = timeout_ms
        self.threads = HandlerThreads(threads, name="reflectd-auth")
        #: when each warning was last logged
        self._warned_at: dict[str, float] = {}

    async def __call__(self, *, token: str | None, room_id: str, user_id: str) -> AuthData:
        """The AuthData of a connection: the handler's result, or ``{"userID": user_id}``
        without a handler. Raises ``Unauthorized`` with the original server's messages."""
        handler = self.app.auth_handler
        if handler is None:
            return {"userID": user_id}
        args = (token or "", room_id, self.app.env)
        try:
            if inspect.iscoroutinefunction(handler):
                AUTH_HANDLER_COUNTS.calls += 1
                async with asyncio.timeout(self.timeout_ms / 1000):
                    result = await handler(*args)
            else:
                result = await self._in_thread(handler, args)
        except TimeoutError:
            AUTH_HANDLER_COUNTS.timeouts += 1
            self._warn("authHandler timed out after %d ms", self.timeout_ms)
            raise Unauthorized("authHandler rejected: Error: authHandler timed out") from None
        except HandlerThreadsFull as e:
            AUTH_HANDLER_COUNTS.refused_busy += 1
            self._warn("authHandler busy, connect refused: %s", e)
            raise Unauthorized("authHandler rejected: Error: authHandler busy") from None
        except Exception as e:
            # an error thrown by a server module's JS handler carries its JS class name
            name = getattr(e, "js_name", None) or type(e).__name__
            raise Unauthorized(f"authHandler rejected: {name}: {e}") from None
        return _check(result, user_id)

    async def _in_thread(self, handler: Any, args: tuple[Any, ...]) -> Any:
        """Call a plain handler on the pool, in time (a ``TimeoutError`` abandons the call)."""
        future = self.threads.submit(handler, *args)
        AUTH_HANDLER_COUNTS.calls += 1
        try:
            async with asyncio.timeout(self.timeout_ms / 1000):
                result = await asyncio.wrap_future(future)
                if inspect.isawaitable(result):
                    result = await result
        except TimeoutError:
            self.threads.abandon(future)
            raise
        return result

    def _warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warned_at.get(message, -WARN_EVERY_S) < WARN_EVERY_S:
            return
        self._warned_at[message] = now
        counts = AUTH_HANDLER_COUNTS
        logger.warning(
            message + " (so far: %d calls, %d timed out, %d refused busy; %d of %d threads "
            "held by plain handlers past their timeout; see docs/app.md)",
            *args,
            counts.calls,
            counts.timeouts,
            counts.refused_busy,
            self.threads.held,
            self.threads.size,
        )


def _check(result: Any, user_id: str) -> AuthData:
    if not result or not isinstance(result, Mapping) or not result.get("userID"):
        raise Unauthorized("no authData")
    if result["userID"] != user_id:
        raise Unauthorized(
            "userID returned by authHandler must match userID specified in Reflect constructor."
        )
    return dict(result)

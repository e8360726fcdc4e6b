"""Calling the app's auth handler (spec 1.3 step 9), with its timeout and its error messages."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from typing import Any

from reflectd.app import App
from reflectd.errors import Unauthorized

AuthData = Mapping[str, Any]


async def authenticate(
    app: App, *, token: str | None, room_id: str, user_id: str, timeout_ms: int
) -> AuthData:
    """The AuthData of a connection: the handler's result, or ``{"userID": user_id}``
    without a handler. Raises ``Unauthorized`` with the original server's messages."""
    handler = app.auth_handler
    if handler is None:
        return {"userID": user_id}
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            if inspect.iscoroutinefunction(handler):
                result = await handler(token or "", room_id, app.env)
            else:
                result = await asyncio.to_thread(handler, token or "", room_id, app.env)
                if inspect.isawaitable(result):
                    result = await result
    except TimeoutError:
        raise Unauthorized("authHandler rejected: Error: authHandler timed out") from None
    except Exception as e:
        raise Unauthorized(f"authHandler rejected: {type(e).__name__}: {e}") from None
    if not result or not isinstance(result, Mapping) or not result.get("userID"):
        raise Unauthorized("no authData")
    if result["userID"] != user_id:
        raise Unauthorized(
            "userID returned by authHandler must match userID specified in Reflect constructor."
        )
    return dict(result)

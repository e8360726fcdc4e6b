"""A webhook receiver for tests: a real HTTP server (uvicorn, in this event loop) that records
what it is sent, answers with ``status`` after ``delay_s``, and verifies signatures with the
``standardwebhooks`` library, as an app's backend would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from standardwebhooks import Webhook


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event

    def verify(self, secret: str) -> dict[str, Any]:
        """The payload, once its signature verified (raises otherwise)."""
        verified: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return verified


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        #: requests that arrived (answered or still held by ``delay_s``)
        self.arrived = 0
        #: the status it answers with
        self.status = 204
        #: how long it takes to answer
        self.delay_s = 0.0
        self.port = 0
        self._released = asyncio.Event()
        self._arrived = asyncio.Event()

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        return [r.event for r in self.received if type in (None, r.event["type"])]

    async def wait_for(self, count: int, *, type: str | None = None, timeout: float = 5) -> None:
        """Until ``count`` events (of ``type``) arrived."""
        deadline = time.monotonic() + timeout
        while len(self.events(type)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{len(self.events(type))} events of type {type} arrived, not {count}: "
                    f"{self.events()}"
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.arrived += 1
        if self.delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), self.delay_s)
        self.received.append(Received(scope["path"], headers, body, time.monotonic()))
        self._arrived.set()
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def release(self) -> None:
        """Answer the requests held by ``delay_s`` now."""
        self._released.set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver | None = None, *, port: int = 0) -> AsyncIterator[Receiver]:
    """Serve ``receiver`` (a new one by default) on ``port`` (a free one by default)."""
    receiver = receiver or Receiver()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    receiver.port = sock.getsockname()[1]
    config = uvicorn.Config(receiver, log_config=None, lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield receiver
    finally:
        receiver.release()
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            with contextlib.suppress(Exception):
                connection.shutdown()
        deadline = time.monotonic() + 5
        while server.server_state.connections or server.server_state.tasks:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        for listener in server.servers:
            await listener.wait_closed()
        await server.lifespan.shutdown()
        sock.close()

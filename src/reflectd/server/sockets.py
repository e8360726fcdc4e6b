"""A client's WebSocket, which a room sends to without ever waiting, so that a slow reader
never blocks a room.

Under reflectd's uvicorn protocol (``uvicorn_ws``) ``send`` writes the frame to the
connection's transport at once, framed once for all the clients it goes to. Elsewhere (any
other ASGI server) frames wait in a queue that a writer task sends in order. Either way, a
socket with more than ``max_buffer_bytes`` not yet sent (a client that stopped reading) is
dropped: what is waiting is abandoned, and ``receive`` ends so that the room lets the client
go. The client reconnects when it can.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket

from reflectd.server import metrics
from reflectd.server.uvicorn_ws import FRAMES_EXTENSION, FrameSink, text_frame

logger = logging.getLogger(__name__)

_CLOSE = b""  # sentinel in the queue: close after what is queued before it


class ClientSocket:
    __slots__ = (
        "_dropped",
        "_max_buffer_bytes",
        "_queue",
        "_queued_bytes",
        "_receiver",
        "_sink",
        "client_id",
        "closing",
        "connection_id",
        "opened_ms",
        "room_id",
        "user_id",
        "websocket",
        "writer",
    )

    def __init__(
        self,
        websocket: WebSocket,
        *,
        connection_id: int,
        max_buffer_bytes: int,
        opened_ms: int | None = None,
    ) -> None:
        self.websocket = websocket
        self.connection_id = connection_id
        #: when the WebSocket was accepted (ms since the Unix epoch)
        self.opened_ms = opened_ms
        self.client_id = ""
        self.user_id = ""
        self.room_id = ""
        self._max_buffer_bytes = max_buffer_bytes
        #: writes frames at once (None: not served by reflectd's uvicorn protocol)
        extension = websocket.scope.get("extensions", {}).get(FRAMES_EXTENSION, {})
        self._sink: FrameSink | None = extension.get("sink")
        #: frames waiting for the writer task; created on first use (760 bytes when empty)
        self._queue: deque[bytes] | None = None
        self._queued_bytes = 0
        self.closing = False
        self._dropped = False
        #: sends what is queued, then ends; started again by the next ``send`` (an idle
        #: socket holds no task of its own)
        self.writer: asyncio.Task[None] | None = None
        self._receiver: asyncio.Task[Any] | None = None

    def send(self, frame: bytes) -> None:
        """Send ``frame`` (UTF-8 JSON) as a text frame, after those sent before it."""
        if self.closing:
            return
        if self._sink is not None:
            unsent = self._sink.write_frame(text_frame(frame))
            if unsent is None:
                self.closing = True  # the peer went away; the receive side cleans up
                return
        else:
            self._enqueue(frame)
            unsent = self._queued_bytes = self._queued_bytes + len(frame)
        if unsent > self._max_buffer_bytes:
            logger.warning(
                "dropping client %s of room %s: more than %d bytes waiting to be sent",
                self.client_id,
                self.room_id,
                self._max_buffer_bytes,
                extra={
                    "room_id": self.room_id,
                    "client_id": self.client_id,
                    "user_id": self.user_id,
                },
            )
            metrics.SLOW_READERS_DROPPED.inc()
            self._drop()

    def close(self) -> None:
        """Close (without an error frame) once the frames queued so far are sent."""
        if not self.closing:
            self.closing = True
            self._enqueue(_CLOSE)

    def _enqueue(self, frame: bytes) -> None:
        if self._queue is None:
            self._queue = deque()
        self._queue.append(frame)
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write_loop())

    def _drop(self) -> None:
        """Give up on a client that stopped reading: a send to it may never return."""
        self._queue = None
        self._queued_bytes = 0
        self.closing = True
        self._dropped = True
        if self._sink is not None:
            self._sink.abort()
        if self.writer is not None:
            self.writer.cancel()
        if self._receiver is not None:
            self._receiver.cancel()

    async def receive(self) -> Message | None:
        """The next message from the client; None once this socket is closing."""
        if self.closing:
            return None
        task = self._receiver = asyncio.current_task()
        try:
            return await self.websocket.receive()
        except asyncio.CancelledError:
            # cancelled by ``_drop`` (and by nothing else): end the receive loop
            if self._dropped and task is not None and task.uncancel() == 0:
                return None
            raise
        finally:
            self._receiver = None

    async def closed(self) -> None:
        """Wait until the writer has sent what it could (or was abandoned)."""
        if self.writer is not None:
            await asyncio.wait((self.writer,))

    async def _write_loop(self) -> None:
        try:
            while self._queue:
                frame = self._queue.popleft()
                if frame is _CLOSE:
                    await self.websocket.close()
                    return
                self._queued_bytes -= len(frame)
                await self.websocket.send_text(frame.decode())
        except Exception:  # the peer went away; the receive side notices and cleans up
            self.closing = True

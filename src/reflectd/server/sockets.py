"""A client's WebSocket, which a room sends to without ever waiting, so that a slow reader
never blocks a room.

Under reflectd's uvicorn protocol (``uvicorn_ws``) ``send`` writes the frame to the
connection's transport at once, framed once for all the clients it goes to. Elsewhere (any
other ASGI server) frames wait in a queue that a writer task sends in order. Either way, a
socket with more than ``max_buffer_bytes`` not yet sent (a client that stopped reading) is
dropped: what is waiting is abandoned, and ``receive`` ends so that the room lets the client
go. The client reconnects when it can.

A poke message too big for one frame (a big fast-forward, ``PokeStream``) is written as one
message in several frames, the next written only once the connection has drained below
``STREAM_WINDOW_BYTES`` (or a quarter of ``max_buffer_bytes``): its size never counts as
waiting to be sent. Frames sent meanwhile
wait behind it (and do count). A client that stops reading during such a message is dropped
when it has not drained for ``max_stall_ms``, or when what waits behind the message passes
``max_buffer_bytes``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket

from reflectd.engine.streamed import PokeStream, WholeMessage
from reflectd.server import metrics
from reflectd.server.uvicorn_ws import FRAMES_EXTENSION, FrameSink, fragment, text_frame

logger = logging.getLogger(__name__)

_CLOSE = b""  # sentinel in the queue: close after what is queued before it
#: a streamed message's next piece is written when less than this waits in the connection
STREAM_WINDOW_BYTES = 1024 * 1024


class ClientSocket:
    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_dropped",
        "_max_buffer_bytes",
        "_max_stall_s",
        "_queue",
        "_queued_bytes",
        "_receiver",
        "_sink",
        "_stream_window_bytes",
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
        max_stall_ms: int = 30_000,
    ) -> None:
        self.websocket = websocket
        self.connection_id = connection_id
        #: when the WebSocket was accepted (ms since the Unix epoch)
        self.opened_ms = opened_ms
        self.client_id = ""
        self.user_id = ""
        self.room_id = ""
        self._max_buffer_bytes = max_buffer_bytes
        self._max_stall_s = max_stall_ms / 1000
        #: what a streamed message may leave in the connection: never near the limit, so that
        #: a frame sent right after it is not taken for a slow reader's
        self._stream_window_bytes = min(STREAM_WINDOW_BYTES, max_buffer_bytes // 4)
        #: writes frames at once (None: not served by reflectd's uvicorn protocol)
        extension = websocket.scope.get("extensions", {}).get(FRAMES_EXTENSION, {})
        self._sink: FrameSink | None = extension.get("sink")
        #: frames waiting for the writer task; created on first use (760 bytes when empty)
        self._queue: deque[bytes] | None = None
        self._queued_bytes = 0
        #: while a streamed message is written (under the uvicorn protocol): what waits
        #: behind it, and the bytes of its frames
        self._backlog: deque[bytes | PokeStream | WholeMessage] | None = None
        self._backlog_bytes = 0
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
        unsent: int | None
        if self._backlog is not None:
            self._backlog.append(frame)
            unsent = self._backlog_bytes = self._backlog_bytes + len(frame)
        elif self._sink is not None:
            unsent = self._sink.write_frame(text_frame(frame))
            if unsent is None:
                self.closing = True  # the peer went away; the receive side cleans up
                return
        else:
            self._enqueue(frame)
            unsent = self._queued_bytes = self._queued_bytes + len(frame)
        if unsent > self._max_buffer_bytes:
            self._drop_slow_reader(f"more than {self._max_buffer_bytes} bytes waiting to be sent")

    def send_stream(self, stream: PokeStream | WholeMessage) -> None:
        """Send ``stream`` as one message, after those sent before it, piece by piece as
        the client reads (at once, whole, on a socket without ``FrameSink``)."""
        if self.closing:
            return
        if self._sink is None:
            self.send(stream.join())
        elif self._backlog is not None:
            self._backlog.append(stream)
        else:
            self._backlog = deque([stream])
            self.writer = asyncio.create_task(self._stream_loop(self._sink))

    def close(self) -> None:
        """Close (without an error frame) once the frames queued so far are sent."""
        if not self.closing:
            self.closing = True
            if self._backlog is not None:
                self._backlog.append(_CLOSE)
            else:
                self._enqueue(_CLOSE)

    def _drop_slow_reader(self, reason: str) -> None:
        logger.warning(
            "dropping client %s of room %s: %s",
            self.client_id,
            self.room_id,
            reason,
            extra={"room_id": self.room_id, "client_id": self.client_id, "user_id": self.user_id},
        )
        metrics.SLOW_READERS_DROPPED.inc()
        self._drop()

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
        self._backlog = None
        self._backlog_bytes = 0
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

    async def _stream_loop(self, sink: FrameSink) -> None:
        """Write the backlog in order (streamed messages piece by piece); then ``send``
        writes directly again."""
        backlog = self._backlog
        try:
            while backlog:
                item = backlog.popleft()
                if item is _CLOSE:
                    await self.websocket.close()
                    return
                if isinstance(item, PokeStream | WholeMessage):
                    if not await self._write_stream(sink, item):
                        return
                else:
                    self._backlog_bytes -= len(item)
                    if sink.write_frame(text_frame(item)) is None:
                        self.closing = True
                        return
        except Exception:  # the peer went away; the receive side notices and cleans up
            self.closing = True
        finally:
            if self._backlog is backlog:
                self._backlog = None
                self._backlog_bytes = 0

    async def _write_stream(self, sink: FrameSink, stream: PokeStream | WholeMessage) -> bool:
        """Write ``stream`` as a text frame and its continuations, each once the connection
        has drained; False if the connection went away or stalled (then it is dropped)."""
        sent = 0
        first, held = True, None
        for chunk in stream.chunks():
            if held is not None:
                unsent = sink.write_frame(fragment(held, first=first, final=False))
                if unsent is None:
                    self.closing = True
                    return False
                sent += len(held)
                first = False
                if unsent > self._stream_window_bytes:
                    try:
                        await asyncio.wait_for(sink.drained(), self._max_stall_s)
                    except TimeoutError:
                        self._drop_slow_reader(
                            f"a message in pieces stalled for {self._max_stall_s:g} s"
                        )
                        return False
                else:
                    await asyncio.sleep(0)  # let the rest of the process run between pieces
            held = chunk
        if held is None or sink.write_frame(fragment(held, first=first, final=True)) is None:
            self.closing = True
            return False
        metrics.count_streamed(sent + len(held) - len(stream.head))
        return True

"""uvicorn's sans-I/O WebSocket protocol, with four changes for reflectd.

1. Direct frame writes. A sync socket sends the same poke to every client of a room; going
   through ASGI's ``websocket.send`` costs, per client, an ``await``, a decode of the frame
   to ``str`` and an encode back, and a new WebSocket frame. Instead the protocol offers
   itself to the app as a ``FrameSink``, in the scope extension ``FRAMES_EXTENSION``: it
   writes an already framed message to the transport at once (``text_frame`` frames a
   payload once for all clients), and says how many bytes the connection still has to
   send, so that the app can drop a client that stopped reading (``ClientSocket``).
2. Less memory per idle connection (a process holds thousands): a lighter receive queue
   than ``asyncio.Queue`` (three deques and an Event), and the handshake's request and
   response are let go once the socket is accepted.
3. A denial response (``websocket.http.response.*``) completes the handshake: uvicorn 0.54
   logged "ASGI callable returned without completing handshake" after every one.
4. Oversized upgrade requests are answered. websockets (>= 15) refuses a request line or a
   header line over 8 KiB (a very long roomID or auth token) with a 414 or 431 response that
   uvicorn 0.54's ``WebSocketsSansIOProtocol`` never writes: the connection stayed open,
   unanswered, until the client gave up. This writes that response and closes.
5. Floods of tiny frames are cut short. Parsing a frame costs a few microseconds of the one
   event loop however small it is, so a peer sending a message as a million one-byte
   fragments, or a million pings, stalled every other connection of the process for
   seconds. Received bytes are parsed ``PARSE_SLICE_BYTES`` at a time; a message of more than
   ``MAX_FRAGMENTS_PER_MESSAGE`` frames closes the connection with 1009, more than
   ``MAX_CONTROL_FRAMES_PER_S`` pings and pongs in a second with 1008, and the rest of what
   the peer sent is not parsed. The Reflect client sends each message as one frame and no
   control frames; the keepalive pings of other clients are far below the limit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode, Frame
from websockets.http11 import Request

logger = logging.getLogger(__name__)

#: the scope extension ``{"sink": FrameSink}`` of a connection that can write frames directly
FRAMES_EXTENSION = "reflectd.frames"
#: most frames (the first and its continuations) one message may arrive in
MAX_FRAGMENTS_PER_MESSAGE = 1024
#: most control frames (pings and pongs) a peer may send in one second
MAX_CONTROL_FRAMES_PER_S = 100
#: received bytes are parsed this many at a time, so that a flood is noticed early: a slice
#: holds at most ~2,700 frames, a few milliseconds of parsing
PARSE_SLICE_BYTES = 16 * 1024


class FrameSink(Protocol):
    def write_frame(self, frame: bytes) -> int | None: ...

    async def drained(self) -> None: ...

    def abort(self) -> None: ...


@functools.lru_cache(maxsize=8)
def text_frame(payload: bytes) -> bytes:
    """``payload`` (UTF-8 text) as one unmasked, final WebSocket text frame (RFC 6455 5.2).

    A server's frames are never masked, so the same bytes go to every client: the cache
    frames a poke once however many sockets it is written to."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def fragment(payload: bytes, *, first: bool, final: bool) -> bytes:
    """``payload`` as one frame of a fragmented text message (RFC 6455 5.4): the first frame
    is a text frame, the others continuation frames; only the last is final."""
    head = (0x80 if final else 0) | (0x01 if first else 0x00)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", head, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", head, 126, size)
    else:
        header = struct.pack("!BBQ", head, 127, size)
    return header + payload


class _ReceiveQueue:
    """What uvicorn's protocol uses of ``asyncio.Queue`` (``put_nowait``, ``get``, ``empty``)
    for its one consumer, the app's ``receive``, in a fraction of the memory."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class WebSocketProtocol(WebSocketsSansIOProtocol):
    # Flood accounting; class attributes until first written, so that an idle connection
    # holds none of them.
    #: frames of the message being received
    _fragments = 0
    #: control frames received since ``_control_window_start``
    _control_frames = 0
    _control_window_start = 0.0
    #: closed for sending too many frames: what it sends now is ignored
    _flooded = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _ReceiveQueue()  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if len(data) <= PARSE_SLICE_BYTES:
            self._parse(data)
            return
        view = memoryview(data)
        for start in range(0, len(data), PARSE_SLICE_BYTES):
            if self._flooded or self.transport.is_closing():
                return  # closed meanwhile: the rest is not parsed
            self._parse(view[start : start + PARSE_SLICE_BYTES])

    def _parse(self, data: bytes | memoryview) -> None:
        super().data_received(data)  # type: ignore[arg-type]
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    # ---------------------------------------------------------------- flood limits

    def handle_text(self, event: Frame) -> None:
        self._fragments = 1
        if not self._flooded:
            super().handle_text(event)

    def handle_bytes(self, event: Frame) -> None:
        self._fragments = 1
        if not self._flooded:
            super().handle_bytes(event)

    def handle_cont(self, event: Frame) -> None:
        self._fragments += 1
        if self._fragments > MAX_FRAGMENTS_PER_MESSAGE:
            self._close_flooded(
                CloseCode.MESSAGE_TOO_BIG,
                f"more than {MAX_FRAGMENTS_PER_MESSAGE} frames in one message",
            )
        elif not self._flooded:
            super().handle_cont(event)

    def handle_ping(self) -> None:
        if self._control_frame_allowed():
            super().handle_ping()

    def handle_pong(self, event: Frame) -> None:
        if self._control_frame_allowed():
            super().handle_pong(event)

    def _control_frame_allowed(self) -> bool:
        now = self.loop.time()
        if now - self._control_window_start >= 1.0:
            self._control_window_start, self._control_frames = now, 0
        self._control_frames += 1
        if self._control_frames > MAX_CONTROL_FRAMES_PER_S:
            self._close_flooded(
                CloseCode.POLICY_VIOLATION,
                f"more than {MAX_CONTROL_FRAMES_PER_S} control frames in a second",
            )
        return not self._flooded

    def _close_flooded(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame, stop parsing and reading,
        tell the app. What the peer sent afterwards is never looked at."""
        if self._flooded:
            return
        self._flooded = True
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        logger.warning("closing the WebSocket of %s (%d): %s", peer, code, reason)
        if self.close_sent or self.transport.is_closing():
            self.transport.abort()
            return
        self.conn.fail(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.close_sent = True
        self.transport.close()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if not self.close_sent:  # an upgrade the app now accepts or denies: it has a scope
            self.scope["extensions"][FRAMES_EXTENSION] = {"sink": self}

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.initial_response is not None and self.close_sent:
            # a denial response (``websocket.http.response.*``) went out in full: the
            # handshake is over, so uvicorn must not log a failed one nor add its own 500
            self.handshake_complete = True
        if self.handshake_complete and hasattr(self, "response"):
            del self.request, self.response  # not used again once the socket is accepted

    def write_frame(self, frame: bytes) -> int | None:
        """Write ``frame``, a whole encoded WebSocket frame, now (whatever the transport
        already buffers: the caller bounds that with the returned size). Returns the bytes
        this connection still has to send, or None if it is not open (not accepted yet,
        closing or gone): then nothing was written."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or self.transport.is_closing()
        ):
            return None
        self.transport.write(frame)
        return self.transport.get_write_buffer_size()

    async def drained(self) -> None:
        """Wait until the transport's buffer is below its low-water mark (at once if it is,
        or if the connection is gone)."""
        await self.writable.wait()

    def abort(self) -> None:
        """Close the connection at once, abandoning what is unsent."""
        self.transport.abort()

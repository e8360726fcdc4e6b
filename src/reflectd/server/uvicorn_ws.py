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
"""

from __future__ import annotations

import asyncio
import functools
import struct
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

#: the scope extension ``{"sink": FrameSink}`` of a connection that can write frames directly
FRAMES_EXTENSION = "reflectd.frames"


class FrameSink(Protocol):
    def write_frame(self, frame: bytes) -> int | None: ...

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
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _ReceiveQueue()  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self.transport.write(b"".join(self.conn.data_to_send()))
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

    def abort(self) -> None:
        """Close the connection at once, abandoning what is unsent."""
        self.transport.abort()

"""uvicorn's sans-I/O WebSocket protocol, with two additions for reflectd.

1. Direct frame writes. A sync socket sends the same poke to every client of a room; going
   through ASGI's ``websocket.send`` costs, per client, an ``await``, a decode of the frame
   to ``str`` and an encode back, and a new WebSocket frame. Instead the protocol offers
   itself to the app as a ``FrameSink``, in the scope extension ``FRAMES_EXTENSION``: it
   writes an already framed message to the transport at once (``text_frame`` frames a
   payload once for all clients), and says how many bytes the connection still has to
   send, so that the app can drop a client that stopped reading (``ClientSocket``).
2. Oversized upgrade requests are answered. websockets (>= 15) refuses a request line or a
   header line over 8 KiB (a very long roomID or auth token) with a 414 or 431 response that
   uvicorn 0.54's ``WebSocketsSansIOProtocol`` never writes: the connection stayed open,
   unanswered, until the client gave up. This writes that response and closes.
"""

from __future__ import annotations

import functools
import struct
from typing import Protocol

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


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if not self.close_sent:  # an upgrade the app now accepts or denies: it has a scope
            self.scope["extensions"][FRAMES_EXTENSION] = {"sink": self}

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

"""uvicorn's sans-I/O WebSocket protocol, answering the upgrade requests websockets refuses.

websockets (>= 15) refuses a request line or a header line over 8 KiB (a very long roomID
or auth token) with a 414 or 431 response that uvicorn 0.54's ``WebSocketsSansIOProtocol``
never writes: the connection stayed open, unanswered, until the client gave up. This writes
that response and closes the connection.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

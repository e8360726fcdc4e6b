"""Control messages between the nodes that share one store: the ``ControlBus`` seam.

A few commands must reach every node of a cluster: invalidate connections (all of them, a
room's, a user's) and drop a room that was deleted. They are rare, small, and travel on a bus
that the shared store provides: PostgreSQL ``LISTEN``/``NOTIFY``
(``reflectd.storage.postgres_bus``), or ``MemoryControlBus`` for nodes that share a
``MemoryLeaseStore`` in one process. Pokes never travel on it: a room's owner pokes its own
sockets, and a lost message must not break a client's cookie chain.

The rules every bus keeps (``tests/storage/test_control_bus.py`` checks them against each):

- a message reaches every *other* node whose bus is listening on the same store; a node never
  hears its own (it acts on a command itself, before publishing it);
- the messages one node publishes arrive in the order it published them;
- delivery is at most once: a node that is not listening when a message is published (not yet
  started, closed, or reconnecting after losing its connection) never gets it;
- ``publish`` raises ``StorageError`` when the message could not be sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal, Protocol

import msgspec

from reflectd.errors import StorageError

logger = logging.getLogger(__name__)

ControlOp = Literal["invalidate_all", "invalidate_room", "invalidate_user", "delete_room"]


class ControlMessage(msgspec.Struct, frozen=True, omit_defaults=True, rename={"sender": "from"}):
    """A command for every node; on the wire ``{"op": ..., "from": ..., "room_id": ...}``."""

    op: ControlOp
    #: the node that published it
    sender: str
    #: for ``invalidate_room`` and ``delete_room``
    room_id: str = ""
    #: for ``invalidate_user``
    user_id: str = ""


#: what a bus calls, in the event loop, with each message of another node
OnMessage = Callable[[ControlMessage], None]


class ControlBus(Protocol):
    """One node's end of the bus (see the module's docstring for the rules)."""

    async def start(self, on_message: OnMessage) -> None:
        """Listen: from now on ``on_message`` gets every message another node publishes."""

    async def publish(self, message: ControlMessage) -> None:
        """Send ``message`` to the other nodes; ``StorageError`` if it could not be sent."""

    async def close(self) -> None:
        """Stop listening and sending. Closing twice is harmless."""

    def connected(self) -> bool:
        """Started, not closed, and (for a bus over a connection) its connection is up."""


_decoder = msgspec.json.Decoder(ControlMessage)


def encode_message(message: ControlMessage) -> str:
    return msgspec.json.encode(message).decode()


def decode_message(payload: str | bytes) -> ControlMessage | None:
    """The message ``payload`` holds; None (and a warning) for one this node cannot read."""
    try:
        return _decoder.decode(payload)
    except msgspec.DecodeError:
        logger.warning("control bus: unreadable message %r", payload[:200])
        return None


class MemoryControlHub:
    """The bus of the nodes that share one store in this process (``MemoryLeaseStore``)."""

    def __init__(self) -> None:
        self.listening: list[MemoryControlBus] = []

    def bus(self, node_id: str) -> MemoryControlBus:
        return MemoryControlBus(self, node_id)


class MemoryControlBus:
    """A ``ControlBus`` in this process: delivers on the event loop's next round, as a
    notification from PostgreSQL would arrive."""

    def __init__(self, hub: MemoryControlHub, node_id: str) -> None:
        self._hub = hub
        self.node_id = node_id
        self._on_message: OnMessage | None = None
        self._closed = False

    async def start(self, on_message: OnMessage) -> None:
        if self._closed or self._on_message is not None:
            raise StorageError("memory control bus: start() called twice or after close()")
        self._on_message = on_message
        self._hub.listening.append(self)

    async def publish(self, message: ControlMessage) -> None:
        if self._closed or self._on_message is None:
            state = "closed" if self._closed else "not started"
            raise StorageError(f"memory control bus: cannot send {message.op}: the bus is {state}")
        payload = encode_message(message)
        loop = asyncio.get_running_loop()
        for bus in self._hub.listening:
            if bus.node_id != message.sender:
                loop.call_soon(bus._receive, payload)

    def _receive(self, payload: str) -> None:
        message = decode_message(payload)
        if message is not None and self._on_message is not None and not self._closed:
            self._on_message(message)

    def connected(self) -> bool:
        return self._on_message is not None and not self._closed

    async def close(self) -> None:
        self._closed = True
        if self in self._hub.listening:
            self._hub.listening.remove(self)

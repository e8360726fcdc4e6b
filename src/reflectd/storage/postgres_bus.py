"""The ``ControlBus`` of nodes sharing a PostgreSQL schema: ``LISTEN``/``NOTIFY``.

Each node keeps one connection of its own (not a pooled one: a pooled connection forgets its
``LISTEN`` when it goes back to the pool) listening on the schema's channel, and sends on the
same connection with ``pg_notify``. PostgreSQL delivers a notification to every session
listening when its transaction commits, the sender's own included (the bus drops those), in
the order they were sent. When the connection is lost the bus connects again every
``reconnect_delay_s``; what was published meanwhile is lost for this node, as the rules of
``reflectd.storage.control`` allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from reflectd.errors import StorageError
from reflectd.storage.control import ControlMessage, OnMessage, decode_message, encode_message
from reflectd.storage.postgres_url import PostgresURL

logger = logging.getLogger(__name__)

#: how long to wait before connecting again after the listening connection was lost (s)
RECONNECT_DELAY_S = 1.0


def channel_name(schema: str) -> str:
    """The NOTIFY channel of the nodes sharing ``schema`` (at most 63 bytes, as identifiers)."""
    return f"reflectd.{schema}"[:63]


class PostgresControlBus:
    """A dedicated PostgreSQL connection that listens for control messages and sends them."""

    def __init__(
        self, url: PostgresURL, node_id: str, *, reconnect_delay_s: float = RECONNECT_DELAY_S
    ) -> None:
        self._url = url
        self.channel = channel_name(url.schema)
        self.node_id = node_id
        self._reconnect_delay_s = reconnect_delay_s
        self._on_message: OnMessage | None = None
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._closed = False

    async def start(self, on_message: OnMessage) -> None:
        if self._closed or self._on_message is not None:
            raise StorageError("control bus: start() called twice or after close()")
        self._on_message = on_message
        try:
            await self._connect()
        except Exception as exc:
            raise StorageError(f"control bus: connecting failed: {exc}") from exc
        self._supervisor = asyncio.create_task(self._keep_connected(), name="control bus")

    async def _connect(self) -> None:
        conn = await asyncpg.connect(
            self._url.dsn, timeout=10, server_settings=self._url.server_settings
        )
        conn.add_termination_listener(lambda _: self._lost.set())
        await conn.add_listener(self.channel, self._received)
        self._conn = conn
        self._lost.clear()

    async def _keep_connected(self) -> None:
        while not self._closed:
            await self._lost.wait()
            if self._closed:
                return
            logger.warning("control bus: connection lost; connecting again")
            while not self._closed:
                await asyncio.sleep(self._reconnect_delay_s)
                try:
                    await self._connect()
                    break
                except Exception as exc:
                    logger.warning("control bus: connecting failed: %s", exc)

    async def publish(self, message: ControlMessage) -> None:
        if self._conn is None or self._closed:
            state = "closed" if self._closed else "not started"
            raise StorageError(f"control bus: cannot send {message.op}: the bus is {state}")
        payload = encode_message(message)
        async with self._lock:
            try:
                await self._conn.execute("SELECT pg_notify($1, $2)", self.channel, payload)
            except Exception as exc:
                raise StorageError(f"control bus: sending {message.op} failed: {exc}") from exc

    def _received(self, conn: object, pid: int, channel: str, payload: str) -> None:
        message = decode_message(payload)
        if message is None or message.sender == self.node_id or self._closed:
            return
        assert self._on_message is not None
        self._on_message(message)

    def connected(self) -> bool:
        return self._conn is not None and not self._lost.is_set() and not self._closed

    async def close(self) -> None:
        self._closed = True
        self._lost.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)

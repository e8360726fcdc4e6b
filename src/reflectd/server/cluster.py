"""Control messages between the nodes that share one PostgreSQL database.

Low-rate commands that must reach every node (invalidate all / a room / a user, delete a
room) travel over PostgreSQL ``LISTEN``/``NOTIFY`` on one channel per schema, on a connection
of their own (``ControlBus``). Pokes never do: a room's owner pokes its own sockets.

``ClusterCommands`` is the REST API's ``RoomCommands`` for such a node: invalidations are
announced to every node (each closes its matching sockets; a proxied socket closes when its
owner-side socket does), a delete first tells the owner to drop the room, and the contents of
a room that lives on another node are read from the database (commits happen before pokes, so
the committed state is the truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from msgspec import Raw

from reflectd.errors import ApiError, StorageError
from reflectd.server.rest.commands import RoomCommands
from reflectd.server.rooms import RoomRegistry
from reflectd.storage.postgres import PostgresStore

logger = logging.getLogger(__name__)

#: the commands a node obeys: name -> what it does to this node's registry
_OPS = ("invalidate_all", "invalidate_room", "invalidate_user", "delete_room")
#: how long to wait before connecting again after the listening connection was lost (s)
RECONNECT_DELAY_S = 1.0


def channel_name(schema: str) -> str:
    """The NOTIFY channel of the nodes sharing ``schema`` (at most 63 bytes, as identifiers)."""
    return f"reflectd.{schema}"[:63]


class ControlBus:
    """A dedicated PostgreSQL connection that listens for control messages and sends them."""

    def __init__(self, store: PostgresStore, registry: RoomRegistry) -> None:
        self._dsn = store.url.dsn
        self._server_settings = store.url.server_settings
        self.channel = channel_name(store.schema)
        self.registry = registry
        self.node_id = registry.node_id
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._closed = False
        self._handling: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._connect()
        self._supervisor = asyncio.create_task(self._keep_connected(), name="control bus")

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10, server_settings=self._server_settings)
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
                await asyncio.sleep(RECONNECT_DELAY_S)
                try:
                    await self._connect()
                    break
                except Exception as exc:
                    logger.warning("control bus: connecting failed: %s", exc)

    async def publish(self, op: str, **fields: str) -> None:
        """Send ``op`` to every other node (this node acts on it itself)."""
        assert op in _OPS
        payload = json.dumps({"op": op, "from": self.node_id, **fields})
        async with self._lock:
            try:
                await self._conn.execute("SELECT pg_notify($1, $2)", self.channel, payload)
            except Exception as exc:
                raise StorageError(f"control bus: sending {op} failed: {exc}") from exc

    def _received(self, conn: object, pid: int, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            logger.warning("control bus: unreadable message %r", payload[:200])
            return
        if not isinstance(message, dict) or message.get("from") == self.node_id:
            return
        task = asyncio.create_task(self._obey(message))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _obey(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        registry = self.registry
        room_id, user_id = str(message.get("room_id", "")), str(message.get("user_id", ""))
        closed = 0
        if op == "invalidate_all":
            closed = registry.close_connections(lambda socket: True)
        elif op == "invalidate_room":
            closed = registry.close_connections(lambda socket: socket.room_id == room_id)
        elif op == "invalidate_user":
            closed = registry.close_connections(lambda socket: socket.user_id == user_id)
        elif op == "delete_room":
            await registry.drop_room(room_id)
        else:
            logger.warning("control bus: unknown message %r", message)
            return
        logger.info("control bus: %s from node %s (%d sockets closed)", op, message["from"], closed)

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


class ClusterCommands(RoomCommands):
    """The REST commands of a node that shares its database with other nodes."""

    def __init__(self, registry: RoomRegistry, bus: ControlBus) -> None:
        super().__init__(registry)
        self.bus = bus

    async def contents(self, room_id: str) -> dict[str, Any]:
        actor = self.registry.actors.get(room_id)
        if actor is not None and not actor.stopped:
            return await super().contents(room_id)
        record = await self._record(room_id)
        if record.status == "deleted":
            raise ApiError(410, f'Room "{room_id}" is deleted', "rooms")
        snapshot = await self.store.load_room(room_id)
        contents = {key: Raw(e.value) for key, e in snapshot.entries.items() if not e.deleted}
        return {"contents": contents}

    async def delete(self, room_id: str) -> dict[str, Any]:
        record = await self._record(room_id)
        if record.status == "closed":
            await self.bus.publish("delete_room", room_id=room_id)
        return await super().delete(room_id)

    async def invalidate_all(self) -> dict[str, Any]:
        await self.bus.publish("invalidate_all")
        return await super().invalidate_all()

    async def invalidate_room(self, room_id: str) -> dict[str, Any]:
        await self.bus.publish("invalidate_room", room_id=room_id)
        return await super().invalidate_room(room_id)

    async def invalidate_user(self, user_id: str) -> dict[str, Any]:
        await self.bus.publish("invalidate_user", user_id=user_id)
        return await super().invalidate_user(user_id)

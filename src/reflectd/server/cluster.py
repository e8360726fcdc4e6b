"""A node among several that share one store: the control messages it obeys and sends.

Low-rate commands that must reach every node (invalidate all connections, a room's or a
user's; drop a deleted room) travel on the store's ``ControlBus``
(``reflectd.storage.control``: PostgreSQL ``LISTEN``/``NOTIFY``, or a hub in this process).
Pokes never do: a room's owner pokes its own sockets.

``ClusterControl`` is this node's end of the bus: it obeys what the other nodes send, acting
on this node's registry, and sends what this node's REST API does. ``ClusterCommands`` is the
REST API's ``RoomCommands`` for such a node: invalidations are announced to every node (each
closes its matching sockets; a proxied socket closes when its owner-side socket does), a
delete first tells the owner to drop the room, and the contents of a room that lives on
another node are read from the store (commits happen before pokes, so the committed state is
the truth), while its connected clients are asked of that node (they live in its memory).
"""

from __future__ import annotations

import asyncio
import logging

from msgspec import Raw

from reflectd.errors import NotOwner
from reflectd.server.rest.commands import ROOM_GONE, RoomCommands
from reflectd.server.rest.wire import Empty, GetRoomContentsResult, RoomClientsResult
from reflectd.server.rooms import RoomRegistry
from reflectd.storage.control import ControlBus, ControlMessage, ControlOp

logger = logging.getLogger(__name__)


class ClusterControl:
    """This node's end of the control bus."""

    def __init__(self, registry: RoomRegistry, bus: ControlBus) -> None:
        self.registry = registry
        self.bus = bus
        self._obeying: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.bus.start(self._received)

    async def close(self) -> None:
        await self.bus.close()

    async def publish(self, op: ControlOp, *, room_id: str = "", user_id: str = "") -> None:
        """Send ``op`` to every other node (this node acts on it itself); ``StorageError`` if
        it could not be sent."""
        sender = self.registry.node_id
        await self.bus.publish(ControlMessage(op, sender, room_id=room_id, user_id=user_id))

    def _received(self, message: ControlMessage) -> None:
        task = asyncio.create_task(self.obey(message))
        self._obeying.add(task)
        task.add_done_callback(self._obeying.discard)

    async def obey(self, message: ControlMessage) -> None:
        """Do what another node asked of this one."""
        registry = self.registry
        closed = 0
        match message.op:
            case "invalidate_all":
                closed = registry.close_connections(lambda socket: True)
            case "invalidate_room":
                room_id = message.room_id
                closed = registry.close_connections(lambda socket: socket.room_id == room_id)
            case "invalidate_user":
                user_id = message.user_id
                closed = registry.close_connections(lambda socket: socket.user_id == user_id)
            case "delete_room":
                await registry.drop_room(message.room_id)
        fields = {"room_id": message.room_id or None, "user_id": message.user_id or None}
        logger.info(
            "control bus: %s from node %s (%d sockets closed)",
            message.op,
            message.sender,
            closed,
            extra={name: value for name, value in fields.items() if value is not None},
        )


class ClusterCommands(RoomCommands):
    """The REST commands of a node that shares its store with other nodes."""

    def __init__(self, registry: RoomRegistry, control: ClusterControl) -> None:
        super().__init__(registry)
        self.control = control

    async def contents(self, room_id: str) -> GetRoomContentsResult:
        actor = self.registry.actors.get(room_id)
        if actor is not None and not actor.stopped:
            return await super().contents(room_id)
        record = await self._record(room_id)
        if record.status == "deleted":
            raise ROOM_GONE.error(room_id=room_id)
        snapshot = await self.store.load_room(room_id)
        contents = {key: Raw(e.value) for key, e in snapshot.entries.items() if not e.deleted}
        return GetRoomContentsResult(contents)

    async def clients(self, room_id: str) -> RoomClientsResult:
        """Answered by the node that runs the room (``NotOwner``: the request is forwarded to
        it), or from the store when no node does."""
        actor = self.registry.actors.get(room_id)
        if (actor is None or actor.stopped) and self.registry.leases is not None:
            owner = await self.registry.leases.current_lease(room_id)
            if owner is not None and owner.node_id != self.registry.node_id and owner.address:
                raise NotOwner(owner)
        return await super().clients(room_id)

    async def delete(self, room_id: str) -> Empty:
        record = await self._record(room_id)
        if record.status == "closed":
            await self.control.publish("delete_room", room_id=room_id)
        return await super().delete(room_id)

    async def invalidate_all(self) -> Empty:
        await self.control.publish("invalidate_all")
        return await super().invalidate_all()

    async def invalidate_room(self, room_id: str) -> Empty:
        await self.control.publish("invalidate_room", room_id=room_id)
        return await super().invalidate_room(room_id)

    async def invalidate_user(self, user_id: str) -> Empty:
        await self.control.publish("invalidate_user", user_id=user_id)
        return await super().invalidate_user(user_id)

"""The live rooms of this process: loading, auto-creating, unloading and draining them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from reflectd.app import App
from reflectd.engine.records import RoomRecord
from reflectd.engine.room import Room
from reflectd.errors import RoomClosed, RoomNotFound
from reflectd.server.actor import RoomActor, RoomUnavailable
from reflectd.server.settings import ServerSettings
from reflectd.server.sockets import ClientSocket
from reflectd.storage.base import Backend

logger = logging.getLogger(__name__)


class RoomRegistry:
    """Finds or loads the actor of a room; one actor per live room in this process."""

    def __init__(self, store: Backend, app: App, settings: ServerSettings) -> None:
        self.store = store
        self.app = app
        self.settings = settings
        self.actors: dict[str, RoomActor] = {}
        self._loading: dict[str, asyncio.Task[RoomActor]] = {}
        self._create_lock = asyncio.Lock()
        self._handlers = app.room_handlers()
        self.closing = False

    async def actor(self, room_id: str) -> RoomActor:
        """The room's actor, loading the room (and running its start handler) if needed."""
        if self.closing:
            raise RoomUnavailable("the server is shutting down")
        actor = self.actors.get(room_id)
        if actor is not None and not actor.stopped:
            return actor
        task = self._loading.get(room_id)
        if task is None:
            task = asyncio.create_task(self._load(room_id))
            self._loading[room_id] = task
            task.add_done_callback(lambda _: self._loading.pop(room_id, None))
        return await asyncio.shield(task)

    async def _load(self, room_id: str) -> RoomActor:
        snapshot = await self.store.load_room(room_id)
        room = Room(room_id, snapshot, handlers=self._handlers, settings=self.settings.engine)
        room.start()
        writes = room.take_writes()
        if not writes.is_empty():
            await self.store.commit(room_id, writes)
        actor = RoomActor(
            room,
            self.store,
            idle_unload_ms=self.settings.room_idle_unload_ms,
            on_stop=self._forget,
        )
        self.actors[room_id] = actor
        return actor

    def _forget(self, actor: RoomActor) -> None:
        if self.actors.get(actor.room_id) is actor:
            del self.actors[actor.room_id]

    async def open_room(self, room_id: str, jurisdiction: str) -> RoomActor:
        """The actor of an open room, auto-creating the room on first connect (spec 1.3
        step 10); ``RoomClosed`` for a closed or deleted room."""
        record = await self.store.get_room(room_id)
        if record is None:
            record = await self._auto_create(room_id, jurisdiction)
        if record.status != "open":
            raise RoomClosed(room_id)
        return await self.actor(room_id)

    async def _auto_create(self, room_id: str, jurisdiction: str) -> RoomRecord:
        try:
            await self.create_room(room_id, jurisdiction)
        except Exception:
            logger.exception("creating room %s failed", room_id)
            raise RoomClosed(room_id) from None
        record = await self.store.get_room(room_id)
        if record is None:
            raise RoomNotFound(room_id)
        return record

    async def create_room(self, room_id: str, jurisdiction: str) -> bool:
        """Create the room (its start handler runs first); False if the roomID exists in any
        status. If the start handler raises, no record is written and the error propagates."""
        async with self._create_lock:
            if await self.store.get_room(room_id) is not None:
                return False
            await self.actor(room_id)
            record = RoomRecord(room_id=room_id, jurisdiction="eu" if jurisdiction else "")
            return await self.store.create_room(record)

    async def delete_room(self, room_id: str) -> None:
        """Mark the room deleted (no new connects), close its sockets, drop it from memory and
        delete its data; the record stays, so the roomID is never reused."""
        await self.store.set_room_status(room_id, "deleted")
        actor = self.actors.get(room_id)
        if actor is not None:
            for socket in list(actor.sockets.values()):
                socket.close()
            await actor.stop()
        await self.store.delete_room_data(room_id)

    def close_connections(self, matches: Callable[[ClientSocket], bool]) -> int:
        """Close (without an error frame) every socket that ``matches``; the clients reconnect
        at once and are authenticated again. Returns how many were closed."""
        closed = 0
        for actor in list(self.actors.values()):
            for socket in list(actor.sockets.values()):
                if matches(socket):
                    socket.close()
                    closed += 1
        return closed

    async def drain(self) -> None:
        """Finish every room's round in progress and stop the actors; sockets stay open."""
        self.closing = True
        await asyncio.gather(*(actor.stop() for actor in list(self.actors.values())))

"""What the REST commands do to rooms and connections.

Results are ``wire.py`` Structs; failures are the ``Failure``s below, raised as ``ApiError``s.
The commands do not know which route or API shape called them.
"""

from __future__ import annotations

import logging

from msgspec import Raw

from reflectd.engine.records import RoomRecord
from reflectd.engine.room import Room
from reflectd.protocol.connect import ROOM_ID_PATTERN, ROOM_ID_RULE
from reflectd.server.rest.failures import Failure
from reflectd.server.rest.wire import (
    MAX_LIST_RESULTS,
    ROOM_EXAMPLE,
    Empty,
    GetRoomContentsResult,
    ListRoomsResult,
)
from reflectd.server.rest.wire import Room as RoomJson
from reflectd.server.rooms import RoomRegistry

logger = logging.getLogger(__name__)

__all__ = ["MAX_LIST_RESULTS", "RoomCommands"]

_ROOM = {"room_id": ROOM_EXAMPLE}

ROOM_NOT_FOUND = Failure(
    404,
    "there is no room with this roomID (in any status)",
    'Room "{room_id}" not found',
    "rooms",
    example=_ROOM,
)
#: the contents of a deleted room
ROOM_GONE = Failure(410, "the room is deleted", 'Room "{room_id}" is deleted', "rooms", _ROOM)
ROOM_DELETED = Failure(409, "the room is deleted", 'Room "{room_id}" is deleted', "rooms", _ROOM)
ROOM_EXISTS = Failure(
    409,
    "the roomID exists (open, closed or deleted)",
    'Room "{room_id}" already exists',
    "rooms",
    _ROOM,
)
ROOM_OPEN = Failure(
    409,
    "the room is open (close it first)",
    'Room "{room_id}" must first be closed',
    "rooms",
    _ROOM,
)
INVALID_ROOM_ID = Failure(
    400,
    "the roomID has characters outside `A-Za-z0-9_/-`",
    f'Invalid roomID "{{room_id}}" (must match {ROOM_ID_RULE})',
    "rooms",
    {"room_id": "bad id!"},
)


class RoomCommands:
    def __init__(self, registry: RoomRegistry) -> None:
        self.registry = registry
        self.store = registry.store

    async def list_rooms(
        self,
        *,
        start_key: str | None,
        start_after_key: str | None,
        room_ids: list[str] | None,
        max_results: int | None,
    ) -> ListRoomsResult:
        limit = (
            MAX_LIST_RESULTS if max_results is None else max(0, min(max_results, MAX_LIST_RESULTS))
        )
        if room_ids is not None:
            wanted = room_ids[:limit]
            found = [r for r in [await self.store.get_room(i) for i in dict.fromkeys(wanted)] if r]
            found.sort(key=lambda r: r.room_id)
            return ListRoomsResult(
                [RoomJson.of(r) for r in found], len(found), len(room_ids) > limit
            )
        fetched = await self.store.list_rooms(
            start_key=start_after_key if start_after_key is not None else start_key or "",
            exclusive=start_after_key is not None,
            limit=limit + 1,
        )
        results = fetched[:limit]
        return ListRoomsResult(
            [RoomJson.of(r) for r in results], len(results), len(fetched) > limit
        )

    async def get_room(self, room_id: str) -> RoomJson:
        return RoomJson.of(await self._record(room_id))

    async def contents(self, room_id: str) -> GetRoomContentsResult:
        record = await self._record(room_id)
        if record.status == "deleted":
            raise ROOM_GONE.error(room_id=room_id)
        actor = await self.registry.actor(room_id)
        contents: dict[str, Raw] = await actor.call(_live_contents)
        return GetRoomContentsResult(contents)

    async def create(self, room_id: str, jurisdiction: str) -> Empty:
        if not ROOM_ID_PATTERN.fullmatch(room_id):
            raise INVALID_ROOM_ID.error(room_id=room_id)
        if not await self.registry.create_room(room_id, jurisdiction):
            raise ROOM_EXISTS.error(room_id=room_id)
        return Empty()

    async def close(self, room_id: str) -> Empty:
        record = await self._record(room_id)
        if record.status == "deleted":
            raise ROOM_DELETED.error(room_id=room_id)
        if record.status == "open":
            await self.registry.set_room_status(room_id, "closed")
            logger.info("room closed", extra={"room_id": room_id})
        return Empty()

    async def delete(self, room_id: str) -> Empty:
        record = await self._record(room_id)
        if record.status == "open":
            raise ROOM_OPEN.error(room_id=room_id)
        if record.status == "closed":
            await self.registry.delete_room(room_id)
            logger.info("room deleted", extra={"room_id": room_id})
        return Empty()

    async def invalidate_all(self) -> Empty:
        self.registry.close_connections(lambda socket: True)
        return Empty()

    async def invalidate_room(self, room_id: str) -> Empty:
        actor = self.registry.actors.get(room_id)
        if actor is None or not actor.sockets:
            return Empty()
        await self._record(room_id)
        self.registry.close_connections(lambda socket: socket.room_id == room_id)
        return Empty()

    async def invalidate_user(self, user_id: str) -> Empty:
        self.registry.close_connections(lambda socket: socket.user_id == user_id)
        return Empty()

    async def _record(self, room_id: str) -> RoomRecord:
        record = await self.store.get_room(room_id)
        if record is None:
            raise ROOM_NOT_FOUND.error(room_id=room_id)
        return record


def _live_contents(room: Room) -> dict[str, Raw]:
    return {key: Raw(value) for key, value in room.live_entries()}

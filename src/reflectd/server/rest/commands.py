"""What the REST commands do to rooms and connections (spec 5.4-5.6).

Results are plain JSON-ready values; failures are ``ApiError``s. The commands do not know
which route shape called them.
"""

from __future__ import annotations

import logging
from typing import Any

from msgspec import Raw

from reflectd.engine.records import RoomRecord
from reflectd.engine.room import Room
from reflectd.errors import ApiError
from reflectd.protocol.connect import ROOM_ID_PATTERN, ROOM_ID_RULE
from reflectd.server.rooms import RoomRegistry

logger = logging.getLogger(__name__)

#: the most rooms one list call returns, whatever ``maxResults`` says
MAX_LIST_RESULTS = 1000


def room_json(record: RoomRecord) -> dict[str, str]:
    return {"roomID": record.room_id, "jurisdiction": record.jurisdiction, "status": record.status}


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
    ) -> dict[str, Any]:
        limit = (
            MAX_LIST_RESULTS if max_results is None else max(0, min(max_results, MAX_LIST_RESULTS))
        )
        if room_ids is not None:
            wanted = room_ids[:limit]
            found = [r for r in [await self.store.get_room(i) for i in dict.fromkeys(wanted)] if r]
            found.sort(key=lambda r: r.room_id)
            return {
                "results": [room_json(r) for r in found],
                "numResults": len(found),
                "more": len(room_ids) > limit,
            }
        fetched = await self.store.list_rooms(
            start_key=start_after_key if start_after_key is not None else start_key or "",
            exclusive=start_after_key is not None,
            limit=limit + 1,
        )
        results = fetched[:limit]
        return {
            "results": [room_json(r) for r in results],
            "numResults": len(results),
            "more": len(fetched) > limit,
        }

    async def get_room(self, room_id: str) -> dict[str, str]:
        return room_json(await self._record(room_id))

    async def contents(self, room_id: str) -> dict[str, Any]:
        record = await self._record(room_id)
        if record.status == "deleted":
            raise ApiError(410, f'Room "{room_id}" is deleted', "rooms")
        actor = await self.registry.actor(room_id)
        contents: dict[str, Raw] = await actor.call(_live_contents)
        return {"contents": contents}

    async def create(self, room_id: str, jurisdiction: str) -> dict[str, Any]:
        if not ROOM_ID_PATTERN.fullmatch(room_id):
            raise ApiError(400, f'Invalid roomID "{room_id}" (must match {ROOM_ID_RULE})', "rooms")
        if not await self.registry.create_room(room_id, jurisdiction):
            raise ApiError(409, f'Room "{room_id}" already exists', "rooms")
        return {}

    async def close(self, room_id: str) -> dict[str, Any]:
        record = await self._record(room_id)
        if record.status == "deleted":
            raise ApiError(409, f'Room "{room_id}" is deleted', "rooms")
        if record.status == "open":
            await self.store.set_room_status(room_id, "closed")
            logger.info("room %s closed", room_id)
        return {}

    async def delete(self, room_id: str) -> dict[str, Any]:
        record = await self._record(room_id)
        if record.status == "open":
            raise ApiError(409, f'Room "{room_id}" must first be closed', "rooms")
        if record.status == "closed":
            await self.registry.delete_room(room_id)
            logger.info("room %s deleted", room_id)
        return {}

    async def invalidate_all(self) -> dict[str, Any]:
        self.registry.close_connections(lambda socket: True)
        return {}

    async def invalidate_room(self, room_id: str) -> dict[str, Any]:
        actor = self.registry.actors.get(room_id)
        if actor is None or not actor.sockets:
            return {}
        await self._record(room_id)
        self.registry.close_connections(lambda socket: socket.room_id == room_id)
        return {}

    async def invalidate_user(self, user_id: str) -> dict[str, Any]:
        self.registry.close_connections(lambda socket: socket.user_id == user_id)
        return {}

    async def _record(self, room_id: str) -> RoomRecord:
        record = await self.store.get_room(room_id)
        if record is None:
            raise ApiError(404, f'Room "{room_id}" not found', "rooms")
        return record


def _live_contents(room: Room) -> dict[str, Raw]:
    return {key: Raw(e.value) for key, e in room.state.entries.items() if not e.deleted}

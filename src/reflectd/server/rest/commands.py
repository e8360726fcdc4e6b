"""What the REST commands do to rooms and connections.

Results are ``wire.py`` Structs; failures are the ``Failure``s below, raised as ``ApiError``s.
The commands do not know which route or API shape called them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

import msgspec
from msgspec import Raw

from reflectd.clock import now_ms
from reflectd.engine.backend import (
    IDEMPOTENCY_RETENTION_MS,
    ImportApplied,
    ServerMutation,
    import_contents,
    mutate_as_server,
)
from reflectd.engine.handlers import CallFailed
from reflectd.engine.records import RoomRecord, RoomSnapshot
from reflectd.engine.room import Room
from reflectd.errors import StorageError
from reflectd.protocol.connect import ROOM_ID_PATTERN, ROOM_ID_RULE
from reflectd.server.rest.failures import Failure
from reflectd.server.rest.wire import (
    MAX_LIST_RESULTS,
    ROOM_EXAMPLE,
    Empty,
    GetRoomContentsResult,
    ImportMode,
    ImportResult,
    ListRoomsResult,
    MutateResult,
    RoomClient,
    RoomClientsResult,
)
from reflectd.server.rest.wire import Room as RoomJson
from reflectd.server.rooms import RoomRegistry
from reflectd.storage.base import Store

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

#: a mutation or import into a closed room
ROOM_CLOSED = Failure(
    409,
    "the room is closed (it takes no more changes)",
    'Room "{room_id}" is closed',
    "rooms",
    _ROOM,
)
UNKNOWN_MUTATOR = Failure(
    400,
    "the app has no mutator of that name",
    'Unknown mutator "{name}"',
    "rooms",
    {"name": "addOrder"},
)
MUTATOR_FAILED = Failure(
    422,
    "the mutator threw (nothing changed)",
    'Mutator "{name}" failed: {message}',
    "rooms",
    {"name": "addOrder", "message": "Error: no such order"},
)
INVALID_CONTENTS = Failure(
    400,
    "a key or value breaks the room's limits (nothing changed)",
    "Invalid contents at key {key}: {reason}",
    "rooms",
    {"key": '"title"', "reason": "the value is larger than 131072 bytes"},
)
#: how often remembered server-side mutations older than the retention are forgotten (s)
FORGET_EVERY_S = 3600.0
#: the longest part of a key quoted in an error message
_QUOTED_KEY_CHARS = 80


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

    async def clients(self, room_id: str) -> RoomClientsResult:
        record = await self._record(room_id)
        actor = self.registry.actors.get(room_id)
        if record.status == "deleted":
            return RoomClientsResult([], [], live=actor is not None and not actor.stopped)
        if actor is not None and not actor.stopped:
            connected: list[_Connected]
            connected, presence = await actor.call(_live_clients)
            opened = {s.connection_id: s.opened_ms for s in actor.sockets.values()}
            clients = [
                RoomClient(c.client_id, c.client_group_id, c.user_id, opened.get(c.id), c.lmid)
                for c in connected
            ]
            return RoomClientsResult(clients, presence, live=True)
        return stored_clients(await self.store.load_room(room_id))

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

    async def mutate(
        self, room_id: str, name: str, args: object, *, key_name: str, idempotency_key: str | None
    ) -> MutateResult:
        """Run the app's mutator ``name`` in the room for its backend; answers once committed.
        ``NotOwner`` when another node owns the room."""
        _check_writable(await self._record(room_id))
        if not self.registry.handlers.has_mutator(name):
            raise UNKNOWN_MUTATOR.error(name=name)
        if idempotency_key is not None:
            remembered = await self.store.find_remembered_call(room_id, idempotency_key)
            if remembered is not None:
                return MutateResult(remembered.version, replayed=True)
        mutation = ServerMutation(name, args, key_name, idempotency_key, now_ms())
        actor = await self.registry.actor(room_id)
        try:
            outcome = await actor.call(partial(mutate_as_server, mutation=mutation))
        except StorageError:
            # the same key committed meanwhile (another call, since this room was loaded)
            if idempotency_key is not None:
                remembered = await self.store.find_remembered_call(room_id, idempotency_key)
                if remembered is not None:
                    return MutateResult(remembered.version, replayed=True)
            raise
        if isinstance(outcome, CallFailed):
            raise MUTATOR_FAILED.error(name=name, message=outcome.message)
        logger.info(
            "server-side mutation %s applied at version %d",
            name,
            outcome.version,
            extra={"room_id": room_id},
        )
        return MutateResult(outcome.version, replayed=outcome.replayed)

    async def import_contents(
        self, room_id: str, contents: dict[str, Raw], mode: ImportMode
    ) -> ImportResult:
        """Write ``contents`` into the room as one change, creating the room if it does not
        exist (as a client's first connect does). ``NotOwner`` when another node owns it."""
        values = self._checked_contents(contents)
        record = await self.store.get_room(room_id)
        if record is None:
            if not ROOM_ID_PATTERN.fullmatch(room_id):
                raise INVALID_ROOM_ID.error(room_id=room_id)
            await self.registry.create_room(room_id, "")
            record = await self._record(room_id)
        _check_writable(record)
        actor = await self.registry.actor(room_id)
        outcome: ImportApplied = await actor.call(
            partial(import_contents, contents=values, replace=mode == "replace")
        )
        logger.info(
            "imported %d keys (%s): %d written, %d deleted, %d skipped",
            len(values),
            mode,
            outcome.written,
            outcome.deleted,
            outcome.skipped,
            extra={"room_id": room_id},
        )
        return ImportResult(outcome.version, outcome.written, outcome.deleted, outcome.skipped)

    def _checked_contents(self, contents: dict[str, Raw]) -> dict[str, bytes]:
        """Each value re-encoded compactly, every key and value within the room's limits."""
        limits = self.registry.engine
        values = {}
        for key, raw in contents.items():
            value = msgspec.json.encode(msgspec.json.decode(raw))
            reason = None
            if len(key.encode()) > limits.max_key_bytes:
                reason = f"the key is longer than {limits.max_key_bytes} bytes"
            elif len(value) > limits.max_value_bytes:
                reason = f"the value is larger than {limits.max_value_bytes} bytes"
            if reason is not None:
                quoted = msgspec.json.encode(key[:_QUOTED_KEY_CHARS]).decode()
                raise INVALID_CONTENTS.error(key=quoted, reason=reason)
            values[key] = value
        return values

    async def invalidate_all(self) -> Empty:
        closed = self.registry.close_connections(lambda socket: True)
        logger.info("every connection invalidated (%d closed here)", closed)
        return Empty()

    async def invalidate_room(self, room_id: str) -> Empty:
        actor = self.registry.actors.get(room_id)
        if actor is None or not actor.sockets:
            return Empty()
        await self._record(room_id)
        closed = self.registry.close_connections(lambda socket: socket.room_id == room_id)
        logger.info(
            "the room's connections invalidated (%d closed here)",
            closed,
            extra={"room_id": room_id},
        )
        return Empty()

    async def invalidate_user(self, user_id: str) -> Empty:
        closed = self.registry.close_connections(lambda socket: socket.user_id == user_id)
        logger.info(
            "the user's connections invalidated (%d closed here)",
            closed,
            extra={"user_id": user_id},
        )
        return Empty()

    async def _record(self, room_id: str) -> RoomRecord:
        record = await self.store.get_room(room_id)
        if record is None:
            raise ROOM_NOT_FOUND.error(room_id=room_id)
        return record


async def forget_old_calls(store: Store) -> None:
    """Forever: forget the idempotency keys of server-side mutations once their retention is
    over (an hour late at most). A failure is logged and tried again next time."""
    while True:
        try:
            forgotten = await store.forget_calls_before(now_ms() - IDEMPOTENCY_RETENTION_MS)
        except StorageError as e:
            logger.warning("forgetting old idempotency keys failed: %s", e)
        else:
            if forgotten:
                logger.info("forgot %d idempotency keys older than 24 h", forgotten)
        await asyncio.sleep(FORGET_EVERY_S)


def _check_writable(record: RoomRecord) -> None:
    """A room takes changes from the backend while it is open."""
    if record.status == "deleted":
        raise ROOM_GONE.error(room_id=record.room_id)
    if record.status == "closed":
        raise ROOM_CLOSED.error(room_id=record.room_id)


def _live_contents(room: Room) -> dict[str, Raw]:
    return {key: Raw(value) for key, value in room.live_entries()}


@dataclass(frozen=True, slots=True)
class _Connected:
    """A connection of a live room, as its actor sees it."""

    id: int
    client_id: str
    client_group_id: str
    user_id: str
    lmid: int


def _live_clients(room: Room) -> tuple[list[_Connected], list[str]]:
    """The room's connections (in clientID order) and presence."""
    connected = []
    for client_id, c in sorted(room.connections.items()):
        record = room.state.clients.get(client_id)
        lmid = 0 if record is None else record.last_mutation_id
        connected.append(_Connected(c.connection_id, client_id, c.client_group_id, c.user_id, lmid))
    return connected, sorted(room.state.connected_clients)


def stored_clients(snapshot: RoomSnapshot) -> RoomClientsResult:
    """A room's clients as storage has them: its connected set with their client records."""
    clients = []
    for client_id in sorted(snapshot.connected_clients):
        record = snapshot.clients.get(client_id)
        if record is None:
            continue
        user_id = record.user_id or ""
        lmid = record.last_mutation_id
        clients.append(RoomClient(client_id, record.client_group_id, user_id, None, lmid))
    return RoomClientsResult(clients, sorted(snapshot.connected_clients), live=False)

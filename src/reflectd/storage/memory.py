"""The in-memory backend: the reference ``Store`` for tests, behaving exactly like SQLite.

A commit builds the room's new state aside and swaps it in only once it is complete, so a
commit that fails halfway leaves nothing behind. Nothing survives the process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

import msgspec
from sortedcontainers import SortedDict

from reflectd.engine.records import (
    ClientRecord,
    Entry,
    OutboxEvent,
    RememberedCall,
    RoomRecord,
    RoomSnapshot,
    RoomStatus,
    RoomWrites,
)
from reflectd.errors import StorageError
from reflectd.storage.base import ApiKeyRecord, Permission
from reflectd.storage.memory_webhooks import MemoryWebhooks
from reflectd.storage.rows import FaultHook, no_fault

if TYPE_CHECKING:
    from reflectd.storage.leases import ClusterStore


@dataclass(frozen=True, slots=True)
class _RoomData:
    """Everything stored for one room; replaced as a whole by each commit."""

    version: int | None = None
    connected_clients: frozenset[str] = frozenset()
    clients: Mapping[str, ClientRecord] = field(default_factory=dict)
    client_tombstones: Mapping[str, str | None] = field(default_factory=dict)
    entries: Mapping[str, Entry] = field(default_factory=dict)
    remembered: Mapping[str, RememberedCall] = field(default_factory=dict)


_NO_DATA = _RoomData()


class MemoryStore(MemoryWebhooks):
    """A ``Store`` kept in dicts.

    ``fault``, for tests, is called at each step of a commit
    (``reflectd.storage.rows.COMMIT_STEPS``); an exception it raises fails the commit.
    """

    def __init__(self, *, fault: FaultHook | None = None) -> None:
        super().__init__()
        self._fault = fault or no_fault
        self._is_open = False
        self._is_closed = False
        #: roomID -> record, in roomID order (str order is UTF-8 byte order)
        self._rooms: SortedDict = SortedDict()
        self._data: dict[str, _RoomData] = {}
        self._api_keys: dict[str, ApiKeyRecord] = {}

    async def open(self) -> None:
        if self._is_open or self._is_closed:
            raise StorageError("memory store: open() called twice")
        self._is_open = True

    async def close(self) -> None:
        self._is_open = False
        self._is_closed = True

    def cluster(self) -> ClusterStore | None:
        """None: only this process sees the store (``MemoryLeaseStore`` is one with leases)."""
        return None

    # ------------------------------------------------------------------ rooms index

    async def get_room(self, room_id: str) -> RoomRecord | None:
        self._check_open()
        record: RoomRecord | None = self._rooms.get(room_id)
        return record

    async def create_room(self, record: RoomRecord, *, events: Sequence[OutboxEvent] = ()) -> bool:
        self._check_open()
        if record.room_id in self._rooms:
            return False
        self._rooms[record.room_id] = record
        self.insert_events(events)
        return True

    async def set_room_status(
        self, room_id: str, status: RoomStatus, *, events: Sequence[OutboxEvent] = ()
    ) -> None:
        """Set the status of an existing room; an unknown roomID changes nothing."""
        self._check_open()
        record: RoomRecord | None = self._rooms.get(room_id)
        if record is not None:
            self._rooms[room_id] = msgspec.structs.replace(record, status=status)
            self.insert_events(events)

    async def list_rooms(
        self, *, start_key: str = "", exclusive: bool = False, limit: int
    ) -> list[RoomRecord]:
        self._check_open()
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        room_ids = self._rooms.irange(minimum=start_key, inclusive=(not exclusive, True))
        return [self._rooms[room_id] for room_id in islice(room_ids, limit)]

    # ------------------------------------------------------------------ API keys

    async def create_api_key(self, record: ApiKeyRecord) -> bool:
        self._check_open()
        if record.name in self._api_keys or await self.find_api_key(record.key_hash):
            return False
        self._api_keys[record.name] = record
        return True

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        self._check_open()
        return next((k for k in self._api_keys.values() if k.key_hash == key_hash), None)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        self._check_open()
        return [self._api_keys[name] for name in sorted(self._api_keys)]

    async def set_api_key_permissions(self, name: str, permissions: tuple[Permission, ...]) -> bool:
        return self._replace_key(name, permissions=permissions)

    async def touch_api_key(self, name: str, now_ms: int) -> None:
        self._replace_key(name, last_used_ms=now_ms)

    async def delete_api_key(self, name: str) -> bool:
        self._check_open()
        return self._api_keys.pop(name, None) is not None

    def _replace_key(self, name: str, **changes: Any) -> bool:
        self._check_open()
        record = self._api_keys.get(name)
        if record is None:
            return False
        self._api_keys[name] = msgspec.structs.replace(record, **changes)
        return True

    # ------------------------------------------------------------------ room data

    async def load_room(self, room_id: str) -> RoomSnapshot:
        self._check_open()
        data = self._data.get(room_id, _NO_DATA)
        return RoomSnapshot(
            version=data.version,
            connected_clients=data.connected_clients,
            clients=dict(sorted(data.clients.items())),
            entries=dict(sorted(data.entries.items())),
        )

    async def commit(self, room_id: str, writes: RoomWrites) -> None:
        self._check_open()
        old = self._data.get(room_id, _NO_DATA)
        try:
            new = self._apply(old, writes)
        except Exception as exc:
            raise StorageError(
                f"memory store: commit to room {room_id!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        self._data[room_id] = new
        self.insert_events(writes.outbox)

    async def delete_room_data(self, room_id: str) -> None:
        self._check_open()
        self._data.pop(room_id, None)

    async def find_remembered_call(self, room_id: str, key: str) -> RememberedCall | None:
        self._check_open()
        return self._data.get(room_id, _NO_DATA).remembered.get(key)

    async def forget_calls_before(self, at_ms: int) -> int:
        self._check_open()
        forgotten = 0
        for room_id, data in list(self._data.items()):
            kept = {k: c for k, c in data.remembered.items() if c.at_ms >= at_ms}
            forgotten += len(data.remembered) - len(kept)
            self._data[room_id] = dataclasses.replace(data, remembered=kept)
        return forgotten

    async def client_tombstones(self, room_id: str) -> dict[str, str | None]:
        """See ``reflectd.storage.base.TombstoneReader``."""
        self._check_open()
        return dict(sorted(self._data.get(room_id, _NO_DATA).client_tombstones.items()))

    # ------------------------------------------------------------------ helpers

    def _apply(self, old: _RoomData, writes: RoomWrites) -> _RoomData:
        """Build the room's state after ``writes``; a client both written and deleted ends
        deleted."""
        self._fault("before_entries")
        entries = {**old.entries, **writes.entries}
        self._fault("after_entries")
        clients = {**old.clients, **writes.clients}
        for client_id in writes.deleted_clients:
            clients.pop(client_id, None)
        client_tombstones = {**old.client_tombstones, **writes.deleted_clients}
        self._fault("after_clients")
        taken = writes.remembered.keys() & old.remembered.keys()
        if taken:
            raise KeyError(f"idempotency key {min(taken)!r} is remembered already")
        new = _RoomData(
            version=old.version if writes.version is None else writes.version,
            connected_clients=(
                old.connected_clients
                if writes.connected_clients is None
                else frozenset(writes.connected_clients)
            ),
            clients=clients,
            client_tombstones=client_tombstones,
            entries=entries,
            remembered={**old.remembered, **writes.remembered},
        )
        self._fault("before_commit")
        return new

    def _check_open(self) -> None:
        if not self._is_open:
            state = "closed" if self._is_closed else "not open yet"
            raise StorageError(f"memory store is {state}")

"""The storage protocol every backend implements (memory, SQLite, PostgreSQL).

A backend keeps, per app: the rooms index (``RoomRecord``), and per room: its version, its
connected-clients set, its client records (plus tombstones of deleted clients) and its user
entries. Keys sort in UTF-8 byte order everywhere.

All methods are coroutines; a backend whose driver is synchronous runs it off the event loop.
``commit`` returns only once the writes are durable: the server sends a turn's pokes (and a
client's ``connected``) only after it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol, get_args

import msgspec

from reflectd.engine.records import (
    OutboxEvent,
    RememberedCall,
    RoomRecord,
    RoomSnapshot,
    RoomStatus,
    RoomWrites,
)
from reflectd.storage.webhooks import WebhookStore

if TYPE_CHECKING:
    from reflectd.storage.leases import ClusterStore

#: the schema version this code writes; backends migrate older stores up to it on open
SCHEMA_VERSION = 5


class Store(Protocol):
    """A storage backend. One instance serves a whole process."""

    async def open(self) -> None:
        """Create or migrate the schema. Called once before any other method."""

    async def close(self) -> None:
        """Release connections and threads. Pending commits finish first."""

    # ------------------------------------------------------------------ rooms index

    async def get_room(self, room_id: str) -> RoomRecord | None: ...

    async def create_room(self, record: RoomRecord, *, events: Sequence[OutboxEvent] = ()) -> bool:
        """Insert ``record``, and ``events`` with it; return False (and change nothing) if the
        roomID exists in any status, deleted included."""

    async def set_room_status(
        self, room_id: str, status: RoomStatus, *, events: Sequence[OutboxEvent] = ()
    ) -> None:
        """Set the status of an existing room, storing ``events`` in the same transaction."""

    async def list_rooms(
        self, *, start_key: str = "", exclusive: bool = False, limit: int
    ) -> list[RoomRecord]:
        """Rooms in roomID byte order, from ``start_key`` (inclusive unless ``exclusive``)."""

    # ------------------------------------------------------------------ room data

    async def load_room(self, room_id: str) -> RoomSnapshot:
        """Everything stored for ``room_id`` (an empty snapshot for a room with no data)."""

    async def commit(self, room_id: str, writes: RoomWrites) -> None:
        """Apply ``writes`` atomically and durably, or raise ``StorageError`` having applied
        nothing."""

    async def delete_room_data(self, room_id: str) -> None:
        """Remove every stored value of the room (user entries, clients, version, remembered
        calls). The room record is kept."""

    async def find_remembered_call(self, room_id: str, key: str) -> RememberedCall | None:
        """The server-side mutation committed with idempotency ``key`` in the room, if any."""
        ...

    async def forget_calls_before(self, at_ms: int) -> int:
        """Forget the remembered calls made before ``at_ms``; returns how many."""
        ...


# ---------------------------------------------------------------------------- API keys

Permission = Literal[
    "rooms:read",
    "rooms:create",
    "rooms:close",
    "rooms:delete",
    "rooms:write",
    "connections:invalidate",
    "logs:read",
    "metrics:read",
]
PERMISSIONS: tuple[Permission, ...] = get_args(Permission)


class ApiKeyRecord(msgspec.Struct, frozen=True):
    """A REST API key: only the SHA-256 of its value is stored."""

    name: str
    key_hash: str
    permissions: tuple[Permission, ...]
    created_ms: int
    last_used_ms: int | None = None


class KeyStore(Protocol):
    """API keys; every backend implements it beside ``Store`` (see ``Backend``)."""

    async def create_api_key(self, record: ApiKeyRecord) -> bool:
        """Insert ``record``; False (nothing changed) if a key of that name exists."""

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None: ...

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """All keys, by name."""

    async def set_api_key_permissions(self, name: str, permissions: tuple[Permission, ...]) -> bool:
        """False if there is no such key."""

    async def touch_api_key(self, name: str, now_ms: int) -> None:
        """Record that the key was used."""

    async def delete_api_key(self, name: str) -> bool:
        """False if there is no such key."""


class TombstoneReader(Protocol):
    """Every backend keeps a tombstone per deleted client (its userID). The engine never reads
    them, so they are not part of ``Store``; tests read them through this."""

    async def client_tombstones(self, room_id: str) -> dict[str, str | None]:
        """The room's client tombstones: clientID -> userID of the deleted record."""


class Backend(Store, KeyStore, WebhookStore, Protocol):
    """What a storage backend implements: room data, the rooms index, API keys and webhooks
    (``reflectd.storage.webhooks``), and says
    whether several nodes may share it."""

    def cluster(self) -> ClusterStore | None:
        """This backend's room leases and control bus if several nodes may share it
        (``reflectd.storage.leases``); None if only this process may use it."""

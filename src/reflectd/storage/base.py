"""The storage protocol every backend implements (memory, SQLite, later PostgreSQL).

A backend keeps, per app: the rooms index (``RoomRecord``), and per room: its version, its
connected-clients set, its client records (plus tombstones of deleted clients) and its user
entries. Keys sort in UTF-8 byte order everywhere.

All methods are coroutines; a backend whose driver is synchronous runs it off the event loop.
``commit`` returns only once the writes are durable: the server sends a turn's pokes (and a
client's ``connected``) only after it returns.
"""

from __future__ import annotations

from typing import Protocol

from reflectd.engine.records import RoomRecord, RoomSnapshot, RoomStatus, RoomWrites

#: the schema version this code writes; backends migrate older stores up to it on open
SCHEMA_VERSION = 1


class Store(Protocol):
    """A storage backend. One instance serves a whole process."""

    async def open(self) -> None:
        """Create or migrate the schema. Called once before any other method."""

    async def close(self) -> None:
        """Release connections and threads. Pending commits finish first."""

    # ------------------------------------------------------------------ rooms index

    async def get_room(self, room_id: str) -> RoomRecord | None: ...

    async def create_room(self, record: RoomRecord) -> bool:
        """Insert ``record``; return False (and change nothing) if the roomID exists in any
        status, deleted included."""

    async def set_room_status(self, room_id: str, status: RoomStatus) -> None:
        """Set the status of an existing room."""

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
        """Remove every stored value of the room (user entries, clients, version). The room
        record is kept."""

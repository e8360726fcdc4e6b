"""The durable records of a room: user entries, client records, and the room's snapshot.

User values are kept as encoded JSON bytes: reading one decodes a fresh copy (a mutator can
never alter stored state by mutating what it read), and a patch reuses the bytes as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import msgspec

RoomStatus = Literal["open", "closed", "deleted"]


class Entry(msgspec.Struct, frozen=True):
    """A user value with the room version of its last change; ``deleted`` marks a tombstone.

    A tombstone keeps its last value (as the original does) and is kept for ever, so that a
    client behind it learns of the delete in its fast-forward.
    """

    version: int
    deleted: bool
    value: bytes


class ClientRecord(msgspec.Struct, frozen=True):
    """What the room knows of a client, kept until the client is deleted."""

    client_group_id: str
    #: the cookie the server believes the client has
    base_cookie: int | None
    #: last applied mutation id (0 = none)
    last_mutation_id: int
    #: room version at which ``last_mutation_id`` last changed
    last_mutation_id_version: int | None
    last_seen_ms: int | None
    user_id: str | None
    #: set by the close beacon while the client was still connected
    last_mutation_id_at_close: int | None = None


class RoomRecord(msgspec.Struct, frozen=True):
    """A room in the app's rooms index."""

    room_id: str
    jurisdiction: Literal["", "eu"] = ""
    status: RoomStatus = "open"
    #: when the room was created (ms since the Unix epoch); None for a room created before
    #: reflectd recorded it (the migration that added the column leaves them NULL)
    created_ms: int | None = None


@dataclass(slots=True)
class RoomSnapshot:
    """Everything stored for one room, as loaded by a storage backend."""

    version: int | None = None
    connected_clients: frozenset[str] = frozenset()
    clients: dict[str, ClientRecord] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)


class RememberedCall(msgspec.Struct, frozen=True):
    """A server-side mutation made with an idempotency key: a retry with the same key answers
    this instead of running the mutator again."""

    #: the room version the mutation was applied at
    version: int
    #: when it was applied (ms since the epoch); it is forgotten after a retention period
    at_ms: int


class OutboxEvent(msgspec.Struct, frozen=True):
    """A webhook event, committed with the writes that caused it (the outbox) and delivered
    later by the server. The engine never makes one: the server adds them to a round's writes.

    ``payload`` is the JSON body as it will be sent. ``replaces`` names an earlier event of the
    same room whose delivery has not started: that event takes this one's payload instead (a
    throttled ``room.changed`` carries the latest version); when it has started, this one is
    stored as a new event.
    """

    event_id: str
    type: str
    room_id: str
    payload: bytes
    created_ms: int
    #: not delivered before this time (ms since the epoch)
    deliver_after_ms: int
    replaces: str | None = None


@dataclass(slots=True)
class RoomWrites:
    """The writes of one turn (or one connect), committed atomically by a backend.

    ``None`` for ``version`` and ``connected_clients`` means unchanged.
    """

    version: int | None = None
    connected_clients: frozenset[str] | None = None
    #: client records to insert or replace
    clients: dict[str, ClientRecord] = field(default_factory=dict)
    #: clients to delete: clientID -> userID of the deleted record (kept in a tombstone)
    deleted_clients: dict[str, str | None] = field(default_factory=dict)
    #: user entries to insert or replace (live values and tombstones)
    entries: dict[str, Entry] = field(default_factory=dict)
    #: server-side mutations to remember by idempotency key (inserted; a key that is stored
    #: already fails the commit)
    remembered: dict[str, RememberedCall] = field(default_factory=dict)
    #: webhook events committed with these writes (the server adds them)
    outbox: list[OutboxEvent] = field(default_factory=list)

    def is_empty(self) -> bool:
        return (
            self.version is None
            and self.connected_clients is None
            and not self.clients
            and not self.deleted_clients
            and not self.entries
            and not self.remembered
            and not self.outbox
        )

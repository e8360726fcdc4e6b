"""A room's stored state, held in memory, recording every change for the next commit."""

from __future__ import annotations

import msgspec
from sortedcontainers import SortedDict

from reflectd.engine.records import ClientRecord, Entry, RememberedCall, RoomSnapshot, RoomWrites


class RoomState:
    """The room's version, connected-clients set, client records and user entries.

    Every change goes through a method here, which also records it in ``writes``; the server
    commits ``take_writes()`` before it sends anything that depends on it.
    """

    def __init__(self, snapshot: RoomSnapshot) -> None:
        self.version: int | None = snapshot.version
        self.connected_clients: frozenset[str] = snapshot.connected_clients
        self.clients: dict[str, ClientRecord] = dict(snapshot.clients)
        self.entries: SortedDict = SortedDict(snapshot.entries)
        self._writes = RoomWrites()
        #: entries changed since an app runtime last took them (None: nobody asks)
        self.journal: dict[str, Entry] | None = None
        #: server-side mutations remembered by idempotency key since the room was loaded,
        #: oldest first (those from before are in storage only)
        self.remembered: dict[str, RememberedCall] = {}

    def set_version(self, version: int) -> None:
        self.version = version
        self._writes.version = version

    def set_connected_clients(self, client_ids: frozenset[str]) -> None:
        self.connected_clients = client_ids
        self._writes.connected_clients = client_ids

    def put_client(self, client_id: str, record: ClientRecord) -> None:
        self.clients[client_id] = record
        self._writes.clients[client_id] = record
        self._writes.deleted_clients.pop(client_id, None)

    def set_base_cookie(self, client_id: str, cookie: int) -> None:
        """Record that a connected client now has ``cookie``, in memory only.

        Storage needs a client's base cookie only as of its connect: a client that connects
        again says which cookie it has. So the turns of a room of a thousand clients do not
        write a thousand client records each (``Checkpoint`` keeps the cookies across an undone
        round). A record written for another reason carries the cookie along."""
        self.clients[client_id] = msgspec.structs.replace(
            self.clients[client_id], base_cookie=cookie
        )

    def delete_client(self, client_id: str) -> None:
        record = self.clients.pop(client_id)
        self._writes.clients.pop(client_id, None)
        self._writes.deleted_clients[client_id] = record.user_id

    def put_entries(self, entries: dict[str, Entry], *, journal: bool = True) -> None:
        """Store ``entries``; ``journal=False`` for writes the app runtime made itself."""
        # key by key: SortedDict.update re-sorts every key when the update is not tiny
        for key, entry in entries.items():
            self.entries[key] = entry
        self._writes.entries.update(entries)
        if journal and self.journal is not None:
            self.journal.update(entries)

    def remember(self, key: str, call: RememberedCall, *, retention_ms: int) -> None:
        """Remember a server-side mutation by its idempotency key; forget those older than
        ``retention_ms`` (storage keeps them until it prunes them)."""
        self.remembered[key] = call
        self._writes.remembered[key] = call
        for old_key, old in list(self.remembered.items()):
            if old.at_ms > call.at_ms - retention_ms:
                break
            del self.remembered[old_key]

    def take_writes(self) -> RoomWrites:
        """The changes since the last call, to be committed."""
        writes, self._writes = self._writes, RoomWrites()
        return writes

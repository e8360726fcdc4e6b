"""What it takes to undo the engine calls and turns whose writes could not be committed.

The server changes a room in memory before its writes are committed. When the commit
fails, storage still holds the state from before, so the stored part is reloaded (the
caller loads it); what lives only in memory (the connections, the pending queue, the time
of the last client GC, the cookies the connected clients have) is put back from a
``Checkpoint`` taken before.

Taking one costs a copy of the connection list and of the queue: the round's turn touches
each of them anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from reflectd.engine.pending import PendingMutation
from reflectd.engine.records import RoomSnapshot
from reflectd.engine.room import Connection, Room
from reflectd.engine.state import RoomState


@dataclass(frozen=True, slots=True)
class Checkpoint:
    #: each connection with the fields a round may change: clock offset, initial presence
    connections: tuple[tuple[str, Connection, float | None, bool], ...]
    queue: tuple[PendingMutation, ...]
    last_gc_ms: int | None
    #: the cookie each connected client has (kept in memory only: ``set_base_cookie``)
    base_cookies: tuple[tuple[str, int | None], ...]

    @classmethod
    def take(cls, room: Room) -> Checkpoint:
        return cls(
            connections=tuple(
                (client_id, c, c.clock_offset_ms, c.sent_initial_presence)
                for client_id, c in room.connections.items()
            ),
            queue=tuple(room.queue),
            last_gc_ms=room.last_gc_ms,
            base_cookies=tuple(
                (client_id, room.state.clients[client_id].base_cookie)
                for client_id in room.connections
                if client_id in room.state.clients
            ),
        )

    def restore(self, room: Room, stored: RoomSnapshot) -> None:
        """Put ``room`` back as it was when this was taken: its stored state is ``stored``
        (as storage holds it now), the rest comes from this checkpoint; queued frames go."""
        room.state = RoomState(stored)
        room.connections = {}
        for client_id, connection, clock_offset_ms, sent_initial_presence in self.connections:
            connection.clock_offset_ms = clock_offset_ms
            connection.sent_initial_presence = sent_initial_presence
            room.connections[client_id] = connection
        room.queue = list(self.queue)
        room.last_gc_ms = self.last_gc_ms
        for client_id, base_cookie in self.base_cookies:
            record = room.state.clients.get(client_id)
            if record is not None and base_cookie is not None:
                room.state.set_base_cookie(client_id, base_cookie)
        room.take_effects()
        room.streamed_patches.clear()  # they may hold what was just undone

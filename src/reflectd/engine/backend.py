"""Changes that the app's backend makes to a room: a mutator run by the server
(``rooms:mutate``) and an import of contents (``rooms:import``).

Each is one authoritative change at the room's next version, made between turns: the room is
marked ``unpoked`` and its next turn's fast-forward brings every connected client up to the
new version with one patch. Nothing here waits: the caller (the room's actor) commits the
writes, then answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reflectd.engine.handlers import AppCall, CallFailed
from reflectd.engine.records import Entry, RememberedCall
from reflectd.engine.room import PER_CLIENT_PREFIX, Room
from reflectd.protocol.connect import SERVER_CLIENT_ID

#: how long a server-side mutation is remembered by its idempotency key (ms)
IDEMPOTENCY_RETENTION_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class ServerMutation:
    """A mutator call from the app's backend."""

    name: str
    args: Any
    #: the name of the API key that asked (``tx.auth.apiKeyName``)
    key_name: str
    #: a retry with the same key is answered without running the mutator again
    idempotency_key: str | None
    now_ms: int


@dataclass(frozen=True, slots=True)
class MutationApplied:
    version: int
    #: the idempotency key was seen: this is the first call's outcome, nothing ran now
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class ImportApplied:
    version: int
    #: keys written (new or changed values)
    written: int
    #: keys deleted (``replace`` only)
    deleted: int
    #: keys left out: those under ``-/p/``, which belong to a room's clients
    skipped: int


def server_auth(key_name: str) -> dict[str, str]:
    """``tx.auth`` of a server-side mutation."""
    return {"userID": SERVER_CLIENT_ID, "apiKeyName": key_name}


def mutate_as_server(room: Room, mutation: ServerMutation) -> MutationApplied | CallFailed:
    """Run the mutator at the room's next version, as ``SERVER_CLIENT_ID``. A mutator that
    raises changes nothing (not even the version). The caller checked that it exists."""
    key = mutation.idempotency_key
    if key is not None and key in room.state.remembered:
        return MutationApplied(room.state.remembered[key].version, replayed=True)
    version = (room.state.version or 0) + 1
    call = AppCall(
        "mutator",
        client_id=SERVER_CLIENT_ID,
        version=version,
        name=mutation.name,
        args=mutation.args,
        auth=server_auth(mutation.key_name),
    )
    result = room.run_call(call)
    failed = isinstance(result, CallFailed)
    room.mutation_outcomes[mutation.name, "error" if failed else "applied"] += 1
    if isinstance(result, CallFailed):
        return result
    _changed(room, version)
    if key is not None:
        remembered = RememberedCall(version, mutation.now_ms)
        room.state.remember(key, remembered, retention_ms=IDEMPOTENCY_RETENTION_MS)
    return MutationApplied(version)


def import_contents(room: Room, contents: Mapping[str, bytes], *, replace: bool) -> ImportApplied:
    """Write ``contents`` (key -> JSON value) at the room's next version; with ``replace``,
    also delete every other key. Keys under ``-/p/`` are neither written nor deleted: they
    belong to the room's own clients. Values equal to the stored ones are not rewritten; when
    nothing changes, neither does the version."""
    entries: Mapping[str, Entry] = room.state.entries
    version = (room.state.version or 0) + 1
    changes: dict[str, Entry] = {}
    skipped = 0
    for key, value in contents.items():
        if key.startswith(PER_CLIENT_PREFIX):
            skipped += 1
            continue
        current = entries.get(key)
        if current is None or current.deleted or current.value != value:
            changes[key] = Entry(version=version, deleted=False, value=value)
    written = len(changes)
    if replace:
        for key, entry in entries.items():
            if not (entry.deleted or key in contents or key.startswith(PER_CLIENT_PREFIX)):
                changes[key] = Entry(version=version, deleted=True, value=entry.value)
    if changes:
        room.state.put_entries(changes)
        _changed(room, version)
    return ImportApplied(room.state.version or 0, written, len(changes) - written, skipped)


def _changed(room: Room, version: int) -> None:
    room.state.set_version(version)
    room.unpoked = True

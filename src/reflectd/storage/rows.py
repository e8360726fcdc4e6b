"""How records become table rows and back: the one row mapping of the SQL backends.

SQLite and PostgreSQL keep the same tables with the same columns in the same order
(``reflectd.storage.migrations``). They differ in one respect: PostgreSQL stores the strings a
client or an app chooses freely (user keys, client IDs, client group IDs, user IDs) as their
UTF-8 bytes, so the functions that touch those take the conversion (``data`` to store, ``text``
to read back; SQLite passes none).

The memory backend shares the tables' names and the fault hook: every backend calls its hook
at the steps of ``COMMIT_STEPS``, so that the contract tests break them all at the same places.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from reflectd.engine.records import ClientRecord, Entry, RoomRecord, RoomSnapshot
from reflectd.storage.base import PERMISSIONS, ApiKeyRecord

#: the tables of a room's data, which ``delete_room_data`` empties (the rooms index stays)
ROOM_DATA_TABLES = (
    "room_versions",
    "connected_clients",
    "clients",
    "client_tombstones",
    "entries",
    "remembered_calls",
)

#: the columns of ``rooms``, as ``room_record`` reads them
ROOM_COLUMNS = "room_id, jurisdiction, status, created_ms"

#: the columns of ``clients`` beside its key, in the order of ``client_values``
CLIENT_COLUMNS = (
    "client_group_id, base_cookie, last_mutation_id, last_mutation_id_version,"
    " last_seen_ms, user_id, last_mutation_id_at_close"
)

#: the columns of ``api_keys``, in the order of ``api_key_values``
API_KEY_COLUMNS = "name, key_hash, permissions, created_ms, last_used_ms"

#: the steps of a commit at which a store calls its fault hook, in order; "before_commit" is
#: the last moment before the writes become durable
COMMIT_STEPS = ("before_entries", "after_entries", "after_clients", "before_commit")

#: a store's fault hook, for tests: called with each step of a commit; what it raises fails
#: the commit like an I/O error
FaultHook = Callable[[str], None]


class Row(Protocol):
    """A row as the drivers return it (a tuple, an ``asyncpg.Record``): indexed by column."""

    def __getitem__(self, index: int, /) -> Any: ...


def no_fault(step: str) -> None:
    """The fault hook of a store that no test breaks."""


def _same(value: Any) -> Any:
    return value


# ---------------------------------------------------------------------------- rooms


def room_record(row: Row) -> RoomRecord:
    """A row of ``ROOM_COLUMNS``."""
    return RoomRecord(room_id=row[0], jurisdiction=row[1], status=row[2], created_ms=row[3])


def room_values(record: RoomRecord) -> tuple[object, ...]:
    """The values of ``ROOM_COLUMNS``, in that order."""
    return (record.room_id, record.jurisdiction, record.status, record.created_ms)


# ---------------------------------------------------------------------------- room data


def client_values(
    client: ClientRecord, *, data: Callable[[str], Any] = _same
) -> tuple[object, ...]:
    """The values of ``CLIENT_COLUMNS``, in that order."""
    return (
        data(client.client_group_id),
        client.base_cookie,
        client.last_mutation_id,
        client.last_mutation_id_version,
        client.last_seen_ms,
        None if client.user_id is None else data(client.user_id),
        client.last_mutation_id_at_close,
    )


def client_record(row: Row, *, text: Callable[[Any], str] = _same) -> ClientRecord:
    """A row of ``client_id, CLIENT_COLUMNS`` (the client ID is the key, not a field)."""
    user_id = row[6]
    return ClientRecord(
        client_group_id=text(row[1]),
        base_cookie=row[2],
        last_mutation_id=row[3],
        last_mutation_id_version=row[4],
        last_seen_ms=row[5],
        user_id=None if user_id is None else text(user_id),
        last_mutation_id_at_close=row[7],
    )


def room_snapshot(
    version: int | None,
    *,
    connected: Iterable[Row],
    clients: Iterable[Row],
    entries: dict[str, Entry],
    text: Callable[[Any], str] = _same,
) -> RoomSnapshot:
    """A room as loaded: rows of ``client_id`` and of ``client_id, CLIENT_COLUMNS``, and its
    entries (``add_entries``)."""
    return RoomSnapshot(
        version=version,
        connected_clients=frozenset(text(row[0]) for row in connected),
        clients={text(row[0]): client_record(row, text=text) for row in clients},
        entries=entries,
    )


def add_entries(
    entries: dict[str, Entry], found: Iterable[Row], *, text: Callable[[Any], str] = _same
) -> dict[str, Entry]:
    """Add rows of ``key, version, deleted, value`` to ``entries``; returns it."""
    for row in found:
        entries[text(row[0])] = Entry(version=row[1], deleted=bool(row[2]), value=row[3])
    return entries


# ---------------------------------------------------------------------------- API keys


def api_key_values(record: ApiKeyRecord) -> tuple[object, ...]:
    """The values of ``API_KEY_COLUMNS``: permissions space-separated."""
    return (
        record.name,
        record.key_hash,
        " ".join(record.permissions),
        record.created_ms,
        record.last_used_ms,
    )


def api_key_record(row: Row) -> ApiKeyRecord:
    """A row of ``API_KEY_COLUMNS``; a permission this reflectd does not know is dropped."""
    permissions = tuple(p for p in row[2].split() if p in PERMISSIONS)
    return ApiKeyRecord(
        name=row[0],
        key_hash=row[1],
        permissions=permissions,
        created_ms=row[3],
        last_used_ms=row[4],
    )

"""The SQLite schema and its migrations.

``MIGRATIONS[n]`` takes a file from schema version ``n`` to ``n + 1``; version 0 is an empty
file. The version is kept in ``PRAGMA user_version`` and ``PRAGMA application_id`` marks the
file as reflectd's. Each step runs in its own transaction together with its version bump, so
an interrupted migration resumes where it stopped. Append steps; never edit a released one.

Every table is ``WITHOUT ROWID`` and keyed by TEXT with the default BINARY collation, which
orders keys in UTF-8 byte order.
"""

from __future__ import annotations

import sqlite3

from reflectd.errors import StorageError
from reflectd.storage.base import SCHEMA_VERSION

#: "RFLD": marks a SQLite file as a reflectd database
APPLICATION_ID = 0x52464C44

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 0 -> 1: the initial schema
    (
        """CREATE TABLE rooms (
            room_id TEXT NOT NULL PRIMARY KEY,
            jurisdiction TEXT NOT NULL,
            status TEXT NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE room_versions (
            room_id TEXT NOT NULL PRIMARY KEY,
            version INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE connected_clients (
            room_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            PRIMARY KEY (room_id, client_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE clients (
            room_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            client_group_id TEXT NOT NULL,
            base_cookie INTEGER,
            last_mutation_id INTEGER NOT NULL,
            last_mutation_id_version INTEGER,
            last_seen_ms INTEGER,
            user_id TEXT,
            last_mutation_id_at_close INTEGER,
            PRIMARY KEY (room_id, client_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE client_tombstones (
            room_id TEXT NOT NULL,
            client_id TEXT NOT NULL,
            user_id TEXT,
            PRIMARY KEY (room_id, client_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE entries (
            room_id TEXT NOT NULL,
            key TEXT NOT NULL,
            version INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            value BLOB NOT NULL,
            PRIMARY KEY (room_id, key)
        ) WITHOUT ROWID""",
    ),
    # 1 -> 2: REST API keys (only hashes of their values)
    (
        """CREATE TABLE api_keys (
            name TEXT NOT NULL PRIMARY KEY,
            key_hash TEXT NOT NULL UNIQUE,
            permissions TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            last_used_ms INTEGER
        ) WITHOUT ROWID""",
    ),
    # 2 -> 3: server-side mutations remembered by their idempotency key
    (
        """CREATE TABLE remembered_calls (
            room_id TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            version INTEGER NOT NULL,
            at_ms INTEGER NOT NULL,
            PRIMARY KEY (room_id, idempotency_key)
        ) WITHOUT ROWID""",
        "CREATE INDEX remembered_calls_at ON remembered_calls (at_ms)",
    ),
    # 3 -> 4: when each room was created (NULL for the rooms made before)
    ("ALTER TABLE rooms ADD COLUMN created_ms INTEGER",),
    # 4 -> 5: webhooks: endpoints, the outbox of events, their deliveries (storage/webhooks.py)
    (
        """CREATE TABLE webhook_endpoints (
            endpoint_id TEXT NOT NULL PRIMARY KEY,
            url TEXT NOT NULL,
            event_types TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_ms INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE webhook_events (
            event_id TEXT NOT NULL PRIMARY KEY,
            type TEXT NOT NULL,
            room_id TEXT NOT NULL,
            payload BLOB NOT NULL,
            created_ms INTEGER NOT NULL,
            deliver_after_ms INTEGER NOT NULL,
            fanned_out INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID""",
        "CREATE INDEX webhook_events_due ON webhook_events (fanned_out, deliver_after_ms)",
        """CREATE TABLE webhook_deliveries (
            event_id TEXT NOT NULL,
            endpoint_id TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_ms INTEGER NOT NULL,
            next_attempt_ms INTEGER NOT NULL,
            claimed_by TEXT NOT NULL DEFAULT '',
            claimed_until_ms INTEGER NOT NULL DEFAULT 0,
            last_attempt_ms INTEGER,
            last_status INTEGER,
            last_error TEXT,
            PRIMARY KEY (event_id, endpoint_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_ms)",
        "CREATE INDEX webhook_deliveries_log ON webhook_deliveries (created_ms)",
    ),
)


def migrate(conn: sqlite3.Connection, name: str) -> None:
    """Bring the file ``name`` open on ``conn`` (in autocommit mode) up to SCHEMA_VERSION.

    Raises ``StorageError`` for a file of another application or of a newer schema version.
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _check(conn, name)
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _check(conn: sqlite3.Connection, name: str) -> int:
    """The file's schema version, once it is known to be one this code can migrate."""
    application_id: int = conn.execute("PRAGMA application_id").fetchone()[0]
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version < 0 or (application_id != APPLICATION_ID and (application_id, version) != (0, 0)):
        raise StorageError(
            f"{name} is not a reflectd database (SQLite application_id {application_id:#x}, "
            f"user_version {version})"
        )
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"{name} has schema version {version}, but this reflectd knows versions up to "
            f"{SCHEMA_VERSION} only: upgrade reflectd to open it"
        )
    return version

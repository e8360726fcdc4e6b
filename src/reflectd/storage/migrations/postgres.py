"""The PostgreSQL schema and its migrations.

Every table lives in one PostgreSQL schema (``reflectd`` unless told otherwise), whose
``schema_version`` table holds one row: the version of reflectd's schema. ``MIGRATIONS[n]``
takes a schema from version ``n`` to ``n + 1``; version 0 is an absent or empty schema. Append
steps; never edit a released one. The PostgreSQL schema keeps its own version, independent of
the SQLite file's.

``migrate`` runs in ONE transaction under a transaction-level advisory lock keyed by the schema
name: nodes starting at once queue on the lock, the first migrates, the others then find the
current version; a migration that fails leaves nothing behind (PostgreSQL DDL is
transactional).

Column types: room IDs and API key names are ``TEXT COLLATE "C"`` (byte order, which in a UTF8
database is UTF-8 byte order). Every string that a client or an app chooses freely (user keys,
client IDs, client group IDs, user IDs) is stored as its UTF-8 bytes in ``BYTEA``, which sorts
in the same byte order and, unlike ``TEXT``, holds NUL characters; values are ``BYTEA`` too.
``{schema}`` in a statement is the quoted schema name.
"""

from __future__ import annotations

from typing import Any, Protocol

from reflectd.errors import StorageError
from reflectd.storage.rows import ROOM_DATA_TABLES

#: "RFLD": the first key of the advisory lock taken while migrating (the second is a hash of
#: the schema name)
LOCK_CLASS = 0x52464C44

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 0 -> 1: rooms, room data and API keys (as the SQLite schema version 2)
    (
        """CREATE TABLE {schema}.rooms (
            room_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
            jurisdiction TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('open', 'closed', 'deleted'))
        )""",
        """CREATE TABLE {schema}.room_versions (
            room_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
            version BIGINT NOT NULL
        )""",
        """CREATE TABLE {schema}.connected_clients (
            room_id TEXT COLLATE "C" NOT NULL,
            client_id BYTEA NOT NULL,
            PRIMARY KEY (room_id, client_id)
        )""",
        """CREATE TABLE {schema}.clients (
            room_id TEXT COLLATE "C" NOT NULL,
            client_id BYTEA NOT NULL,
            client_group_id BYTEA NOT NULL,
            base_cookie BIGINT,
            last_mutation_id BIGINT NOT NULL,
            last_mutation_id_version BIGINT,
            last_seen_ms BIGINT,
            user_id BYTEA,
            last_mutation_id_at_close BIGINT,
            PRIMARY KEY (room_id, client_id)
        )""",
        """CREATE TABLE {schema}.client_tombstones (
            room_id TEXT COLLATE "C" NOT NULL,
            client_id BYTEA NOT NULL,
            user_id BYTEA,
            PRIMARY KEY (room_id, client_id)
        )""",
        """CREATE TABLE {schema}.entries (
            room_id TEXT COLLATE "C" NOT NULL,
            key BYTEA NOT NULL,
            version BIGINT NOT NULL,
            deleted BOOLEAN NOT NULL,
            value BYTEA NOT NULL,
            PRIMARY KEY (room_id, key)
        )""",
        """CREATE TABLE {schema}.api_keys (
            name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
            key_hash TEXT COLLATE "C" NOT NULL UNIQUE,
            permissions TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            last_used_ms BIGINT
        )""",
    ),
    # 1 -> 2: room ownership leases (reflectd.storage.leases); expiry in ms on the server's clock
    (
        """CREATE TABLE {schema}.room_leases (
            room_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
            node_id TEXT NOT NULL,
            address TEXT NOT NULL,
            epoch BIGINT NOT NULL,
            expires_at_ms BIGINT NOT NULL
        )""",
    ),
    # 2 -> 3: the secret the nodes sign their requests to each other with (one row, made by
    # the first node that needs it: reflectd.storage.leases)
    (
        """CREATE TABLE {schema}.cluster_secret (
            singleton BOOLEAN NOT NULL PRIMARY KEY DEFAULT TRUE CHECK (singleton),
            secret BYTEA NOT NULL
        )""",
    ),
    # 3 -> 4: server-side mutations remembered by their idempotency key
    (
        """CREATE TABLE {schema}.remembered_calls (
            room_id TEXT COLLATE "C" NOT NULL,
            idempotency_key TEXT COLLATE "C" NOT NULL,
            version BIGINT NOT NULL,
            at_ms BIGINT NOT NULL,
            PRIMARY KEY (room_id, idempotency_key)
        )""",
        "CREATE INDEX remembered_calls_at ON {schema}.remembered_calls (at_ms)",
    ),
    # 4 -> 5: when each room was created (NULL for the rooms made before)
    ("ALTER TABLE {schema}.rooms ADD COLUMN created_ms BIGINT",),
    # 5 -> 6: webhooks: endpoints, the outbox of events, their deliveries (storage/webhooks.py)
    (
        """CREATE TABLE {schema}.webhook_endpoints (
            endpoint_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
            url TEXT NOT NULL,
            event_types TEXT NOT NULL,
            secret TEXT NOT NULL,
            created_ms BIGINT NOT NULL
        )""",
        """CREATE TABLE {schema}.webhook_events (
            event_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
            type TEXT NOT NULL,
            room_id TEXT COLLATE "C" NOT NULL,
            payload BYTEA NOT NULL,
            created_ms BIGINT NOT NULL,
            deliver_after_ms BIGINT NOT NULL,
            fanned_out BOOLEAN NOT NULL DEFAULT FALSE
        )""",
        """CREATE INDEX webhook_events_due ON {schema}.webhook_events (deliver_after_ms)
            WHERE NOT fanned_out""",
        """CREATE TABLE {schema}.webhook_deliveries (
            event_id TEXT COLLATE "C" NOT NULL,
            endpoint_id TEXT COLLATE "C" NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            created_ms BIGINT NOT NULL,
            next_attempt_ms BIGINT NOT NULL,
            claimed_by TEXT NOT NULL DEFAULT '',
            claimed_until_ms BIGINT NOT NULL DEFAULT 0,
            last_attempt_ms BIGINT,
            last_status INTEGER,
            last_error TEXT,
            PRIMARY KEY (event_id, endpoint_id)
        )""",
        """CREATE INDEX webhook_deliveries_due ON {schema}.webhook_deliveries (next_attempt_ms)
            WHERE state = 'pending'""",
        "CREATE INDEX webhook_deliveries_log ON {schema}.webhook_deliveries (created_ms)",
    ),
)

#: the tables of the schema, but ``schema_version``
TABLES = (
    "rooms",
    *ROOM_DATA_TABLES,
    "api_keys",
    "room_leases",
    "cluster_secret",
    "webhook_endpoints",
    "webhook_events",
    "webhook_deliveries",
)

#: the schema version this code writes
SCHEMA_VERSION = len(MIGRATIONS)


class Connection(Protocol):
    """The part of an ``asyncpg.Connection`` that ``migrate`` uses."""

    async def execute(self, query: str, *args: object) -> str: ...

    async def fetchval(self, query: str, *args: object) -> Any: ...


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    if not name or "\x00" in name:
        raise ValueError(f"invalid PostgreSQL schema name {name!r}")
    return '"' + name.replace('"', '""') + '"'


async def schema_version(conn: Connection, schema: str) -> int:
    """The version recorded in ``schema`` (0 if it has no ``schema_version`` table)."""
    exists = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", f"{quote_ident(schema)}.schema_version"
    )
    if not exists:
        return 0
    version = await conn.fetchval(f"SELECT version FROM {quote_ident(schema)}.schema_version")
    return 0 if version is None else int(version)


async def migrate(conn: Connection, schema: str, name: str) -> None:
    """Bring ``schema`` up to SCHEMA_VERSION; ``conn`` must be in a transaction.

    Takes the migration lock (held until the transaction ends), creates the schema if it is
    missing, and raises ``StorageError`` for a schema of a newer version. ``name`` names the
    database in error messages.
    """
    quoted = quote_ident(schema)
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, schema)
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema
    ):
        await conn.execute(f"CREATE SCHEMA {quoted}")
    version = await schema_version(conn, schema)
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"{name}: schema {schema!r} has schema version {version}, but this reflectd knows "
            f"versions up to {SCHEMA_VERSION} only: upgrade reflectd to open it"
        )
    if version == SCHEMA_VERSION:
        return
    if version == 0:
        taken = await conn.fetchval(
            "SELECT string_agg(tablename, ', ' ORDER BY tablename) FROM pg_tables"
            " WHERE schemaname = $1 AND tablename = ANY($2::text[])",
            schema,
            list(TABLES),
        )
        if taken:
            raise StorageError(
                f"{name}: schema {schema!r} is not a reflectd schema (it has no schema_version"
                f" table but has tables {taken}): name another schema"
            )
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {quoted}.schema_version (
                singleton BOOLEAN NOT NULL PRIMARY KEY DEFAULT TRUE CHECK (singleton),
                version INTEGER NOT NULL
            )"""
        )
        await conn.execute(
            f"INSERT INTO {quoted}.schema_version (version) VALUES (0) ON CONFLICT DO NOTHING"
        )
    for step in MIGRATIONS[version:]:
        for statement in step:
            await conn.execute(statement.format(schema=quoted))
    await conn.execute(f"UPDATE {quoted}.schema_version SET version = $1", SCHEMA_VERSION)

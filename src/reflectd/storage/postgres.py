"""The PostgreSQL backend: asyncpg with a small connection pool, one transaction per call.

Theory of operation. Every call borrows a connection from the pool, runs its statements (a
write in one transaction, a multi-table read in one ``REPEATABLE READ`` snapshot) and gives it
back. PostgreSQL does the group commit itself: concurrent commits on different connections
share WAL flushes. A commit returns once its ``COMMIT`` returned with ``synchronous_commit =
on`` (set on every connection), that is once its WAL is flushed. Nothing is cached: several
stores, in one process or on several nodes, may share a schema and see each other's commits.

Tables live in one PostgreSQL schema (``reflectd`` by default; ``?schema=NAME`` in the URL or
``schema=`` picks another), created and migrated on ``open`` (see
``reflectd.storage.migrations.postgres``). Room IDs are ``TEXT COLLATE "C"``; user keys,
client, group and user IDs are stored as UTF-8 ``BYTEA`` so that NUL characters round-trip;
both sort in UTF-8 byte order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import asyncpg  # type: ignore[import-untyped]

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
from reflectd.errors import DatabaseNotFound, StorageError
from reflectd.storage import rows
from reflectd.storage.base import ApiKeyRecord, Backend, Permission
from reflectd.storage.control import ControlBus
from reflectd.storage.leases import (
    ClusterStore,
    Lease,
    LeaseLost,
    check_lease_request,
    new_cluster_secret,
)
from reflectd.storage.migrations.postgres import migrate, quote_ident, schema_version
from reflectd.storage.postgres_bus import PostgresControlBus
from reflectd.storage.postgres_url import PostgresURL
from reflectd.storage.postgres_webhooks import PostgresWebhooks, WebhookStatements, insert_events

T = TypeVar("T")

#: connections per store: about twice the cores of the 2-core machines reflectd targets. On
#: those, commits are bound by CPU (this process's and PostgreSQL's) more than by WAL flushes,
#: which concurrent transactions share anyway: more connections only add contention (see
#: docs/storage.md for the measurement).
DEFAULT_POOL_SIZE = 4


class Cursor(Protocol):
    """The part of an ``asyncpg`` cursor this backend uses."""

    async def fetch(self, n: int) -> list[rows.Row]: ...


class Connection(Protocol):
    """The part of an ``asyncpg.Connection`` this backend uses (asyncpg ships no types)."""

    def cursor(self, query: str, *args: object) -> Awaitable[Cursor]: ...

    async def execute(self, query: str, *args: object) -> str: ...

    async def fetch(self, query: str, *args: object) -> list[rows.Row]: ...

    async def fetchrow(self, query: str, *args: object) -> rows.Row | None: ...

    async def fetchval(self, query: str, *args: object) -> Any: ...

    def transaction(
        self, *, isolation: str | None = None, readonly: bool = False
    ) -> AbstractAsyncContextManager[Any]: ...


class Pool(Protocol):
    """The part of an ``asyncpg.Pool`` this backend uses."""

    def acquire(self) -> AbstractAsyncContextManager[Connection]: ...

    async def close(self) -> None: ...

    def terminate(self) -> None: ...


class PostgresStore(PostgresWebhooks):
    """A ``Store`` in the PostgreSQL database named by ``url`` (``postgresql://`` or
    ``postgres://``, as libpq; ``?schema=NAME`` names the schema, else ``schema``, else
    ``reflectd``).

    ``pool_size`` bounds the connections; ``command_timeout`` (seconds) fails a statement that
    takes longer with ``StorageError``. ``fault``, for tests, is called at each step of a commit
    (``reflectd.storage.rows.COMMIT_STEPS``, "before_commit" inside the transaction just before
    COMMIT); an exception it raises fails the commit like an I/O error.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        connect_timeout: float = 10.0,
        command_timeout: float | None = 30.0,
        fault: rows.FaultHook | None = None,
        create: bool = True,
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        self.url = PostgresURL.parse(url, schema)
        self.schema = self.url.schema
        self.pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._fault = fault or rows.no_fault
        #: whether ``open`` creates a missing schema; else ``DatabaseNotFound``
        self._create = create
        self._sql = _Statements.for_schema(quote_ident(self.schema))
        self._hooks = WebhookStatements.for_schema(quote_ident(self.schema))
        self._pool: Pool | None = None
        self._state: Literal["new", "opening", "open", "closed"] = "new"
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def name(self) -> str:
        """The database and schema, for messages (never the password)."""
        return f"{self.url.display} (schema {self.schema!r})"

    async def open(self) -> None:
        if self._state != "new":
            raise StorageError(f"PostgreSQL {self.name}: open() called twice")
        self._state = "opening"
        try:
            self._pool = await self._create_pool()
            async with self._pool.acquire() as conn:
                encoding = await conn.fetchval("SHOW server_encoding")
                if encoding != "UTF8":
                    raise StorageError(
                        f"PostgreSQL {self.name}: the database's encoding is {encoding}, but"
                        " reflectd needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')"
                    )
                async with conn.transaction():
                    if not self._create and not await schema_version(conn, self.schema):
                        raise DatabaseNotFound(
                            f"PostgreSQL {self.name}: no reflectd schema {self.schema!r}"
                        )
                    await migrate(conn, self.schema, f"PostgreSQL {self.name}")
        except BaseException as exc:
            self._state = "closed"
            if self._pool is not None:
                self._pool.terminate()
            if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                raise _storage_error(f"PostgreSQL {self.name}: open", exc) from exc
            raise
        self._state = "open"

    async def _create_pool(self) -> Pool:
        pool: Pool = await asyncpg.create_pool(
            self.url.dsn,
            min_size=1,
            max_size=self.pool_size,
            timeout=self._connect_timeout,
            command_timeout=self._command_timeout,
            server_settings=self.url.server_settings,
            reset=_keep_session,
        )
        return pool

    async def close(self) -> None:
        """Let the calls under way finish, then close the connections. Closing twice is
        harmless."""
        state, self._state = self._state, "closed"
        if state != "open" or self._pool is None:
            return
        await self._idle.wait()
        await self._pool.close()

    # ------------------------------------------------------------------ cluster

    def cluster(self) -> ClusterStore:
        """Several nodes may share a PostgreSQL schema: this store has their leases."""
        return self

    def control_bus(self, node_id: str) -> ControlBus:
        """See ``reflectd.storage.postgres_bus``: a connection of its own, not a pooled one."""
        return PostgresControlBus(self.url, node_id)

    # ------------------------------------------------------------------ rooms index

    async def get_room(self, room_id: str) -> RoomRecord | None:
        async def run(conn: Connection) -> RoomRecord | None:
            row = await conn.fetchrow(self._sql.get_room, room_id)
            return None if row is None else rows.room_record(row)

        return await self._call(run, f"get room {room_id!r}")

    async def create_room(self, record: RoomRecord, *, events: Sequence[OutboxEvent] = ()) -> bool:
        async def run(conn: Connection) -> bool:
            async with conn.transaction():
                status = await conn.execute(self._sql.create_room, *rows.room_values(record))
                if _rowcount(status) != 1:
                    return False
                await insert_events(conn, self._hooks, events)
                return True

        return await self._call(run, f"create room {record.room_id!r}")

    async def set_room_status(
        self, room_id: str, status: RoomStatus, *, events: Sequence[OutboxEvent] = ()
    ) -> None:
        """Set the status of an existing room; an unknown roomID changes nothing."""

        async def run(conn: Connection) -> None:
            async with conn.transaction():
                updated = await conn.execute(self._sql.set_room_status, room_id, status)
                if _rowcount(updated) == 1:
                    await insert_events(conn, self._hooks, events)

        await self._call(run, f"set status of room {room_id!r}")

    async def list_rooms(
        self, *, start_key: str = "", exclusive: bool = False, limit: int
    ) -> list[RoomRecord]:
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        query = self._sql.list_rooms_after if exclusive else self._sql.list_rooms_from

        async def run(conn: Connection) -> list[RoomRecord]:
            return [rows.room_record(row) for row in await conn.fetch(query, start_key, limit)]

        return await self._call(run, "list rooms")

    # ------------------------------------------------------------------ API keys

    async def create_api_key(self, record: ApiKeyRecord) -> bool:
        async def run(conn: Connection) -> bool:
            status = await conn.execute(self._sql.create_api_key, *rows.api_key_values(record))
            return _rowcount(status) == 1

        return await self._call(run, f"create API key {record.name!r}")

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        async def run(conn: Connection) -> ApiKeyRecord | None:
            row = await conn.fetchrow(self._sql.find_api_key, key_hash)
            return None if row is None else rows.api_key_record(row)

        return await self._call(run, "find API key")

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        async def run(conn: Connection) -> list[ApiKeyRecord]:
            return [rows.api_key_record(row) for row in await conn.fetch(self._sql.list_api_keys)]

        return await self._call(run, "list API keys")

    async def set_api_key_permissions(self, name: str, permissions: tuple[Permission, ...]) -> bool:
        async def run(conn: Connection) -> bool:
            status = await conn.execute(
                self._sql.set_api_key_permissions, name, " ".join(permissions)
            )
            return _rowcount(status) == 1

        return await self._call(run, f"edit API key {name!r}")

    async def touch_api_key(self, name: str, now_ms: int) -> None:
        async def run(conn: Connection) -> None:
            await conn.execute(self._sql.touch_api_key, name, now_ms)

        await self._call(run, f"touch API key {name!r}")

    async def delete_api_key(self, name: str) -> bool:
        async def run(conn: Connection) -> bool:
            return _rowcount(await conn.execute(self._sql.delete_api_key, name)) == 1

        return await self._call(run, f"delete API key {name!r}")

    # ------------------------------------------------------------------ room data

    async def load_room(self, room_id: str) -> RoomSnapshot:
        async def run(conn: Connection) -> RoomSnapshot:
            sql = self._sql
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return rows.room_snapshot(
                    await conn.fetchval(sql.load_version, room_id),
                    connected=await conn.fetch(sql.load_connected, room_id),
                    clients=await conn.fetch(sql.load_clients, room_id),
                    entries=await _load_entries(conn, sql.load_entries, room_id),
                    text=bytes.decode,
                )

        return await self._call(run, f"load room {room_id!r}")

    async def commit(self, room_id: str, writes: RoomWrites, *, lease: Lease | None = None) -> None:
        """``Store.commit``; with ``lease``, first check in the same transaction that the room's
        lease is still ``lease`` (and hold it until COMMIT), else raise ``LeaseLost``."""
        what = f"commit to room {room_id!r}"

        async def run(conn: Connection) -> None:
            async with conn.transaction():
                if lease is not None:
                    held = lease.room_id == room_id and await conn.fetchval(
                        self._sql.hold_lease, room_id, lease.node_id, lease.epoch
                    )
                    if not held:
                        raise LeaseLost(
                            f"PostgreSQL: {what} refused: lease epoch {lease.epoch} of node"
                            f" {lease.node_id!r} lost"
                        )
                await self._apply(conn, room_id, writes)

        await self._call(run, what)

    async def delete_room_data(self, room_id: str) -> None:
        async def run(conn: Connection) -> None:
            async with conn.transaction():
                for statement in self._sql.delete_room_data:
                    await conn.execute(statement, room_id)

        await self._call(run, f"delete data of room {room_id!r}")

    async def find_remembered_call(self, room_id: str, key: str) -> RememberedCall | None:
        async def run(conn: Connection) -> RememberedCall | None:
            found = await conn.fetchrow(self._sql.find_remembered, room_id, key)
            return None if found is None else RememberedCall(found[0], found[1])

        return await self._call(run, f"find a remembered call of room {room_id!r}")

    async def forget_calls_before(self, at_ms: int) -> int:
        async def run(conn: Connection) -> int:
            status = await conn.execute(self._sql.forget_remembered, at_ms)
            return int(status.rsplit(" ", 1)[-1])

        return await self._call(run, "forget remembered calls")

    async def client_tombstones(self, room_id: str) -> dict[str, str | None]:
        """See ``reflectd.storage.base.TombstoneReader``."""

        async def run(conn: Connection) -> dict[str, str | None]:
            found = await conn.fetch(self._sql.load_tombstones, room_id)
            return {row[0].decode(): _optional_text(row[1]) for row in found}

        return await self._call(run, f"load client tombstones of room {room_id!r}")

    # ------------------------------------------------------------------ leases

    async def acquire_lease(
        self, room_id: str, node_id: str, address: str, ttl_ms: int
    ) -> Lease | None:
        """See ``reflectd.storage.leases.LeaseStore``; the expiry is on PostgreSQL's clock."""
        check_lease_request(node_id, ttl_ms)

        async def run(conn: Connection) -> Lease | None:
            row = await conn.fetchrow(self._sql.acquire_lease, room_id, node_id, address, ttl_ms)
            return None if row is None else _lease(row)

        return await self._call(run, f"acquire lease of room {room_id!r}")

    async def renew_lease(self, lease: Lease, ttl_ms: int) -> Lease:
        check_lease_request(lease.node_id, ttl_ms)
        what = f"renew lease of room {lease.room_id!r}"

        async def run(conn: Connection) -> Lease:
            row = await conn.fetchrow(
                self._sql.renew_lease, lease.room_id, lease.node_id, lease.epoch, ttl_ms
            )
            if row is None:
                raise LeaseLost(
                    f"PostgreSQL: {what} failed: epoch {lease.epoch} of node {lease.node_id!r} lost"
                )
            return _lease(row)

        return await self._call(run, what)

    async def release_lease(self, lease: Lease) -> bool:
        async def run(conn: Connection) -> bool:
            status = await conn.execute(
                self._sql.release_lease, lease.room_id, lease.node_id, lease.epoch
            )
            return _rowcount(status) == 1

        return await self._call(run, f"release lease of room {lease.room_id!r}")

    async def current_lease(self, room_id: str) -> Lease | None:
        async def run(conn: Connection) -> Lease | None:
            row = await conn.fetchrow(self._sql.current_lease, room_id)
            return None if row is None else _lease(row)

        return await self._call(run, f"read lease of room {room_id!r}")

    # ------------------------------------------------------------------ writes

    async def _apply(self, conn: Connection, room_id: str, writes: RoomWrites) -> None:
        """Apply ``writes`` (in the caller's transaction); a client both written and deleted
        ends deleted."""
        sql = self._sql
        self._fault("before_entries")
        if writes.entries:
            items = writes.entries.items()
            await conn.execute(
                sql.upsert_entries,
                room_id,
                [_bytes(key) for key, _ in items],
                [e.version for _, e in items],
                [e.deleted for _, e in items],
                [e.value for _, e in items],
            )
        self._fault("after_entries")
        if writes.clients:
            await conn.execute(sql.upsert_clients, room_id, *_client_columns(writes.clients))
        if writes.deleted_clients:
            deleted = writes.deleted_clients.items()
            client_ids = [_bytes(client_id) for client_id, _ in deleted]
            await conn.execute(sql.delete_clients, room_id, client_ids)
            await conn.execute(
                sql.upsert_tombstones,
                room_id,
                client_ids,
                [_optional_bytes(user_id) for _, user_id in deleted],
            )
        self._fault("after_clients")
        if writes.version is not None:
            await conn.execute(sql.upsert_version, room_id, writes.version)
        if writes.connected_clients is not None:
            await conn.execute(sql.delete_connected, room_id)
            if writes.connected_clients:
                await conn.execute(
                    sql.insert_connected,
                    room_id,
                    [_bytes(client_id) for client_id in writes.connected_clients],
                )
        if writes.remembered:
            calls = writes.remembered.items()
            await conn.execute(
                sql.insert_remembered,
                room_id,
                [key for key, _ in calls],
                [c.version for _, c in calls],
                [c.at_ms for _, c in calls],
            )
        if writes.outbox:
            await insert_events(conn, self._hooks, writes.outbox)
        self._fault("before_commit")

    async def cluster_secret(self) -> bytes:
        """See ``reflectd.storage.leases.LeaseStore``; the first node's secret stays."""

        async def run(conn: Connection) -> bytes:
            await conn.execute(self._sql.create_cluster_secret, new_cluster_secret())
            return bytes(await conn.fetchval(self._sql.cluster_secret))

        return await self._call(run, "read the cluster secret")

    # ------------------------------------------------------------------ calls

    async def _call(self, run: Callable[[Connection], Awaitable[T]], what: str) -> T:
        """Run ``run`` on a pooled connection; turn its failures into ``StorageError``."""
        if self._state != "open" or self._pool is None:
            state = "closed" if self._state == "closed" else "not open yet"
            raise StorageError(f"PostgreSQL {self.name}: cannot {what}: the store is {state}")
        self._busy += 1
        self._idle.clear()
        try:
            async with self._pool.acquire() as conn:
                return await run(conn)
        except StorageError:
            raise
        except Exception as exc:
            raise _storage_error(f"PostgreSQL: {what}", exc) from exc
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()


#: a room's entries are read this many rows at a time: decoding a big room's rows at once would
#: hold the event loop (and every other room) for as long as they take
LOAD_BATCH_ROWS = 5000


async def _load_entries(conn: Connection, statement: str, room_id: str) -> dict[str, Entry]:
    """A room's entries, read from a cursor in batches (inside the caller's transaction)."""
    entries: dict[str, Entry] = {}
    cursor = await conn.cursor(statement, room_id)
    while batch := await cursor.fetch(LOAD_BATCH_ROWS):
        rows.add_entries(entries, batch, text=bytes.decode)
    return entries


# ---------------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class _Statements:
    """Every statement of the backend, with the quoted schema name filled in."""

    get_room: str
    create_room: str
    set_room_status: str
    list_rooms_from: str
    list_rooms_after: str
    create_api_key: str
    find_api_key: str
    list_api_keys: str
    set_api_key_permissions: str
    touch_api_key: str
    delete_api_key: str
    load_version: str
    load_connected: str
    load_clients: str
    load_entries: str
    load_tombstones: str
    upsert_entries: str
    upsert_clients: str
    delete_clients: str
    upsert_tombstones: str
    upsert_version: str
    delete_connected: str
    insert_connected: str
    insert_remembered: str
    find_remembered: str
    forget_remembered: str
    delete_room_data: tuple[str, ...]
    acquire_lease: str
    renew_lease: str
    release_lease: str
    current_lease: str
    hold_lease: str
    create_cluster_secret: str
    cluster_secret: str

    @classmethod
    def for_schema(cls, s: str) -> _Statements:
        keys = f"SELECT {rows.API_KEY_COLUMNS} FROM {{s}}.api_keys"
        rooms = (
            f"SELECT {rows.ROOM_COLUMNS} FROM {{s}}.rooms"
            " WHERE room_id {op} $1 ORDER BY room_id LIMIT $2"
        )
        statements = cls(
            get_room=f"SELECT {rows.ROOM_COLUMNS} FROM {{s}}.rooms WHERE room_id = $1",
            create_room=(
                f"INSERT INTO {{s}}.rooms ({rows.ROOM_COLUMNS}) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (room_id) DO NOTHING"
            ),
            set_room_status="UPDATE {s}.rooms SET status = $2 WHERE room_id = $1",
            list_rooms_from=rooms.replace("{op}", ">="),
            list_rooms_after=rooms.replace("{op}", ">"),
            create_api_key=(
                f"INSERT INTO {{s}}.api_keys ({rows.API_KEY_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
            ),
            find_api_key=keys + " WHERE key_hash = $1",
            list_api_keys=keys + " ORDER BY name",
            set_api_key_permissions="UPDATE {s}.api_keys SET permissions = $2 WHERE name = $1",
            touch_api_key="UPDATE {s}.api_keys SET last_used_ms = $2 WHERE name = $1",
            delete_api_key="DELETE FROM {s}.api_keys WHERE name = $1",
            load_version="SELECT version FROM {s}.room_versions WHERE room_id = $1",
            load_connected="SELECT client_id FROM {s}.connected_clients WHERE room_id = $1",
            load_clients=(
                f"SELECT client_id, {rows.CLIENT_COLUMNS} FROM {{s}}.clients"
                " WHERE room_id = $1 ORDER BY client_id"
            ),
            load_entries=(
                "SELECT key, version, deleted, value FROM {s}.entries"
                " WHERE room_id = $1 ORDER BY key"
            ),
            load_tombstones=(
                "SELECT client_id, user_id FROM {s}.client_tombstones"
                " WHERE room_id = $1 ORDER BY client_id"
            ),
            upsert_entries=(
                "INSERT INTO {s}.entries (room_id, key, version, deleted, value)"
                " SELECT $1, * FROM unnest($2::bytea[], $3::int8[], $4::bool[], $5::bytea[])"
                " ON CONFLICT (room_id, key) DO UPDATE SET version = excluded.version,"
                " deleted = excluded.deleted, value = excluded.value"
            ),
            upsert_clients=(
                f"INSERT INTO {{s}}.clients (room_id, client_id, {rows.CLIENT_COLUMNS})"
                " SELECT $1, * FROM unnest($2::bytea[], $3::bytea[], $4::int8[], $5::int8[],"
                " $6::int8[], $7::int8[], $8::bytea[], $9::int8[])"
                " ON CONFLICT (room_id, client_id) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in rows.CLIENT_COLUMNS.split(", "))
            ),
            delete_clients=(
                "DELETE FROM {s}.clients WHERE room_id = $1 AND client_id = ANY($2::bytea[])"
            ),
            upsert_tombstones=(
                "INSERT INTO {s}.client_tombstones (room_id, client_id, user_id)"
                " SELECT $1, * FROM unnest($2::bytea[], $3::bytea[])"
                " ON CONFLICT (room_id, client_id) DO UPDATE SET user_id = excluded.user_id"
            ),
            upsert_version=(
                "INSERT INTO {s}.room_versions (room_id, version) VALUES ($1, $2)"
                " ON CONFLICT (room_id) DO UPDATE SET version = excluded.version"
            ),
            delete_connected="DELETE FROM {s}.connected_clients WHERE room_id = $1",
            insert_connected=(
                "INSERT INTO {s}.connected_clients (room_id, client_id)"
                " SELECT $1, unnest($2::bytea[])"
            ),
            insert_remembered=(
                "INSERT INTO {s}.remembered_calls (room_id, idempotency_key, version, at_ms)"
                " SELECT $1, * FROM unnest($2::text[], $3::int8[], $4::int8[])"
            ),
            find_remembered=(
                "SELECT version, at_ms FROM {s}.remembered_calls"
                " WHERE room_id = $1 AND idempotency_key = $2"
            ),
            forget_remembered="DELETE FROM {s}.remembered_calls WHERE at_ms < $1",
            delete_room_data=tuple(
                f"DELETE FROM {{s}}.{table} WHERE room_id = $1" for table in rows.ROOM_DATA_TABLES
            ),
            # excluded.expires_at_ms - $4 is "now"; l.* are the row's values before the update
            acquire_lease=(
                "INSERT INTO {s}.room_leases AS l"
                " (room_id, node_id, address, epoch, expires_at_ms)"
                f" VALUES ($1, $2, $3, 1, {_NOW_MS} + $4)"
                " ON CONFLICT (room_id) DO UPDATE SET"
                " epoch = CASE WHEN l.node_id = excluded.node_id"
                " AND l.expires_at_ms > excluded.expires_at_ms - $4"
                " THEN l.epoch ELSE l.epoch + 1 END,"
                " node_id = excluded.node_id, address = excluded.address,"
                " expires_at_ms = excluded.expires_at_ms"
                " WHERE l.node_id = excluded.node_id"
                " OR l.expires_at_ms <= excluded.expires_at_ms - $4"
                f" RETURNING {_LEASE_COLUMNS}"
            ),
            renew_lease=(
                f"UPDATE {{s}}.room_leases SET expires_at_ms = {_NOW_MS} + $4"
                f" WHERE room_id = $1 AND node_id = $2 AND epoch = $3 RETURNING {_LEASE_COLUMNS}"
            ),
            release_lease=(
                "UPDATE {s}.room_leases SET node_id = '', address = '', expires_at_ms = 0"
                " WHERE room_id = $1 AND node_id = $2 AND epoch = $3"
            ),
            current_lease=(
                f"SELECT {_LEASE_COLUMNS} FROM {{s}}.room_leases"
                f" WHERE room_id = $1 AND expires_at_ms > {_NOW_MS}"
            ),
            # FOR SHARE: a takeover (an UPDATE of the row) waits for the commit to end, and a
            # commit waiting for a takeover re-reads the row and finds it changed
            hold_lease=(
                "SELECT epoch FROM {s}.room_leases"
                " WHERE room_id = $1 AND node_id = $2 AND epoch = $3 FOR SHARE"
            ),
            create_cluster_secret=(
                "INSERT INTO {s}.cluster_secret (secret) VALUES ($1) ON CONFLICT DO NOTHING"
            ),
            cluster_secret="SELECT secret FROM {s}.cluster_secret",
        )
        fill: dict[str, Any] = {}
        for name, value in dataclasses.asdict(statements).items():
            if isinstance(value, tuple):
                fill[name] = tuple(query.replace("{s}", s) for query in value)
            else:
                fill[name] = value.replace("{s}", s)
        return dataclasses.replace(statements, **fill)


_LEASE_COLUMNS = "room_id, node_id, address, epoch, expires_at_ms"

#: now, in ms since the Unix epoch, on the server's clock
_NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"


# ---------------------------------------------------------------------- rows and values


def _bytes(text: str) -> bytes:
    return text.encode()


def _optional_bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _optional_text(data: bytes | None) -> str | None:
    return None if data is None else data.decode()


def _client_columns(clients: dict[str, ClientRecord]) -> Iterable[list[object]]:
    """The arrays of ``upsert_clients``: client IDs, then one per column of ``CLIENT_COLUMNS``."""
    values = [
        (_bytes(client_id), *rows.client_values(c, data=_bytes)) for client_id, c in clients.items()
    ]
    return [list(column) for column in zip(*values, strict=True)]


def _lease(row: rows.Row) -> Lease:
    return Lease(room_id=row[0], node_id=row[1], address=row[2], epoch=row[3], expires_at_ms=row[4])


async def _keep_session(conn: object) -> None:
    """The pool's reset of a connection given back: nothing beyond asyncpg's own rollback of
    an open transaction. The default (``RESET ALL``, ``UNLISTEN *``...) costs a round trip per
    call, and this backend never changes a session's state: it sets nothing, listens to
    nothing and takes only transaction-level advisory locks."""


def _rowcount(status: str) -> int:
    """The row count of a command status such as ``INSERT 0 1`` or ``UPDATE 3``."""
    with contextlib.suppress(ValueError, IndexError):
        return int(status.rsplit(" ", 1)[1])
    return 0


def _storage_error(what: str, exc: Exception) -> StorageError:
    return StorageError(f"{what} failed: {type(exc).__name__}: {exc}")


if TYPE_CHECKING:
    _BACKEND: type[Backend] = PostgresStore
    _CLUSTER_STORE: type[ClusterStore] = PostgresStore

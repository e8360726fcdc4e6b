"""The SQLite backend: one file, WAL, ``synchronous=FULL``, one writer thread, group commit.

Theory of operation. One thread owns the connection. Each call becomes a job (a function of
the connection and a ``concurrent.futures.Future``) on a queue; the coroutine awaits the
future through ``asyncio.wrap_future``, which resolves it on the event loop. The thread takes
everything queued at once and runs it in order. Consecutive write jobs share ONE transaction
(group commit): each runs in its own SAVEPOINT, so a job that fails is rolled back alone and
only its future gets the ``StorageError``; the futures of the others are resolved only after
COMMIT returned, that is once the writes are on disk. If COMMIT fails, every job of the group
fails. Reads run between groups and so see every write acknowledged before them.

Loading a room (``load_room``, a big read: a room may hold a hundred thousand entries) runs
instead on a reader thread with a connection of its own, in one read transaction: WAL lets it
read while the writer commits, so a big room's load does not hold up the other rooms' turns.
It first waits for a no-op read on the writer thread, so it too sees every write queued before
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from reflectd.engine.records import (
    OutboxEvent,
    RememberedCall,
    RoomRecord,
    RoomSnapshot,
    RoomStatus,
    RoomWrites,
)
from reflectd.errors import DatabaseNotFound, StorageError
from reflectd.storage import rows
from reflectd.storage.base import ApiKeyRecord, Permission
from reflectd.storage.migrations.sqlite import migrate
from reflectd.storage.sqlite_webhooks import SQLiteWebhooks, insert_events

if TYPE_CHECKING:
    from reflectd.storage.leases import ClusterStore

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class _Job(Generic[T]):
    """One call handed to the writer thread; ``run is None`` asks the thread to stop."""

    run: Callable[[sqlite3.Connection], T] | None
    #: what the job does, for error messages
    what: str
    write: bool
    future: Future[T] = field(default_factory=Future)


class SQLiteStore(SQLiteWebhooks):
    """A ``Store`` in the SQLite file ``path`` (created with its parent directories).

    ``fault``, for tests, is called on the writer thread at each step of a commit
    (``reflectd.storage.rows.COMMIT_STEPS``), "before_commit" once per group just before
    COMMIT; an exception it raises fails the commit (or the group) like an I/O error.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fault: rows.FaultHook | None = None,
        create: bool = True,
    ) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise ValueError(f"SQLiteStore needs a file path, got {str(path)!r}")
        self.path = Path(path)
        self._fault = fault or rows.no_fault
        #: whether ``open`` creates a missing file (and its folders); else ``DatabaseNotFound``
        self._create = create
        self._queue: queue.SimpleQueue[_Job[Any]] = queue.SimpleQueue()
        #: room loads, for the reader thread
        self._loads: queue.SimpleQueue[_Job[Any]] = queue.SimpleQueue()
        self._state: Literal["new", "open", "closed"] = "new"

    async def open(self) -> None:
        if self._state != "new":
            raise StorageError(f"{self.path}: open() called twice")
        ready: Future[None] = Future()
        thread = threading.Thread(
            target=self._writer_main, args=(ready,), name="reflectd-sqlite-writer", daemon=True
        )
        thread.start()
        try:
            await asyncio.wrap_future(ready)
        except BaseException:
            self._state = "closed"
            self._queue.put(_Job(None, "close", write=False))
            raise
        # the writer created and migrated the file: the reader opens it as it is
        reader_ready: Future[None] = Future()
        reader = threading.Thread(
            target=self._reader_main,
            args=(reader_ready,),
            name="reflectd-sqlite-reader",
            daemon=True,
        )
        reader.start()
        try:
            await asyncio.wrap_future(reader_ready)
        except BaseException:
            self._state = "closed"
            self._queue.put(_Job(None, "close", write=False))
            raise
        self._state = "open"

    async def close(self) -> None:
        """Let every queued job finish, then close the file. Closing twice is harmless."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        stop_reader: _Job[None] = _Job(None, "close", write=False)
        self._loads.put(stop_reader)
        await asyncio.wrap_future(stop_reader.future)
        stop: _Job[None] = _Job(None, "close", write=False)
        self._queue.put(stop)
        await asyncio.wrap_future(stop.future)

    def cluster(self) -> ClusterStore | None:
        """None: a SQLite file serves one process."""
        return None

    # ------------------------------------------------------------------ rooms index

    async def get_room(self, room_id: str) -> RoomRecord | None:
        return await self._call(lambda conn: _get_room(conn, room_id), f"get room {room_id!r}")

    async def create_room(self, record: RoomRecord, *, events: Sequence[OutboxEvent] = ()) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"INSERT INTO rooms ({rows.ROOM_COLUMNS}) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                rows.room_values(record),
            )
            if cursor.rowcount != 1:
                return False
            insert_events(conn, events)
            return True

        return await self._call(run, f"create room {record.room_id!r}", write=True)

    async def set_room_status(
        self, room_id: str, status: RoomStatus, *, events: Sequence[OutboxEvent] = ()
    ) -> None:
        """Set the status of an existing room; an unknown roomID changes nothing."""

        def run(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE rooms SET status = ? WHERE room_id = ?", (status, room_id)
            )
            if cursor.rowcount == 1:
                insert_events(conn, events)

        await self._call(run, f"set status of room {room_id!r}", write=True)

    async def list_rooms(
        self, *, start_key: str = "", exclusive: bool = False, limit: int
    ) -> list[RoomRecord]:
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        operator = ">" if exclusive else ">="

        def run(conn: sqlite3.Connection) -> list[RoomRecord]:
            found = conn.execute(
                f"SELECT {rows.ROOM_COLUMNS} FROM rooms"
                f" WHERE room_id {operator} ? ORDER BY room_id LIMIT ?",
                (start_key, limit),
            )
            return [rows.room_record(row) for row in found]

        return await self._call(run, "list rooms")

    # ------------------------------------------------------------------ API keys

    async def create_api_key(self, record: ApiKeyRecord) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"INSERT INTO api_keys ({rows.API_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                rows.api_key_values(record),
            )
            return cursor.rowcount == 1

        return await self._call(run, f"create API key {record.name!r}", write=True)

    async def find_api_key(self, key_hash: str) -> ApiKeyRecord | None:
        def run(conn: sqlite3.Connection) -> ApiKeyRecord | None:
            row = conn.execute(_SELECT_KEYS + " WHERE key_hash = ?", (key_hash,)).fetchone()
            return None if row is None else rows.api_key_record(row)

        return await self._call(run, "find API key")

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        def run(conn: sqlite3.Connection) -> list[ApiKeyRecord]:
            return [
                rows.api_key_record(row) for row in conn.execute(_SELECT_KEYS + " ORDER BY name")
            ]

        return await self._call(run, "list API keys")

    async def set_api_key_permissions(self, name: str, permissions: tuple[Permission, ...]) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE api_keys SET permissions = ? WHERE name = ?", (" ".join(permissions), name)
            )
            return cursor.rowcount == 1

        return await self._call(run, f"edit API key {name!r}", write=True)

    async def touch_api_key(self, name: str, now_ms: int) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE api_keys SET last_used_ms = ? WHERE name = ?", (now_ms, name))

        await self._call(run, f"touch API key {name!r}", write=True)

    async def delete_api_key(self, name: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM api_keys WHERE name = ?", (name,)).rowcount == 1

        return await self._call(run, f"delete API key {name!r}", write=True)

    # ------------------------------------------------------------------ room data

    async def load_room(self, room_id: str) -> RoomSnapshot:
        """On the reader thread (see the module's docstring), once the writes queued before
        it are committed."""
        await self._call(lambda conn: None, f"wait for the writes before loading {room_id!r}")
        return await self._call(
            lambda conn: _load_room(conn, room_id), f"load room {room_id!r}", jobs=self._loads
        )

    async def commit(self, room_id: str, writes: RoomWrites) -> None:
        await self._call(
            lambda conn: self._apply(conn, room_id, writes),
            f"commit to room {room_id!r}",
            write=True,
        )

    async def delete_room_data(self, room_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for table in rows.ROOM_DATA_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE room_id = ?", (room_id,))

        await self._call(run, f"delete data of room {room_id!r}", write=True)

    async def find_remembered_call(self, room_id: str, key: str) -> RememberedCall | None:
        def run(conn: sqlite3.Connection) -> RememberedCall | None:
            found = conn.execute(
                "SELECT version, at_ms FROM remembered_calls"
                " WHERE room_id = ? AND idempotency_key = ?",
                (room_id, key),
            ).fetchone()
            return None if found is None else RememberedCall(*found)

        return await self._call(run, f"find a remembered call of room {room_id!r}")

    async def forget_calls_before(self, at_ms: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM remembered_calls WHERE at_ms < ?", (at_ms,)).rowcount

        return await self._call(run, "forget remembered calls", write=True)

    async def client_tombstones(self, room_id: str) -> dict[str, str | None]:
        """See ``reflectd.storage.base.TombstoneReader``."""

        def run(conn: sqlite3.Connection) -> dict[str, str | None]:
            found = conn.execute(
                "SELECT client_id, user_id FROM client_tombstones"
                " WHERE room_id = ? ORDER BY client_id",
                (room_id,),
            )
            return dict(found.fetchall())

        return await self._call(run, f"load client tombstones of room {room_id!r}")

    # ------------------------------------------------------------------ writes

    def _apply(self, conn: sqlite3.Connection, room_id: str, writes: RoomWrites) -> None:
        """Apply ``writes``; a client both written and deleted ends deleted."""
        self._fault("before_entries")
        conn.executemany(
            "INSERT OR REPLACE INTO entries (room_id, key, version, deleted, value)"
            " VALUES (?, ?, ?, ?, ?)",
            [(room_id, k, e.version, e.deleted, e.value) for k, e in writes.entries.items()],
        )
        self._fault("after_entries")
        conn.executemany(
            f"INSERT OR REPLACE INTO clients (room_id, client_id, {rows.CLIENT_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (room_id, client_id, *rows.client_values(c))
                for client_id, c in writes.clients.items()
            ],
        )
        deleted = [(room_id, client_id) for client_id in writes.deleted_clients]
        conn.executemany("DELETE FROM clients WHERE room_id = ? AND client_id = ?", deleted)
        conn.executemany(
            "INSERT OR REPLACE INTO client_tombstones (room_id, client_id, user_id)"
            " VALUES (?, ?, ?)",
            [(room_id, client_id, user) for client_id, user in writes.deleted_clients.items()],
        )
        self._fault("after_clients")
        if writes.version is not None:
            conn.execute(
                "INSERT OR REPLACE INTO room_versions (room_id, version) VALUES (?, ?)",
                (room_id, writes.version),
            )
        if writes.connected_clients is not None:
            conn.execute("DELETE FROM connected_clients WHERE room_id = ?", (room_id,))
            conn.executemany(
                "INSERT INTO connected_clients (room_id, client_id) VALUES (?, ?)",
                [(room_id, client_id) for client_id in writes.connected_clients],
            )
        conn.executemany(
            "INSERT INTO remembered_calls (room_id, idempotency_key, version, at_ms)"
            " VALUES (?, ?, ?, ?)",
            [(room_id, key, c.version, c.at_ms) for key, c in writes.remembered.items()],
        )
        insert_events(conn, writes.outbox)

    # ------------------------------------------------------------------ the writer thread

    async def _call(
        self,
        run: Callable[[sqlite3.Connection], T],
        what: str,
        *,
        write: bool = False,
        jobs: queue.SimpleQueue[_Job[Any]] | None = None,
    ) -> T:
        """Run ``run(connection)`` on the writer thread (or the thread that serves ``jobs``)
        and return its result."""
        if self._state != "open":
            state = "closed" if self._state == "closed" else "not open yet"
            raise StorageError(f"{self.path}: cannot {what}: the store is {state}")
        job = _Job(run, what, write)
        (self._queue if jobs is None else jobs).put(job)
        return await asyncio.wrap_future(job.future)

    def _reader_main(self, ready: Future[None]) -> None:
        """Run room loads, each in a read transaction, until the stop job."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
        except Exception as exc:
            ready.set_exception(_storage_error(f"open {self.path} for reading", exc))
            return
        ready.set_result(None)
        while (job := self._loads.get()).run is not None:
            try:
                conn.execute("BEGIN")
            except Exception as exc:
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(_storage_error(job.what, exc))
                continue
            try:
                self._run_read(conn, job)
            finally:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("COMMIT")
        conn.close()
        if job.future.set_running_or_notify_cancel():
            job.future.set_result(None)

    def _writer_main(self, ready: Future[None]) -> None:
        try:
            conn = _connect(self.path, create=self._create)
        except DatabaseNotFound as exc:
            ready.set_exception(exc)
            return
        except Exception as exc:
            ready.set_exception(_storage_error(f"open {self.path}", exc))
            return
        ready.set_result(None)
        stop: _Job[Any] | None = None
        try:
            stop = self._serve(conn)
        finally:
            conn.close()
            if stop is not None and stop.future.set_running_or_notify_cancel():
                stop.future.set_result(None)

    def _serve(self, conn: sqlite3.Connection) -> _Job[Any]:
        """Run batches of queued jobs until the stop job; return it."""
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            group: list[_Job[Any]] = []
            for job in batch:
                if job.write:
                    group.append(job)
                    continue
                self._commit_group(conn, group)
                group = []
                if job.run is None:
                    return job
                self._run_read(conn, job)
            self._commit_group(conn, group)

    def _run_read(self, conn: sqlite3.Connection, job: _Job[Any]) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        assert job.run is not None
        try:
            result = job.run(conn)
        except Exception as exc:
            job.future.set_exception(_storage_error(job.what, exc))
        else:
            job.future.set_result(result)

    def _commit_group(self, conn: sqlite3.Connection, jobs: list[_Job[Any]]) -> None:
        """Run write jobs in one transaction, a savepoint each; resolve them after COMMIT."""
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        results: list[tuple[_Job[Any], Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                assert job.run is not None
                conn.execute("SAVEPOINT job")
                try:
                    result = job.run(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    job.future.set_exception(_storage_error(job.what, exc))
                else:
                    results.append((job, result))
                conn.execute("RELEASE job")
            self._fault("before_commit")
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(_storage_error(f"{job.what} (group commit)", exc))
            return
        for job, result in results:
            job.future.set_result(result)


# ---------------------------------------------------------------------- queries

_SELECT_KEYS = f"SELECT {rows.API_KEY_COLUMNS} FROM api_keys"


def _get_room(conn: sqlite3.Connection, room_id: str) -> RoomRecord | None:
    row = conn.execute(f"SELECT {rows.ROOM_COLUMNS} FROM rooms WHERE room_id = ?", (room_id,))
    found = row.fetchone()
    return None if found is None else rows.room_record(found)


def _load_room(conn: sqlite3.Connection, room_id: str) -> RoomSnapshot:
    args = (room_id,)
    version = conn.execute("SELECT version FROM room_versions WHERE room_id = ?", args).fetchone()
    return rows.room_snapshot(
        None if version is None else version[0],
        connected=conn.execute("SELECT client_id FROM connected_clients WHERE room_id = ?", args),
        clients=conn.execute(
            f"SELECT client_id, {rows.CLIENT_COLUMNS} FROM clients WHERE room_id = ?"
            " ORDER BY client_id",
            args,
        ),
        entries=rows.add_entries(
            {},
            conn.execute(
                "SELECT key, version, deleted, value FROM entries WHERE room_id = ? ORDER BY key",
                args,
            ),
        ),
    )


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """Open (creating if needed and ``create``) and migrate the file; WAL mode,
    ``synchronous=FULL``."""
    if path.is_dir():
        raise StorageError(f"{path} is a folder, not a SQLite database file")
    if not create and not path.exists():
        raise DatabaseNotFound(f"no SQLite database at {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, str(path))
        journal_mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if journal_mode != "wal":
            raise StorageError(f"{path}: cannot use WAL mode (journal_mode is {journal_mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
    except BaseException:
        conn.close()
        raise
    return conn


def _storage_error(what: str, exc: Exception) -> StorageError:
    if isinstance(exc, StorageError):
        return exc
    error = StorageError(f"SQLite: {what} failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error

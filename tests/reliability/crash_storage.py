"""Where the crash scenario's server keeps its data: a SQLite file (``SQLiteFile``) or a fresh
PostgreSQL schema (``PostgresSchema``), and how the scenario reads a kill point from it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from reflectd.storage.migrations.postgres import quote_ident
from reflectd.storage.postgres import PostgresURL


@dataclass
class RoomRows:
    """One room as stored: each client's ``last_mutation_id``, the live entries' values."""

    lmids: dict[str, int] = field(default_factory=dict)  # clientID -> last_mutation_id
    values: dict[str, Any] = field(default_factory=dict)  # key -> value (no tombstones)


class Storage(Protocol):
    """Where the server under test keeps its data, and how the scenario reads it."""

    #: what ``reflectd serve --db`` gets
    db: str
    #: more ``reflectd serve`` options
    serve_options: list[str]
    #: for the report
    description: str

    def prepare(self) -> None:
        """Before the first start: make sure the storage holds nothing yet."""

    def check_serving(self) -> None:
        """Once the server is ready: ``settle`` will see what it has to wait for."""

    def settle(self) -> float:
        """Once the server process is dead: wait until nothing it started can still change
        the data; returns the seconds waited."""

    def read(self, rooms: list[str]) -> dict[str, RoomRows]:
        """The rooms as the restarted server will find them."""


class SQLiteFile:
    """The server's data in a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = str(path)
        self.serve_options: list[str] = []
        self.description = f"SQLite file {path}"

    def prepare(self) -> None:
        pass

    def check_serving(self) -> None:
        pass

    def settle(self) -> float:
        return 0.0  # the dead process wrote all it will write

    def read(self, rooms: list[str]) -> dict[str, RoomRows]:
        stored: dict[str, RoomRows] = {}
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as conn:
            for room in rooms:
                clients = conn.execute(
                    "SELECT client_id, last_mutation_id FROM clients WHERE room_id = ?", (room,)
                )
                entries = conn.execute(
                    "SELECT key, deleted, value FROM entries WHERE room_id = ?", (room,)
                )
                stored[room] = RoomRows(
                    lmids=dict(clients),
                    values={
                        key: json.loads(value) for key, deleted, value in entries if not deleted
                    },
                )
        return stored


class PostgresSchema:
    """The server's data in a PostgreSQL schema that does not exist yet: ``url`` names it
    (``?schema=NAME``, see ``schema_url``). The server runs as one node with a fixed
    ``--node-id``, as a supervisor restarts it: the restarted process takes its rooms' leases
    back at once. Its sessions carry an application name of their own, so that after a kill
    the scenario can wait for PostgreSQL to end them: until then a ``COMMIT`` the dead
    process sent may still land.
    """

    def __init__(self, url: str) -> None:
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
        if not any(name == "schema" for name, _ in query):
            raise ValueError(f"{url}: name a fresh schema (?schema=NAME, see schema_url)")
        run = uuid.uuid4().hex[:8]
        self.application_name = f"reflectd-crash-{run}"
        self.db = _with_query(url, application_name=self.application_name)
        parsed = PostgresURL.parse(url)
        self.dsn = parsed.dsn
        self.schema = parsed.schema
        self.serve_options = ["--node-id", f"crash-{run}"]
        self.description = f"PostgreSQL {parsed.display}, schema {self.schema}"

    def prepare(self) -> None:
        async def check() -> None:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                exists = await conn.fetchval(
                    "SELECT count(*) FROM pg_namespace WHERE nspname = $1", self.schema
                )
            finally:
                await conn.close()
            assert not exists, f"schema {self.schema} exists already: the scenario needs a new one"

        asyncio.run(check())

    def check_serving(self) -> None:
        sessions = asyncio.run(self._sessions())
        assert sessions, f"no PostgreSQL session is named {self.application_name}"

    async def _sessions(self) -> int:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            sessions: int = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                self.application_name,
            )
        finally:
            await conn.close()
        return sessions

    def settle(self, timeout_s: float = 30.0) -> float:
        started = time.monotonic()
        while asyncio.run(self._sessions()):
            if time.monotonic() - started > timeout_s:
                raise AssertionError(
                    f"PostgreSQL still runs sessions of the killed server after {timeout_s:.0f} s"
                )
            time.sleep(0.005)
        return time.monotonic() - started

    def read(self, rooms: list[str]) -> dict[str, RoomRows]:
        schema = quote_ident(self.schema)

        async def read() -> dict[str, RoomRows]:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    clients = await conn.fetch(
                        f"SELECT room_id, client_id, last_mutation_id FROM {schema}.clients"
                        " WHERE room_id = ANY($1::text[])",
                        rooms,
                    )
                    entries = await conn.fetch(
                        f"SELECT room_id, key, deleted, value FROM {schema}.entries"
                        " WHERE room_id = ANY($1::text[])",
                        rooms,
                    )
            finally:
                await conn.close()
            stored = {room: RoomRows() for room in rooms}
            for room, client_id, lmid in clients:
                stored[room].lmids[client_id.decode()] = lmid
            for room, key, deleted, value in entries:
                if not deleted:
                    stored[room].values[key.decode()] = json.loads(value)
            return stored

        return asyncio.run(read())

    def drop(self) -> None:
        """Drop the schema (after a run)."""

        async def drop() -> None:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(self.schema)} CASCADE")
            finally:
                await conn.close()

        asyncio.run(drop())


def schema_url(url: str, schema: str) -> str:
    """``url`` (a PostgreSQL URL naming no schema) with ``?schema=schema``."""
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    if any(name == "schema" for name, _ in query):
        raise ValueError(f"{url} names a schema already: give the database's URL")
    return _with_query(url, schema=schema)


def _with_query(url: str, **params: str) -> str:
    """``url`` with the query parameters ``params`` (replacing those of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))

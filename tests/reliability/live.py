"""An in-process reflectd (on a thread of its own) with a storage whose commits can be made to
fail at a chosen step, for a room or for all, for the real clients of the interop driver."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reflectd.app import App
from reflectd.engine.records import RoomWrites
from reflectd.server.settings import ServerSettings
from reflectd.storage.sqlite import SQLiteStore
from server.harness import Harness, in_thread, serve


@dataclass
class _Rule:
    point: str
    room: str | None
    error: Callable[[], Exception]
    remaining: int | None  # None: until cleared


class FaultPlan:
    """Which commit steps fail, called by the store on its writer thread.

    The steps are SQLiteStore's: "before_entries", "after_entries", "after_clients" (inside
    one room's commit, so ``room`` can name it) and "before_commit" (once per group commit,
    for every room in it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._local = threading.local()
        #: (step, room) of every fault raised
        self.fired: list[tuple[str, str | None]] = []

    def arm(
        self,
        point: str,
        error: Callable[[], Exception],
        *,
        room: str | None = None,
        times: int | None = 1,
    ) -> None:
        with self._lock:
            self._rules.append(_Rule(point, room, error, times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def fired_for(self, room: str) -> int:
        with self._lock:
            return sum(r == room for _, r in self.fired)

    @property
    def room(self) -> str | None:
        return getattr(self._local, "room", None)

    @room.setter
    def room(self, room: str | None) -> None:
        self._local.room = room

    def __call__(self, point: str) -> None:
        room = self.room
        with self._lock:
            for rule in self._rules:
                if rule.point == point and rule.room in (None, room):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    self.fired.append((point, room))
                    raise rule.error()


class FaultyStore(SQLiteStore):
    """A SQLiteStore whose ``fault`` hook knows which room's commit it is in."""

    def __init__(self, path: Path) -> None:
        self.plan = FaultPlan()
        super().__init__(path, fault=self.plan)

    def _apply(self, conn: sqlite3.Connection, room_id: str, writes: RoomWrites) -> None:
        self.plan.room = room_id
        try:
            super()._apply(conn, room_id, writes)
        finally:
            self.plan.room = None


def stored(path: Path, room_id: str) -> tuple[dict[str, Any], dict[str, int]]:
    """A room's live values and its clients' lmids, read from the file by another connection."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        values = {
            key: json.loads(value)
            for key, deleted, value in conn.execute(
                "SELECT key, deleted, value FROM entries WHERE room_id = ?", (room_id,)
            )
            if not deleted
        }
        lmids = dict(
            conn.execute(
                "SELECT client_id, last_mutation_id FROM clients WHERE room_id = ?", (room_id,)
            ).fetchall()
        )
    return values, lmids


@contextlib.contextmanager
def serve_thread(app: App, store: Any, settings: ServerSettings | None = None) -> Iterator[Harness]:
    """``serve(app, store=store)`` on an event loop of its own thread."""
    with in_thread(lambda: serve(app, settings, store=store)) as (harness, _):
        yield harness

"""Storage faults during a turn, under real clients: disk full, I/O error, a locked database.

The turn whose commit fails is not poked and nothing of it is stored. Its room replays it
one unit at a time: a fault that lasted one commit costs nothing (the replay commits, each
mutation is applied once, nobody reconnects); a lasting one refuses the mutation (its
author reconnects and re-sends) and then stops the room (its clients reconnect) until the
storage recovers; everything converges; the log says what happened; the other rooms keep
being served meanwhile."""

from __future__ import annotations

import logging
import sqlite3
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from interop.app import app as interop_app
from interop.harness import NodeClients
from reflectd.logs import ContextFields

from .live import FaultyStore, serve_thread, stored

pytestmark = pytest.mark.interop

ROOM_A = "faults-a"
ROOM_B = "faults-b"


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def connects(clients: NodeClients, name: str) -> int:
    return len(clients.state(name, levels=())["wire"]["connects"])


def open_rooms(clients: NodeClients, url: str) -> None:
    for name, room in (("a1", ROOM_A), ("a2", ROOM_A), ("b1", ROOM_B)):
        clients.open(name, server=url, room_id=room, user_id=name, auth=name)
    clients.mutate("a1", "appendToList", {"key": "log", "item": "a-1"})
    clients.mutate("b1", "appendToList", {"key": "log", "item": "b-1"})
    clients.wait_for("a2", "log", ["a-1"])


def error_logs(caplog: pytest.LogCaptureFixture, room: str) -> list[str]:
    """What the server logged at ERROR about ``room``, with the tracebacks."""
    found = []
    for record in caplog.records:
        about = getattr(record, "room_id", None) == room or room in record.getMessage()
        if record.levelno >= logging.ERROR and about:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            found.append(text)
    return found


FAULTS = {
    # step of the commit, error, how many commits of room A fail (None: until cleared)
    "disk-full-half-written": (
        "after_entries",
        lambda: sqlite3.OperationalError("database or disk is full"),
        1,
    ),
    "io-error-before-version": (
        "after_clients",
        lambda: sqlite3.OperationalError("disk I/O error"),
        1,
    ),
    "disk-full-for-a-while": (
        "before_entries",
        lambda: sqlite3.OperationalError("database or disk is full"),
        None,
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failed_commit_is_not_poked_nor_stored_and_the_room_recovers(
    clients: NodeClients, tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    point, error, times = FAULTS[fault]
    db = tmp_path / "data.sqlite3"
    store = FaultyStore(db)
    caplog.set_level(logging.INFO, logger="reflectd")
    caplog.handler.addFilter(ContextFields())  # the room_id of a room's lines, as a field
    with serve_thread(interop_app, store) as server:
        open_rooms(clients, server.http_url)
        a1_id = clients.state("a1", levels=())["clientID"]
        b_connects = connects(clients, "b1")
        a1_connects = len(clients.state("a1", levels=())["wire"]["connects"])

        store.plan.arm(point, error, room=ROOM_A, times=times)
        a2_pending = clients.mutate_async("a1", "appendToList", {"key": "log", "item": "a-2"})
        wait_until(lambda: store.plan.fired_for(ROOM_A) >= 1, 10, "the fault")
        if times == 1:  # the replay of the failed round commits: no reconnect, applied once
            a2_pending.result(timeout=10)
            clients.wait_for("a2", "log", ["a-1", "a-2"], timeout=10)
            assert stored(db, ROOM_A)[0] == {"log": ["a-1", "a-2"]}
            assert connects(clients, "a1") == a1_connects
            clients.mutate("b1", "appendToList", {"key": "log", "item": "b-2"}, timeout=10)
            clients.mutate("a1", "appendToList", {"key": "log", "item": "a-3"}, timeout=10)
            for name in ("a1", "a2"):
                clients.wait_for(name, "log", ["a-1", "a-2", "a-3"], timeout=10)
            assert connects(clients, "a1") == a1_connects
            assert stored(db, ROOM_A)[1][a1_id] == 3
            clients.assert_healthy()
            return

        # the other room is served meanwhile, on the same connection
        clients.mutate("b1", "appendToList", {"key": "log", "item": "b-2"}, timeout=10)
        assert connects(clients, "b1") == b_connects
        # the failed turn was neither poked nor stored, not even in part
        assert not a2_pending.done()
        assert clients.get("a2", "log") == ["a-1"]
        values, lmids = stored(db, ROOM_A)
        assert values == {"log": ["a-1"]}
        assert lmids[a1_id] == 1
        if times is None:  # the disk stays full for a while: reconnects fail too
            time.sleep(1.0)
            assert clients.get("a2", "log") == ["a-1"]
            assert stored(db, ROOM_A)[0] == {"log": ["a-1"]}
            store.plan.clear()

        # the clients reconnect; a1 re-sends with its next push; everything converges
        clients.wait_online("a1", connected=2, timeout=30)
        assert connects(clients, "a1") > a1_connects
        clients.mutate("a1", "appendToList", {"key": "log", "item": "a-3"}, timeout=30)
        a2_pending.result(timeout=30)
        for name in ("a1", "a2"):
            clients.wait_for(name, "log", ["a-1", "a-2", "a-3"], timeout=30)
        values, lmids = stored(db, ROOM_A)
        assert values == {"log": ["a-1", "a-2", "a-3"]}
        assert lmids[a1_id] == 3
        assert stored(db, ROOM_B)[0] == {"log": ["b-1", "b-2"]}
        clients.assert_healthy()

    # the log says which room stopped, and why
    logged = "\n".join(error_logs(caplog, ROOM_A))
    assert "stopped after an error" in logged
    assert "was refused, its commit failed" in logged
    assert str(error()) in logged
    assert not error_logs(caplog, ROOM_B)


def test_a_locked_database_fails_the_commit_and_the_rooms_recover(
    clients: NodeClients, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the write lock longer than SQLite's 5 s busy timeout."""
    db = tmp_path / "data.sqlite3"
    store = FaultyStore(db)  # no fault armed: the lock is real
    caplog.set_level(logging.INFO, logger="reflectd")
    caplog.handler.addFilter(ContextFields())  # the room_id of a room's lines, as a field
    with serve_thread(interop_app, store) as server:
        open_rooms(clients, server.http_url)
        a1_id = clients.state("a1", levels=())["clientID"]
        locker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        locker.execute("BEGIN IMMEDIATE")
        try:
            pending = clients.mutate_async("a1", "appendToList", {"key": "log", "item": "a-2"})
            # the event loop is not blocked by the writer thread waiting for the lock
            started = time.monotonic()
            with urllib.request.urlopen(server.http_url + "/", timeout=5) as response:
                assert response.status == 200
            assert time.monotonic() - started < 2
            wait_until(
                lambda: any("database is locked" in t for t in error_logs(caplog, ROOM_A)),
                20,
                "the commit to fail with 'database is locked'",
            )
            assert not pending.done()
            assert clients.get("a2", "log") == ["a-1"]
            assert stored(db, ROOM_A)[0] == {"log": ["a-1"]}
        finally:
            locker.execute("ROLLBACK")
            locker.close()

        clients.mutate("a1", "appendToList", {"key": "log", "item": "a-3"}, timeout=40)
        pending.result(timeout=30)
        for name in ("a1", "a2"):
            clients.wait_for(name, "log", ["a-1", "a-2", "a-3"], timeout=30)
        clients.mutate("b1", "appendToList", {"key": "log", "item": "b-2"}, timeout=30)
        values, lmids = stored(db, ROOM_A)
        assert values == {"log": ["a-1", "a-2", "a-3"]}
        assert lmids[a1_id] == 3
        assert stored(db, ROOM_B)[0] == {"log": ["b-1", "b-2"]}
        clients.assert_healthy()

"""``reflectd tail`` against a ``reflectd serve`` process: the lines of a room, refused without
``logs:read``, connecting again after the server restarts, Ctrl-C."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from .harness import Endpoint
from .test_cli import APPS, REFLECTD, clean_env, free_port, run_cli

pytestmark = pytest.mark.anyio

API_KEY = "rfd_the-environment-key-of-the-tail-tests"
LINE_TIMEOUT_S = 15


class Server:
    """``reflectd serve`` on a given port (so that a restart is at the same URL)."""

    def __init__(self, tmp_path: Path, port: int) -> None:
        self.port = port
        self.db = tmp_path / "reflectd.sqlite3"
        self.log = tmp_path / "reflectd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [REFLECTD, "serve", f"{APPS}:app", "--port", str(self.port), "--db", str(self.db)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**clean_env(), "REFLECTD_API_KEY": API_KEY},
            )
        deadline = time.monotonic() + 20
        while "reflectd ready" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)


class Tail:
    """``reflectd tail --json ...``, its output read line by line in a thread."""

    def __init__(self, *args: str, key: str = API_KEY) -> None:
        self.process = subprocess.Popen(
            [REFLECTD, "tail", "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**clean_env(), "REFLECTD_API_KEY": key},
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.notes: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True).start()

    def _read(self, stream: IO[str], entries: bool) -> None:
        for line in stream:
            if entries:
                self.lines.put(json.loads(line))
            else:
                self.notes.put(line)

    def next_line(self, message: str) -> dict[str, Any]:
        """The next line with ``message``; the lines before it are returned by ``skipped``."""
        self.skipped: list[dict[str, Any]] = []
        deadline = time.monotonic() + LINE_TIMEOUT_S
        while True:
            entry = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if entry["message"] == message:
                return entry
            self.skipped.append(entry)

    def wait_for_note(self, text: str) -> None:
        deadline = time.monotonic() + LINE_TIMEOUT_S
        while text not in self.notes.get(timeout=max(0.01, deadline - time.monotonic())):
            pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tails() -> Iterator[list[Tail]]:
    started: list[Tail] = []
    yield started
    for tail in started:
        if tail.process.poll() is None:
            tail.process.kill()
            tail.process.wait()


async def _connect(port: int, client_id: str, room_id: str, user_id: str) -> None:
    endpoint = Endpoint(port)
    await endpoint.connect(client_id, room_id=room_id, user_id=user_id)
    await endpoint.close_clients()


async def test_tail_shows_the_room_asked_for_and_connects_again_after_a_restart(
    server: Server, tails: list[Tail]
) -> None:
    tail = Tail("--url", f"http://127.0.0.1:{server.port}", "--room", "lobby", "--level", "info")
    tails.append(tail)
    opened = await _until_subscribed(server, tail)
    assert opened["room_id"] == "lobby" and opened["user_id"] == "alice"
    assert opened["level"] == "info" and len(opened["request_id"]) == 16

    await _connect(server.port, "other", "elsewhere", "bob")
    await _connect(server.port, "c2", "lobby", "carol")
    opened = tail.next_line("connection opened")
    assert opened["client_id"] == "c2"
    assert all(e.get("room_id") == "lobby" for e in tail.skipped)

    server.stop()
    tail.wait_for_note("connecting again")
    server.start()
    tail.wait_for_note("connected again")
    await _connect(server.port, "c3", "lobby", "dave")
    assert tail.next_line("connection opened")["client_id"] == "c3"

    tail.process.send_signal(signal.SIGINT)
    assert tail.process.wait(timeout=10) == 130
    assert tail.notes.empty() or "Traceback" not in "".join(list(tail.notes.queue))


async def test_tail_shows_the_lines_of_the_user_asked_for(
    server: Server, tails: list[Tail]
) -> None:
    url = f"http://127.0.0.1:{server.port}"
    tail = Tail("--url", url, "--user", "alice", "--level", "info")
    tails.append(tail)
    opened = await _until_subscribed(server, tail)
    assert opened["user_id"] == "alice"

    await _connect(server.port, "c2", "lobby", "carol")
    await _connect(server.port, "c3", "elsewhere", "alice")
    opened = tail.next_line("connection opened")
    assert opened["client_id"] == "c3" and opened["room_id"] == "elsewhere"
    run_cli("connections", "invalidate", "--user", "alice", "--url", url, "--api-key", API_KEY)
    invalidated = tail.next_line("the user's connections invalidated (0 closed here)")
    assert invalidated["user_id"] == "alice"
    assert all(e.get("user_id") == "alice" for e in tail.skipped)


async def _until_subscribed(server: Server, tail: Tail) -> dict[str, Any]:
    """Connect to the tail's room as alice until the tail shows it (its stream may not be
    open yet)."""
    for attempt in range(50):
        await _connect(server.port, f"probe{attempt}", "lobby", "alice")
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            try:
                entry = tail.lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if entry["message"] == "connection opened":
                return entry
    raise AssertionError("the tail showed nothing")


def test_tail_shows_only_lines_at_the_level_asked_for(server: Server, tails: list[Tail]) -> None:
    tail = Tail("--url", f"http://127.0.0.1:{server.port}", "--level", "warning")
    tails.append(tail)
    time.sleep(1)
    run_cli("rooms", "list", "--url", f"http://127.0.0.1:{server.port}", "--api-key", API_KEY)
    time.sleep(0.5)
    assert tail.lines.empty()  # the access line is at info


def test_tail_with_a_key_without_logs_read_is_refused(server: Server) -> None:
    made = run_cli("keys", "create", "reader", "-p", "rooms:read", "--db", str(server.db))
    key = made.stdout.strip().splitlines()[-1]
    refused = run_cli("tail", "--url", f"http://127.0.0.1:{server.port}", "--api-key", key)
    assert refused.returncode == 1
    assert "HTTP 403" in refused.stderr and "logs:read" in refused.stderr
    wrong = run_cli("tail", "--url", f"http://127.0.0.1:{server.port}", "--api-key", "rfd_nope")
    assert wrong.returncode == 1 and "HTTP 401" in wrong.stderr

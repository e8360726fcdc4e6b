"""``reflectd serve`` as a process: options, bad APP arguments, graceful shutdown on SIGTERM,
and restart on the same database after SIGTERM or kill -9."""

from __future__ import annotations

import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from reflectd.cli import serve as serve_command

from .harness import Endpoint

REFLECTD = str(Path(sys.executable).with_name("reflectd"))
APPS = str(Path(__file__).with_name("apps.py"))
START_TIMEOUT_S = 20


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFLECTD_")}
    env.update(COLUMNS="200", NO_COLOR="1", TERM="dumb")
    return env


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REFLECTD, *args], capture_output=True, text=True, env=clean_env(), timeout=30
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ReflectdProcess:
    """``reflectd serve tests/server/apps.py:app --db DB`` on a free port."""

    def __init__(self, db: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        with log.open("a") as out:
            self.process = subprocess.Popen(
                [REFLECTD, "serve", f"{APPS}:app", "--port", str(self.port), "--db", str(db)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env(),
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"reflectd exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail(f"reflectd did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=15)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[ReflectdProcess]]:
    """Started processes are killed at the end of the test, whatever happened."""
    started: list[ReflectdProcess] = []
    yield started
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


@pytest.fixture
def start(tmp_path: Path, processes: list[ReflectdProcess]) -> object:
    db = tmp_path / "reflectd.sqlite3"

    def start() -> tuple[ReflectdProcess, Endpoint]:
        process = ReflectdProcess(db, tmp_path / "reflectd.log")
        processes.append(process)
        return process, Endpoint(process.port)

    return start


@pytest.fixture
async def endpoints() -> AsyncIterator[list[Endpoint]]:
    made: list[Endpoint] = []
    yield made
    for endpoint in made:
        for client in endpoint.clients:
            await client.ws.close()


# ------------------------------------------------------------------------- the command line


def serve_options() -> list[str]:
    names = [n for n in inspect.signature(serve_command).parameters if n != "app"]
    return ["--" + name.replace("_", "-") for name in names]


def test_serve_help_lists_every_option() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    assert "APP" in result.stdout
    options = serve_options()
    assert {"--host", "--port", "--db", "--max-message-bytes"} <= set(options)
    for option in options:
        assert option in result.stdout, f"{option} is not in serve --help"


BAD_APPS = {
    "no_such_file.py:app": "no such file: no_such_file.py",
    "just-a-word": "APP must be path/to/file.py:attribute or module:attribute",
    f"{APPS}:not_an_app": "is int, not a reflectd.App",
    f"{APPS}:nope": "has no attribute 'nope'",
}


def test_bad_app_argument_exits_2_with_a_clear_error() -> None:
    runs = {
        app: subprocess.Popen(
            [REFLECTD, "serve", app, "--db", "memory://"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        for app in BAD_APPS
    }  # started together: each start costs a second or two of imports
    for app, run in runs.items():
        _, stderr = run.communicate(timeout=30)
        assert run.returncode == 2, (app, stderr)
        assert BAD_APPS[app] in stderr, (app, stderr)
        assert "Traceback" not in stderr, (app, stderr)


# ------------------------------------------------------------------------- shutdown and restart


@pytest.mark.anyio
async def test_sigterm_finishes_the_running_turn_closes_sockets_and_exits_0(
    start: object, endpoints: list[Endpoint]
) -> None:
    process, endpoint = start()  # type: ignore[operator]
    endpoints.append(endpoint)
    alice = await endpoint.connect("alice")
    await alice.mutate("put", {"key": "a", "value": 1})

    await alice.push("slowPut", {"seconds": 0.6, "key": "slow", "value": 2})
    time.sleep(0.2)  # the turn is running (the mutator blocks the server's loop)
    process.process.send_signal(signal.SIGTERM)
    await alice.sync_until(lambda c: c.lmid == 2)
    assert alice.data == {"a": 1, "slow": 2}
    await alice.expect_closed()
    assert process.process.wait(timeout=15) == 0, process.output()

    process, endpoint = start()  # type: ignore[operator]
    endpoints.append(endpoint)
    alice = await endpoint.reconnect(alice)
    bob = await endpoint.connect("bob")
    assert bob.data == {"a": 1, "slow": 2}
    await alice.mutate("put", {"key": "after", "value": 3})
    await bob.sync_until(lambda c: "after" in c.data)
    assert process.stop() == 0


@pytest.mark.anyio
async def test_kill_9_then_restart_on_the_same_db_keeps_everything_acknowledged(
    start: object, endpoints: list[Endpoint]
) -> None:
    process, endpoint = start()  # type: ignore[operator]
    endpoints.append(endpoint)
    alice = await endpoint.connect("alice")
    for i in range(3):
        await alice.mutate("put", {"key": f"k{i}", "value": i})
    process.stop(signal.SIGKILL)

    process, endpoint = start()  # type: ignore[operator]
    endpoints.append(endpoint)
    alice = await endpoint.reconnect(alice)  # no InvalidConnectionRequestBaseCookie/LastMutationID
    assert alice.lmid == 3
    bob = await endpoint.connect("bob")
    assert bob.data == {"k0": 0, "k1": 1, "k2": 2}
    await alice.mutate("put", {"key": "k3", "value": 3})
    assert alice.lmid == 4
    assert process.stop() == 0


def test_serve_with_a_database_it_cannot_open_says_why_in_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"\x00not a database\xff" * 500)
    databases = {
        str(tmp_path): "is a folder, not a SQLite database file",
        str(corrupt): "file is not a database",
        "foo://bar": "unsupported --db 'foo://bar'",
        "postgresql://nobody@127.0.0.1:1/x": "open failed: ConnectionRefusedError",
    }
    runs = {
        db: subprocess.Popen(
            [REFLECTD, "serve", f"{APPS}:app", "--db", db, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        for db in databases
    }
    for db, run in runs.items():
        _, stderr = run.communicate(timeout=30)
        assert run.returncode != 0, (db, stderr)
        assert "Traceback" not in stderr, (db, stderr)
        [line] = [line for line in stderr.splitlines() if "reflectd cannot start: " in line]
        assert databases[db] in line, (db, stderr)

"""``reflectd dev`` with a server module: it rebuilds and reloads when a file of the bundle
changes, an imported module as well as the entry (a copy of tests/js/apps/dev, run as a
subprocess and driven through a socket)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

from tests.server.harness import Endpoint

from .harness import APPS

pytestmark = [pytest.mark.usefixtures("node_ready"), pytest.mark.anyio]

REFLECTD = Path(sys.executable).parent / "reflectd"
#: how long the server may take to start, or to reload after a change
WAIT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DevServer:
    """``reflectd dev APP`` in a process group of its own, its output in a file."""

    def __init__(self, app: Path, *, cwd: Path) -> None:
        self.port = free_port()
        self.log_path = cwd / "dev.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(REFLECTD), "dev", str(app), "--port", str(self.port), "--db", "dev.sqlite3"],
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.endpoint = Endpoint(self.port)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, occurrences: int = 1) -> None:
        deadline = time.monotonic() + WAIT_S
        while self.log().count(text) < occurrences:
            assert self.process.poll() is None, f"reflectd dev exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {text!r} in the log:\n{self.log()}"
            time.sleep(0.05)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()


@pytest.fixture
def dev_app(tmp_path: Path) -> Path:
    """A copy of tests/js/apps/dev to edit."""
    shutil.copytree(APPS / "dev", tmp_path / "app")
    return tmp_path / "app"


@pytest.fixture
def dev_server(dev_app: Path, tmp_path: Path) -> Iterator[DevServer]:
    server = DevServer(dev_app / "index.ts", cwd=tmp_path)
    try:
        yield server
    finally:
        server.stop()


async def written_value(server: DevServer, client_id: str) -> int:
    """Connect as a new client, run ``writeValue`` and return what it wrote."""
    client = await server.endpoint.connect(client_id, client_group_id=f"g-{client_id}")
    try:
        await client.mutate("writeValue")
        value: int = client.data[f"value/{client_id}"]
        return value
    finally:
        await client.close()


async def test_dev_reloads_when_an_imported_module_changes(
    dev_server: DevServer, dev_app: Path
) -> None:
    dev_server.wait_for_log("dev app loaded with value 1")
    dev_server.wait_for_log("Application startup complete")
    clients = (f"c{i}" for i in count())
    assert await written_value(dev_server, next(clients)) == 1

    (dev_app / "lib" / "value.ts").write_text("export const VALUE: number = 2;\n")

    dev_server.wait_for_log("dev app loaded with value 2")
    dev_server.wait_for_log("Application startup complete", occurrences=2)
    assert await written_value(dev_server, next(clients)) == 2

"""Fixtures for the CLI tests: ``reflectd`` run in-process (typer's runner) or as a program,
and a ``reflectd serve`` subprocess on a free port."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from reflectd.cli import cli
from reflectd.storage import open_store

REFLECTD = str(Path(sys.executable).with_name("reflectd"))
ENV_KEY = "cli-test-env-key"
APP_ID = "cli-app"

APP_SOURCE = """
from reflectd import App


def put(tx, args):
    tx.set(args["key"], args["value"])


app = App(mutators={"put": put}, env={})
"""


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """``reflectd ARGS`` in this process; stdout and stderr apart."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def run_program(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``reflectd ARGS`` as a program."""
    return subprocess.run(
        [REFLECTD, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def plain(text: str) -> str:
    """Rich's output without box drawing and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture
def db(tmp_path: Path) -> str:
    """The server's database, made as ``reflectd serve`` makes it when it first starts (admin
    commands refuse a --db where there is none)."""
    path = tmp_path / "reflectd.sqlite3"
    asyncio.run(_make_database(path))
    return str(path)


async def _make_database(path: Path) -> None:
    store = await open_store(path)
    await store.close()


@dataclass
class Server:
    url: str
    db: str
    process: subprocess.Popen[str]

    def env(self, key: str | None = ENV_KEY) -> dict[str, str]:
        env = {"REFLECTD_URL": self.url, "REFLECTD_APP_ID": APP_ID, "REFLECTD_DB": self.db}
        if key is not None:
            env["REFLECTD_API_KEY"] = key
        return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path, db: str) -> Iterator[Server]:
    """``reflectd serve`` with the key REFLECTD_API_KEY=ENV_KEY and --app-id APP_ID."""
    app = tmp_path / "app.py"
    app.write_text(APP_SOURCE)
    port = _free_port()
    env = {
        **os.environ,
        "REFLECTD_API_KEY": ENV_KEY,
        "REFLECTD_APP_ID": APP_ID,
        "REFLECTD_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [REFLECTD, "serve", f"{app}:app", "--port", str(port), "--db", db],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "reflectd serve did not start"
        time.sleep(0.05)
    try:
        yield Server(url, db, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

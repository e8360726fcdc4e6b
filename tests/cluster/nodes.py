"""Nodes of a reflectd cluster for the tests: ``reflectd serve`` processes on one schema."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from interop.harness import REPO_ROOT, ServerProcess, free_port

#: a REST key with every permission, given to every node
API_KEY = "cluster-test-key"
#: short leases, so that failover tests stay quick
LEASE_MS = 1500


class Cluster:
    def __init__(self, *, db: str, base: Path, lease_ms: int) -> None:
        self.db = db
        self.base = base
        self.lease_ms = lease_ms
        self.nodes: list[ServerProcess] = []
        #: more ``reflectd serve`` options for the nodes started from now on
        self.extra_args: list[str] = []

    def start(self, count: int) -> list[ServerProcess]:
        started = [self.add() for _ in range(count)]
        return started

    def add(self) -> ServerProcess:
        index = len(self.nodes)
        port = free_port()
        argv = [
            str(Path(sys.executable).parent / "reflectd"),
            "serve",
            "tests/interop/app.py:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            self.db,
            "--node-id",
            f"node{index}",
            "--lease-ms",
            str(self.lease_ms),
            "--advertise-url",
            f"http://127.0.0.1:{port}",
            *self.extra_args,
        ]
        node = ServerProcess(
            f"node{index}",
            argv,
            port=port,
            cwd=REPO_ROOT,
            log_path=self.base / f"node{index}.log",
            env={"REFLECTD_API_KEY": API_KEY},
        )
        self.nodes.append(node)
        return node.start()

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                os.kill(node.proc.pid, signal.SIGCONT)
            node.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {node.name} ---\n{node.log_path.read_text(errors='replace')[-4000:]}"
            for node in self.nodes
            if node.log_path.exists()
        )


def rest(
    node: ServerProcess,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    **query: str,
) -> tuple[int, Any]:
    """Call the REST API (the original's ``/api/v1`` shape) of ``node``: (status, result)."""
    url = f"{node.url}/api/v1{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={
            "x-reflect-api-key": API_KEY,
            "content-type": "application/json",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        value = json.loads(text)
    except ValueError:
        return status, text
    if isinstance(value, dict) and set(value) == {"result"}:
        return status, value["result"]  # the original's envelope
    return status, value


def lease_row(db: str, room_id: str) -> tuple[str, int, bool] | None:
    """The room's lease row in ``db`` (a URL with ``?schema=``): (node ID, epoch, unexpired)."""
    base, _, schema = db.rpartition("schema=")
    dsn = base.rstrip("?&")

    async def read() -> tuple[str, int, bool] | None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            row = await conn.fetchrow(
                f'SELECT node_id, epoch, expires_at_ms > {_NOW_MS} FROM "{schema}".room_leases'
                " WHERE room_id = $1",
                room_id,
            )
        finally:
            await conn.close()
        return None if row is None else (row[0], row[1], row[2])

    return asyncio.run(read())


_NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)

"""Webhook events survive ``kill -9``: a ``reflectd serve`` process, driven by the real
@rocicorp/reflect client, is killed while its receiver is down; after a restart every event
committed before the kill reaches the receiver, signed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from interop.harness import REPO_ROOT, NodeClients, ServerProcess, free_port
from reflectd.storage import open_store
from tests.storage.conftest import POSTGRES_URL, drop_schema, new_schema, require_postgres
from tests.webhook_receiver import receiving

pytestmark = pytest.mark.anyio

REFLECTD = str(Path(sys.executable).with_name("reflectd"))
API_KEY = "crash-test-key"
ENV = {
    "REFLECTD_API_KEY": API_KEY,
    "REFLECTD_LOG_LEVEL": "warning",
    "REFLECTD_WEBHOOK_POLL_MS": "100",
    "REFLECTD_WEBHOOK_CHANGED_INTERVAL_MS": "0",
    "REFLECTD_WEBHOOK_RETRY_BASE_MS": "100",
    "REFLECTD_WEBHOOK_RETRY_MAX_MS": "300",
    # a delivery under way at the kill is sent again once its claim (2 timeouts) ran out
    "REFLECTD_WEBHOOK_TIMEOUT_MS": "1000",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield str(tmp_path / "reflectd.sqlite3")
        return
    await require_postgres()
    schema = new_schema()
    yield f"{POSTGRES_URL}?schema={schema}"
    await drop_schema(schema)


async def stored(db: str) -> tuple[list[Any], int]:
    """The delivery log and the outbox's depth, read by another process's store."""
    store = await open_store(db)
    try:
        return await store.list_webhook_deliveries(limit=100), (
            await store.webhook_outbox_stats()
        ).depth
    finally:
        await store.close()


async def test_events_committed_before_kill_9_are_delivered_after_the_restart(
    db: str, clients: NodeClients, tmp_path: Path
) -> None:
    receiver_port = free_port()
    added = subprocess.run(
        [REFLECTD, "webhooks", "add", f"http://127.0.0.1:{receiver_port}/hooks", "--create"]
        + [
            a
            for t in ("room.created", "client.connected", "client.disconnected")
            for a in ("-e", t)
        ]
        + ["-e", "room.changed", "--db", db],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    secret = added.stdout.splitlines()[-1]
    port = free_port()
    server = ServerProcess(
        "reflectd",
        [REFLECTD, "serve", "tests/interop/app.py:noauth_app", "--port", str(port), "--db", db],
        port=port,
        cwd=REPO_ROOT,
        log_path=tmp_path / "server.log",
        env=ENV,
    )
    await asyncio.to_thread(server.start)
    try:
        await asyncio.to_thread(run_the_client, clients, server.url)
        created = httpx.post(
            f"{server.url}/v1/apps/default/rooms:create",
            params={"roomID": "made-by-rest"},
            headers={"Authorization": f"Basic {API_KEY}"},
            content=b"{}",
        )
        assert created.status_code == 200, created.text

        async def disconnect_committed() -> list[Any]:
            log, _ = await stored(db)
            return [d for d in log if d.type == "client.disconnected"]

        deadline = time.monotonic() + 10
        while not await disconnect_committed():
            assert time.monotonic() < deadline, "the disconnect's event was never committed"
            await asyncio.sleep(0.05)
        server.stop(signal.SIGKILL)
        before, depth = await stored(db)
        assert depth > 0 and all(d.state == "pending" for d in before)
        async with receiving(port=receiver_port) as receiver:
            await asyncio.to_thread(server.start)
            await receiver.wait_for(len(before), timeout=15)
            await asyncio.sleep(0.2)
    finally:
        server.stop()
    received = {r.headers["webhook-id"]: r.verify(secret) for r in receiver.received}
    assert {d.event_id for d in before} <= received.keys()
    types = sorted(e["type"] for e in received.values())
    assert types.count("room.created") == 2
    assert {"client.connected", "client.disconnected", "room.changed"} <= set(types)
    changed = [e["data"] for e in received.values() if e["type"] == "room.changed"]
    assert max(c["version"] for c in changed) >= 3
    connected = next(e["data"] for e in received.values() if e["type"] == "client.connected")
    assert connected["roomID"] == "hooks" and connected["userID"] == "alice"
    after, depth = await stored(db)
    assert depth == 0 and {d.state for d in after} == {"delivered"}


def run_the_client(clients: NodeClients, url: str) -> None:
    """A real client joins the room, makes three confirmed mutations and leaves."""
    clients.open("a", server=url, room_id="hooks", user_id="alice")
    for _ in range(3):
        clients.mutate("a", "increment", {"key": "n", "delta": 1})
    clients.close("a")

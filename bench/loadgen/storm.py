"""``storm``: K connected clients, the server restarts, every client reconnects at once: time
until all are connected again."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import websockets

from bench.loadgen.client import (
    ConnectError,
    ProtoClient,
    close_all,
    connect_all,
    now_ms,
    quiet,
    unique,
    ws_base,
)
from bench.stats import summarize


@dataclass
class Restart:
    """How ``storm`` restarts the server: ``stop`` then ``start`` (which returns once the
    server answers again). Without one, every client drops its socket at once instead."""

    stop: Callable[[], Awaitable[None]]
    start: Callable[[], Awaitable[None]]


async def storm_workload(
    url: str,
    *,
    clients: int = 5000,
    clients_per_room: int = 10,
    restart: Restart | None = None,
    retry_ms: float = 250.0,
    connect_concurrency: int = 200,
    limit_s: float = 120.0,
    settle_s: float = 1.0,
) -> dict[str, Any]:
    """``clients`` connected clients; the server restarts (or, without ``restart``, every
    client drops its socket); all reconnect at once, retrying every ``retry_ms`` (jittered)
    after a failed attempt. Time until all are connected again."""
    base = ws_base(url)
    tag = unique("storm")
    all_clients = [
        ProtoClient(base, f"{tag}-{i // clients_per_room}", user_id=f"u{i}") for i in range(clients)
    ]
    _, failures = await connect_all(all_clients, concurrency=connect_concurrency)
    live = [c for c in all_clients if c.ws is not None]
    await quiet(live, settle_s * 1000, 60)
    # one mutation each, so that they reconnect with a real lmid and cookie
    for c in live:
        await c.push("increment", {"key": "count", "delta": 1})
    await quiet(live, settle_s * 1000, 60)

    reconnected_at: list[float] = []
    attempts = itertools.count()

    async def reconnect(c: ProtoClient) -> None:
        await c.closed.wait()
        while True:
            next(attempts)
            try:
                await c.connect(timeout=30)
                reconnected_at.append(now_ms())
                return
            except (OSError, TimeoutError, websockets.WebSocketException, ConnectError):
                await asyncio.sleep(retry_ms / 1000 * (0.5 + random.random()))

    tasks = [asyncio.create_task(reconnect(c)) for c in live]
    t_drop = now_ms()
    t_ready: float | None = None
    if restart is not None:
        await restart.stop()
        t_stopped = now_ms()
        await restart.start()
        t_ready = now_ms()
    else:
        t_stopped = t_drop
        for c in live:
            assert c.ws is not None
            c.ws.transport.abort()  # as if the network dropped: no close handshake
    _done, pending = await asyncio.wait(tasks, timeout=limit_s)
    for task in pending:
        task.cancel()
    t_all = max(reconnected_at) if reconnected_at and not pending else None
    result = {
        "workload": "storm",
        "clients": clients,
        "clientsPerRoom": clients_per_room,
        "serverRestarted": restart is not None,
        "connectFailures": failures,
        "reconnected": len(reconnected_at),
        "attempts": next(attempts),
        "stopMs": round(t_stopped - t_drop, 1),
        "restartMs": None if t_ready is None else round(t_ready - t_drop, 1),
        "allConnectedAfterDropMs": None if t_all is None else round(t_all - t_drop, 1),
        "allConnectedAfterReadyMs": (
            None if t_all is None else round(t_all - (t_ready or t_drop), 1)
        ),
        "reconnectAfterReadyMs": summarize([t - (t_ready or t_drop) for t in reconnected_at]),
    }
    await close_all(all_clients)
    return result

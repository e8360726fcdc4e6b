"""``idle``: N idle connections: the server's RSS per connection."""

from __future__ import annotations

from typing import Any

from bench.loadgen.client import ProtoClient, close_all, connect_all, now_ms, quiet, unique, ws_base
from bench.loadgen.process import rss_kib
from bench.stats import summarize


async def idle_workload(
    url: str,
    *,
    connections: int = 10_000,
    clients_per_room: int = 10,
    server_pid: int | None = None,
    connect_concurrency: int = 200,
    settle_s: float = 3.0,
) -> dict[str, Any]:
    """``connections`` idle clients (``clients_per_room`` to a room): the server's RSS growth
    per connection: the resident memory of ``server_pid`` and its child processes."""
    base = ws_base(url)
    tag = unique("idle")
    rss_before = rss_kib(server_pid) if server_pid else None
    all_clients = [
        ProtoClient(base, f"{tag}-{i // clients_per_room}", user_id=f"u{i}")
        for i in range(connections)
    ]
    t0 = now_ms()
    connect_ms, failures = await connect_all(all_clients, concurrency=connect_concurrency)
    connect_all_ms = now_ms() - t0
    live = [c for c in all_clients if c.ws is not None]
    await quiet(live, settle_s * 1000, 120)
    rss_after = rss_kib(server_pid) if server_pid else None
    open_now = sum(1 for c in live if not c.closed.is_set())
    await close_all(all_clients)
    per_conn = (
        (rss_after - rss_before) / max(1, open_now)
        if rss_before is not None and rss_after is not None
        else None
    )
    return {
        "workload": "idle",
        "connections": connections,
        "clientsPerRoom": clients_per_room,
        "connected": open_now,
        "connectFailures": failures,
        "connectAllMs": round(connect_all_ms, 1),
        "connectMs": summarize(connect_ms),
        "rssBeforeKiB": rss_before,
        "rssAfterKiB": rss_after,
        "rssPerConnectionKiB": None if per_conn is None else round(per_conn, 2),
    }

"""``rooms``: R rooms x C clients, each keeping a window of W mutations in flight: aggregate
confirmed mutations/s and confirmation latency."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.loadgen.client import ProtoClient, close_all, now_ms, room_clients
from bench.stats import quantile_sketch, summarize


async def rooms_workload(
    url: str,
    *,
    rooms: int = 100,
    clients: int = 2,
    mutations: int = 50,
    window: int = 8,
    connect_concurrency: int = 100,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """R rooms x C clients; each client pushes ``mutations`` increments of its room's counter,
    keeping ``window`` unconfirmed at most. Aggregate confirmed mutations/s."""
    all_clients, live, connect_ms, failures = await room_clients(
        url, "r", rooms=rooms, clients=clients, concurrency=connect_concurrency
    )
    latencies: list[float] = []
    last_confirm = [0.0]

    async def drive(c: ProtoClient) -> None:
        sent_at: dict[int, float] = {}
        base_id = c.next_id - 1
        target = base_id + mutations
        confirmed_seen = c.lmid
        args = {"key": "count", "delta": 1}
        while c.lmid < target and not c.closed.is_set():
            while c.next_id <= target and c.next_id - 1 - c.lmid < window:
                sent_at[c.next_id] = now_ms()
                if not await c.push("increment", args):
                    return
            c.confirmed_event.clear()
            await c.confirmed_event.wait()
            t = now_ms()
            for mid in range(confirmed_seen + 1, c.lmid + 1):
                latencies.append(t - sent_at.pop(mid))
            confirmed_seen = c.lmid
            last_confirm[0] = max(last_confirm[0], t)

    t0 = now_ms()
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(*(drive(c) for c in live)), timeout)
    except TimeoutError:
        timed_out = True
    confirmed = len(latencies)
    elapsed = max(last_confirm[0] - t0, 1e-3)
    errors = [e for c in all_clients for e in c.errors]
    await close_all(all_clients)
    return {
        "workload": "rooms",
        "rooms": rooms,
        "clientsPerRoom": clients,
        "mutationsPerClient": mutations,
        "window": window,
        "mutations": rooms * clients * mutations,
        "confirmed": confirmed,
        "connectFailures": failures,
        "timedOut": timed_out,
        "elapsedMs": round(elapsed, 1),
        "confirmedPerSec": round(confirmed * 1000 / elapsed, 1),
        "confirmLatencyMs": summarize(latencies),
        "confirmLatencySketch": quantile_sketch(latencies),
        "connectMs": summarize(connect_ms),
        "errors": errors[:10],
    }

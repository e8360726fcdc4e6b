"""``fanout``: one room with many clients of which a few write at a fixed rate: how long until
every client got the poke carrying a mutation (poke latency p50/p99)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.loadgen.client import ProtoClient, close_all, connect_all, now_ms, quiet, unique, ws_base
from bench.stats import quantile_sketch, summarize


async def fanout_workload(
    url: str,
    *,
    clients: int = 500,
    writers: int = 25,
    rate: float = 5.0,
    duration: float = 10.0,
    connect_concurrency: int = 100,
    settle_s: float = 1.0,
    tail_s: float = 2.0,
) -> dict[str, Any]:
    """One room of ``clients``; ``writers`` of them push ``rate`` echo mutations/s each for
    ``duration`` s. Poke latency: from a push to each client's poke carrying its write."""
    base = ws_base(url)
    room = unique("fan-")
    sent: dict[tuple[str, int], float] = {}
    latencies: list[float] = []
    measuring = [False]

    def on_poke(c: ProtoClient, body: dict[str, Any], t: float) -> None:
        if not measuring[0]:
            return
        for poke in body["pokes"]:
            for op in poke["patch"]:
                if op["op"] == "put" and op["key"].startswith("e/"):
                    t0 = sent.get((op["key"], op["value"]["seq"]))
                    if t0 is not None:
                        latencies.append(t - t0)

    all_clients = [
        ProtoClient(base, room, user_id=f"u{i}", on_poke=on_poke) for i in range(clients)
    ]
    t_connect = now_ms()
    _connect_ms, failures = await connect_all(all_clients, concurrency=connect_concurrency)
    connect_all_ms = now_ms() - t_connect
    live = [c for c in all_clients if c.ws is not None]
    await quiet(live, settle_s * 1000, 60)
    measuring[0] = True
    writer_clients = live[:writers]
    interval = 1.0 / rate

    async def write(c: ProtoClient, index: int) -> None:
        key = f"e/{c.client_id}"
        await asyncio.sleep(interval * index / max(1, len(writer_clients)))
        start = time.monotonic()
        seq = 0
        while time.monotonic() - start < duration and not c.closed.is_set():
            seq += 1
            sent[(key, seq)] = now_ms()
            await c.push("echo", {"key": key, "seq": seq})
            next_at = start + seq * interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    await asyncio.gather(*(write(c, i) for i, c in enumerate(writer_clients)))
    await asyncio.sleep(tail_s)  # the last pokes
    expected = len(sent) * len(live)
    errors = [e for c in all_clients for e in c.errors]
    await close_all(all_clients)
    return {
        "workload": "fanout",
        "clients": clients,
        "writers": writers,
        "ratePerWriter": rate,
        "durationS": duration,
        "mutations": len(sent),
        "deliveries": len(latencies),
        "expectedDeliveries": expected,
        "connectFailures": failures,
        "connectAllMs": round(connect_all_ms, 1),
        "pokeLatencyMs": summarize(latencies),
        "pokeLatencySketch": quantile_sketch(latencies),
        "errors": errors[:10],
    }

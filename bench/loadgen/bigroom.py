"""``cold-join`` and ``huge-room``: a room of many keys, the server restarted, new clients join
it; how long until each has every key, the server's memory meanwhile, and the latency of a
small room while the big one loads.

1. One client fills a fresh room with ``keys`` keys of ``value_bytes`` (the ``fill`` mutator,
   1,000 keys a mutation, a few in flight).
2. The server restarts (same storage), so the room is loaded cold.
3. A probe client in a small room of its own mutates one at a time, throughout.
4. ``joiners`` new clients (no cookie) connect at once to the big room. A joiner has every key
   when the pokes it received put ``keys`` keys; its join time runs from its connect to then.
5. The server's RSS (children included) is sampled every 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from bench.loadgen.client import ProtoClient, close_all, connect_all, now_ms, unique, ws_base
from bench.loadgen.process import rss_kib
from bench.loadgen.storm import Restart
from bench.stats import summarize

FILL_KEYS_PER_MUTATION = 1000


async def _fill(base: str, room: str, *, keys: int, value_bytes: int, window: int = 4) -> float:
    """Fill ``room``; returns the seconds it took."""
    filler = ProtoClient(base, room, user_id="filler")
    await filler.connect()
    started = time.monotonic()
    for start in range(0, keys, FILL_KEYS_PER_MUTATION):
        count = min(FILL_KEYS_PER_MUTATION, keys - start)
        args = {"prefix": "k/", "start": start, "count": count, "bytes": value_bytes}
        mid = await filler.push("fill", args)
        while filler.lmid < mid - window and not filler.closed.is_set():
            filler.confirmed_event.clear()
            await filler.confirmed_event.wait()
    while filler.lmid < filler.next_id - 1 and not filler.closed.is_set():
        filler.confirmed_event.clear()
        await asyncio.wait_for(filler.confirmed_event.wait(), 120)
    if filler.closed.is_set():
        raise RuntimeError(f"the filler was disconnected: {filler.errors[:3]}")
    await filler.close()
    return time.monotonic() - started


class _Probe:
    """A client of a small room mutating one at a time: its confirmation latencies."""

    def __init__(self, base: str) -> None:
        self.client = ProtoClient(base, unique("probe-"), user_id="probe")
        self.samples: list[tuple[float, float]] = []  # (sent at, latency) in ms
        self.stopping = False

    async def run(self) -> None:
        c = self.client
        while not self.stopping and not c.closed.is_set():
            t0 = now_ms()
            mid = await c.push("increment", {"key": "n", "delta": 1})
            while c.lmid < mid and not c.closed.is_set():
                c.confirmed_event.clear()
                await c.confirmed_event.wait()
            self.samples.append((t0, now_ms() - t0))
            await asyncio.sleep(0.01)


async def _sample_rss(pid: Callable[[], int | None], into: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        process = pid()
        if process is not None:
            into.append(await asyncio.to_thread(rss_kib, process))
        await asyncio.sleep(0.05)


async def big_room_workload(
    url: str,
    *,
    keys: int,
    value_bytes: int,
    joiners: int,
    restart: Restart | None,
    server_pid: Callable[[], int | None] = lambda: None,
    workload: str = "cold-join",
    limit_s: float = 120.0,
) -> dict[str, Any]:
    base = ws_base(url)
    room = unique("big-")
    fill_s = await _fill(base, room, keys=keys, value_bytes=value_bytes)
    if restart is not None:
        await restart.stop()
        await restart.start()
    probe = _Probe(base)
    await probe.client.connect()
    probe_task = asyncio.create_task(probe.run())
    await asyncio.sleep(0.5)  # the probe's own room is warm before the join
    rss: list[int] = []
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(server_pid, rss, stop_sampling))
    await asyncio.sleep(0.1)
    rss_before = rss[-1] if rss else None

    received: dict[str, int] = {}
    complete_at: dict[str, float] = {}
    all_keys = asyncio.Event()

    def on_poke(c: ProtoClient, body: dict[str, Any], t: float) -> None:
        puts = sum(op["op"] == "put" for poke in body["pokes"] for op in poke["patch"])
        received[c.client_id] = received.get(c.client_id, 0) + puts
        if received[c.client_id] >= keys and c.client_id not in complete_at:
            complete_at[c.client_id] = t
            if len(complete_at) == joiners:
                all_keys.set()

    clients = [ProtoClient(base, room, user_id=f"j{i}", on_poke=on_poke) for i in range(joiners)]
    t_join = now_ms()
    _connect_ms, failures = await connect_all(clients, concurrency=joiners, timeout=limit_s)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_keys.wait(), limit_s)
    t_done = now_ms()
    await asyncio.sleep(0.3)
    stop_sampling.set()
    await sampler
    probe.stopping = True
    await probe_task
    during = [latency for sent, latency in probe.samples if t_join <= sent <= t_done]
    errors = [e for c in clients for e in c.errors]
    await close_all([*clients, probe.client])
    join_ms = [complete_at[c.client_id] - t_join for c in clients if c.client_id in complete_at]
    return {
        "workload": workload,
        "keys": keys,
        "valueBytes": value_bytes,
        "joiners": joiners,
        "fillS": round(fill_s, 2),
        "connectFailures": failures,
        "joined": len(join_ms),
        "allJoinedMs": round(max(join_ms), 1) if len(join_ms) == joiners else None,
        "joinMs": summarize(join_ms),
        "rssBeforeKiB": rss_before,
        "rssPeakKiB": max(rss) if rss else None,
        "probeDuringJoinMs": summarize(during),
        "probeMaxDuringJoinMs": round(max(during), 1) if during else None,
        "errors": errors[:10],
    }

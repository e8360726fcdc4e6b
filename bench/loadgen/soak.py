"""``soak``: a steady open-loop load for a long time: does the server's memory grow, does its
latency drift?"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Sequence
from typing import Any

from bench.loadgen.client import ProtoClient, close_all, now_ms, quiet, room_clients
from bench.loadgen.process import rss_kib
from bench.stats import summarize

#: the soak's verdict: RSS may grow at most this much from the end of the first window ...
SOAK_MAX_RSS_GROWTH_PCT = 5.0
#: ... and the p99 of the last third of the windows may be at most this times the first third's
SOAK_MAX_P99_DRIFT = 1.5


async def soak_workload(
    url: str,
    *,
    rooms: int = 100,
    clients: int = 2,
    rate: float = 5000.0,
    duration: float = 600.0,
    window_s: float = 30.0,
    max_unconfirmed: int = 64,
    server_pid: int | None = None,
    connect_concurrency: int = 100,
) -> dict[str, Any]:
    """R rooms x C clients push ``increment`` at ``rate`` mutations/s in all, on a fixed
    schedule (open loop; a client with ``max_unconfirmed`` unconfirmed skips its turn, which
    shows as a lower confirmed rate), for ``duration`` s. Per window of ``window_s``: the
    confirmed rate, confirmation latency p50/p99 (of the mutations sent in it) and the server's
    RSS. The verdict: RSS growth from the end of the first window (warm-up) to the end below
    ``SOAK_MAX_RSS_GROWTH_PCT``, and p99 stable (``SOAK_MAX_P99_DRIFT``)."""
    windows = max(1, math.ceil(duration / window_s))
    latencies: list[list[float]] = [[] for _ in range(windows)]
    sent_at: dict[str, dict[int, float]] = {}
    seen: dict[str, int] = {}

    def on_poke(c: ProtoClient, _body: dict[str, Any], t: float) -> None:
        mine = sent_at.get(c.client_id)
        if mine is None:  # still connecting: nothing sent yet
            return
        for mid in range(seen[c.client_id] + 1, c.lmid + 1):
            sent = mine.pop(mid, None)
            if sent is not None:
                latencies[min(windows - 1, int((sent - t0) / 1000 / window_s))].append(t - sent)
        seen[c.client_id] = max(seen[c.client_id], c.lmid)

    all_clients, live, connect_ms, failures = await room_clients(
        url, "s", rooms=rooms, clients=clients, concurrency=connect_concurrency, on_poke=on_poke
    )
    skipped = [0]
    t0 = now_ms()
    interval_ms = 1000 * len(live) / rate if live else 0.0

    async def drive(i: int, c: ProtoClient) -> None:
        mine = sent_at[c.client_id] = {}
        seen[c.client_id] = c.lmid
        args = {"key": "count", "delta": 1}
        due = t0 + interval_ms * i / len(live)  # spread the clients over one interval
        while not c.closed.is_set() and due - t0 < duration * 1000:
            wait = due - now_ms()
            if wait > 0:
                await asyncio.sleep(wait / 1000)
            if c.next_id - 1 - c.lmid < max_unconfirmed:
                mine[c.next_id] = now_ms()
                if not await c.push("increment", args):
                    return
            else:
                skipped[0] += 1
            due += interval_ms

    async def sample_rss() -> list[int | None]:
        samples: list[int | None] = []
        for w in range(windows):
            await asyncio.sleep(max(0.0, (t0 + (w + 1) * window_s * 1000 - now_ms()) / 1000))
            samples.append(rss_kib(server_pid) if server_pid else None)
        return samples

    sampler = asyncio.create_task(sample_rss())
    await asyncio.gather(*(drive(i, c) for i, c in enumerate(live)))
    rss = await sampler
    await quiet(live, 300, 5)  # the last confirmations
    errors = [e for c in all_clients for e in c.errors]
    await close_all(all_clients)
    per_window = [
        {
            "endS": round(min(duration, (w + 1) * window_s), 3),
            "confirmedPerSec": round(len(lat) / min(window_s, duration - w * window_s), 1),
            "p50Ms": summarize(lat).get("p50"),
            "p99Ms": summarize(lat).get("p99"),
            "rssKiB": rss[w],
        }
        for w, lat in enumerate(latencies)
    ]
    return {
        "workload": "soak",
        "rooms": rooms,
        "clientsPerRoom": clients,
        "offeredPerSec": rate,
        "durationS": duration,
        "windowS": window_s,
        "connectFailures": failures,
        "skippedSends": skipped[0],
        "confirmed": sum(len(lat) for lat in latencies),
        "windows": per_window,
        **soak_verdict(per_window),
        "connectMs": summarize(connect_ms),
        "errors": errors[:10],
    }


def soak_verdict(windows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """RSS growth from the end of the first window to the end of the last, and the drift of
    p99 (median of the last third of the windows over the median of the first third, the
    first window left out as warm-up when there are enough)."""
    rss = [w["rssKiB"] for w in windows if w["rssKiB"] is not None]
    growth = None if len(rss) < 2 else round(100 * (rss[-1] - rss[0]) / rss[0], 2)
    p99 = [w["p99Ms"] for w in windows if w["p99Ms"] is not None]
    steady = p99[1:] if len(p99) >= 4 else p99
    third = max(1, len(steady) // 3)
    first, last = (
        statistics.median(steady[:third] or [0]),
        statistics.median(steady[-third:] or [0]),
    )
    drift = None if not steady or first <= 0 else round(last / first, 3)
    return {
        "rssGrowthPct": growth,
        "p99Drift": drift,
        "stable": growth is not None
        and drift is not None
        and growth < SOAK_MAX_RSS_GROWTH_PCT
        and drift <= SOAK_MAX_P99_DRIFT,
    }

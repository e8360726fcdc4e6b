"""``fanout``: one room with many clients of which a few write at a fixed rate: how long until
every client got the poke carrying a mutation (poke latency p50/p99).

With ``procs`` > 1 the clients that only listen are spread over that many load-generator
processes (one Python process cannot decode every poke of a room beyond 1,500-2,000 clients)
and the writers get a process of their own, so that decoding does not delay their schedule;
each process records when each write reached each of its clients, and the
parent merges these arrival times with the writers' send times (``time.monotonic`` is one
clock for every process of the machine)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.loadgen.client import ProtoClient, close_all, connect_all, now_ms, quiet, unique, ws_base
from bench.stats import quantile_sketch, summarize

#: (key, seq) of a write -> when it was sent, or when it reached each client (monotonic ms)
Sent = dict[tuple[str, int], float]
Arrivals = dict[tuple[str, int], list[float]]


async def _nothing() -> None:
    return None


async def fanout_share(
    url: str,
    room: str,
    *,
    clients: int,
    first: int = 0,
    writers: int = 25,
    rate: float = 5.0,
    duration: float = 10.0,
    connect_concurrency: int = 100,
    settle_s: float = 1.0,
    tail_s: float = 2.0,
    go: Callable[[], Awaitable[None]] = _nothing,
    done: Callable[[], Awaitable[None]] = _nothing,
) -> dict[str, Any]:
    """``clients`` clients (users ``u<first>``...) join ``room``; after ``go()`` returns,
    ``writers`` of them push ``rate`` echo mutations/s each for ``duration`` s, then ``done()``
    and ``tail_s`` s for the last pokes. Returns the send and arrival times, unmerged."""
    base = ws_base(url)
    sent: Sent = {}
    arrivals: Arrivals = {}
    measuring = [False]

    def on_poke(c: ProtoClient, body: dict[str, Any], t: float) -> None:
        if not measuring[0]:
            return
        for poke in body["pokes"]:
            for op in poke["patch"]:
                if op["op"] == "put" and op["key"].startswith("e/"):
                    arrivals.setdefault((op["key"], op["value"]["seq"]), []).append(t)

    all_clients = [
        ProtoClient(base, room, user_id=f"u{first + i}", on_poke=on_poke) for i in range(clients)
    ]
    t_connect = now_ms()
    _connect_ms, failures = await connect_all(all_clients, concurrency=connect_concurrency)
    connect_all_ms = now_ms() - t_connect
    live = [c for c in all_clients if c.ws is not None]
    await quiet(live, settle_s * 1000, 60)
    await go()
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
    await done()
    await asyncio.sleep(tail_s)  # the last pokes
    errors = [e for c in all_clients for e in c.errors]
    await close_all(all_clients)
    return {
        "sent": sent,
        "arrivals": arrivals,
        "live": len(live),
        "connectFailures": failures,
        "connectAllMs": round(connect_all_ms, 1),
        "errors": errors[:10],
    }


def merge_shares(shares: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of a fan-out from its processes' shares: every arrival of a write that was
    sent, against its send time."""
    sent: Sent = {k: t for share in shares for k, t in share["sent"].items()}
    latencies = [
        t - sent[key]
        for share in shares
        for key, times in share["arrivals"].items()
        if key in sent
        for t in times
    ]
    live = sum(share["live"] for share in shares)
    return {
        "mutations": len(sent),
        "deliveries": len(latencies),
        "expectedDeliveries": len(sent) * live,
        "connectFailures": sum(share["connectFailures"] for share in shares),
        "connectAllMs": max(share["connectAllMs"] for share in shares),
        "pokeLatencyMs": summarize(latencies),
        "pokeLatencySketch": quantile_sketch(latencies),
        "errors": [e for share in shares for e in share["errors"]][:10],
    }


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
    share = await fanout_share(
        url, unique("fan-"), clients=clients, writers=writers, rate=rate, duration=duration,
        connect_concurrency=connect_concurrency, settle_s=settle_s, tail_s=tail_s,
    )  # fmt: skip
    return _result(merge_shares([share]), clients, writers, rate, duration)


def _result(
    merged: dict[str, Any], clients: int, writers: int, rate: float, duration: float
) -> dict[str, Any]:
    return {
        "workload": "fanout",
        "clients": clients,
        "writers": writers,
        "ratePerWriter": rate,
        "durationS": duration,
        **merged,
    }


def _share_process(url: str, room: str, options: dict[str, Any], barrier: Any, out: Any) -> None:
    """One load-generator process: its share of the room, then its times and CPU to ``out``."""
    from bench.loadgen.process import run_async

    async def wait() -> None:
        await asyncio.to_thread(barrier.wait, 900)

    cpu0 = time.process_time()
    try:
        share = run_async(fanout_share(url, room, go=wait, done=wait, **options))
    except Exception as exc:  # reported to the parent, which fails the run
        out.put({"failed": f"{type(exc).__name__}: {exc}"})
        return
    share["cpuS"] = time.process_time() - cpu0
    out.put(share)


def split(clients: int, procs: int) -> list[tuple[int, int]]:
    """(first client, clients) of each of ``procs`` shares of ``clients``, sizes within 1."""
    shares, first = [], 0
    for i in range(procs):
        n = clients // procs + (1 if i < clients % procs else 0)
        shares.append((first, n))
        first += n
    return shares


def fanout_processes(
    url: str,
    *,
    procs: int,
    clients: int = 500,
    writers: int = 25,
    rate: float = 5.0,
    duration: float = 10.0,
    settle_s: float = 1.0,
    tail_s: float = 2.0,
) -> dict[str, Any]:
    """``fanout_workload`` with the writers in one process and the other clients spread over
    ``procs`` more (all start writing, and stop listening, together). ``loadgenProcCpuS``: the
    CPU-seconds of each process, the writers' first."""
    ctx = multiprocessing.get_context("spawn")
    room = unique("fan-")
    shares = [(0, writers)] + [(writers + f, n) for f, n in split(clients - writers, procs)]
    barrier = ctx.Barrier(len(shares))
    out = ctx.Queue()
    processes = []
    for i, (first, n) in enumerate(shares):
        options = {
            "clients": n, "first": first, "writers": writers if i == 0 else 0, "rate": rate,
            "duration": duration, "settle_s": settle_s, "tail_s": tail_s,
        }  # fmt: skip
        p = ctx.Process(target=_share_process, args=(url, room, options, barrier, out))
        p.start()
        processes.append(p)
    done = [out.get(timeout=duration + 900) for _ in processes]
    for p in processes:
        p.join()
    failed = [s["failed"] for s in done if "failed" in s]
    if failed:
        raise RuntimeError("; ".join(failed))
    done.sort(key=lambda s: -len(s["sent"]))  # the writers' process first
    result = _result(merge_shares(done), clients, writers, rate, duration)
    result["loadgenProcs"] = len(processes)
    result["loadgenProcCpuS"] = [round(s["cpuS"], 2) for s in done]
    return result

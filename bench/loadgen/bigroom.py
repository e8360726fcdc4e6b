"""``cold-join`` and ``huge-room``: a room of many keys, the server restarted, new clients join
it; how long until each has every key, the server's memory meanwhile, and the latency of a
small room while the big one loads.

1. One client fills a fresh room with ``keys`` keys of ``value_bytes`` (the ``fill`` mutator,
   1,000 keys a mutation, a few in flight).
2. The server restarts (same storage), so the room is loaded cold.
3. A probe client in a small room of its own mutates one at a time, throughout (in a process
   of its own: the joiners' work here must not delay it).
4. ``joiners`` new clients (no cookie) connect at once to the big room. A joiner has every key
   when the pokes it received put ``keys`` keys; its join time runs from its connect to then
   (the poke received, not yet applied: what a client then does is the same for both servers).
5. The server's RSS (children included) is sampled every 50 ms.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from bench.loadgen.client import ProtoClient, now_ms, unique, ws_base
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


_PROBE_MAIN = (
    "import asyncio, sys; from bench.loadgen.bigroom import _Probe;"
    " asyncio.run(_Probe.main(sys.argv[1]))"
)


class _Probe:
    """A client of a small room mutating one at a time: its confirmation latencies.

    It runs in a process of its own (``_PROBE_MAIN``), so that
    the joiners' work in this one does not delay it: it starts mutating at once, and when its
    stdin closes prints its samples, ``[sent at, latency]`` in monotonic ms, as JSON."""

    def __init__(self, base: str) -> None:
        self.client = ProtoClient(base, unique("probe-"), user_id="probe")
        self.samples: list[tuple[float, float]] = []
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

    @staticmethod
    async def main(url: str) -> None:
        probe = _Probe(ws_base(url))
        await probe.client.connect()
        task = asyncio.create_task(probe.run())
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)
        probe.stopping = True
        await task
        await probe.client.close()
        print(json.dumps(probe.samples), flush=True)

    @staticmethod
    async def start(url: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _PROBE_MAIN, url,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        assert process.stdout is not None
        if (await process.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the probe did not start")
        return process

    @staticmethod
    async def samples(process: asyncio.subprocess.Process) -> list[tuple[float, float]]:
        out, _ = await process.communicate(b"")
        return [(sent, latency) for sent, latency in json.loads(out)]


class _Joiner:
    """A new client (no cookie) that joins the big room and counts the keys put in its pokes.

    It reads the frames as bytes and counts ``"op":"put"`` in them without decoding the JSON:
    the load generator shares the machine's cores with the server, and decoding ten copies of
    a 55 MB room would measure the load generator (every value is a string of ``x``)."""

    def __init__(self, base: str, room: str, *, keys: int) -> None:
        self.client = ProtoClient(base, room, user_id=unique("j"))
        self.keys = keys
        self.complete_at: float | None = None
        self.failed = False
        self.errors: list[str] = []

    async def join(self, limit_s: float) -> None:
        try:
            async with ws_connect(
                self.client.url(), compression=None, max_size=None, ping_interval=None
            ) as ws:
                await asyncio.wait_for(self._read(ws), limit_s)
        except (OSError, TimeoutError, websockets.WebSocketException) as e:
            self.failed = True
            self.errors.append(f"{type(e).__name__}: {e}")

    async def _read(self, ws: ClientConnection) -> None:
        puts = 0
        while puts < self.keys:
            frame = await ws.recv(decode=False)
            if frame.startswith(b'["poke"'):
                puts += frame.count(b'"op":"put"')
            elif frame.startswith(b'["error"'):
                self.errors.append(frame[:300].decode(errors="replace"))
        self.complete_at = now_ms()


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
    probe = await _Probe.start(url)
    await asyncio.sleep(0.5)  # the probe's own room is warm before the join
    rss: list[int] = []
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(server_pid, rss, stop_sampling))
    await asyncio.sleep(0.1)
    rss_before = rss[-1] if rss else None

    joined = [_Joiner(base, room, keys=keys) for _ in range(joiners)]
    t_join = now_ms()
    await asyncio.gather(*(j.join(limit_s) for j in joined))
    # the join ends when the last joiner had every key (closing the sockets comes after)
    finished = [j.complete_at for j in joined if j.complete_at is not None]
    t_done = max(finished) if len(finished) == joiners else now_ms()
    await asyncio.sleep(0.3)
    stop_sampling.set()
    await sampler
    samples = await _Probe.samples(probe)
    during = [latency for sent, latency in samples if sent <= t_done and sent + latency >= t_join]
    errors = [e for j in joined for e in j.errors]
    join_ms = [j.complete_at - t_join for j in joined if j.complete_at is not None]
    return {
        "workload": workload,
        "keys": keys,
        "valueBytes": value_bytes,
        "joiners": joiners,
        "fillS": round(fill_s, 2),
        "connectFailures": sum(j.failed for j in joined),
        "joined": len(join_ms),
        "allJoinedMs": round(max(join_ms), 1) if len(join_ms) == joiners else None,
        "joinMs": summarize(join_ms),
        "rssBeforeKiB": rss_before,
        "rssPeakKiB": max(rss) if rss else None,
        "probeDuringJoinMs": summarize(during),
        "probeMaxDuringJoinMs": round(max(during), 1) if during else None,
        "errors": errors[:10],
    }

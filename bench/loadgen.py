"""A protocol-level load generator for Reflect servers (reflectd or the original).

It speaks the sync protocol directly (spec §1.1 connect URL, §2.1 push frames, §2.2 pokes) with
asyncio and the ``websockets`` library, for loads the real client cannot produce on one machine:

* ``rooms``: R rooms x C clients, each keeping a window of W mutations in flight:
  aggregate confirmed mutations/s and confirmation latency;
* ``fanout``: one room with many clients of which a few write at a fixed rate: how long until
  every client got the poke carrying a mutation (poke latency p50/p99);
* ``idle``: N idle connections: the server's RSS per connection (``/proc/<pid>/status``);
* ``storm``: K connected clients, the server restarts, every client reconnects at once: time
  until all are connected again.

A mutation counts as CONFIRMED when a poke to its client carries
``lastMutationIDChanges[clientID] >= id`` (the server commits before it pokes).

Run one workload on its own (prints JSON)::

    python -m bench.loadgen rooms --url http://127.0.0.1:8080 --rooms 100 --clients 2
    python -m bench.loadgen idle --url http://127.0.0.1:8080 --connections 2000 --server-pid PID

``bench/run.py`` runs these (and the real-client workloads) side by side against both servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

try:  # the bench lives outside the package: work both as bench.loadgen and as a script
    from bench.stats import quantile_sketch, summarize
except ImportError:  # pragma: no cover
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench.stats import quantile_sketch, summarize

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def now_ms() -> float:
    return time.monotonic() * 1000


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ws_base(url: str) -> str:
    """``http://host:port`` (or ws://) -> ``ws://host:port``."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------------------------------ RSS


def rss_kib(pid: int, *, children: bool = True) -> int:
    """VmRSS of ``pid`` in KiB, plus its descendants' (the original runs workerd as a child)."""
    pids = [pid, *(_descendants(pid) if children else [])]
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU time of ``pid`` (and its descendants), in seconds."""
    ticks = 0
    for p in [pid, *(_descendants(pid) if children else [])]:
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


# ------------------------------------------------------------------------------------ a client


class ConnectError(RuntimeError):
    """The server refused the connection or sent an error frame instead of ``connected``."""


class ProtoClient:
    """One protocol-level client: connect, push, and read pokes on a reader task."""

    def __init__(
        self,
        base: str,
        room_id: str,
        *,
        client_id: str | None = None,
        user_id: str = "bench",
        on_poke: Callable[[ProtoClient, dict[str, Any], float], None] | None = None,
    ) -> None:
        self.base = base
        self.room_id = room_id
        self.client_id = client_id or unique("c")
        self.group_id = unique("g")
        self.user_id = user_id
        self.on_poke = on_poke
        self.ws: ClientConnection | None = None
        self.cookie: int | None = None
        self.lmid = 0  # last confirmed mutation id (lastMutationIDChanges[self])
        self.next_id = 1
        self.pokes = 0
        self.errors: list[str] = []
        self.confirmed_event = asyncio.Event()
        self.closed = asyncio.Event()
        self.got_poke = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.connects = 0

    def url(self) -> str:
        query = {
            "clientID": self.client_id,
            "clientGroupID": self.group_id,
            "roomID": self.room_id,
            "userID": self.user_id,
            "baseCookie": "" if self.cookie is None else str(self.cookie),
            "ts": f"{time.monotonic() * 1000:.3f}",
            "lmid": str(self.lmid),
            "wsid": uuid.uuid4().hex[:12],
        }
        return f"{self.base}/api/sync/v1/connect?{urlencode(query)}"

    async def connect(self, timeout: float = 30.0) -> float:
        """Open the socket and wait for ``connected``; returns the time it took (ms)."""
        t0 = now_ms()
        self.closed.clear()
        ws = await ws_connect(
            self.url(),
            compression=None,
            open_timeout=timeout,
            ping_interval=None,
            max_size=None,
            close_timeout=2,
        )
        try:
            first = await asyncio.wait_for(ws.recv(), timeout)
        except BaseException:
            await ws.close()
            raise
        msg = _decode(first)
        if msg[0] != "connected":
            await ws.close()
            raise ConnectError(f"expected connected, got {first!r:.200}")
        self.ws = ws
        self.connects += 1
        self._reader = asyncio.create_task(self._read(ws))
        return now_ms() - t0

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                if isinstance(frame, bytes):
                    frame = frame.decode()
                if frame.startswith('["poke"'):
                    t = now_ms()
                    body = _decode(frame)[1]
                    self.pokes += 1
                    changed = False
                    for poke in body["pokes"]:
                        self.cookie = poke["cookie"]
                        lmid = poke["lastMutationIDChanges"].get(self.client_id)
                        if lmid is not None and lmid > self.lmid:
                            self.lmid = lmid
                            changed = True
                    if self.on_poke is not None:
                        self.on_poke(self, body, t)
                    if changed:
                        self.confirmed_event.set()
                    self.got_poke.set()
                elif frame.startswith('["error"'):
                    self.errors.append(frame[:300])
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self.confirmed_event.set()  # wake waiters; they check the socket

    async def push(self, name: str, args: Any) -> int:
        """Send one mutation in its own push frame (as the 0.39 client does); returns its id
        (or 0 when the socket is closed)."""
        ws = self.ws
        mid = self.next_id
        ts = epoch_ms()
        frame = _encode(
            [
                "push",
                {
                    "clientGroupID": self.group_id,
                    "mutations": [
                        {
                            "id": mid,
                            "clientID": self.client_id,
                            "name": name,
                            "args": args,
                            "timestamp": ts,
                        }
                    ],
                    "pushVersion": 1,
                    "schemaVersion": "",
                    "timestamp": ts,
                    "requestID": f"{self.client_id}-{mid}",
                },
            ]
        )
        if ws is None:
            return 0
        try:
            await ws.send(frame, text=True)
        except websockets.ConnectionClosed:
            return 0
        self.next_id = mid + 1
        return mid

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(TimeoutError, websockets.WebSocketException, OSError):
                await asyncio.wait_for(self.ws.close(), 3)
        if self._reader is not None:
            self._reader.cancel()


async def _connect_all(
    clients: Sequence[ProtoClient], *, concurrency: int, timeout: float = 60.0
) -> tuple[list[float], int]:
    """Connect every client, ``concurrency`` at a time; returns (connect times ms, failures)."""
    sem = asyncio.Semaphore(concurrency)
    times: list[float] = []
    failures = 0

    async def one(c: ProtoClient) -> None:
        nonlocal failures
        async with sem:
            for attempt in range(3):
                try:
                    times.append(await c.connect(timeout))
                    return
                except (OSError, TimeoutError, websockets.WebSocketException, ConnectError):
                    if attempt == 2:
                        failures += 1
                    await asyncio.sleep(0.2 * (attempt + 1))

    await asyncio.gather(*(one(c) for c in clients))
    return times, failures


async def _close_all(clients: Sequence[ProtoClient]) -> None:
    sem = asyncio.Semaphore(500)

    async def one(c: ProtoClient) -> None:
        async with sem:
            await c.close()

    await asyncio.gather(*(one(c) for c in clients))


async def _quiet(clients: Sequence[ProtoClient], quiet_ms: float, limit_s: float) -> None:
    """Wait until no client got a poke for ``quiet_ms`` (at most ``limit_s``)."""
    end = time.monotonic() + limit_s
    last = sum(c.pokes for c in clients)
    since = now_ms()
    while time.monotonic() < end:
        await asyncio.sleep(0.05)
        total = sum(c.pokes for c in clients)
        if total != last:
            last, since = total, now_ms()
        elif now_ms() - since >= quiet_ms:
            return


# ------------------------------------------------------------------------------------ workloads


async def _room_clients(
    url: str,
    prefix: str,
    *,
    rooms: int,
    clients: int,
    concurrency: int,
    on_poke: Callable[[ProtoClient, dict[str, Any], float], None] | None = None,
) -> tuple[list[ProtoClient], list[ProtoClient], list[float], int]:
    """R fresh rooms x C clients, connected ``concurrency`` at a time, once their first pokes
    have settled: (all clients, those connected, connect times in ms, connect failures)."""
    base = ws_base(url)
    tag = unique(prefix)
    all_clients = [
        ProtoClient(base, f"{tag}-{r}", user_id=f"u{i}", on_poke=on_poke)
        for r in range(rooms)
        for i in range(clients)
    ]
    connect_ms, failures = await _connect_all(all_clients, concurrency=concurrency)
    live = [c for c in all_clients if c.ws is not None]
    await _quiet(live, 300, 10)
    return all_clients, live, connect_ms, failures


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
    all_clients, live, connect_ms, failures = await _room_clients(
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
    await _close_all(all_clients)
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
    _connect_ms, failures = await _connect_all(all_clients, concurrency=connect_concurrency)
    connect_all_ms = now_ms() - t_connect
    live = [c for c in all_clients if c.ws is not None]
    await _quiet(live, settle_s * 1000, 60)
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
    await _close_all(all_clients)
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
    per connection, from ``/proc/<server_pid>/status`` VmRSS (with its child processes)."""
    base = ws_base(url)
    tag = unique("idle")
    rss_before = rss_kib(server_pid) if server_pid else None
    all_clients = [
        ProtoClient(base, f"{tag}-{i // clients_per_room}", user_id=f"u{i}")
        for i in range(connections)
    ]
    t0 = now_ms()
    connect_ms, failures = await _connect_all(all_clients, concurrency=connect_concurrency)
    connect_all_ms = now_ms() - t0
    live = [c for c in all_clients if c.ws is not None]
    await _quiet(live, settle_s * 1000, 120)
    rss_after = rss_kib(server_pid) if server_pid else None
    open_now = sum(1 for c in live if not c.closed.is_set())
    await _close_all(all_clients)
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
    _, failures = await _connect_all(all_clients, concurrency=connect_concurrency)
    live = [c for c in all_clients if c.ws is not None]
    await _quiet(live, settle_s * 1000, 60)
    # one mutation each, so that they reconnect with a real lmid and cookie
    for c in live:
        await c.push("increment", {"key": "count", "delta": 1})
    await _quiet(live, settle_s * 1000, 60)

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
    await _close_all(all_clients)
    return result


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

    all_clients, live, connect_ms, failures = await _room_clients(
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
    await _quiet(live, 300, 5)  # the last confirmations
    errors = [e for c in all_clients for e in c.errors]
    await _close_all(all_clients)
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


# ------------------------------------------------------------------------------------ CLI

WORKLOADS = ("rooms", "fanout", "idle", "storm", "soak")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description="Protocol-level load against a Reflect server; prints one JSON object.",
    )
    p.add_argument("workload", choices=WORKLOADS)
    p.add_argument("--url", default="http://127.0.0.1:8080", help="the server's origin")
    p.add_argument("--rooms", type=int, default=100, help="rooms: number of rooms")
    p.add_argument("--clients", type=int, help="clients per room (rooms) or in all")
    p.add_argument("--mutations", type=int, default=50, help="rooms: mutations per client")
    p.add_argument("--window", type=int, default=8, help="rooms: unconfirmed mutations allowed")
    p.add_argument("--writers", type=int, default=25, help="fanout: clients that write")
    p.add_argument("--rate", type=float, default=5.0, help="fanout: mutations/s per writer")
    p.add_argument("--duration", type=float, default=10.0, help="fanout: seconds of writing")
    p.add_argument("--connections", type=int, default=10_000, help="idle: connections")
    p.add_argument("--per-room", type=int, default=10, help="idle, storm: clients per room")
    p.add_argument("--offered", type=float, default=5000.0, help="soak: mutations/s offered in all")
    p.add_argument("--seconds", type=float, default=600.0, help="soak: how long")
    p.add_argument("--window-seconds", type=float, default=30.0, help="soak: window length")
    p.add_argument("--server-pid", type=int, help="idle, soak: the server process, for its RSS")
    return p


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    if args.workload == "rooms":
        return await rooms_workload(
            args.url,
            rooms=args.rooms,
            clients=args.clients or 2,
            mutations=args.mutations,
            window=args.window,
        )
    if args.workload == "fanout":
        return await fanout_workload(
            args.url,
            clients=args.clients or 500,
            writers=args.writers,
            rate=args.rate,
            duration=args.duration,
        )
    if args.workload == "idle":
        return await idle_workload(
            args.url,
            connections=args.connections,
            clients_per_room=args.per_room,
            server_pid=args.server_pid,
        )
    if args.workload == "soak":
        return await soak_workload(
            args.url,
            rooms=args.rooms,
            clients=args.clients or 2,
            rate=args.offered,
            duration=args.seconds,
            window_s=args.window_seconds,
            server_pid=args.server_pid,
        )
    return await storm_workload(
        args.url, clients=args.clients or 5000, clients_per_room=args.per_room
    )


def run_async(coro: Awaitable[Any]) -> Any:
    """Run ``coro`` on uvloop when available (less client overhead), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    raise_fd_limit()
    print(json.dumps(run_async(_main(args))))


if __name__ == "__main__":
    main()

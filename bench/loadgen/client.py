"""One protocol-level client (``ProtoClient``) and helpers that handle many at once.

A client speaks the sync protocol as the 0.39 client does: it connects to
``/api/sync/v1/connect`` with the client's query parameters, sends each mutation in a push frame
of its own, and reads pokes on a reader task. A mutation counts as CONFIRMED when a poke to its
client carries ``lastMutationIDChanges[clientID] >= id`` (the server commits before it pokes).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class _PokeCookies(msgspec.Struct):
    """What a client without ``on_poke`` reads of a poke: the rest (its patch, presence) is
    skipped while parsing, so that the load generator's cost per poke stays small."""

    cookie: Any = None
    lastMutationIDChanges: dict[str, int] = {}


class _PokeCookiesBody(msgspec.Struct):
    pokes: list[_PokeCookies]


_decode_cookies = msgspec.json.Decoder(tuple[str, _PokeCookiesBody]).decode


def now_ms() -> float:
    return time.monotonic() * 1000


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000


def ws_base(url: str) -> str:
    """``http://host:port`` (or ws://) -> ``ws://host:port``."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


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
            while True:
                frame = await ws.recv(decode=False)  # bytes: msgspec parses them as they are
                if frame.startswith(b'["poke"'):
                    t = now_ms()
                    if self.on_poke is None:
                        changed = self._confirmed_by(_decode_cookies(frame)[1].pokes)
                    else:
                        body = _decode(frame)[1]
                        changed = self._confirmed_by(
                            [
                                _PokeCookies(p["cookie"], p["lastMutationIDChanges"])
                                for p in body["pokes"]
                            ]
                        )
                        self.on_poke(self, body, t)
                    self.pokes += 1
                    if changed:
                        self.confirmed_event.set()
                    self.got_poke.set()
                elif frame.startswith(b'["error"'):
                    self.errors.append(frame[:300].decode(errors="replace"))
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self.confirmed_event.set()  # wake waiters; they check the socket

    def _confirmed_by(self, pokes: list[_PokeCookies]) -> bool:
        """Follow the cookies of ``pokes``; whether they confirmed more of this client's."""
        changed = False
        for poke in pokes:
            self.cookie = poke.cookie
            lmid = poke.lastMutationIDChanges.get(self.client_id)
            if lmid is not None and lmid > self.lmid:
                self.lmid = lmid
                changed = True
        return changed

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


async def connect_all(
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


async def close_all(clients: Sequence[ProtoClient]) -> None:
    sem = asyncio.Semaphore(500)

    async def one(c: ProtoClient) -> None:
        async with sem:
            await c.close()

    await asyncio.gather(*(one(c) for c in clients))


async def quiet(clients: Sequence[ProtoClient], quiet_ms: float, limit_s: float) -> None:
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


async def room_clients(
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
    connect_ms, failures = await connect_all(all_clients, concurrency=concurrency)
    live = [c for c in all_clients if c.ws is not None]
    await quiet(live, 300, 10)
    return all_clients, live, connect_ms, failures

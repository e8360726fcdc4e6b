"""Drive a live reflectd server as the Reflect client does: over real sockets.

``serve(app)`` runs the ASGI app under uvicorn, in-process, on a free port, for one test.
``Harness.connect(...)`` opens a sync socket and returns a ``Client``, a small model of the
Reflect client: it checks every frame it receives against the client's strict schemas, checks
that each poke continues the cookie chain, and applies patches and presence so that tests can
assert on what a real client would see (``client.data``, ``client.presence``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from reflectd.app import App
from reflectd.engine.records import RoomSnapshot, RoomWrites
from reflectd.errors import StorageError
from reflectd.server.asgi import ReflectServer
from reflectd.server.settings import ServerSettings
from reflectd.server.uvicorn_ws import WebSocketProtocol
from reflectd.storage import MemoryStore
from reflectd.storage.base import Store

T = TypeVar("T")

#: how long a test waits for a frame it expects
FRAME_TIMEOUT_S = 3.0
#: how long "nothing arrives" is watched for
SILENCE_S = 0.2

JSON = Any


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------- the server


class Endpoint:
    """A reflectd listening on ``port`` (in this process or another); opens client sockets."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.clients: list[Client] = []

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.http_url, timeout=FRAME_TIMEOUT_S)

    def connect_url(self, params: Mapping[str, str] | None = None, *, version: str = "v1") -> str:
        query = urlencode(params or {}, quote_via=quote)
        return f"{self.ws_url}/api/sync/{version}/connect?{query}"

    async def open(
        self,
        params: Mapping[str, str] | None = None,
        *,
        version: str = "v1",
        protocol: str | None = None,
        client_id: str = "",
        client_group_id: str = "",
        **options: Any,
    ) -> Client:
        """Open a socket to the connect endpoint; no frame is read yet. ``options`` go to
        ``websockets.connect``."""
        ws = await connect(
            self.connect_url(params, version=version),
            subprotocols=[protocol] if protocol is not None else None,
            compression=None,
            open_timeout=FRAME_TIMEOUT_S,
            close_timeout=1,
            **options,
        )
        client = Client(ws, client_id=client_id, client_group_id=client_group_id)
        self.clients.append(client)
        return client

    async def connect(
        self,
        client_id: str = "c1",
        *,
        room_id: str = "r1",
        user_id: str = "u1",
        client_group_id: str | None = None,
        base_cookie: int | None = None,
        lmid: int = 0,
        protocol: str | None = None,
        first_poke: bool = True,
        options: dict[str, Any] | None = None,
        **extra: str,
    ) -> Client:
        """Connect as the Reflect client does; expect ``connected`` (and the first poke)."""
        group = client_group_id or f"g-{client_id}"
        params = connect_params(
            client_id=client_id,
            room_id=room_id,
            user_id=user_id,
            client_group_id=group,
            base_cookie=base_cookie,
            lmid=lmid,
            **extra,
        )
        client = await self.open(
            params, protocol=protocol, client_id=client_id, client_group_id=group, **(options or {})
        )
        client.cookie = base_cookie
        client.lmid = lmid
        client.next_mutation_id = lmid + 1
        await client.expect_connected(wsid=params["wsid"])
        if first_poke:
            await client.next_pokes()
        return client

    async def reconnect(self, client: Client, **kwargs: Any) -> Client:
        """Connect again as ``client`` would: its group, saved cookie and lmid."""
        await client.close()
        new = await self.connect(
            client.client_id,
            client_group_id=client.client_group_id,
            base_cookie=client.cookie,
            lmid=client.lmid,
            first_poke=False,
            **kwargs,
        )
        new.data = dict(client.data)
        await new.next_pokes()
        return new

    async def refused(
        self,
        params: Mapping[str, str] | None,
        kind: str,
        message: str | None = None,
        *,
        version: str = "v1",
        protocol: str | None = None,
    ) -> Client:
        """Open a socket and expect the connect to be refused: one error frame, then close."""
        client = await self.open(params, version=version, protocol=protocol)
        await client.expect_error(kind, message)
        await client.expect_closed()
        return client

    async def close_clients(self) -> None:
        for client in self.clients:
            await client.close()


class Harness(Endpoint):
    """A reflectd running in this event loop, with its storage at hand."""

    def __init__(self, server: ReflectServer, store: Store, port: int) -> None:
        super().__init__(port)
        self.server = server
        self.store = store

    async def snapshot(self, room_id: str = "r1") -> RoomSnapshot:
        return await self.store.load_room(room_id)

    async def values(self, room_id: str = "r1") -> dict[str, JSON]:
        """The room's live user values as stored."""
        snapshot = await self.snapshot(room_id)
        return {
            key: json.loads(entry.value)
            for key, entry in snapshot.entries.items()
            if not entry.deleted
        }


def connect_params(
    *,
    client_id: str = "c1",
    room_id: str = "r1",
    user_id: str = "u1",
    client_group_id: str = "g1",
    base_cookie: int | None = None,
    lmid: int = 0,
    **extra: str,
) -> dict[str, str]:
    """The query string the Reflect client sends to ``/api/sync/v1/connect``, as a dict."""
    params = {
        "clientID": client_id,
        "clientGroupID": client_group_id,
        "roomID": room_id,
        "userID": user_id,
        "baseCookie": "" if base_cookie is None else str(base_cookie),
        "ts": "5123.400000095367",
        "lmid": str(lmid),
        "wsid": f"ws-{client_id}",
    }
    params.update(extra)
    return params


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve(
    app: App,
    settings: ServerSettings | None = None,
    *,
    store: Store | None = None,
    ws: type[asyncio.Protocol] | str = WebSocketProtocol,
) -> AsyncIterator[Harness]:
    """Run reflectd for ``app`` under uvicorn, in this event loop, on a free port.

    ``ws``: uvicorn's WebSocket implementation; by default reflectd's own, as ``reflectd
    serve`` runs (any other one makes sockets send through ASGI messages)."""
    settings = settings or ServerSettings(db="memory://")
    store = store if store is not None else MemoryStore()
    server = ReflectServer(app, settings, store=store)
    sock = _free_socket()
    config = uvicorn.Config(
        server.asgi,
        log_config=None,
        lifespan="on",
        ws_per_message_deflate=False,
        ws_max_size=4 * settings.limits.max_message_bytes,
        timeout_graceful_shutdown=5,
        ws=ws,
    )
    uv = uvicorn.Server(config)
    # uvicorn's own serve() polls for exit every 100 ms and sleeps 100 ms at shutdown; tests
    # start and stop hundreds of servers, so drive its steps directly.
    config.load()
    uv.lifespan = config.lifespan_class(config)
    await uv.startup(sockets=[sock])
    harness = Harness(server=server, store=store, port=sock.getsockname()[1])
    try:
        yield harness
    finally:
        await harness.close_clients()
        await _shut_down(uv)
        sock.close()


async def _shut_down(uv: uvicorn.Server) -> None:
    """uvicorn's shutdown, without its fixed pauses: stop listening, close connections,
    wait for them, then the lifespan shutdown (which drains reflectd)."""
    for listener in uv.servers:
        listener.close()
    for connection in list(uv.server_state.connections):
        with contextlib.suppress(Exception):  # uvicorn raises for a connection mid-close
            connection.shutdown()
    deadline = time.monotonic() + 5
    while uv.server_state.connections or uv.server_state.tasks:
        assert time.monotonic() < deadline, "connections did not close within 5 s"
        await asyncio.sleep(0.005)
    for listener in uv.servers:
        await listener.wait_closed()
    await uv.lifespan.shutdown()


@contextlib.contextmanager
def in_thread(
    context: Callable[[], contextlib.AbstractAsyncContextManager[T]], *, timeout_s: float = 20
) -> Iterator[tuple[T, asyncio.AbstractEventLoop]]:
    """Enter the async ``context()`` (a server) on an event loop of its own thread, for
    synchronous tests; yields what it yields and that loop."""
    started = threading.Event()
    found: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        async with context() as value:
            found.update(value=value, loop=asyncio.get_running_loop(), stop=stop)
            started.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:
            found["error"] = e
            started.set()

    thread = threading.Thread(target=run, name="reflectd-test-server", daemon=True)
    thread.start()
    assert started.wait(timeout_s), "the server did not start"
    if "error" in found:
        raise found["error"]
    try:
        yield found["value"], found["loop"]
    finally:
        found["loop"].call_soon_threadsafe(found["stop"].set)
        thread.join(timeout_s)
    if "error" in found:
        raise found["error"]


def serve_in_thread(
    app: App, settings: ServerSettings | None = None
) -> contextlib.AbstractContextManager[tuple[Harness, asyncio.AbstractEventLoop]]:
    """``serve`` on an event loop of its own thread, for synchronous (hypothesis) tests."""
    return in_thread(lambda: serve(app, settings))


# ---------------------------------------------------------------------------- the client


class ProtocolViolation(AssertionError):
    """A downstream frame the real client's strict schemas would reject."""


def check_downstream(frame: JSON) -> None:
    """Validate ``frame`` as the 0.39 client does: its downstream message schemas (valita,
    strict: no unknown fields), pokes and error frames included."""
    if not isinstance(frame, list) or not frame or not isinstance(frame[0], str):
        raise ProtocolViolation(f"not a [type, body] frame: {frame!r}")
    kind = frame[0]
    if kind == "error":
        _require(len(frame) == 3 and all(isinstance(x, str) for x in frame), frame)
        return
    _require(len(frame) == 2 and isinstance(frame[1], dict), frame)
    body = frame[1]
    if kind == "pong":
        _require(body == {}, frame)
    elif kind == "connected":
        _fields(body, required={"wsid": str}, optional={"timestamp": int})
    elif kind == "pull":
        _fields(body, required={"cookie": int, "requestID": str, "lastMutationIDChanges": dict})
        _check_lmid_changes(body["lastMutationIDChanges"])
    elif kind == "poke":
        _fields(
            body,
            required={"requestID": str, "pokes": list},
            optional={"debugServerBufferMs": int},
        )
        for poke in body["pokes"]:
            _check_poke(poke)
    else:
        raise ProtocolViolation(f"unknown downstream type: {frame!r}")


def _check_poke(poke: JSON) -> None:
    _require(isinstance(poke, dict), poke)
    _require(
        "baseCookie" in poke and (poke["baseCookie"] is None or _is_int(poke["baseCookie"])), poke
    )
    timestamps = dict.fromkeys(
        (
            "timestamp",
            "debugOriginTimestamp",
            "debugServerReceivedTimestamp",
            "debugServerSentTimestamp",
        ),
        int,
    )
    rest = {k: v for k, v in poke.items() if k != "baseCookie"}
    _fields(
        rest,
        required={"cookie": int, "lastMutationIDChanges": dict, "patch": list},
        optional={"presence": list, **timestamps},
    )
    _check_lmid_changes(poke["lastMutationIDChanges"])
    for op in poke["patch"]:
        _check_op(op, presence=False)
    for op in poke.get("presence", []):
        _check_op(op, presence=True)


def _check_op(op: JSON, *, presence: bool) -> None:
    _require(isinstance(op, dict) and op.get("op") in ("put", "del", "clear"), op)
    if op["op"] == "put":
        _require(set(op) == {"op", "key", "value"} and isinstance(op["key"], str), op)
        _require(not presence or op["value"] == 1, op)
    elif op["op"] == "del":
        _require(set(op) == {"op", "key"} and isinstance(op["key"], str), op)
    else:
        _require(op == {"op": "clear"}, op)


def _check_lmid_changes(changes: JSON) -> None:
    _require(all(_is_int(v) for v in changes.values()), changes)


def _is_int(value: JSON) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fields(
    body: dict[str, JSON],
    *,
    required: Mapping[str, type],
    optional: Mapping[str, type] | None = None,
) -> None:
    optional = optional or {}
    unknown = set(body) - set(required) - set(optional)
    _require(not unknown, f"unknown fields {sorted(unknown)} in {body!r}")
    for name in required:
        _require(name in body, f"missing {name} in {body!r}")
    for name, kind in {**required, **optional}.items():
        if name in body:
            value = body[name]
            ok = _is_int(value) if kind is int else isinstance(value, kind)
            _require(ok, f"{name} is not {kind.__name__} (null is not allowed) in {body!r}")


def _require(condition: bool, what: object) -> None:
    if not condition:
        raise ProtocolViolation(str(what))


class Client:
    """One socket, seen as the Reflect client sees it."""

    def __init__(self, ws: ClientConnection, *, client_id: str, client_group_id: str) -> None:
        self.ws = ws
        self.client_id = client_id
        self.client_group_id = client_group_id
        self.cookie: int | None = None
        self.lmid = 0
        self.next_mutation_id = 1
        self.data: dict[str, JSON] = {}
        self.presence: set[str] = set()
        self.frames: list[JSON] = []

    # ------------------------------------------------------------------ receiving

    async def recv(self, timeout: float = FRAME_TIMEOUT_S) -> JSON:
        """The next frame, checked against the client's schemas."""
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), f"binary frame from the server: {raw!r}"
        frame = json.loads(raw)
        check_downstream(frame)
        self.frames.append(frame)
        return frame

    async def expect(self, kind: str, timeout: float = FRAME_TIMEOUT_S) -> JSON:
        frame = await self.recv(timeout)
        assert frame[0] == kind, f"expected {kind}, got {frame!r}"
        return frame[1] if kind != "error" else frame

    async def expect_connected(self, wsid: str | None = None) -> dict[str, JSON]:
        body: dict[str, JSON] = await self.expect("connected")
        if wsid is not None:
            assert body["wsid"] == wsid
        return body

    async def expect_error(self, kind: str, message: str | None = None) -> str:
        frame = await self.expect("error")
        assert frame[1] == kind, f"expected error {kind}, got {frame!r}"
        if message is not None:
            assert frame[2] == message, f"expected message {message!r}, got {frame[2]!r}"
        text: str = frame[2]
        return text

    async def expect_closed(self, timeout: float = FRAME_TIMEOUT_S) -> None:
        """The server closes the socket (a plain close) with no further frame."""
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed:
            pass
        else:
            raise AssertionError(f"expected the socket to close, got {raw!r}")
        assert self.ws.close_code in (1000, 1005), f"close code {self.ws.close_code}"
        assert not self.ws.close_reason

    async def expect_silence(self, seconds: float = SILENCE_S) -> None:
        """Nothing arrives for ``seconds`` (and the socket stays open)."""
        try:
            raw = await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected no frame, got {raw!r}")

    async def next_pokes(self, timeout: float = FRAME_TIMEOUT_S) -> list[dict[str, JSON]]:
        """The next poke message: its pokes continue the cookie chain; apply them."""
        body = await self.expect("poke", timeout)
        pokes: list[dict[str, JSON]] = body["pokes"]
        assert pokes, "a poke message with no pokes"
        for poke in pokes:
            self.apply(poke)
        return pokes

    def apply(self, poke: dict[str, JSON]) -> None:
        assert poke["baseCookie"] == self.cookie, (
            f"poke {poke['baseCookie']}->{poke['cookie']} does not continue from {self.cookie}"
        )
        self.cookie = poke["cookie"]
        for op in poke["patch"]:
            if op["op"] == "put":
                self.data[op["key"]] = op["value"]
            elif op["op"] == "del":
                self.data.pop(op["key"], None)
        for op in poke.get("presence", []):
            if op["op"] == "clear":
                self.presence.clear()
            elif op["op"] == "put":
                self.presence.add(op["key"])
            else:
                self.presence.discard(op["key"])
        if self.client_id in poke["lastMutationIDChanges"]:
            self.lmid = poke["lastMutationIDChanges"][self.client_id]

    async def sync_until(
        self, done: Callable[[Client], bool], timeout: float = FRAME_TIMEOUT_S
    ) -> None:
        """Apply pokes until ``done(self)``."""
        deadline = time.monotonic() + timeout
        while not done(self):
            await self.next_pokes(max(deadline - time.monotonic(), 0.01))

    # ------------------------------------------------------------------ sending

    async def send(self, frame: JSON) -> None:
        await self.ws.send(json.dumps(frame))

    def push_frame(
        self,
        name: str,
        args: JSON = None,
        *,
        mutation_id: int | None = None,
        client_id: str | None = None,
        client_group_id: str | None = None,
    ) -> list[JSON]:
        """A push of one mutation, as the 0.39 client sends it; ids count up by default."""
        if mutation_id is None:
            mutation_id = self.next_mutation_id
        self.next_mutation_id = max(self.next_mutation_id, mutation_id + 1)
        now = now_ms()
        mutation = {
            "id": mutation_id,
            "clientID": client_id or self.client_id,
            "name": name,
            "args": args,
            "timestamp": now,
        }
        return push_frame([mutation], client_group_id or self.client_group_id, timestamp=now)

    async def push(self, name: str, args: JSON = None, **kwargs: Any) -> int:
        """Push one mutation; return its id."""
        frame = self.push_frame(name, args, **kwargs)
        await self.send(frame)
        mutation_id: int = frame[1]["mutations"][0]["id"]
        return mutation_id

    async def mutate(self, name: str, args: JSON = None) -> list[dict[str, JSON]]:
        """Push one mutation and wait until a poke confirms it; return that poke message."""
        mutation_id = await self.push(name, args)
        while True:
            pokes = await self.next_pokes()
            if self.lmid >= mutation_id:
                return pokes

    async def ping(self) -> None:
        await self.send(["ping", {}])
        frame = await self.recv()
        assert frame == ["pong", {}], frame

    async def close(self) -> None:
        await self.ws.close()


def push_frame(
    mutations: list[dict[str, JSON]], client_group_id: str, *, timestamp: int | None = None
) -> list[JSON]:
    return [
        "push",
        {
            "clientGroupID": client_group_id,
            "mutations": mutations,
            "pushVersion": 1,
            "schemaVersion": "",
            "timestamp": now_ms() if timestamp is None else timestamp,
            "requestID": "req-1",
        },
    ]


# ---------------------------------------------------------------------------- a gated store


class GatedStore(MemoryStore):
    """A ``MemoryStore`` whose commits can be held (``pause``/``resume``) or made to fail.

    ``commit_entered`` is set when a commit starts; ``commits_done`` counts the commits that
    returned.
    """

    def __init__(self) -> None:
        super().__init__()
        self._open_gate = asyncio.Event()
        self._open_gate.set()
        self.commit_entered = asyncio.Event()
        self.commits_done = 0
        self.fail_next = 0

    def pause(self) -> None:
        self._open_gate.clear()
        self.commit_entered.clear()

    def resume(self) -> None:
        self._open_gate.set()

    async def commit(self, room_id: str, writes: RoomWrites) -> None:
        self.commit_entered.set()
        await self._open_gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise StorageError("injected: the disk is full")
        await super().commit(room_id, writes)
        self.commits_done += 1


async def wait_until(condition: Callable[[], Any], timeout: float = FRAME_TIMEOUT_S) -> None:
    """Poll ``condition`` (a function or coroutine function) until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)

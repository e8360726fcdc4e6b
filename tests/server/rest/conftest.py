"""Fixtures for the REST API tests: reflectd in-process, reached through httpx's ASGI transport
(``rest``) or served by uvicorn on a free port for WebSocket clients (``live``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from reflectd import App, WriteTransaction
from reflectd.server.asgi import ReflectServer
from reflectd.server.rest.keys import new_key_record
from reflectd.server.settings import Limits, ServerSettings
from reflectd.storage.base import Backend, Permission

from ..harness import in_thread

#: the key of the server's environment (REFLECTD_API_KEY): every permission
ENV_KEY = "env-key-with-every-permission"
APP_ID = "test-app"
SHAPES = ("apps", "original")
TIMEOUT_S = 3.0
#: the created time of every room these tests make (``fixed_created_time``)
CREATED_MS = 1_765_000_000_000


@pytest.fixture(autouse=True)
def fixed_created_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rooms made in these tests are created at ``CREATED_MS``, so answers compare whole."""
    monkeypatch.setattr("reflectd.server.rooms.now_ms", lambda: CREATED_MS)


def put(tx: WriteTransaction, args: dict[str, Any]) -> None:
    tx.set(args["key"], args["value"])


def fail(tx: WriteTransaction, args: Any) -> None:
    tx.set("written-before-the-throw", True)
    raise ValueError(f"refused {args}")


def increment(tx: WriteTransaction, key: str) -> None:
    tx.set(key, (tx.get(key) or 0) + 1)


def whoami(tx: WriteTransaction, args: None) -> None:
    """Records who ran it: the caller's clientID, auth, reason and mutation id."""
    tx.set(
        "caller",
        {
            "clientID": tx.client_id,
            "auth": dict(tx.auth or {}),
            "reason": tx.reason,
            "args": args,
        },
    )


def start_handler(tx: WriteTransaction, room_id: str) -> None:
    if room_id.startswith("boom"):
        raise RuntimeError(f"the start handler refused {room_id}")


def make_app() -> App:
    mutators = {"put": put, "fail": fail, "increment": increment, "whoami": whoami}
    return App(mutators=mutators, room_start_handler=start_handler, env={})


def settings(db: str = "memory://", *, max_failed_auth_per_minute: int = 0) -> ServerSettings:
    """These tests fail to authenticate on purpose, hundreds of times: no throttle, unless
    asked (test_throttle.py)."""
    return ServerSettings(
        db=db,
        api_key=ENV_KEY,
        app_id=APP_ID,
        limits=Limits(max_failed_auth_per_minute=max_failed_auth_per_minute),
    )


@dataclass
class Rest:
    """A reflectd server and an HTTP client for it."""

    server: ReflectServer
    http: httpx.AsyncClient

    @property
    def store(self) -> Backend:
        assert self.server.registry is not None
        return self.server.registry.store

    async def make_key(self, name: str, *permissions: Permission) -> str:
        value, record = new_key_record(name, tuple(permissions), 0)
        assert await self.store.create_api_key(record)
        return value

    async def call(
        self,
        shape: str,
        method: str,
        command: str,
        params: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        *,
        body: bytes | str | None = None,
        key: str | None = ENV_KEY,
        app_id: str = APP_ID,
        extra_headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """``command`` (e.g. ``rooms:create``) in a route shape: ``apps`` (/v1/apps/{app-id},
        Basic) or ``original`` (/api/v1, x-reflect-api-key)."""
        items = list(params.items()) if isinstance(params, Mapping) else list(params)
        query = urlencode(items, quote_via=quote)
        if shape == "apps":
            path = f"/v1/apps/{app_id}/{command}"
            headers = {} if key is None else {"Authorization": f"Basic {key}"}
        else:
            path = f"/api/v1/{command}"
            headers = {} if key is None else {"x-reflect-api-key": key}
        url = path + (f"?{query}" if query else "")
        headers.update(extra_headers or {})
        return await self.http.request(method, url, headers=headers, content=body)

    async def ok(self, shape: str, method: str, command: str, *args: Any, **kwargs: Any) -> Any:
        response = await self.call(shape, method, command, *args, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()["result"]

    async def create(self, room_id: str, shape: str = "apps") -> None:
        assert await self.ok(shape, "POST", "rooms:create", {"roomID": room_id}, body="{}") == {}


def envelope(status: int, message: str, resource: str = "request") -> dict[str, Any]:
    return {"error": {"code": status, "resource": resource, "message": message}}


def assert_error(
    response: httpx.Response, status: int, message: str, resource: str = "request"
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == envelope(status, message, resource)


def assert_unauthorized(response: httpx.Response, shape: str) -> None:
    if shape == "apps":
        assert_error(
            response, 401, "Missing or unknown API key: send Authorization: Basic <api-key>"
        )
    else:
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "Unauthorized"


@contextlib.asynccontextmanager
async def in_process(
    db: str = "memory://", *, max_failed_auth_per_minute: int = 0
) -> AsyncIterator[Rest]:
    server = ReflectServer(
        make_app(), settings(db, max_failed_auth_per_minute=max_failed_auth_per_minute)
    )
    await server.start()  # what the lifespan does; the ASGI transport does not run it
    transport = httpx.ASGITransport(app=server.asgi)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://reflectd.test", timeout=TIMEOUT_S
        ) as http:
            yield Rest(server, http)
    finally:
        await server.shutdown()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


#: parametrize a test or module with this to run it on both storage backends
BOTH_BACKENDS = pytest.mark.parametrize("db", ["memory", "sqlite"], indirect=True)


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The storage: memory, unless the test is parametrized with ``BOTH_BACKENDS``."""
    if getattr(request, "param", "memory") == "memory":
        return "memory://"
    return str(tmp_path / "reflectd.sqlite3")


@pytest.fixture
async def rest(db: str) -> AsyncIterator[Rest]:
    async with in_process(db) as r:
        yield r


# ------------------------------------------------------------------ live server, WebSockets


@dataclass
class Live(Rest):
    port: int

    def connect_url(self, room_id: str, client_id: str, user_id: str) -> str:
        params = {
            "clientID": client_id,
            "clientGroupID": f"g-{client_id}",
            "roomID": room_id,
            "userID": user_id,
            "baseCookie": "",
            "ts": "1",
            "lmid": "0",
            "wsid": f"ws-{client_id}",
        }
        return f"ws://127.0.0.1:{self.port}/api/sync/v1/connect?{urlencode(params)}"

    async def open(self, room_id: str, client_id: str, user_id: str = "u1") -> Socket:
        ws = await connect(
            self.connect_url(room_id, client_id, user_id),
            compression=None,
            open_timeout=TIMEOUT_S,
        )
        return Socket(ws)

    async def connect(self, room_id: str, client_id: str, user_id: str = "u1") -> Socket:
        """A client that got ``connected`` (and its first poke)."""
        sock = await self.open(room_id, client_id, user_id)
        frame = await sock.next()
        assert frame[0] == "connected", frame
        assert (await sock.next())[0] == "poke"
        return sock


class Socket:
    """A protocol-level sync client: reads frames and notices the close."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def next(self) -> Any:
        async with asyncio.timeout(TIMEOUT_S):
            return json.loads(await self.ws.recv())

    async def closed(self) -> list[Any]:
        """The frames received until the server closed the socket."""
        frames = []
        try:
            async with asyncio.timeout(TIMEOUT_S):
                while True:
                    frames.append(json.loads(await self.ws.recv()))
        except ConnectionClosed:
            return frames

    async def still_open(self) -> None:
        """The socket is alive: a ping gets its pong."""
        await self.ws.send(json.dumps(["ping", {}]))
        frame = await self.next()
        while frame[0] == "poke":
            frame = await self.next()
        assert frame == ["pong", {}]

    async def close(self) -> None:
        await self.ws.close()


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def served(
    db: str = "memory://", *, max_failed_auth_per_minute: int = 0
) -> AsyncIterator[Live]:
    """reflectd under uvicorn (its lifespan runs ``start``; it trusts X-Forwarded-For from
    127.0.0.1, as by default) on a free port, in this loop."""
    server = ReflectServer(
        make_app(), settings(db, max_failed_auth_per_minute=max_failed_auth_per_minute)
    )
    sock = _free_socket()
    config = uvicorn.Config(
        server.asgi, log_config=None, lifespan="on", ws_per_message_deflate=False
    )
    uv = uvicorn.Server(config)
    config.load()
    uv.lifespan = config.lifespan_class(config)
    await uv.startup(sockets=[sock])
    port = sock.getsockname()[1]
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT_S
        ) as http:
            yield Live(server, http, port)
    finally:
        for listener in uv.servers:
            listener.close()
        for connection in list(uv.server_state.connections):
            connection.shutdown()
        deadline = time.monotonic() + 5
        while uv.server_state.connections or uv.server_state.tasks:
            assert time.monotonic() < deadline, "connections did not close within 5 s"
            await asyncio.sleep(0.005)
        for listener in uv.servers:
            await listener.wait_closed()
        await uv.lifespan.shutdown()
        sock.close()


@pytest.fixture
async def live(db: str) -> AsyncIterator[Live]:
    async with served(db) as server:
        yield server


@contextlib.contextmanager
def served_in_thread(db: str = "memory://") -> Iterator[str]:
    """``served`` on an event loop of its own thread, for synchronous clients; yields the
    server's base URL."""
    with in_thread(lambda: served(db)) as (live, _):
        yield f"http://127.0.0.1:{live.port}"

"""Hostile clients against `reflectd serve`: forged clientIDs, many sockets from one source,
unusual roomIDs, and secrets that must never reach the server's log.

(Random frames and connect queries, limits, and the engine's random sequences are in
tests/server/test_hostile.py, tests/server/test_limits.py and tests/engine/test_hostile.py.)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from interop.harness import REPO_ROOT, ServerProcess, free_port
from server.conftest import make_app
from server.harness import FRAME_TIMEOUT_S, Client, Endpoint, Harness, connect_params, serve

pytestmark = pytest.mark.anyio

REFLECTD = Path(sys.executable).parent / "reflectd"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def reflectd_serve(
    tmp_path: Path, app: str, *extra: str, env: dict[str, str] | None = None
) -> ServerProcess:
    port = free_port()
    argv = [str(REFLECTD), "serve", app, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--db", str(tmp_path / "data" / "data.sqlite3"), *extra]
    server = ServerProcess(
        "reflectd",
        argv,
        port=port,
        cwd=REPO_ROOT,
        log_path=tmp_path / "server.log",
        env=env,
        data_dir=tmp_path / "data",
    )
    return server.start()


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """`reflectd serve` of the server tests' app (no auth handler), on SQLite."""
    server = reflectd_serve(tmp_path, "tests/reliability/apps.py:plain_app")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def server() -> AsyncIterator[Harness]:
    async with serve(make_app()) as harness:
        yield harness


# ------------------------------------------------------------------------- forged clientIDs


async def test_a_client_id_seen_in_presence_cannot_be_pushed_for_from_another_group(
    server: Harness,
) -> None:
    """As in the original: a mutation for a client of another group closes the pusher's socket
    with InvalidPush; nothing is stored, and the victim's mutation ids stay its own."""
    alice = await server.connect("alice-c", user_id="alice", client_group_id="g-alice-secret")
    await alice.mutate("put", {"key": "owner", "value": "alice"})
    mallory = await server.connect("mallory-c", user_id="mallory", client_group_id="g-mallory")
    await mallory.sync_until(lambda c: "alice-c" in c.presence)
    await mallory.push("put", {"key": "owner", "value": "mallory"}, client_id="alice-c")
    message = await mallory.expect_error("InvalidPush")
    assert "belongs to clientGroupID g-alice-secret" in message  # told only to the forger
    await mallory.expect_closed()
    snapshot = await server.snapshot()
    assert await server.values() == {"owner": "alice"}
    assert snapshot.clients["alice-c"].last_mutation_id == 1
    await alice.mutate("put", {"key": "owner", "value": "alice, again"})  # id 2 is still hers
    assert alice.lmid == 2


async def test_no_frame_tells_another_client_a_client_group_id(server: Harness) -> None:
    """The clientGroupID is what makes a push for a client acceptable: it is never sent to
    other clients (pokes to other groups carry no lastMutationIDChanges of this one)."""
    alice = await server.connect("alice-c", user_id="alice", client_group_id="g-alice-secret")
    bob = await server.connect("bob-c", user_id="bob", client_group_id="g-bob")
    for i in range(3):
        await alice.mutate("put", {"key": f"k{i}", "value": i})
    await bob.sync_until(lambda c: len(c.data) == 3)
    await bob.send(["pull", {"clientGroupID": "g-alice-secret", "cookie": None, "requestID": "x"}])
    pull = await bob.expect("pull")
    assert pull["lastMutationIDChanges"] == {"alice-c": 3}  # known: see the docstring below
    frames = json.dumps(bob.frames)
    assert "alice-c" in frames  # presence names clients
    assert "g-alice-secret" not in frames
    for poke in (p for f in bob.frames if f[0] == "poke" for p in f[1]["pokes"]):
        assert "alice-c" not in poke["lastMutationIDChanges"]


async def test_another_users_client_in_the_same_group_cannot_be_pushed_for(
    server: Harness,
) -> None:
    """Within one client group a push may carry mutations of the group's other clients
    (mutation recovery), but not of another user's client: the original accepts those (and
    runs them with the pusher's auth); reflectd refuses them with InvalidPush, stores nothing,
    and the victim's mutation ids stay its own. The forger cannot connect as the victim's
    client either (Unexpected userID)."""
    alice = await server.connect("alice-c", user_id="alice", client_group_id="g-shared")
    await alice.mutate("put", {"key": "k", "value": 1})
    mallory = await server.connect("mallory-c", user_id="mallory", client_group_id="g-shared")
    await mallory.push("saveAuth", None, client_id="alice-c", mutation_id=2)
    message = await mallory.expect_error("InvalidPush")
    assert message == (
        "Push for client mallory-c contains mutation for client alice-c which belongs to "
        "another user."
    )
    await mallory.expect_closed()
    assert await server.values() == {"k": 1}
    assert (await server.snapshot()).clients["alice-c"].last_mutation_id == 1
    await alice.mutate("put", {"key": "k", "value": 2})  # id 2 is still hers
    assert alice.lmid == 2
    assert (await server.values())["k"] == 2
    params = connect_params(
        client_id="alice-c", user_id="mallory", client_group_id="g-shared", room_id="r1"
    )
    await server.refused(params, "InvalidConnectionRequest", "Unexpected userID")


# ------------------------------------------------------------------------- many sockets


async def _ws_client(endpoint: Endpoint, room: str, i: int) -> Client:
    return await endpoint.connect(f"many-{i}", room_id=room, user_id=f"u{i}")


async def _measure(endpoint: Endpoint, tag: str) -> dict[str, float]:
    """Time a GET /, a new client's connect (to its first poke), a ping and a mutation."""
    times: dict[str, float] = {}
    t0 = time.monotonic()
    async with endpoint.http() as http:
        assert (await http.get("/")).status_code == 200
    times["GET /"] = time.monotonic() - t0
    t0 = time.monotonic()
    probe = await endpoint.connect(f"probe-{tag}", room_id=f"probe-{tag}")
    times["connect"] = time.monotonic() - t0
    t0 = time.monotonic()
    await probe.ping()
    times["ping"] = time.monotonic() - t0
    t0 = time.monotonic()
    await probe.mutate("put", {"key": "k", "value": tag})
    times["mutation"] = time.monotonic() - t0
    await probe.close()
    return times


async def test_500_sockets_from_one_process_leave_the_server_responsive(
    serve_process: ServerProcess, record_property: Any
) -> None:
    """300 synced clients (30 rooms of 10), 100 idle TCP connections, 100 half-sent HTTP
    requests: a new client still connects, gets pongs and confirmations within a second or
    two, and everything works again once they are gone."""
    endpoint = Endpoint(serve_process.port)
    before = await _measure(endpoint, "before")
    raw: list[asyncio.StreamWriter] = []
    for i in range(200):
        _, writer = await asyncio.open_connection("127.0.0.1", serve_process.port)
        if i % 2:
            writer.write(b"GET /api/sync/v1/connect?roomID=slow HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
        raw.append(writer)
    gate = asyncio.Semaphore(20)

    async def one(i: int) -> Client:
        async with gate:
            return await _ws_client(endpoint, f"many-{i % 30}", i)

    clients = await asyncio.gather(*(one(i) for i in range(300)))
    during = await _measure(endpoint, "during")
    # the crowd is served too
    await clients[0].mutate("put", {"key": "crowd", "value": 1})
    await clients[30].sync_until(lambda c: c.data.get("crowd") == 1, timeout=10)
    for client in clients:
        await client.close()
    for writer in raw:
        writer.close()
    after = await _measure(endpoint, "after")
    record_property("latency", {"before": before, "during": during, "after": after})
    print(f"latencies (s): before {before}\nduring {during}\nafter {after}")
    for name, seconds in during.items():
        assert seconds < 3.0, f"{name} took {seconds:.2f} s with 500 sockets open"
    assert serve_process.proc is not None and serve_process.proc.poll() is None


# ------------------------------------------------------------------------- unusual roomIDs

INVALID_ROOM_IDS = {
    # raw query value -> the roomID the server reports
    "a%252Fb": "a%2Fb",
    "raum-%C3%BC": "raum-ü",
    "%F0%9F%98%80": "😀",
    "a%00b": "a\x00b",
    "..%2F..%2Fetc%2Fpasswd%00": "../../etc/passwd\x00",
    "a%20b": "a b",
    "a.b": "a.b",
    "%E2%80%AEevil": "\u202eevil",
    "a%0D%0Ab": "a\r\nb",
    "a+b": "a b",
}


def _connect_url(endpoint: Endpoint, raw_room: str, client_id: str) -> str:
    query = urllib.parse.urlencode(
        connect_params(client_id=client_id, room_id="ROOM", client_group_id=f"g-{client_id}")
    )
    return f"{endpoint.ws_url}/api/sync/v1/connect?{query.replace('ROOM', raw_room)}"


async def _first_frame(url: str) -> Any:
    async with connect(url, open_timeout=FRAME_TIMEOUT_S) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))
        if frame[0] == "error":
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)
        return frame


def _contents(server: ServerProcess, room_id: str, key: str) -> tuple[int, Any]:
    query = urllib.parse.urlencode({"roomID": room_id})
    request = urllib.request.Request(
        f"{server.url}/v1/apps/default/rooms/contents?{query}",
        headers={"Authorization": f"Basic {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def test_unusual_room_ids_get_the_documented_error_and_other_rooms_are_unaffected(
    tmp_path: Path,
) -> None:
    key = "rest-key-for-room-ids"
    server = reflectd_serve(
        tmp_path, "tests/reliability/apps.py:plain_app", env={"REFLECTD_API_KEY": key}
    )
    try:
        endpoint = Endpoint(server.port)
        steady = await endpoint.connect("steady", room_id="steady")
        await steady.mutate("put", {"key": "n", "value": 0})

        for i, (raw, decoded) in enumerate(INVALID_ROOM_IDS.items()):
            frame = await _first_frame(_connect_url(endpoint, raw, f"bad{i}"))
            assert frame == [
                "error",
                "InvalidConnectionRequest",
                f'Invalid roomID "{decoded}" (must match /^[A-Za-z0-9_/-]+$/)',
            ], raw
        frame = await _first_frame(_connect_url(endpoint, "", "empty"))
        assert frame == ["error", "InvalidConnectionRequest", "roomID parameter required"]

        # %2F decodes to "/", which roomIDs may hold: it is the room "a/b"
        frame = await _first_frame(_connect_url(endpoint, "a%2Fb", "slash"))
        assert frame[0] == "connected"
        # long roomIDs are valid up to the 8 KiB request line...
        long_id = "L" * 7000
        frame = await _first_frame(_connect_url(endpoint, long_id, "long"))
        assert frame[0] == "connected"
        # ...beyond, the upgrade is refused over HTTP (414), at once
        started = time.monotonic()
        with pytest.raises(InvalidStatus) as refused:
            await _first_frame(_connect_url(endpoint, "L" * 9000, "too-long"))
        assert refused.value.response.status_code == 414
        assert time.monotonic() - started < 2

        await steady.mutate("put", {"key": "n", "value": 1})
        await steady.ping()
        assert len(endpoint.clients) == 1 and steady.ws.close_code is None

        # REST: the same roomIDs, encoded in the query
        assert _contents(server, "steady", key) == (200, {"result": {"contents": {"n": 1}}})
        assert _contents(server, "a/b", key) == (200, {"result": {"contents": {}}})
        assert _contents(server, long_id, key)[0] == 200
        for decoded in INVALID_ROOM_IDS.values():
            status, body = _contents(server, decoded, key)
            if "\x00" in decoded:  # a NUL is refused before any lookup, on every backend
                assert status == 400, (decoded, body)
            else:
                assert (status, "not found") == (404, "not found" if "not found" in body else body)
    finally:
        server.stop()


# ------------------------------------------------------------------------- secrets in the log

TOKEN_GOOD = "tok-GOOD-7f3a9c1e5b2d4e6f8a0b"
TOKEN_BAD = "tok-BAD-2c4e6a8b0d1f3e5a7c9b"
TOKEN_RAISE = "tok-RAISE-9d8c7b6a5f4e3d2c1b0a"
TOKEN_MALFORMED = "tok-MALFORMED-5e4d3c2b1a09%ZZ"
API_KEY = "env-KEY-0a1b2c3d4e5f6a7b8c9d"
WRONG_KEY = "wrong-KEY-9f8e7d6c5b4a39281706"
SECRETS = (TOKEN_GOOD, TOKEN_BAD, TOKEN_RAISE, TOKEN_MALFORMED, API_KEY, WRONG_KEY)


def _request(server: ServerProcess, method: str, path: str, **headers: str) -> int:
    request = urllib.request.Request(server.url + path, method=method, headers=headers)
    if method == "POST":
        request.data = b"{}"
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_api_key_or_auth_token_ever_reaches_the_log(
    tmp_path: Path, log_format: str
) -> None:
    server = reflectd_serve(
        tmp_path,
        "tests/reliability/apps.py:secret_app",
        "--log-level",
        "debug",
        "--log-format",
        log_format,
        env={"REFLECTD_API_KEY": API_KEY},
    )
    try:
        endpoint = Endpoint(server.port)
        good = await endpoint.connect("good", user_id="alice", protocol=TOKEN_GOOD)
        await good.mutate("put", {"key": "k", "value": 1})
        await good.push("fail", None)  # a mutator error, logged with its traceback
        await good.send(["push", {"nonsense": TOKEN_GOOD}])  # an invalid message
        await good.expect_error("InvalidMessage")
        params = connect_params(client_id="x", user_id="alice")
        await endpoint.refused(params, "Unauthorized", "no authData", protocol=TOKEN_BAD)
        await endpoint.refused(
            params,
            "Unauthorized",
            "authHandler rejected: PermissionError: this token is not welcome",
            protocol=TOKEN_RAISE,
        )
        await endpoint.refused(params, "InvalidConnectionRequest", protocol=TOKEN_MALFORMED)
        await endpoint.refused(
            connect_params(client_id="y", user_id="mallory"),
            "Unauthorized",
            protocol=TOKEN_GOOD,  # alice's token for another userID
        )
        with pytest.raises(InvalidStatus):  # a token too long for a header line: 431
            await endpoint.open(params, protocol=TOKEN_GOOD * 400)

        beacon = "/api/sync/v1/close?roomID=r1&userID=alice&clientID=good"
        for token in (TOKEN_GOOD, TOKEN_BAD, TOKEN_RAISE):
            _request(server, "POST", beacon, Authorization=f"Bearer {token}")
        rooms = "/v1/apps/default/rooms"
        assert _request(server, "GET", rooms, Authorization=f"Basic {API_KEY}") == 200
        assert _request(server, "GET", rooms, Authorization=f"Basic {WRONG_KEY}") == 401
        assert _request(server, "GET", rooms, Authorization=f"Bearer {API_KEY}") == 401
        assert _request(server, "GET", "/api/v1/rooms", **{"x-reflect-api-key": API_KEY}) == 200
        assert _request(server, "GET", "/api/v1/rooms", **{"x-reflect-api-key": WRONG_KEY}) == 401
        assert _request(server, "POST", rooms + "/nope", Authorization=f"Basic {API_KEY}") >= 400
        tail = "/v1/apps/default/logs:tail"
        good_key = {"Authorization": f"Basic {API_KEY}"}
        assert _request(server, "GET", tail, Authorization=f"Basic {WRONG_KEY}") == 401
        assert _request(server, "GET", tail + "?level=" + API_KEY, Authorization="Basic x") == 401
        assert _request(server, "GET", tail + "?level=" + TOKEN_GOOD, **good_key) == 400
        await endpoint.close_clients()
    finally:
        server.stop()  # SIGTERM: the shutdown lines are in the log too
    log = server.log_path.read_text()
    assert "connection opened" in log and "connect refused" in log  # the log is there
    assert "this mutator always fails" in log
    assert "REST call" in log and "REFLECTD_API_KEY" in log  # access lines, with the key's name
    leaks = [
        f"{secret!r} at line {n}: {line[:200]}"
        for n, line in enumerate(log.splitlines(), 1)
        for secret in SECRETS
        for form in {secret, urllib.parse.quote(secret, safe="")}
        if form in line
    ]
    assert not leaks, "secrets in the server log:\n" + "\n".join(leaks)

"""Rooms bigger than the send buffer: joined whole by the real client, sent as it reads.

The server's send buffer limit is lowered to 1 MiB; the room holds several times that. The
room is written straight into the server's SQLite file before the server starts, so that the
first client to join gets it from a cold start.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reflectd.engine.records import Entry, RoomRecord, RoomWrites
from reflectd.storage.sqlite import SQLiteStore

from .harness import NodeClients, ServerProcess, free_port, server_command

pytestmark = pytest.mark.interop

BUFFER_BYTES = 1024 * 1024
#: 8 MB: several times the send buffer, and more than a loopback socket's kernel buffers hold
KEYS = 2000
VALUE_BYTES = 4000
BIG_ROOM = "big"


def _value(i: int) -> str:
    return f"{i:06d}" + "x" * (VALUE_BYTES - 6)


async def _write_room(path: Path, room_id: str) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.create_room(RoomRecord(room_id))
        entries = {
            f"k/{i:06d}": Entry(version=1, deleted=False, value=f'"{_value(i)}"'.encode())
            for i in range(KEYS)
        }
        await store.commit(room_id, RoomWrites(version=1, entries=entries))
    finally:
        await store.close()


@pytest.fixture
def big_server(target: str, node_ready: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """reflectd with a 1 MiB send buffer and a 1 s stall limit, its file holding ``BIG_ROOM``."""
    if target != "reflectd":
        pytest.skip("the send buffer limit is reflectd's")
    port = free_port()
    data_dir = tmp_path / "data"
    argv, cwd, hint = server_command(target, port=port, data_dir=data_dir, auth=False)
    asyncio.run(_write_room(data_dir / "data.sqlite3", BIG_ROOM))
    proc = ServerProcess(
        target,
        argv,
        port=port,
        cwd=cwd,
        log_path=tmp_path / "server.log",
        hint=hint,
        data_dir=data_dir,
        env={
            "REFLECTD_MAX_SEND_BUFFER_BYTES": str(BUFFER_BYTES),
            "REFLECTD_MAX_SEND_STALL_MS": "1000",
        },
    )
    try:
        yield proc.start()
    finally:
        proc.stop()


def _assert_whole_room(clients: NodeClients, name: str) -> None:
    clients.wait_for(name, f"k/{KEYS - 1:06d}", _value(KEYS - 1), timeout=30)
    held = clients.scan(name, "k/")
    assert len(held) == KEYS
    assert all(held[f"k/{i:06d}"] == _value(i) for i in range(KEYS))


def _stalled_client(url: str, room_id: str) -> socket.socket:
    """A raw WebSocket client that joins ``room_id`` from scratch and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    query = (
        f"clientID=stalled&clientGroupID=stalled-group&roomID={room_id}&userID=stalled"
        "&baseCookie=&ts=1&lmid=0&wsid=w"
    )
    sock.sendall(
        (
            f"GET /api/sync/v1/connect?{query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


def test_a_room_several_times_the_send_buffer_is_joined_whole_by_two_clients(
    big_server: ServerProcess, clients: NodeClients, record_timing
) -> None:
    started = time.monotonic()
    for name in ("a", "b"):  # at once: they share the encoded pieces
        clients.open(name, server=big_server.url, room_id=BIG_ROOM, user_id=name, wait_online=False)
    for name in ("a", "b"):
        _assert_whole_room(clients, name)
    joined = time.monotonic() - started
    # the room goes on: a write reaches the other client
    clients.mutate("a", "setKey", {"key": "after", "value": 1})
    clients.wait_for("b", "after", 1)
    for name in ("a", "b"):
        wire = clients.state(name, levels=())["wire"]
        assert len(wire["connects"]) == 1, "joined at the first attempt"
    clients.assert_healthy()
    assert "dropping client" not in big_server.log_path.read_text()
    record_timing(f"a {KEYS * VALUE_BYTES / 1e6:.0f} MB room joined by 2 clients in {joined:.1f} s")


def test_a_client_that_stops_reading_a_big_room_is_dropped_and_others_are_not_delayed(
    big_server: ServerProcess, clients: NodeClients, record_timing
) -> None:
    clients.open("small", server=big_server.url, room_id="small", user_id="small")
    clients.open("watcher", server=big_server.url, room_id="small", user_id="watcher")
    stalled = _stalled_client(big_server.url, BIG_ROOM)
    try:
        # a real client joins the big room while the stalled one holds its stream
        clients.open("joiner", server=big_server.url, room_id=BIG_ROOM, user_id="j", timeout=30)
        worst = 0.0
        for i in range(20):
            started = time.monotonic()
            clients.mutate("small", "setKey", {"key": "n", "value": i})
            clients.wait_for("watcher", "n", i)
            worst = max(worst, time.monotonic() - started)
        _assert_whole_room(clients, "joiner")
        deadline = time.monotonic() + 15
        while "dropping client stalled" not in big_server.log_path.read_text():
            assert time.monotonic() < deadline, "the stalled client was not dropped"
            time.sleep(0.1)
    finally:
        stalled.close()
    assert worst < 3.0, f"a small room's write took {worst:.2f} s to arrive"
    clients.assert_healthy()
    record_timing(f"small room's worst write->arrival while a big room streams: {worst:.3f} s")


def test_a_small_room_keeps_its_latency_while_a_big_room_loads_cold(
    big_server: ServerProcess, clients: NodeClients, record_timing
) -> None:
    clients.open("small", server=big_server.url, room_id="small", user_id="small")
    clients.open("watcher", server=big_server.url, room_id="small", user_id="watcher")
    joining = [
        clients.submit(
            "open",
            name=f"big{i}",
            server=big_server.url,
            roomID=BIG_ROOM,
            userID=f"big{i}",
            auth=None,
            waitOnline=True,
            timeout=30_000,
        )
        for i in range(3)
    ]
    worst = 0.0
    i = 0
    while not all(f.done() for f in joining) or i < 10:
        started = time.monotonic()
        clients.mutate("small", "setKey", {"key": "n", "value": i})
        clients.wait_for("watcher", "n", i)
        worst = max(worst, time.monotonic() - started)
        i += 1
    NodeClients.gather(joining, timeout=40)
    for n in range(3):
        _assert_whole_room(clients, f"big{n}")
    assert worst < 3.0, f"a small room's write took {worst:.2f} s to arrive"
    record_timing(f"small room's worst write->arrival while a big room loads: {worst:.3f} s")

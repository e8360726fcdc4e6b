"""A ``ClientSocket`` sending a big poke message in pieces: frames in order, written as the
connection drains, frames sent meanwhile after it, and a client that stops reading dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reflectd.engine.records import Entry
from reflectd.engine.streamed import PatchPieces, PokeStream
from reflectd.server.sockets import ClientSocket
from reflectd.server.uvicorn_ws import FRAMES_EXTENSION, fragment, text_frame

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeSink:
    """A connection whose buffer drains only when the test says so."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.buffered = 0
        self.writable = asyncio.Event()
        self.writable.set()
        self.aborted = False

    def write_frame(self, frame: bytes) -> int | None:
        if self.aborted:
            return None
        self.frames.append(frame)
        self.buffered += len(frame)
        if self.buffered > 64 * 1024:
            self.writable.clear()
        return self.buffered

    def drain(self) -> None:
        self.buffered = 0
        self.writable.set()

    async def drained(self) -> None:
        await self.writable.wait()

    def abort(self) -> None:
        self.aborted = True


class FakeWebSocket:
    def __init__(self, sink: FakeSink) -> None:
        self.scope: dict[str, Any] = {"extensions": {FRAMES_EXTENSION: {"sink": sink}}}


def _stream(keys: int = 3000) -> PokeStream:
    entry = Entry(version=1, deleted=False, value=b'"' + b"v" * 500 + b'"')
    items = [(f"k/{i:05d}", entry) for i in range(keys)]
    pieces = PatchPieces.of(items, base_cookie=None, cookie=1)
    return PokeStream(head=b'["poke",{"pokes":[{"patch":[', pieces=pieces, tail=b"]}]}]")


def _socket(sink: FakeSink, **kwargs: Any) -> ClientSocket:
    options = {"max_buffer_bytes": 16 * 1024 * 1024, **kwargs}
    return ClientSocket(FakeWebSocket(sink), connection_id=1, **options)  # type: ignore[arg-type]


async def test_a_stream_is_one_message_in_frames_and_what_is_sent_meanwhile_follows_it() -> None:
    sink = FakeSink()
    socket = _socket(sink)
    stream = _stream()
    socket.send_stream(stream)
    socket.send(b'["pong",{}]')
    while socket.writer is not None and not socket.writer.done():
        await asyncio.sleep(0)
        sink.drain()
    chunks = list(stream.chunks())
    expected = [
        fragment(chunk, first=i == 0, final=i == len(chunks) - 1) for i, chunk in enumerate(chunks)
    ]
    assert sink.frames == [*expected, text_frame(b'["pong",{}]')]
    assert len(expected) > 4


async def test_a_stream_waits_for_the_connection_to_drain() -> None:
    sink = FakeSink()
    socket = _socket(sink)
    socket.send_stream(_stream())
    for _ in range(20):
        await asyncio.sleep(0)
    written = len(sink.frames)
    assert 1 < written < 8, "it stops once about 1 MiB waits in the connection"
    sink.drain()
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(sink.frames) > written


async def test_a_client_that_stops_reading_mid_stream_is_dropped_after_the_stall_limit() -> None:
    sink = FakeSink()
    socket = _socket(sink, max_stall_ms=50)
    socket.send_stream(_stream())
    await asyncio.sleep(0.2)
    assert sink.aborted and socket.closing


async def test_frames_piling_up_behind_a_stalled_stream_drop_the_client() -> None:
    sink = FakeSink()
    socket = _socket(sink, max_buffer_bytes=100_000)
    socket.send_stream(_stream())
    await asyncio.sleep(0)
    for _ in range(20):
        socket.send(b"x" * 10_000)
    assert sink.aborted and socket.closing

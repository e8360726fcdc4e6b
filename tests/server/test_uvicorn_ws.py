"""reflectd's uvicorn WebSocket protocol: frames written directly, the light receive queue,
the limits on floods of tiny frames."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from reflectd.server.uvicorn_ws import (
    MAX_CONTROL_FRAMES_PER_S,
    MAX_FRAGMENTS_PER_MESSAGE,
    _ReceiveQueue,
    text_frame,
)

from .harness import FRAME_TIMEOUT_S, Client, Harness, connect_params

OP_CONT, OP_TEXT, OP_PING = 0x0, 0x1, 0x9


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 1_000_000])
def test_text_frame_is_what_websockets_sends_at_each_length_boundary(size: int) -> None:
    payload = b"x" * size
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


@given(st.text())
def test_text_frame_of_any_text_is_what_websockets_sends(text: str) -> None:
    payload = text.encode()
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


def test_a_payload_sent_to_many_sockets_is_framed_once() -> None:
    payload = b'["poke",{}]' * 3
    assert text_frame(payload) is text_frame(payload)


@pytest.mark.anyio
async def test_the_receive_queue_hands_out_messages_in_order_and_wakes_its_reader() -> None:
    queue = _ReceiveQueue()
    queue.put_nowait(1)
    assert not queue.empty()
    assert await queue.get() == 1
    assert queue.empty()
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not reader.done()
    queue.put_nowait(2)
    queue.put_nowait(3)
    assert await reader == 2
    assert await queue.get() == 3


@pytest.mark.anyio
async def test_a_cancelled_reader_leaves_the_receive_queue_usable() -> None:
    queue = _ReceiveQueue()
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    queue.put_nowait("after")
    assert await queue.get() == "after"


# ------------------------------------------------------------------- floods of tiny frames

#: how long a bystander may wait for a pong while another connection floods (without the
#: limits, here: 0.67 s for a million fragments, 0.47 s for a million pings; against `reflectd
#: serve` under uvloop 2.3 s and 0.7 s)
BYSTANDER_PONG_S = 0.25


def _masked_frame(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    """A client's frame (RFC 6455 5.2) with a zero mask, payload under 126 bytes."""
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def _raw_socket(server: Harness, room_id: str) -> asyncio.StreamWriter:
    """A sync socket opened by hand, to send frames no WebSocket library would."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    query = urlencode(connect_params(client_id="flooder", room_id=room_id))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /api/sync/v1/connect?{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return writer


async def _send_flood(writer: asyncio.StreamWriter, first: bytes, frame: bytes, count: int) -> None:
    """``first``, then ``frame`` ``count`` times, as fast as the server takes them (it may
    close the connection meanwhile)."""
    batch = frame * 10_000
    with contextlib.suppress(ConnectionError):
        writer.write(first)
        for _ in range(count // 10_000):
            writer.write(batch)
            await writer.drain()
    writer.close()


async def _worst_pong_s(bystander: Client, flood: asyncio.Task[None]) -> float:
    """The longest a bystander waits for a pong while ``flood`` runs (and shortly after)."""
    worst = 0.0
    deadline = None
    while deadline is None or time.monotonic() < deadline:
        started = time.monotonic()
        await bystander.ping()
        worst = max(worst, time.monotonic() - started)
        if flood.done() and deadline is None:
            deadline = time.monotonic() + 0.3
        await asyncio.sleep(0.01)
    await flood
    return worst


@pytest.mark.anyio
async def test_a_million_one_byte_fragments_close_the_flooder_with_1009_and_spare_a_bystander(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    bystander = await server.connect("bystander", room_id="quiet")
    writer = await _raw_socket(server, "noisy")
    flood = asyncio.create_task(
        _send_flood(
            writer,
            _masked_frame(OP_TEXT, b"[", fin=False),
            _masked_frame(OP_CONT, b" ", fin=False),
            1_000_000,
        )
    )
    worst = await _worst_pong_s(bystander, flood)
    print(f"bystander's worst pong during a 1,000,000-fragment flood: {worst * 1000:.1f} ms")
    assert worst < BYSTANDER_PONG_S
    assert f"(1009): more than {MAX_FRAGMENTS_PER_MESSAGE} frames in one message" in caplog.text
    await bystander.mutate("put", {"key": "k", "value": 1})


@pytest.mark.anyio
async def test_a_million_pings_close_the_flooder_with_1008_and_spare_a_bystander(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    bystander = await server.connect("bystander", room_id="quiet")
    writer = await _raw_socket(server, "noisy")
    ping = _masked_frame(OP_PING, b"", fin=True)
    flood = asyncio.create_task(_send_flood(writer, ping, ping, 1_000_000))
    worst = await _worst_pong_s(bystander, flood)
    print(f"bystander's worst pong during a 1,000,000-ping flood: {worst * 1000:.1f} ms")
    assert worst < BYSTANDER_PONG_S
    assert f"(1008): more than {MAX_CONTROL_FRAMES_PER_S} control frames" in caplog.text
    await bystander.mutate("put", {"key": "k", "value": 1})


@pytest.mark.anyio
async def test_a_message_in_as_many_fragments_as_allowed_is_received_whole(
    server: Harness,
) -> None:
    client = await server.connect("c1")
    # websockets sends each piece as a frame, then an empty final one
    pieces = ['["ping",{}', *[" "] * (MAX_FRAGMENTS_PER_MESSAGE - 3), "]"]
    await client.ws.send(pieces)
    assert await client.recv() == ["pong", {}]
    await client.mutate("put", {"key": "k", "value": 1})


@pytest.mark.anyio
async def test_a_message_in_one_fragment_too_many_closes_the_socket_with_1009(
    server: Harness,
) -> None:
    client = await server.connect("c1")
    await client.ws.send(['["ping",{}', *[" "] * (MAX_FRAGMENTS_PER_MESSAGE - 2), "]"])
    with pytest.raises(ConnectionClosed):
        await client.recv()
    assert client.ws.close_code == 1009


@pytest.mark.anyio
async def test_pings_up_to_the_limit_in_a_second_are_answered_and_one_more_closes_with_1008(
    server: Harness,
) -> None:
    client = await server.connect("c1")
    pongs = [await client.ws.ping() for _ in range(MAX_CONTROL_FRAMES_PER_S)]
    await asyncio.wait_for(asyncio.gather(*pongs), FRAME_TIMEOUT_S)
    await client.ping()  # the socket is still open
    await client.ws.ping()
    with pytest.raises(ConnectionClosed):
        await client.recv()
    assert client.ws.close_code == 1008

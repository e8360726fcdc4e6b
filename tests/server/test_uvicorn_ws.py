"""reflectd's uvicorn WebSocket protocol: frames written directly, the light receive queue."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from reflectd.server.uvicorn_ws import _ReceiveQueue, text_frame


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

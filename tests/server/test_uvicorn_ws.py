"""reflectd's uvicorn WebSocket protocol: frames written directly (uvicorn_ws.text_frame)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from reflectd.server.uvicorn_ws import text_frame


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

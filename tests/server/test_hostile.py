"""Hostile input: random frames on a live connection and random connect query strings never
crash the server; invalid frames change nothing stored and leave the socket open."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from reflectd.engine.records import RoomSnapshot
from reflectd.errors import InvalidMessage
from reflectd.protocol.codec import parse_upstream

from .conftest import make_app
from .harness import FRAME_TIMEOUT_S, Harness, check_downstream, connect_params, serve_in_thread

Live = tuple[Harness, asyncio.AbstractEventLoop]

HOSTILE = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_rooms = itertools.count()


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    """One server for the module, on its own thread (hypothesis tests are synchronous)."""
    with serve_in_thread(make_app()) as (harness, loop):
        yield harness, loop


def snapshot(live: Live, room_id: str) -> RoomSnapshot:
    harness, loop = live
    return asyncio.run_coroutine_threadsafe(harness.snapshot(room_id), loop).result(5)


def receive(ws: ClientConnection) -> Any:
    raw = ws.recv(timeout=FRAME_TIMEOUT_S)
    assert isinstance(raw, str)
    frame = json.loads(raw)
    check_downstream(frame)
    return frame


def is_valid(frame: str | bytes) -> bool:
    if isinstance(frame, bytes):
        return False
    try:
        parse_upstream(frame)
    except InvalidMessage:
        return False
    return True


# ------------------------------------------------------------------------- random frames

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)

TEMPLATES: dict[str, dict[str, Any]] = {
    "ping": {},
    "pull": {"clientGroupID": "g1", "cookie": None, "requestID": "p"},
    "push": {
        "clientGroupID": "g1",
        "mutations": [
            {
                "id": 1,
                "clientID": "c1",
                "name": "put",
                "args": {"key": "k", "value": 1},
                "timestamp": 1700000000000,
            }
        ],
        "pushVersion": 1,
        "schemaVersion": "",
        "timestamp": 1700000000000,
        "requestID": "r",
    },
}


@st.composite
def mangled_frames(draw: st.DrawFn) -> str:
    """A valid frame with one part dropped, added, replaced or nulled."""
    kind = draw(st.sampled_from(sorted(TEMPLATES)))
    body = copy.deepcopy(TEMPLATES[kind])
    target: dict[str, Any] = body
    if kind == "push" and draw(st.booleans()):
        target = body["mutations"][0]
    action = draw(st.sampled_from(["drop", "add", "replace", "null", "outer"]))
    keys = sorted(target)
    if action == "drop" and keys:
        del target[draw(st.sampled_from(keys))]
    elif action == "add":
        target[draw(st.text(max_size=6))] = draw(json_values)
    elif action in ("replace", "null") and keys:
        key = draw(st.sampled_from(keys))
        target[key] = None if action == "null" else draw(json_values)
    frame: list[Any] = [kind, body]
    if action == "outer":
        frame = draw(
            st.sampled_from(
                [[kind], [kind, body, body], [body, kind], [kind.upper(), body], [kind, [body]]]
            )
        )
    return json.dumps(frame)


frames = st.one_of(
    mangled_frames(),
    json_values.map(json.dumps),
    st.text(max_size=40),
    st.binary(max_size=40),
)


@HOSTILE
@given(frame=frames)
@example(frame="")
@example(frame="[" * 5000)
@example(frame='["push",' * 2000)
@example(frame=json.dumps(["ping", {}]).encode())
@example(frame='["ping",{}]\x00')
@example(frame='["push",{"clientGroupID":"g1","mutations":[{"id":1e400}]}]')
@example(frame='["pull",{"clientGroupID":"g1","cookie":1e400,"requestID":"p"}]')
@example(
    frame='["pull",{"clientGroupID":"g1","cookie":123456789012345678901234567890,"requestID":"p"}]'
)
def test_random_frames_never_crash_the_server_or_change_data_when_invalid(
    live: Live, frame: str | bytes
) -> None:
    harness, _ = live
    room_id = f"frames-{next(_rooms)}"
    params = connect_params(room_id=room_id, client_group_id="g1")
    with connect(harness.connect_url(params), open_timeout=FRAME_TIMEOUT_S) as ws:
        assert receive(ws)[0] == "connected"
        assert receive(ws)[0] == "poke"
        before = snapshot(live, room_id)
        ws.send(frame)
        if not is_valid(frame):
            error = receive(ws)
            assert error[:2] == ["error", "InvalidMessage"]
            ws.send('["ping",{}]')
            assert receive(ws) == ["pong", {}]
            assert snapshot(live, room_id) == before
            return
        ws.send('["ping",{}]')
        try:
            while receive(ws) != ["pong", {}]:
                pass
        except ConnectionClosed:  # a valid but refused push (InvalidPush) closes the socket
            pass
    assert_server_alive(live)


def assert_server_alive(live: Live) -> None:
    harness, _ = live
    room_id = f"alive-{next(_rooms)}"
    with connect(harness.connect_url(connect_params(room_id=room_id))) as ws:
        assert receive(ws)[0] == "connected"
        ws.send('["ping",{}]')
        while receive(ws) != ["pong", {}]:
            pass


# ------------------------------------------------------------------------- random connects

PARAMS = [*connect_params(), "jurisdiction", "debugPerf"]
param_values = st.one_of(
    st.text(max_size=12),
    st.integers().map(str),
    st.sampled_from(
        ["", "eu", "0", "1.5", "-1", "0x", "0x1f", " 3", "true", "r1", "a b", "9" * 5000]
    ),
)


@st.composite
def connect_queries(draw: st.DrawFn) -> str:
    base = connect_params(
        client_id=draw(st.sampled_from(["c1", "c2", "x"])),
        room_id=draw(st.sampled_from(["q1", "q2"])),
        client_group_id=draw(st.sampled_from(["g1", "g2"])),
    )
    for name in draw(st.lists(st.sampled_from(sorted(base)), max_size=3)):
        base.pop(name, None)
    overrides = draw(
        st.dictionaries(st.sampled_from(PARAMS) | st.text(max_size=4), param_values, max_size=6)
    )
    query = urlencode({**base, **overrides}, quote_via=quote)
    if draw(st.booleans()):
        query += "&" + draw(
            st.sampled_from(["roomID=r2", "clientID=", "%", "%E0%A4%A=1", "&&", "="])
        )
    # uvicorn refuses a request line over 8 KiB (414) before the app sees it
    assume(len(query) < 7000)
    return query


@HOSTILE
@given(query=connect_queries())
@example(query="")
@example(query="ts=1&lmid=1")
@example(query=urlencode(connect_params(room_id="q3", lmid="9" * 5000)))
@example(query=urlencode(connect_params(room_id="q3", base_cookie=10**400)))
@example(query=urlencode(connect_params(room_id="q3", ts="9" * 5000)))
@example(query=urlencode(connect_params(room_id="q3")) + "&roomID=%E0%A4%A")
def test_random_connect_queries_get_connected_or_an_error_frame(live: Live, query: str) -> None:
    harness, _ = live
    url = f"{harness.ws_url}/api/sync/v1/connect?{query}"
    try:
        ws = connect(url, open_timeout=FRAME_TIMEOUT_S)
    except InvalidStatus as e:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"HTTP {e.response.status_code} for {query!r}")
    with ws:
        first = receive(ws)
        if first[0] == "connected":
            assert receive(ws)[0] == "poke"
            return
        assert first[0] == "error", first
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=FRAME_TIMEOUT_S)
        assert ws.close_code in (1000, 1005)

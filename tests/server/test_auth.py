"""The auth handler's calls: plain handlers on threads of their own, so that handlers that
hang cannot take every login (or asyncio's default pool) with them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest

from reflectd.server.auth import AUTH_HANDLER_COUNTS
from reflectd.server.settings import ServerSettings

from .conftest import make_app
from .harness import Harness, connect_params, serve

pytestmark = pytest.mark.anyio

BUSY = "authHandler rejected: Error: authHandler busy"
TIMED_OUT = "authHandler rejected: Error: authHandler timed out"


class HangingHandler:
    """A plain auth handler that hangs, until released, for the token "hang"."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, token: str, room_id: str, env: Mapping[str, str]) -> Any:
        if token == "hang":
            self.release.wait()
        elif token.startswith("slow"):
            time.sleep(0.02)
        return {"userID": "u1"}


@pytest.fixture
def handler() -> Iterator[HangingHandler]:
    hanging = HangingHandler()
    try:
        yield hanging
    finally:
        hanging.release.set()


@pytest.fixture
async def hanging_server(handler: HangingHandler) -> AsyncIterator[Harness]:
    settings = ServerSettings(db="memory://", auth_timeout_ms=200, auth_threads=40)
    async with serve(make_app(auth_handler=handler), settings) as harness:
        yield harness


async def _hang(server: Harness, count: int) -> None:
    """``count`` connects whose handler hangs, each refused when its timeout passes."""
    await asyncio.gather(
        *(
            server.refused(connect_params(client_id=f"h{i}"), "Unauthorized", protocol="hang")
            for i in range(count)
        )
    )


async def test_honest_connects_succeed_beside_more_hanging_sync_handlers_than_asyncio_has_threads(
    hanging_server: Harness,
) -> None:
    """39 hanging calls hold 39 of 40 auth threads; asyncio's default pool (at most 32
    threads), which they used to fill, is free, and honest connects use the last thread."""
    await _hang(hanging_server, 39)
    assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 1) == "free"
    for i in range(5):
        await hanging_server.connect(f"honest{i}", protocol="ok")


async def test_when_every_auth_thread_is_held_connects_are_refused_at_once_as_busy(
    handler: HangingHandler, caplog: pytest.LogCaptureFixture
) -> None:
    # a timeout long enough that "at once" stands out on a loaded machine
    settings = ServerSettings(db="memory://", auth_timeout_ms=1000, auth_threads=2)
    async with serve(make_app(auth_handler=handler), settings) as server:
        await _hang(server, 2)
        refused_before = AUTH_HANDLER_COUNTS.refused_busy
        started = time.monotonic()
        await server.refused(
            connect_params(client_id="honest"), "Unauthorized", BUSY, protocol="ok"
        )
        assert time.monotonic() - started < 0.8  # not after the 1 s timeout
        assert AUTH_HANDLER_COUNTS.refused_busy == refused_before + 1
        assert "authHandler busy, connect refused: all 2 reflectd-auth threads" in caplog.text
        handler.release.set()  # the handlers return: their threads are free again, soon
        deadline = time.monotonic() + 5  # (each thread must first wake and finish its call)
        while True:
            try:
                await server.connect("honest", protocol="ok")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)


async def test_a_burst_of_slow_but_timely_sync_handler_calls_queues_for_the_threads(
    handler: HangingHandler,
) -> None:
    settings = ServerSettings(db="memory://", auth_timeout_ms=2000, auth_threads=2)
    async with serve(make_app(auth_handler=handler), settings) as server:
        clients = await asyncio.gather(
            *(server.connect(f"c{i}", protocol=f"slow{i}") for i in range(20))
        )
        assert len(clients) == 20


async def test_a_sync_handler_that_times_out_is_counted_and_logged(
    hanging_server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    timeouts_before = AUTH_HANDLER_COUNTS.timeouts
    await hanging_server.refused(connect_params(), "Unauthorized", TIMED_OUT, protocol="hang")
    assert AUTH_HANDLER_COUNTS.timeouts == timeouts_before + 1
    assert "authHandler timed out after 200 ms" in caplog.text
    assert "1 of 40 threads held by plain handlers past their timeout" in caplog.text

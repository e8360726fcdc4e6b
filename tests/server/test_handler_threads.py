"""The thread pool of plain handlers: queued calls, held threads, refusals."""

from __future__ import annotations

import threading
import time
from concurrent.futures import wait

import pytest

from reflectd.server.handler_threads import HandlerThreads, HandlerThreadsFull


def test_calls_beyond_the_threads_queue_and_all_complete() -> None:
    pool = HandlerThreads(2, name="test")
    futures = [pool.submit(lambda i=i: (time.sleep(0.01), i)[1]) for i in range(10)]
    assert [f.result(timeout=5) for f in futures] == list(range(10))
    assert pool.pending == 0


def test_a_call_that_raises_gives_its_exception_to_the_caller() -> None:
    pool = HandlerThreads(1, name="test")
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(timeout=5)


def test_an_abandoned_call_that_has_not_started_never_runs() -> None:
    pool = HandlerThreads(1, name="test")
    gate = threading.Event()
    first = pool.submit(gate.wait)
    ran: list[int] = []
    queued = pool.submit(ran.append, 1)
    pool.abandon(queued)
    gate.set()
    first.result(timeout=5)
    assert queued.cancelled()
    assert pool.held == 0
    time.sleep(0.05)
    assert ran == []


def test_when_every_thread_is_held_by_an_abandoned_call_submit_is_refused() -> None:
    pool = HandlerThreads(2, name="test")
    gate = threading.Event()
    running = [pool.submit(gate.wait) for _ in range(2)]
    deadline = time.monotonic() + 5
    while not all(f.running() for f in running):
        assert time.monotonic() < deadline
        time.sleep(0.001)
    pool.abandon(running[0])
    assert pool.held == 1
    assert pool.submit(lambda: "queued").cancel()  # one thread is still in time: it queues
    pool.abandon(running[1])
    with pytest.raises(HandlerThreadsFull, match="all 2 test threads are held"):
        pool.submit(lambda: None)
    gate.set()
    wait(running, timeout=5)
    deadline = time.monotonic() + 5
    while pool.held:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert pool.submit(lambda: "again").result(timeout=5) == "again"


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError):
        HandlerThreads(0, name="test")

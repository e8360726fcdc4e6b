"""Threads of their own for an app's plain (non-async) handlers.

A plain function cannot be interrupted: when a call passes its timeout, the caller stops
waiting, but the thread runs on until the function returns, perhaps never. In asyncio's
default pool such calls took the slots every other ``to_thread`` needs; here they take only
this pool's threads, and the pool knows how many of its threads are *held*: still running a
call whose caller gave up. When every thread is held, a new call is refused at once
(``HandlerThreadsFull``) instead of waiting for a thread that may never come back.

Calls queue (first in, first out) while threads are busy with calls still in time, so a
burst of fast calls waits its turn instead of failing. Threads start on demand, up to
``size``, are daemons (a call that never returns does not keep the process from exiting),
and end after ``IDLE_S`` without work.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from reflectd.errors import HandlerThreadsFull as HandlerThreadsFull  # in the exception tree

#: a thread with no call for this long ends (s)
IDLE_S = 60.0

_Call = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class HandlerThreads:
    def __init__(self, size: int, *, name: str) -> None:
        if size < 1:
            raise ValueError(f"a handler thread pool needs at least one thread, got {size}")
        self.size = size
        self._name = name
        self._lock = threading.Lock()
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._threads = 0
        #: calls queued or running
        self._pending = 0
        #: running calls whose caller gave up (``abandon``)
        self._held: set[Future[Any]] = set()

    @property
    def held(self) -> int:
        """Threads running a call whose caller gave up on it."""
        return len(self._held)

    @property
    def pending(self) -> int:
        """Calls queued or running."""
        return self._pending

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``function(*args)`` on a thread of the pool; raise ``HandlerThreadsFull`` if
        every thread is held."""
        future: Future[Any] = Future()
        with self._lock:
            if len(self._held) >= self.size:
                raise HandlerThreadsFull(
                    f"all {self.size} {self._name} threads are held by calls that timed out"
                )
            self._pending += 1
            self._calls.put((future, function, args))
            if self._threads < min(self._pending, self.size):
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
        return future

    def abandon(self, future: Future[Any]) -> None:
        """The caller stopped waiting for ``future``: if it has not started, it never will;
        if it runs, its thread counts as held until it returns."""
        if future.cancel():
            return
        with self._lock:
            if not future.done():
                self._held.add(future)

    def _work(self) -> None:
        while True:
            try:
                future, function, args = self._calls.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._calls.empty():
                        self._threads -= 1
                        return
                continue
            if future.set_running_or_notify_cancel():
                try:
                    result = function(*args)
                except BaseException as e:
                    future.set_exception(e)
                else:
                    future.set_result(result)
            with self._lock:
                self._pending -= 1
                self._held.discard(future)

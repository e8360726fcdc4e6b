"""The server's side of ``reflectd tail``: this process's log lines, fanned out live to each
subscriber as server-sent events.

``LogTail`` is a logging handler on the root logger while the server runs. Each subscriber
has its own queue of at most ``max_queued_lines`` lines: a record is formatted once (only when
some subscriber wants it) and offered to each; a subscriber whose queue is full loses the line
and is told, in its next event, how many it lost. A slow reader therefore costs a bounded
amount of memory and never blocks the thread that logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
from starlette.responses import StreamingResponse

from reflectd.logs import ContextFields, record_entry

#: lines queued for one subscriber before further lines are dropped (and counted)
MAX_QUEUED_LINES = 1000
#: log streams open at once; more are refused (each holds up to ``MAX_QUEUED_LINES``)
MAX_SUBSCRIBERS = 32
#: a comment line this often when nothing is logged, so that a gone reader is noticed
KEEPALIVE_S = 15.0


@dataclass(frozen=True, slots=True)
class TailFilter:
    """The lines a subscriber wants: at ``level`` or above, of a room, of a user."""

    level: int = logging.DEBUG
    room_id: str | None = None
    user_id: str | None = None

    def wants(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        if self.room_id is not None and getattr(record, "room_id", None) != self.room_id:
            return False
        return self.user_id is None or getattr(record, "user_id", None) == self.user_id


class Subscriber:
    """One reader's bounded queue of formatted lines; ``offer`` from any thread, ``take`` on
    the event loop."""

    def __init__(self, wanted: TailFilter, *, max_queued_lines: int) -> None:
        self.wanted = wanted
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._lock = threading.Lock()
        self._lines: deque[str] = deque()
        self._max_queued_lines = max_queued_lines
        self._dropped = 0

    def offer(self, line: str) -> None:
        with self._lock:
            if len(self._lines) >= self._max_queued_lines:
                self._dropped += 1
                return
            self._lines.append(line)
            first = len(self._lines) == 1
        if first:
            self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    async def take(self, timeout_s: float) -> tuple[list[str], int]:
        """The lines queued (waiting up to ``timeout_s`` for one) and how many were dropped
        since the last ``take``."""
        with self._lock:
            empty = not self._lines and not self._dropped
        if empty and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout_s)
        self._ready.clear()
        with self._lock:
            lines = list(self._lines)
            self._lines.clear()
            dropped, self._dropped = self._dropped, 0
        return lines, dropped

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reads any more
            self._loop.call_soon_threadsafe(self._ready.set)


class LogTail(logging.Handler):
    """Offers each log record, as a JSON line, to the subscribers that want it."""

    def __init__(
        self, *, max_queued_lines: int = MAX_QUEUED_LINES, max_subscribers: int = MAX_SUBSCRIBERS
    ) -> None:
        super().__init__()
        self.addFilter(ContextFields())
        self.max_queued_lines = max_queued_lines
        self.max_subscribers = max_subscribers
        self._subscribers: tuple[Subscriber, ...] = ()
        self._times = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        wanting = [s for s in self._subscribers if s.wanted.wants(record)]
        if not wanting:
            return
        entry = record_entry(record, self._times.formatTime(record))
        if record.exc_info:
            entry["exception"] = self._times.formatException(record.exc_info)
        line = msgspec.json.encode(entry, enc_hook=str).decode()
        for subscriber in wanting:
            subscriber.offer(line)

    @property
    def full(self) -> bool:
        """As many streams are open as may be."""
        return len(self._subscribers) >= self.max_subscribers

    def subscribe(self, wanted: TailFilter) -> Subscriber:
        subscriber = Subscriber(wanted, max_queued_lines=self.max_queued_lines)
        self._subscribers += (subscriber,)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

    def close(self) -> None:
        """End every subscriber's stream (the server is shutting down)."""
        for subscriber in self._subscribers:
            subscriber.close()
        super().close()

    def stream(self, wanted: TailFilter) -> StreamingResponse:
        """A server-sent event stream of the lines ``wanted``: ``data: <JSON line>`` events,
        a ``dropped`` event with ``{"dropped": n}`` when lines were lost, a comment every
        ``KEEPALIVE_S`` when nothing was logged. It ends when the server shuts down."""
        subscriber = self.subscribe(wanted)
        return StreamingResponse(
            self._events(subscriber),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _events(self, subscriber: Subscriber) -> AsyncIterator[str]:
        try:
            yield ": reflectd log tail\n\n"
            while True:
                lines, dropped = await subscriber.take(KEEPALIVE_S)
                if dropped:
                    yield f'event: dropped\ndata: {{"dropped": {dropped}}}\n\n'
                for line in lines:
                    yield f"data: {line}\n\n"
                if subscriber.closed and not lines:
                    return
                if not lines and not dropped:
                    yield ": keepalive\n\n"
        finally:
            self.unsubscribe(subscriber)

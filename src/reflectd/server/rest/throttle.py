"""Slowing down repeated failed REST authentication from one address.

Each address may fail to authenticate (no key, an unknown key) ``limit`` times in a fixed
window of ``window_s`` seconds; until the window ends, every further request from it gets
429 with ``Retry-After``, before its key is even looked at, so that guessing keys costs a
window per ``limit`` guesses. Requests that authenticate are not counted.

The address is the peer's, or, for a request from a proxy uvicorn trusts
(``--forwarded-allow-ips``), the client address the proxy reports in ``X-Forwarded-For``.
At most ``max_sources`` addresses are tracked (the least recently failed are forgotten), so
memory stays bounded whoever is calling.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

WINDOW_S = 60.0
MAX_SOURCES = 10_000


class FailedAuthThrottle:
    def __init__(
        self,
        limit: int,
        *,
        window_s: float = WINDOW_S,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``limit``: failures allowed per address and window; 0 turns the throttle off."""
        self.limit = limit
        self.window_s = window_s
        self.max_sources = max_sources
        self._clock = clock
        #: address -> (start of its window, failures in it); least recently failed first
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, source: str) -> int | None:
        """Whole seconds until ``source`` may try again, or None if it may now."""
        entry = self._failures.get(source)
        if self.limit <= 0 or entry is None:
            return None
        started, count = entry
        left = started + self.window_s - self._clock()
        if left <= 0:
            del self._failures[source]
            return None
        return math.ceil(left) if count >= self.limit else None

    def failed(self, source: str) -> None:
        """Count a failed authentication from ``source``."""
        if self.limit <= 0:
            return
        now = self._clock()
        started, count = self._failures.pop(source, (now, 0))
        if now - started >= self.window_s:
            started, count = now, 0
        self._failures[source] = (started, count + 1)
        while len(self._failures) > self.max_sources:
            self._failures.popitem(last=False)

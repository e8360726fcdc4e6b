"""The wall clock, in the unit the protocol, the stores and the cluster use."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000

"""What the load generator measures of the server's processes (psutil), and how it runs."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable
from typing import Any

import psutil


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _family(pid: int, *, children: bool) -> list[psutil.Process]:
    """``pid`` and (with ``children``) its descendants; none when it is gone."""
    try:
        process = psutil.Process(pid)
        return [process, *(process.children(recursive=True) if children else [])]
    except psutil.NoSuchProcess:
        return []


def rss_kib(pid: int, *, children: bool = True) -> int:
    """Resident memory of ``pid`` in KiB, plus its descendants' (the original runs workerd as
    a child)."""
    total = 0
    for process in _family(pid, children=children):
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total // 1024


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU time of ``pid`` (and its descendants), in seconds."""
    total = 0.0
    for process in _family(pid, children=children):
        try:
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += times.user + times.system
    return total


def run_async(coro: Awaitable[Any]) -> Any:
    """Run ``coro`` on uvloop when available (less client overhead), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]

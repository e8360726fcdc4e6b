"""Nodes of a cluster in this process: servers sharing one ``MemoryLeaseStore`` (its leases and
its control bus), no PostgreSQL needed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from reflectd import App
from reflectd.server.settings import Limits, ServerSettings
from reflectd.storage.leases import MemoryLeaseStore
from server.harness import Harness, serve

LEASE_MS = 1500


class SharedLeaseStore(MemoryLeaseStore):
    """One store for several in-process nodes: opened once, closed by none of them. Its clock
    runs ``clock_offset_ms`` ahead of the wall clock (tests move it to expire leases)."""

    def __init__(self) -> None:
        self.clock_offset_ms = 0
        super().__init__(now_ms=lambda: time.time_ns() // 1_000_000 + self.clock_offset_ms)

    async def open(self) -> None:
        if not self._is_open:
            await super().open()

    async def close(self) -> None:
        pass


@asynccontextmanager
async def node(
    app: App,
    store: SharedLeaseStore,
    name: str,
    *,
    api_key: str | None = None,
    limits: Limits | None = None,
) -> AsyncIterator[Harness]:
    """The node ``name`` on ``store`` (its REST API answers ``api_key``)."""
    settings = ServerSettings(
        db="memory://", node_id=name, lease_ms=LEASE_MS, api_key=api_key, limits=limits or Limits()
    )
    async with serve(app, settings, store=store) as harness:
        # the port is known only now: advertise it
        advertised = replace(settings, advertise_url=harness.http_url)
        server = harness.server
        assert server.registry is not None and server.sync is not None
        server.settings = server.registry.settings = server.sync.settings = advertised
        yield harness

"""Health endpoints for probes and load balancers.

``GET /healthz``: the process answers (liveness). ``GET /readyz``: this node can serve
(readiness): it is not draining after SIGTERM, its storage answers within
``READY_CHECK_TIMEOUT_S``, and, when it shares its store with other nodes, its last lease
renewal did not fail and its control bus is connected. Both answer ``text/plain``, ``ok``
(200) or the reasons for not being ready, one per line (503).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from reflectd.server import metrics
from reflectd.server.cluster import ClusterControl
from reflectd.server.rooms import RoomRegistry

#: how long the storage check of ``/readyz`` may take
READY_CHECK_TIMEOUT_S = 2.0

#: a room ID no room can have (the REST API and the connect endpoint refuse an empty one)
_PROBE_ROOM_ID = ""


@dataclass(frozen=True, slots=True)
class NodeState:
    """What readiness looks at, read when a probe arrives."""

    registry: RoomRegistry | None
    control: ClusterControl | None
    draining: bool


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def readyz_endpoint(state: Callable[[], NodeState]) -> Callable[[Request], Awaitable[Response]]:
    async def readyz(request: Request) -> Response:
        problems = await not_ready_because(state())
        if problems:
            return PlainTextResponse("\n".join(problems) + "\n", 503)
        return PlainTextResponse("ok")

    return readyz


async def not_ready_because(node: NodeState) -> list[str]:
    """Why this node should get no traffic now; empty when it is ready."""
    if node.draining:
        return ["draining: the server is shutting down"]
    if node.registry is None:
        return ["starting"]
    problems = []
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await node.registry.store.get_room(_PROBE_ROOM_ID)
    except TimeoutError:
        metrics.STORAGE_ERRORS.labels("readiness_check").inc()
        problems.append(f"storage: no answer within {READY_CHECK_TIMEOUT_S:g} s")
    except Exception as exc:
        metrics.STORAGE_ERRORS.labels("readiness_check").inc()
        problems.append(f"storage: {type(exc).__name__}")
    if node.registry.lease_renewal_failing:
        problems.append("leases: the last renewal failed")
    if node.control is not None and not node.control.bus.connected():
        problems.append("control bus: not connected")
    return problems

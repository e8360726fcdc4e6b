"""``GET /metrics``: the Prometheus text format of ``reflectd.server.metrics``.

``--metrics on`` serves it to anyone (as scrapers expect), ``off`` does not route it (404),
``key`` asks for an API key with the permission ``metrics:read``, sent as the REST API's
``Authorization: Basic <key>`` (or ``Bearer <key>``), and answers 401 and 403 as the REST API
does (failures count towards the same per-address throttle, 429).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from reflectd.clock import now_ms
from reflectd.server import metrics
from reflectd.server.errors import api_error
from reflectd.server.http import client_address
from reflectd.server.rest import failures as F
from reflectd.server.rest.keys import KeyRing
from reflectd.server.rest.throttle import FailedAuthThrottle
from reflectd.storage.base import Permission

PERMISSION: Permission = "metrics:read"


async def serve_metrics(
    request: Request, *, keys: KeyRing | None, throttle: FailedAuthThrottle | None
) -> Response:
    """The metrics; with ``keys``, only for a key with ``metrics:read``."""
    if keys is not None and throttle is not None:
        refused = await _refused(request, keys, throttle)
        if refused is not None:
            return refused
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _refused(
    request: Request, keys: KeyRing, throttle: FailedAuthThrottle
) -> Response | None:
    source = client_address(request)
    wait = throttle.retry_after(source)
    if wait is not None:
        response = api_error(429, F.THROTTLED.text(source=source, wait=wait))
        response.headers["Retry-After"] = str(wait)
        return response
    principal = await keys.authenticate(_presented_key(request), now_ms())
    if principal is None:
        throttle.failed(source)
        metrics.AUTH_FAILURES.labels("rest").inc()
        return api_error(401, F.NO_KEY.text())
    if PERMISSION not in principal.permissions:
        message = F.FORBIDDEN.text(key_name=principal.key_name, permission=PERMISSION)
        return api_error(403, message)
    return None


def _presented_key(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() not in ("basic", "bearer"):
        return None
    return value.strip() or None

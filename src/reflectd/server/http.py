"""The small client-facing HTTP endpoints (root, canary, the client's metrics and log reports) and
CORS."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from reflectd import __version__
from reflectd.server.errors import api_error

logger = logging.getLogger(__name__)
client_logger = logging.getLogger("reflectd.client")

#: the client version this server speaks for
REFLECT_SERVER_VERSION = "0.39.202402230127+b70f6b"
CANARY_SOCKET_LIFETIME_S = 10.0


def client_address(connection: HTTPConnection) -> str:
    """Who is calling, as limits count it: the peer's address or, from a proxy uvicorn
    trusts (``--forwarded-allow-ips``), the client address in its ``X-Forwarded-For``."""
    return connection.client.host if connection.client is not None else ""


async def root(request: Request) -> Response:
    return JSONResponse(
        {
            "reflectServerVersion": REFLECT_SERVER_VERSION,
            "server": "reflectd",
            "version": __version__,
        }
    )


async def canary_get(request: Request) -> Response:
    return PlainTextResponse("hello")


async def canary_websocket(websocket: WebSocket) -> None:
    protocol = websocket.headers.get("sec-websocket-protocol")
    if websocket.query_params.get("wSecWebSocketProtocolHeader") == "true" and protocol is None:
        await websocket.send_denial_response(
            PlainTextResponse("expected Sec-WebSocket-Protocol", 400)
        )
        return
    await websocket.accept(subprotocol=protocol)
    await websocket.send_text("hello")
    try:
        async with asyncio.timeout(CANARY_SOCKET_LIFETIME_S):
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
    except TimeoutError:
        await websocket.close()


# Optional fields may be absent but not null, as in the original's strict schemas.


class _DistributionSeries(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    metric: str
    points: list[tuple[float, list[float]]]
    host: str | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET
    type: Literal["distribution"] | UnsetType = UNSET


class _CountSeries(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    metric: str
    type: Literal["count", "rate", "gauge"]
    points: list[tuple[float, float]]
    host: str | UnsetType = UNSET
    tags: list[str] | UnsetType = UNSET


class _MetricsReport(msgspec.Struct, forbid_unknown_fields=True):
    series: list[Any]


async def metrics_report(request: Request) -> Response:
    """Accept the client's metrics report (validated; this server keeps no metrics)."""
    try:
        report = msgspec.json.decode(await request.body(), type=_MetricsReport)
        for series in report.series:
            raw = msgspec.json.encode(series)
            kind = series.get("type") if isinstance(series, dict) else None
            schema = _CountSeries if kind in ("count", "rate", "gauge") else _DistributionSeries
            msgspec.json.decode(raw, type=schema)
    except msgspec.DecodeError as e:
        return api_error(400, f"Body schema error. {e}")
    return PlainTextResponse("ok")


async def client_log(request: Request) -> Response:
    """Accept the client's log batch; each line goes to our log at debug level."""
    body = await request.body()
    if client_logger.isEnabledFor(logging.DEBUG):
        for line in body.decode(errors="replace").splitlines():
            if line.strip():
                client_logger.debug("client log: %s", line[:2000])
    return PlainTextResponse("ok")


class CORSMiddleware:
    """Every HTTP response gets ``Access-Control-Allow-Origin: *``; preflights are answered
    as the original server does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await self._options(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"access-control-allow-origin", b"*"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _options(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        origin = request.headers.get("origin")
        method = request.headers.get("access-control-request-method")
        wanted = request.headers.get("access-control-request-headers")
        if origin and method and wanted is not None:
            headers = {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET,HEAD,POST,OPTIONS",
                "Access-Control-Max-Age": "86400",
                "Access-Control-Allow-Headers": wanted,
            }
        else:
            headers = {"Allow": "GET, HEAD, POST, OPTIONS", "Access-Control-Allow-Origin": "*"}
        await Response(status_code=200, headers=headers)(scope, receive, send)

"""The reflectd server: its ASGI app (Starlette), start-up and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import (
    BaseRoute,
    Match,
    Mount,
    NoMatchFound,
    Route,
    WebSocketRoute,
    request_response,
)
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from reflectd.app import App
from reflectd.errors import ReflectdError
from reflectd.server import health, http, metrics
from reflectd.server.cluster import ClusterCommands, ClusterControl
from reflectd.server.errors import api_error
from reflectd.server.log_tail import LogTail
from reflectd.server.metrics_endpoint import serve_metrics
from reflectd.server.peers import PeerAuth
from reflectd.server.rest.commands import RoomCommands, forget_old_calls
from reflectd.server.rest.keys import KeyRing
from reflectd.server.rest.openapi import OPENAPI_PATH, openapi_endpoint
from reflectd.server.rest.routes import RestApi
from reflectd.server.rest.throttle import FailedAuthThrottle
from reflectd.server.rooms import RoomRegistry
from reflectd.server.settings import MetricsAccess, ServerSettings
from reflectd.server.sync import SyncEndpoints, bad_version, is_version_segment
from reflectd.server.webhooks import WebhookDispatcher, WebhookEvents
from reflectd.storage import Backend, open_store

logger = logging.getLogger(__name__)

#: where ``--static-dir`` is served (the root belongs to the Reflect API)
STATIC_PATH = "/app"
#: where the web dashboard is served (docs/dashboard.md), and its files in the package
DASHBOARD_PATH = "/dashboard"
DASHBOARD_DIR = Path(__file__).with_name("dashboard")


class ReflectServer:
    """One reflectd process: storage, live rooms, and the ASGI app that serves them."""

    def __init__(self, app: App, settings: ServerSettings, store: Backend | None = None) -> None:
        self.app = app
        self.settings = settings
        self._given_store = store
        self.registry: RoomRegistry | None = None
        self.sync: SyncEndpoints | None = None
        self.rest: RestApi | None = None
        #: this node's end of the control bus, when it shares its store with other nodes
        self.control: ClusterControl | None = None
        #: delivers the webhook outbox
        self.webhooks: WebhookDispatcher | None = None
        #: this node's name in room leases
        self.node_id = settings.node_id or os.urandom(6).hex()
        self._shutdown_started = False
        #: forgets old idempotency keys while the server runs
        self._forgetting: asyncio.Task[None] | None = None
        #: ``reflectd tail``'s subscribers: a handler on the root logger while the server runs
        self.log_tail = LogTail()
        self.asgi = Starlette(
            routes=self._routes(),
            lifespan=self._lifespan,
            exception_handlers={HTTPException: _http_exception},
        )
        self.asgi.router.redirect_slashes = False  # paths match exactly, as in the original
        self.asgi.add_middleware(http.CORSMiddleware)
        self.asgi.add_middleware(_StartupFailure, server=self)
        #: why ``start`` failed, in one line (the storage could not be opened...)
        self.startup_error: str | None = None

    def _routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/", http.root, methods=["GET"]),
            WebSocketRoute("/api/sync/{version}/connect", self._connect),
            Route("/api/sync/{version}/connect", _expect_websocket, methods=["GET", "POST"]),
            Route("/api/sync/v1/close", self._close_beacon, methods=["POST"]),
            Route("/api/canary/v0/get", http.canary_get, methods=["GET"]),
            WebSocketRoute("/api/canary/v0/websocket", http.canary_websocket),
            Route("/api/canary/v0/websocket", _expect_websocket, methods=["GET"]),
            Route("/api/metrics/v0/report", http.metrics_report, methods=["POST"]),
            Route("/api/logs/v0/log", http.client_log, methods=["POST"]),
            Route(OPENAPI_PATH, openapi_endpoint(self.settings.app_id), methods=["GET"]),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz_endpoint(self._node_state), methods=["GET"]),
            _RestRoute(self._rest),
            Route(DASHBOARD_PATH, _to_dashboard_index, methods=["GET"]),
            Route(DASHBOARD_PATH + "/config.json", self._dashboard_config, methods=["GET"]),
            Mount(DASHBOARD_PATH, StaticFiles(directory=DASHBOARD_DIR, html=True)),
        ]
        if self.settings.metrics != MetricsAccess.OFF:
            routes.append(Route("/metrics", self._metrics, methods=["GET"]))
        if self.settings.static_dir is not None:
            routes += [
                Route(STATIC_PATH, _to_static_index, methods=["GET"]),
                Mount(STATIC_PATH, StaticFiles(directory=self.settings.static_dir, html=True)),
            ]
        return routes

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        try:
            await self.start()
        except (ReflectdError, ValueError, OSError) as e:
            self.startup_error = f"reflectd cannot start: {e}"
            raise
        try:
            yield
        finally:
            await self.shutdown()

    async def start(self) -> None:
        if self._given_store is None:
            store = await open_store(self.settings.db)
        else:
            store = self._given_store
            await store.open()
        logging.getLogger().addHandler(self.log_tail)
        events = WebhookEvents(self.settings.webhooks)
        self.webhooks = WebhookDispatcher(store, events, node_id=self.node_id)
        try:
            await self.webhooks.start()
        except BaseException:
            await self.webhooks.close()
            raise
        self.registry = RoomRegistry(
            store, self.app, self.settings, node_id=self.node_id, webhooks=events
        )
        cluster = self.registry.leases
        peers = PeerAuth(await cluster.cluster_secret() if cluster else None, self.node_id)
        self.sync = SyncEndpoints(self.app, self.registry, self.settings, peers=peers)
        commands = RoomCommands(self.registry)
        if cluster is not None:
            self.control = ClusterControl(self.registry, cluster.control_bus(self.node_id))
            await self.control.start()
            commands = ClusterCommands(self.registry, self.control)
            logger.info(
                "node %s: rooms by lease (%d ms), reached at %s",
                self.node_id,
                self.settings.lease_ms,
                self.settings.advertise_url or "(no --advertise-url)",
            )
        self.rest = RestApi(
            commands,
            KeyRing(store, self.settings.api_key),
            app_id=self.settings.app_id,
            throttle=FailedAuthThrottle(self.settings.limits.max_failed_auth_per_minute),
            log_tail=self.log_tail,
            peers=peers if cluster is not None else None,
        )
        self._forgetting = asyncio.create_task(forget_old_calls(store))
        logger.info("reflectd ready (storage: %s)", self.settings.db)

    async def shutdown(self) -> None:
        """Finish every running turn, release the rooms' leases, close sockets in batches,
        close storage."""
        if self._shutdown_started or self.registry is None or self.sync is None:
            return
        self._shutdown_started = True
        # answer HTTP with 503 from now on, before any room or the storage closes
        if self.rest is not None:
            self.rest.draining = True
        self.sync.draining = True
        if self._forgetting is not None:
            self._forgetting.cancel()
        await self.registry.drain()
        sockets = list(self.sync.sockets)
        batch = self.settings.shutdown_close_batch
        if sockets:
            logger.info("closing %d connections, %d at a time", len(sockets), batch)
        for start in range(0, len(sockets), batch):
            for socket in sockets[start : start + batch]:
                socket.close()
            await asyncio.sleep(self.settings.shutdown_batch_pause_ms / 1000)
        writers = [s.writer for s in sockets if s.writer is not None]
        if writers:
            await asyncio.wait(writers, timeout=5)
        if self.control is not None:
            await self.control.close()
        if self.webhooks is not None:
            await self.webhooks.close()
        await self.registry.store.close()
        logger.info("reflectd stopped")
        logging.getLogger().removeHandler(self.log_tail)
        self.log_tail.close()

    def _node_state(self) -> health.NodeState:
        return health.NodeState(self.registry, self.control, draining=self._shutdown_started)

    async def _connect(self, websocket: WebSocket) -> None:
        assert self.sync is not None
        await self.sync.connect(websocket)

    async def _rest(self, request: Request) -> Response:
        assert self.rest is not None
        response = await self.rest(request)
        metrics.count_rest_request(request, response.status_code)
        return response

    async def _metrics(self, request: Request) -> Response:
        assert self.rest is not None
        if self.settings.metrics != MetricsAccess.KEY:
            return await serve_metrics(request, keys=None, throttle=None)
        return await serve_metrics(request, keys=self.rest.keys, throttle=self.rest.throttle)

    async def _dashboard_config(self, request: Request) -> Response:
        """What the dashboard's script needs to know of the server (no secret)."""
        return JSONResponse({"appId": self.settings.app_id})

    async def _close_beacon(self, request: Request) -> Response:
        assert self.sync is not None
        return await self.sync.close_beacon(request)


class _StartupFailure:
    """A start that failed for a reason reflectd states (storage that cannot be opened, a bad
    ``--db``) is reported to the server as that one line, not as a traceback."""

    def __init__(self, app: ASGIApp, server: ReflectServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_one_line(message: Message) -> None:
            error = self.server.startup_error
            if message["type"] == "lifespan.startup.failed" and error is not None:
                message = {**message, "message": error}
            await send(message)

        await self.app(scope, receive, send_one_line)


class _RestRoute(BaseRoute):
    """Every HTTP request under ``/api/v1`` or ``/v1/apps/``, whatever follows (line breaks
    included, which Starlette's path parameters do not match): the REST API answers them all,
    checking the key before any 404 or 405."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = request_response(endpoint)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (
            path == "/api/v1" or path.startswith(("/api/v1/", "/v1/apps/"))
        ):
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)


async def _to_static_index(request: Request) -> Response:
    return RedirectResponse(STATIC_PATH + "/")


async def _to_dashboard_index(request: Request) -> Response:
    return RedirectResponse(DASHBOARD_PATH + "/")


async def _expect_websocket(request: Request) -> Response:
    """A plain HTTP request to a WebSocket route: checked in the original's order: method,
    version segment, then the missing upgrade."""
    if request.method != "GET":
        return api_error(405, "unsupported method")
    segment = request.path_params.get("version")
    if segment is not None and not is_version_segment(segment):
        return bad_version(segment)
    return PlainTextResponse("expected websocket", 400)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return api_error(404, "Unknown or invalid URL")
    if exc.status_code == 405:
        return api_error(405, "unsupported method")
    return api_error(exc.status_code, str(exc.detail))

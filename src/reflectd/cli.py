"""The ``reflectd`` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from reflectd import App, __version__
from reflectd.cli_admin import connections, keys, rooms
from reflectd.engine.handlers import EngineSettings
from reflectd.js import JsLimits, JsRuntime
from reflectd.loader import AppLoadError, load_app
from reflectd.logs import LOG_LEVELS, LogFormat, configure_logging
from reflectd.server.asgi import ReflectServer
from reflectd.server.rest.keys import ENV_KEY_NAME
from reflectd.server.settings import Limits, ServerSettings
from reflectd.server.uvicorn_ws import WebSocketProtocol

cli = typer.Typer(
    help="reflectd: a self-hostable Reflect sync server, for the app's own Reflect server "
    "module (TypeScript) or its mutators in Python.",
    no_args_is_help=True,
    add_completion=False,
)

DEV_DB = ".reflectd/reflectd.sqlite3"

AppArg = Annotated[
    str,
    typer.Argument(
        help="The app to serve: a Reflect server module (path/to/reflect/index.ts, .tsx, .js "
        "or .mjs), or a Python app: path/to/file.py:attribute or module:attribute "
        "(a reflectd.App).",
        show_default=False,
    ),
]
HostOpt = Annotated[str, typer.Option(envvar="REFLECTD_HOST", help="Interface to listen on.")]
PortOpt = Annotated[int, typer.Option(envvar="REFLECTD_PORT", help="Port to listen on.")]
DbOpt = Annotated[
    str,
    typer.Option(
        envvar="REFLECTD_DB",
        help="Storage: a SQLite file path, sqlite:///path, memory:// (nothing kept), or "
        "postgresql://user@host/db (several nodes may share it).",
    ),
]
LogLevelOpt = Annotated[
    str,
    typer.Option(envvar="REFLECTD_LOG_LEVEL", help=f"One of: {', '.join(LOG_LEVELS)}."),
]
LogFormatOpt = Annotated[
    str, typer.Option(envvar="REFLECTD_LOG_FORMAT", help="text, or json (one object a line).")
]
MaxMessageOpt = Annotated[
    int,
    typer.Option(
        envvar="REFLECTD_MAX_MESSAGE_BYTES",
        help="Largest WebSocket message a client may send, in bytes.",
    ),
]
MaxMutationsOpt = Annotated[
    int,
    typer.Option(
        envvar="REFLECTD_MAX_MUTATIONS_PER_PUSH", help="Most mutations in one push message."
    ),
]
MaxConnectionsOpt = Annotated[
    int,
    typer.Option(envvar="REFLECTD_MAX_CONNECTIONS", help="Most sync connections of the process."),
]
MaxRoomConnectionsOpt = Annotated[
    int,
    typer.Option(
        envvar="REFLECTD_MAX_CONNECTIONS_PER_ROOM", help="Most clients connected to one room."
    ),
]
MaxAddressConnectionsOpt = Annotated[
    int,
    typer.Option(
        envvar="REFLECTD_MAX_CONNECTIONS_PER_ADDRESS",
        help="Most sync connections from one client address (0: no limit).",
        min=0,
    ),
]
MaxFailedAuthOpt = Annotated[
    int,
    typer.Option(
        envvar="REFLECTD_MAX_FAILED_AUTH_PER_MINUTE",
        help="Failed REST authentications allowed per client address and minute; then 429 "
        "until the minute ends (0: no limit).",
        min=0,
    ),
]
ForwardedAllowOpt = Annotated[
    str,
    typer.Option(
        envvar="REFLECTD_FORWARDED_ALLOW_IPS",
        help="Proxies trusted to report the client's address in X-Forwarded-For "
        "(comma-separated IPs or networks, or *); the address is what limits count.",
    ),
]
MaxKeyOpt = Annotated[
    int, typer.Option(envvar="REFLECTD_MAX_KEY_BYTES", help="Largest user key, in UTF-8 bytes.")
]
MaxValueOpt = Annotated[
    int,
    typer.Option(envvar="REFLECTD_MAX_VALUE_BYTES", help="Largest user value, in bytes of JSON."),
]
AppIdOpt = Annotated[
    str,
    typer.Option(
        envvar="REFLECTD_APP_ID",
        help="The app-id of the REST routes /v1/apps/{app-id}/... "
        "(REFLECTD_API_KEY in the environment is a key with every permission).",
    ),
]
StaticOpt = Annotated[
    Path | None,
    typer.Option(
        envvar="REFLECTD_STATIC_DIR",
        help="A folder of static files (e.g. the app's web page) to serve under /app/.",
        exists=True,
        file_okay=False,
    ),
]
AdvertiseOpt = Annotated[
    str | None,
    typer.Option(
        envvar="REFLECTD_ADVERTISE_URL",
        help="With PostgreSQL: where the other nodes reach this one, to proxy a room's "
        "sockets to its owner (default: http://HOST:PORT).",
        show_default=False,
    ),
]
NodeIdOpt = Annotated[
    str | None,
    typer.Option(
        envvar="REFLECTD_NODE_ID",
        help="With PostgreSQL: this node's name in room leases, unique among the live nodes "
        "(default: random).",
        show_default=False,
    ),
]
LeaseOpt = Annotated[
    int,
    typer.Option(
        envvar="REFLECTD_LEASE_MS",
        help="With PostgreSQL: how long a node's lease on a room lasts unless renewed (ms); "
        "another node takes a dead node's rooms after it.",
        min=100,
    ),
]
JsCpuLimitOpt = Annotated[
    int,
    typer.Option(
        envvar="REFLECTD_JS_CPU_LIMIT_MS",
        help="Server modules: how long one mutator or handler may run before it is stopped (ms).",
        min=1,
    ),
]
JsHeapLimitOpt = Annotated[
    int,
    typer.Option(
        envvar="REFLECTD_JS_HEAP_LIMIT_MB",
        help="Server modules: the JS runtime's heap limit (MiB).",
        min=16,
    ),
]
_limits, _engine, _server, _js = Limits(), EngineSettings(), ServerSettings(), JsLimits()


@cli.command()
def serve(
    app: AppArg,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8080,
    db: DbOpt = DEV_DB,
    log_level: LogLevelOpt = "info",
    log_format: LogFormatOpt = "text",
    max_message_bytes: MaxMessageOpt = _limits.max_message_bytes,
    max_mutations_per_push: MaxMutationsOpt = _limits.max_mutations_per_push,
    max_connections: MaxConnectionsOpt = _limits.max_connections,
    max_connections_per_room: MaxRoomConnectionsOpt = _limits.max_connections_per_room,
    max_connections_per_address: MaxAddressConnectionsOpt = _limits.max_connections_per_address,
    max_failed_auth_per_minute: MaxFailedAuthOpt = _limits.max_failed_auth_per_minute,
    forwarded_allow_ips: ForwardedAllowOpt = "127.0.0.1",
    max_key_bytes: MaxKeyOpt = _engine.max_key_bytes,
    max_value_bytes: MaxValueOpt = _engine.max_value_bytes,
    static_dir: StaticOpt = None,
    app_id: AppIdOpt = "default",
    advertise_url: AdvertiseOpt = None,
    node_id: NodeIdOpt = None,
    lease_ms: LeaseOpt = _server.lease_ms,
    js_cpu_limit_ms: JsCpuLimitOpt = _js.cpu_limit_ms,
    js_heap_limit_mb: JsHeapLimitOpt = _js.heap_limit_mb,
) -> None:
    """Serve APP: the sync endpoint for @rocicorp/reflect clients, with durable storage.

    With --db postgresql://..., several nodes may serve the same app: each room is owned by
    one node at a time (by lease), and a socket that reaches another node is proxied to it.

    SIGTERM (or Ctrl-C) drains: running turns finish, leases are released, sockets close in
    batches, then exit.
    """
    settings = ServerSettings(
        db=db,
        node_id=node_id or "",
        advertise_url=advertise_url or default_advertise_url(host, port),
        lease_ms=lease_ms,
        app_id=app_id,
        api_key=os.environ.get(ENV_KEY_NAME) or None,
        static_dir=str(static_dir) if static_dir is not None else None,
        limits=replace(
            _limits,
            max_message_bytes=max_message_bytes,
            max_mutations_per_push=max_mutations_per_push,
            max_connections=max_connections,
            max_connections_per_room=max_connections_per_room,
            max_connections_per_address=max_connections_per_address,
            max_failed_auth_per_minute=max_failed_auth_per_minute,
        ),
        engine=replace(_engine, max_key_bytes=max_key_bytes, max_value_bytes=max_value_bytes),
    )
    _configure(log_level, log_format)
    js_limits = JsLimits(cpu_limit_ms=js_cpu_limit_ms, heap_limit_mb=js_heap_limit_mb)
    server = ReflectServer(_load(app, engine=settings.engine, js_limits=js_limits), settings)
    config = uvicorn.Config(
        server.asgi,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        ws_max_size=4 * max_message_bytes,
        ws_per_message_deflate=False,
        ws=WebSocketProtocol,
        server_header=False,
        forwarded_allow_ips=forwarded_allow_ips,
    )
    _DrainingServer(config, server).run()


@cli.command()
def dev(
    app: AppArg,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8080,
    db: DbOpt = DEV_DB,
    log_level: LogLevelOpt = "info",
    static_dir: StaticOpt = None,
) -> None:
    """Serve APP for local work: SQLite under ./.reflectd/, restart on code change (for a
    server module: on a change to any file of its bundle)."""
    _configure(log_level, "text")
    # fail here, with a clear message, rather than in the reloader's child
    checked = _load(app, dev=True)
    if isinstance(checked.runtime, JsRuntime):
        watched = _bundle_dirs(checked)
        checked.runtime.close()
    else:
        watched = [Path(app.rpartition(":")[0]).resolve().parent if ".py" in app else Path.cwd()]
    # the reloader's child process reads its settings from the environment
    os.environ.update(REFLECTD_DEV_APP=app, REFLECTD_DB=db, REFLECTD_LOG_LEVEL=log_level)
    if static_dir is not None:
        os.environ["REFLECTD_STATIC_DIR"] = str(static_dir.resolve())
    typer.echo(f"reflectd dev: serving {app} on http://{host}:{port} (storage: {db})", err=True)
    if static_dir is not None:
        typer.echo(f"reflectd dev: web page at http://{host}:{port}/app/", err=True)
    uvicorn.run(
        "reflectd.cli:dev_asgi_factory",
        factory=True,
        host=host,
        port=port,
        reload=True,
        reload_dirs=[str(d) for d in watched],
        reload_includes=["*.py"] if checked.runtime is None else list(_MODULE_FILES),
        log_config=None,
        ws_per_message_deflate=False,
        ws=WebSocketProtocol,
    )


#: the files of a server module's bundle that `reflectd dev` watches
_MODULE_FILES = ("*.ts", "*.tsx", "*.mts", "*.js", "*.jsx", "*.mjs", "*.json")


def _bundle_dirs(app: App) -> list[Path]:
    """The folders of the files bundled into a server module, outside node_modules."""
    assert isinstance(app.runtime, JsRuntime)
    inputs = app.runtime.shape.inputs
    dirs = sorted({Path(p).parent for p in inputs if "node_modules" not in Path(p).parts})
    return [d for d in dirs if not any(parent in dirs for parent in d.parents)]


def default_advertise_url(host: str, port: int) -> str:
    """``http://host:port``; for a wildcard address, this machine's host name instead."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def dev_asgi_factory() -> object:
    """The ASGI app ``reflectd dev`` serves (rebuilt by the reloader after a change)."""
    _configure(os.environ.get("REFLECTD_LOG_LEVEL", "info"), "text")
    settings = ServerSettings(
        db=os.environ.get("REFLECTD_DB", DEV_DB),
        app_id=os.environ.get("REFLECTD_APP_ID", "default"),
        api_key=os.environ.get(ENV_KEY_NAME) or None,
        static_dir=os.environ.get("REFLECTD_STATIC_DIR"),
    )
    return ReflectServer(_load(os.environ["REFLECTD_DEV_APP"], dev=True), settings).asgi


cli.add_typer(keys, name="keys")
cli.add_typer(rooms, name="rooms")
cli.add_typer(connections, name="connections")


@cli.command()
def version() -> None:
    """Print reflectd's version."""
    typer.echo(__version__)


def _load(
    spec: str,
    *,
    dev: bool = False,
    engine: EngineSettings | None = None,
    js_limits: JsLimits | None = None,
) -> App:
    try:
        return load_app(spec, dev=dev, engine=engine, js_limits=js_limits)
    except AppLoadError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def _configure(level: str, log_format: str) -> None:
    if level not in LOG_LEVELS:
        raise typer.BadParameter(f"log level must be one of {', '.join(LOG_LEVELS)}")
    if log_format not in ("text", "json"):
        raise typer.BadParameter("log format must be text or json")
    fmt: LogFormat = "json" if log_format == "json" else "text"
    configure_logging(level, fmt)


class _DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM first drains reflectd (turns finish, sockets close in batches);
    a second signal exits at once."""

    def __init__(self, config: uvicorn.Config, reflect: ReflectServer) -> None:
        super().__init__(config)
        self._reflect = reflect
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)
            return
        self._draining = True
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(lambda: loop.create_task(self._drain()))

    async def _drain(self) -> None:
        try:
            await self._reflect.shutdown()
        finally:
            self.should_exit = True


def main() -> None:
    cli()

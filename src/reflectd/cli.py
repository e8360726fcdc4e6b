"""The ``reflectd`` command line."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
import uvicorn

from reflectd import App, __version__
from reflectd.cli_admin import REST, admin_command, connections, keys, rooms
from reflectd.cli_data import backup
from reflectd.cli_settings import (
    Settings,
    command_parameters,
    environment_of,
    settings_from_environment,
    settings_from_options,
)
from reflectd.cli_tail import tail
from reflectd.cli_webhooks import webhooks
from reflectd.js import JsRuntime
from reflectd.loader import AppLoadError, load_app
from reflectd.logs import LOG_LEVELS, LogFormat, configure_logging
from reflectd.server.asgi import ReflectServer
from reflectd.server.gc_tuning import tune_gc
from reflectd.server.uvicorn_ws import WebSocketProtocol

cli = typer.Typer(
    help="reflectd: a self-hostable Reflect sync server, for the app's own Reflect server "
    "module (TypeScript) or its mutators in Python.",
    no_args_is_help=True,
    add_completion=False,
)

#: the variable that names APP to ``reflectd dev``'s child process
DEV_APP_ENV = "REFLECTD_DEV_APP"

AppArg = Annotated[
    str,
    typer.Argument(
        help="The app to serve: a Reflect server module (path/to/reflect/index.ts, .tsx, .js "
        "or .mjs), or a Python app: path/to/file.py:attribute or module:attribute "
        "(a reflectd.App).",
        show_default=False,
    ),
]


def _settings_command(name: str, run: Callable[[str, Settings], None]) -> Callable[..., None]:
    """The command ``name`` (documented by ``run``'s docstring): APP, then an option for each
    setting it takes (``reflectd.cli_settings``); ``run`` gets APP and the settings."""

    def command(app: str, **values: Any) -> None:
        run(app, settings_from_options(values))

    app = inspect.Parameter("app", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=AppArg)
    command.__signature__ = inspect.Signature([app, *command_parameters(name)])  # type: ignore[attr-defined]
    command.__name__ = command.__qualname__ = name
    command.__doc__ = run.__doc__
    cli.command(name)(command)
    return command


def _serve(app: str, settings: Settings) -> None:
    """Serve APP: the sync endpoint for @rocicorp/reflect clients, with durable storage.

    With --db postgresql://..., several nodes may serve the same app: each room is owned by
    one node at a time (by lease), and a socket that reaches another node is proxied to it.

    SIGTERM (or Ctrl-C) drains: running turns finish, leases are released, sockets close in
    batches, then exit.
    """
    process, server_settings = settings.process, settings.server
    if not server_settings.advertise_url:
        advertise_url = default_advertise_url(process.host, process.port)
        server_settings = replace(server_settings, advertise_url=advertise_url)
    _configure(process.log_level, process.log_format)
    server = ReflectServer(_load(app, settings), server_settings)
    config = uvicorn.Config(server.asgi, lifespan="on", **_uvicorn_options(settings))
    tune_gc()
    _DrainingServer(config, server).run()


def _dev(app: str, settings: Settings) -> None:
    """Serve APP for local work: SQLite under ./.reflectd/, restart on code change (for a
    server module: on a change to any file of its bundle)."""
    process = settings.process
    _configure(process.log_level, process.log_format)
    # fail here, with a clear message, rather than in the reloader's child
    checked = _load(app, settings, dev=True)
    if isinstance(checked.runtime, JsRuntime):
        watched = _bundle_dirs(checked)
        checked.runtime.close()
    else:
        watched = [Path(app.rpartition(":")[0]).resolve().parent if ".py" in app else Path.cwd()]
    # the reloader's child process reads its settings from the environment
    os.environ[DEV_APP_ENV] = app
    for name, value in environment_of(settings, "dev").items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    url = f"http://{process.host}:{process.port}"
    typer.echo(f"reflectd dev: serving {app} on {url} (storage: {settings.server.db})", err=True)
    if settings.server.static_dir is not None:
        typer.echo(f"reflectd dev: web page at {url}/app/", err=True)
    uvicorn.run(
        "reflectd.cli:dev_asgi_factory",
        factory=True,
        reload=True,
        reload_dirs=[str(d) for d in watched],
        reload_includes=["*.py"] if checked.runtime is None else list(_MODULE_FILES),
        # an open log stream (`reflectd tail`) would hold a restart: cut it after 2 s
        timeout_graceful_shutdown=2,
        **_uvicorn_options(settings),
    )


serve = _settings_command("serve", _serve)
dev = _settings_command("dev", _dev)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What ``serve`` and ``dev`` tell uvicorn."""
    return {
        "host": settings.process.host,
        "port": settings.process.port,
        "log_config": None,
        "ws_max_size": 4 * settings.server.limits.max_message_bytes,
        "ws_per_message_deflate": False,
        "ws": WebSocketProtocol,
        "server_header": False,
        "forwarded_allow_ips": settings.process.forwarded_allow_ips,
    }


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
    """The ASGI app ``reflectd dev`` serves (rebuilt by the reloader after a change), with the
    settings ``dev`` put in the environment."""
    settings = settings_from_environment("dev")
    _configure(settings.process.log_level, settings.process.log_format)
    return ReflectServer(_load(os.environ[DEV_APP_ENV], settings, dev=True), settings.server).asgi


cli.add_typer(keys, name="keys")
cli.add_typer(rooms, name="rooms")
cli.add_typer(connections, name="connections")
cli.command()(backup)
cli.add_typer(webhooks, name="webhooks")
admin_command(cli, "tail", *REST, "as_json")(tail)


@cli.command()
def version() -> None:
    """Print reflectd's version."""
    typer.echo(__version__)


def _load(spec: str, settings: Settings, *, dev: bool = False) -> App:
    try:
        return load_app(spec, dev=dev, engine=settings.server.engine, js_limits=settings.js)
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

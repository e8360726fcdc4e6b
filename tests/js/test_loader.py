"""Loading a server module as an App (loader.py, reflectd.loader.load_app, ``reflectd serve``):
its env, its options reaching the server, and the one line a module that cannot load gets."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reflectd.app import App
from reflectd.engine.handlers import EngineSettings
from reflectd.js import JsRuntime, load_server_module
from reflectd.js.loader import ServerModuleError
from reflectd.loader import AppLoadError, load_app
from reflectd.server.settings import ServerSettings
from tests.server.harness import connect_params, serve

from .harness import APPS, JsRoom

pytestmark = pytest.mark.usefixtures("node_ready")

REFLECTD = Path(sys.executable).parent / "reflectd"


@pytest.fixture
def load() -> Iterator[type[App]]:
    """``load_server_module`` for an app under tests/js/apps; its runtime closed after."""
    apps: list[App] = []

    def loaded(name: str) -> App:
        app = load_server_module(str(APPS / name), max_key_bytes=2048, max_value_bytes=131072)
        apps.append(app)
        return app

    yield loaded  # type: ignore[misc]
    for app in apps:
        assert isinstance(app.runtime, JsRuntime)
        app.runtime.close()


def runtime(app: App) -> JsRuntime:
    assert isinstance(app.runtime, JsRuntime)
    return app.runtime


def test_env_comes_from_reflectd_var_variables(
    load: type[App], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFLECTD_VAR_API_URL", "https://api.example")
    monkeypatch.setenv("REFLECTD_VAR_LOG_LEVEL", "debug")
    monkeypatch.setenv("NOT_A_VAR", "hidden")

    app = load("transaction.ts")

    assert dict(app.env) == {"API_URL": "https://api.example", "LOG_LEVEL": "debug"}
    out = JsRoom(runtime(app)).out("txInfo")
    assert out["env"] == {"API_URL": "https://api.example", "LOG_LEVEL": "debug"}


def test_the_env_reaches_make_options(load: type[App], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFLECTD_VAR_LOG_LEVEL", "error")
    assert runtime(load("builder.ts")).shape.log_level == "error"


def test_load_app_names_a_server_module_by_its_extension() -> None:
    app = load_app(str(APPS / "handlers.ts"), engine=EngineSettings())
    try:
        assert app.auth_handler is not None
        assert runtime(app).mutator_names == {"putPresence", "saveAuth"}
    finally:
        runtime(app).close()


def test_a_missing_module_file_is_refused() -> None:
    with pytest.raises(ServerModuleError, match="no such file"):
        load_server_module(str(APPS / "nothing.ts"), max_key_bytes=1, max_value_bytes=1)
    with pytest.raises(AppLoadError, match=r"broken/syntax\.ts|syntax\.ts:3:28"):
        load_app(str(APPS / "broken" / "syntax.ts"))


@pytest.mark.anyio
async def test_max_mutations_per_turn_reaches_the_rooms_engine_settings(load: type[App]) -> None:
    async with serve(load("builder.ts"), ServerSettings(db="memory://")) as server:
        assert server.server.registry is not None
        actor = await server.server.registry.actor("r1")
        assert actor.room.settings.max_mutations_per_turn == 7


@pytest.mark.anyio
async def test_through_a_socket_auth_fields_reach_mutators_and_disconnect_runs(
    load: type[App],
) -> None:
    async with serve(load("handlers.ts"), ServerSettings(db="memory://")) as server:
        client = await server.connect("c1", room_id="lobby", user_id="alice", protocol="alice")
        await client.mutate("saveAuth")
        await client.mutate("putPresence")
        auth = client.data["auth"]
        other = await server.connect("c2", room_id="lobby", user_id="bob", protocol="bob")
        await client.close()
        await other.sync_until(lambda c: "presence/c1" not in c.data)

        values = await server.values("lobby")

    assert auth == {
        "userID": "alice",
        "roomID": "lobby",
        "role": "admin",
        "tags": ["a", "b"],
        "region": None,
    }
    assert values["seeded"] == {"roomID": "lobby", "clientID": ""}
    assert "presence/c1" not in values


@pytest.mark.anyio
async def test_through_a_socket_auth_handler_refusals_carry_their_reason(
    load: type[App],
) -> None:
    async with serve(load("handlers.ts"), ServerSettings(db="memory://")) as server:
        await server.refused(connect_params(client_id="n"), "Unauthorized", protocol="null")
        reason = await (await server.open(connect_params(client_id="t"), protocol="throw")).recv()

    assert reason == ["error", "Unauthorized", "authHandler rejected: TypeError: bad token for r1"]


def test_allow_unconfirmed_writes_is_logged_as_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    module = tmp_path / "unconfirmed.ts"
    module.write_text("export default {mutators: {}, allowUnconfirmedWrites: true};\n")
    caplog.set_level(logging.INFO, logger="reflectd.js.loader")

    app = load_server_module(str(module), max_key_bytes=2048, max_value_bytes=131072)
    runtime(app).close()

    assert "allowUnconfirmedWrites is ignored" in caplog.text


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("syntax.ts", 'syntax.ts:3:28: Unexpected ";"'),
        ("node_fs.ts", 'node_fs.ts:2:28: Could not resolve "node:fs"'),
        ("throws.ts", "Error: the module refuses to load"),
    ],
)
def test_reflectd_serve_of_a_module_that_cannot_load_prints_why_and_exits_2(
    tmp_path: Path, app: str, expected: str
) -> None:
    done = subprocess.run(
        [str(REFLECTD), "serve", str(APPS / "broken" / app), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {expected}"), done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / ".reflectd").exists()  # stopped before opening any storage

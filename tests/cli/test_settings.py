"""The settings of ``reflectd serve`` and ``reflectd dev``, derived from their declarations: a
flag wins over the environment, which wins over the default; ``dev`` hands every setting it
takes to its reloaded child process; the admin commands' defaults are the server's."""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer.main

from reflectd import cli as cli_module
from reflectd.cli import cli, dev_asgi_factory
from reflectd.cli_admin import DEFAULT_URL, Shared
from reflectd.cli_settings import (
    SETTINGS,
    Declared,
    Settings,
    environment_of,
    for_command,
    get,
    settings_from_environment,
    settings_from_options,
)
from reflectd.js import JsLimits
from reflectd.loader import load_app
from reflectd.server.rest.keys import ENV_KEY_NAME
from reflectd.server.settings import ServerSettings

APP = str(Path(__file__).resolve().parents[1] / "server" / "apps.py") + ":app"


@pytest.fixture(autouse=True)
def no_reflectd_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for d in SETTINGS:
        monkeypatch.delenv(d.env, raising=False)


def other_value(d: Declared, tmp_path: Path, n: int = 1) -> Any:
    """A value of setting ``d`` that is not its default (``n`` picks one of several)."""
    if d.info.folder:
        folder = tmp_path / f"{d.name}-{n}"
        folder.mkdir(exist_ok=True)
        return str(folder.resolve())
    if d.type is int:
        return d.default + 7 * n
    if isinstance(d.type, type) and issubclass(d.type, Enum):
        return [v for v in d.type if v != d.default][n % (len(d.type) - 1)]
    return f"{d.name}-{n}"


def parsed(command: str, args: list[str]) -> Settings:
    """The settings ``reflectd COMMAND APP ARGS`` runs with (parsed, not run)."""
    click_command = typer.main.get_command(cli).commands[command]  # type: ignore[attr-defined]
    context = click_command.make_context(command, [APP, *args])
    values = {k: v for k, v in context.params.items() if k != "app"}
    return settings_from_options(values)


@pytest.mark.parametrize("command", ["serve", "dev"])
def test_a_flag_wins_over_the_environment_which_wins_over_the_default(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = [d for d in for_command(command) if d.info.flag]
    defaults = parsed(command, [])
    for d in declared:
        assert get(defaults, d) == d.default, d.name
        monkeypatch.setenv(d.env, str(other_value(d, tmp_path, 1)))
    from_environment = parsed(command, [])
    flags = [a for d in declared for a in (d.flag, str(other_value(d, tmp_path, 2)))]
    from_flags = parsed(command, flags)
    for d in declared:
        assert get(from_environment, d) == other_value(d, tmp_path, 1), d.name
        assert get(from_flags, d) == other_value(d, tmp_path, 2), d.name


def test_the_api_key_is_read_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parsed("serve", []).server.api_key is None
    monkeypatch.setenv(ENV_KEY_NAME, "secret")
    assert parsed("serve", []).server.api_key == "secret"
    assert "secret" not in repr(parsed("serve", []))


def test_dev_hands_every_setting_it_takes_to_its_child_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {d.name: other_value(d, tmp_path) for d in for_command("dev") if d.info.flag}
    settings = settings_from_options(values)
    for name, value in environment_of(settings, "dev").items():
        assert value is not None, name
        monkeypatch.setenv(name, value)
    assert settings_from_environment("dev") == settings
    # the cluster settings are serve's only
    assert {"node_id", "advertise_url", "lease_ms"} <= {d.name for d in for_command("serve")}
    assert not {"node_id", "advertise_url", "lease_ms"} & {d.name for d in for_command("dev")}


def test_dev_removes_the_variable_of_a_setting_it_was_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = environment_of(Settings(), "dev")
    assert environment["REFLECTD_STATIC_DIR"] is None
    assert environment["REFLECTD_DB"] == ServerSettings().db


def test_devs_child_loads_the_app_with_the_js_limits_and_engine_settings_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(cli_module.DEV_APP_ENV, APP)
    monkeypatch.setenv("REFLECTD_DB", "memory://")
    monkeypatch.setenv("REFLECTD_JS_CPU_LIMIT_MS", "77")
    monkeypatch.setenv("REFLECTD_JS_HEAP_LIMIT_MB", "99")
    monkeypatch.setenv("REFLECTD_MAX_KEY_BYTES", "123")
    loaded: list[dict[str, Any]] = []

    def load(spec: str, **kwargs: Any) -> Any:
        loaded.append(kwargs)
        return load_app(spec)

    monkeypatch.setattr(cli_module, "load_app", load)
    monkeypatch.setattr(cli_module, "_configure", lambda level, log_format: None)
    assert dev_asgi_factory() is not None
    [kwargs] = loaded
    assert kwargs["dev"] is True
    assert kwargs["js_limits"] == JsLimits(cpu_limit_ms=77, heap_limit_mb=99)
    assert kwargs["engine"] == replace(ServerSettings().engine, max_key_bytes=123)


def test_the_admin_commands_defaults_are_the_servers() -> None:
    server = Settings()
    assert Shared().db == server.server.db
    assert Shared().app_id == server.server.app_id
    assert f"http://{server.process.host}:{server.process.port}" == DEFAULT_URL
    assert [d.env for d in SETTINGS if d.name == "api_key"] == [ENV_KEY_NAME]


def test_every_setting_has_help_and_a_variable_of_its_own() -> None:
    assert len({d.env for d in SETTINGS}) == len(SETTINGS)
    for d in SETTINGS:
        assert d.info.help.endswith((".", ")")), d.name
        assert d.env == "REFLECTD_" + d.flag[2:].replace("-", "_").upper()

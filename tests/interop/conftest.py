"""Fixtures for the interop tests: the real @rocicorp/reflect client under Node against a server.

Target: ``REFLECTD_INTEROP_TARGET=reflectd`` (default: ``reflectd serve tests/interop/app.py:app``)
or ``original`` (the original server, ``bench/node/original.mjs`` serving
``tests/interop/app/index.ts``; ``bench/bootstrap-node`` installs it). Without Node >= 20 the
tests skip, unless
``REFLECTD_REQUIRE_INTEROP=1`` (CI), where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .harness import (
    DRIVER,
    NODE_DIR,
    REPO_ROOT,
    VERSIONS_DIR,
    NodeClients,
    ServerProcess,
    ServerStartError,
    client_versions,
    free_port,
    interop_target,
    server_command,
)

REQUIRE = os.environ.get("REFLECTD_REQUIRE_INTEROP", "") == "1"
_timings: list[str] = []


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason}\n(REFLECTD_REQUIRE_INTEROP=1: the interop tests must run)", False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_ready() -> str:
    """Node >= 20 with tests/interop/node/node_modules installed (scripts/bootstrap-node)."""
    node = shutil.which("node")
    if node is None:
        _unavailable("interop tests need Node >= 20 on PATH (node not found)")
        raise AssertionError("unreachable")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    match = re.match(r"v(\d+)", version)
    if not match or int(match.group(1)) < 20:
        _unavailable(f"interop tests need Node >= 20 (found {version or 'unknown'})")
    bootstrap = subprocess.run(
        [str(REPO_ROOT / "scripts" / "bootstrap-node")], capture_output=True, text=True
    )
    if bootstrap.returncode != 0:
        _unavailable(
            f"scripts/bootstrap-node failed (exit {bootstrap.returncode}):\n"
            f"{bootstrap.stdout}{bootstrap.stderr}"
        )
    if not (NODE_DIR / "node_modules" / "@rocicorp" / "reflect").is_dir():
        _unavailable(
            "tests/interop/node/node_modules lacks @rocicorp/reflect: run scripts/bootstrap-node"
        )
    assert DRIVER.exists()
    return node


@pytest.fixture(scope="session")
def versions_ready(node_ready: str) -> dict[str, str]:
    """The client version matrix (alias -> version), installed in tests/interop/versions."""
    versions = client_versions()
    missing = [
        alias
        for alias in versions
        if not (VERSIONS_DIR / "node_modules" / alias / "client.js").is_file()
    ]
    if missing:
        _unavailable(
            f"tests/interop/versions/node_modules lacks {', '.join(missing)}: "
            "run scripts/bootstrap-node"
        )
    return versions


@pytest.fixture(scope="session")
def target() -> str:
    return interop_target()


#: reflectd serves the test app in both forms: Python, and a Reflect server module (TypeScript)
APP_FORMS = ["python", "typescript"] if interop_target() == "reflectd" else ["original"]


@pytest.fixture(scope="session", params=APP_FORMS)
def app_form(request: pytest.FixtureRequest) -> str:
    """Which form of the test app the server runs (every server test runs with each)."""
    form: str = request.param
    return form


def _make_server(
    target: str, base: Path, *, auth: bool, app_form: str, env: dict[str, str] | None = None
) -> ServerProcess:
    port = free_port()
    try:
        argv, cwd, hint = server_command(
            target, port=port, data_dir=base / "data", auth=auth, app_form=app_form
        )
    except ServerStartError as exc:
        problem = str(exc)
    else:
        return ServerProcess(
            target,
            argv,
            port=port,
            cwd=cwd,
            log_path=base / "server.log",
            env=env,
            hint=hint,
            data_dir=base / "data",
        )
    pytest.fail(problem, pytrace=False)


def _start(proc: ServerProcess) -> ServerProcess:
    try:
        return proc.start()
    except ServerStartError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def server(node_ready: str, target: str, app_form: str, tmp_path_factory: pytest.TempPathFactory):
    """One server (the app with its auth handler) shared by the tests; each uses its own rooms."""
    proc = _make_server(target, tmp_path_factory.mktemp("server"), auth=True, app_form=app_form)
    try:
        yield _start(proc)
    finally:
        proc.stop()


@pytest.fixture
def start_server(
    node_ready: str, target: str, app_form: str, tmp_path: Path
) -> Iterator[Callable[..., ServerProcess]]:
    """Starts a server of its own for one test (to restart or kill it)."""
    started: list[ServerProcess] = []

    def start(*, auth: bool = True, env: dict[str, str] | None = None) -> ServerProcess:
        proc = _make_server(
            target, tmp_path / f"server{len(started)}", auth=auth, app_form=app_form, env=env
        )
        started.append(proc)
        return _start(proc)

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def clients(node_ready: str, tmp_path: Path) -> Iterator[NodeClients]:
    driver = NodeClients(log_path=tmp_path / "driver.log")
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture
def room(request: pytest.FixtureRequest) -> str:
    """A room id unique to this test (and run)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:60]
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def record_timing(target: str) -> Callable[[str], None]:
    """Records a line for the end-of-run summary (round trips, durations)."""

    def record(line: str) -> None:
        _timings.append(f"[{target}] {line}")
        print(line)

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _timings:
        terminalreporter.section("interop timings")
        for line in _timings:
            terminalreporter.write_line(line)

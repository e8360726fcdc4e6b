"""Fixtures for the dashboard's browser tests: a ``reflectd serve`` process with keys of
different permissions, and Debian's chromium driven by Playwright.

Without chromium (``apt-get install chromium``) the tests skip, unless
``REFLECTD_REQUIRE_BROWSER=1`` (CI, ``.ci/run``), where that is a failure. The live-contents
test drives the real ``@rocicorp/reflect`` client (the interop tests' Node driver), with the
interop tests' rule: skipped without Node unless ``REFLECTD_REQUIRE_INTEROP=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.interop.harness import NODE_DIR, NodeClients, free_port

REQUIRE_BROWSER = os.environ.get("REFLECTD_REQUIRE_BROWSER", "") == "1"
REQUIRE_NODE = os.environ.get("REFLECTD_REQUIRE_INTEROP", "") == "1"
REFLECTD = str(Path(sys.executable).with_name("reflectd"))
REPO_ROOT = Path(__file__).resolve().parents[2]
APP = f"{REPO_ROOT / 'tests' / 'interop' / 'app.py'}:noauth_app"
#: the screenshots of docs/dashboard.md, remade by every run
SCREENSHOTS = REPO_ROOT / "docs" / "dashboard"
ADMIN_KEY = "dashboard-admin-key"


def _unavailable(reason: str, required: bool, variable: str) -> None:
    if required:
        pytest.fail(f"{reason}\n({variable}=1: these tests must run)", False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Server:
    url: str
    db: Path

    def create_key(self, name: str, *permissions: str) -> str:
        options = [arg for p in permissions for arg in ("-p", p)]
        made = subprocess.run(
            [REFLECTD, "keys", "create", name, *options, "--db", str(self.db)],
            capture_output=True,
            text=True,
            env=_clean_env(),
            check=True,
        )
        return made.stdout.strip().splitlines()[-1]

    def edit_key(self, name: str, *permissions: str) -> None:
        options = [arg for p in permissions for arg in ("-p", p)]
        subprocess.run(
            [REFLECTD, "keys", "edit", name, *options, "--db", str(self.db)],
            capture_output=True,
            env=_clean_env(),
            check=True,
        )

    def delete_key(self, name: str) -> None:
        subprocess.run(
            [REFLECTD, "keys", "delete", name, "--db", str(self.db)],
            capture_output=True,
            env=_clean_env(),
            check=True,
        )

    def rest(self, method: str, path: str, **params: str) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}/v1/apps/default{path}",
            params=params,
            headers={"Authorization": f"Basic {ADMIN_KEY}"},
            content=b"{}" if path.endswith(":create") else b"",
        )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REFLECTD_")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``reflectd serve`` with the interop tests' app (no auth handler) and an admin key in
    its environment (every permission). Module-scoped, like the browser: both end before the
    rest of the suite runs (Playwright's sync API keeps an event loop of its own)."""
    base = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    db = base / "reflectd.sqlite3"
    log = (base / "reflectd.log").open("w")
    process = subprocess.Popen(
        [REFLECTD, "serve", APP, "--host", "127.0.0.1", "--port", str(port), "--db", str(db)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**_clean_env(), "REFLECTD_API_KEY": ADMIN_KEY},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"reflectd did not start:\n{(base / 'reflectd.log').read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        yield Server(url, db)
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium")
    if chromium is None:
        _unavailable(
            "the dashboard tests need Debian's chromium (apt-get install chromium)",
            REQUIRE_BROWSER,
            "REFLECTD_REQUIRE_BROWSER",
        )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # loaded CI machines

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: object, server: Server) -> Iterator[object]:
    """A fresh tab (its own session storage) at the dashboard, laptop-sized."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1280, "height": 760})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.goto(f"{server.url}/dashboard/")
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[NodeClients]:
    """The real Reflect client, under Node (the interop tests' driver)."""
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "@rocicorp").is_dir():
        _unavailable(
            "the live-contents test needs Node and the interop client (scripts/bootstrap-node)",
            REQUIRE_NODE,
            "REFLECTD_REQUIRE_INTEROP",
        )
    driver = NodeClients(log_path=tmp_path / "driver.log")
    try:
        yield driver
    finally:
        driver.stop()

"""Fixtures for the JS runtime tests: Node >= 20 with the runtime's esbuild, or a skip (a
failure when ``REFLECTD_REQUIRE_INTEROP=1``, as in CI)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reflectd.js import JsRuntime

from .harness import check_node, start_runtime


@pytest.fixture(scope="session")
def node_ready() -> str:
    return check_node()


@pytest.fixture
def runtime_of(node_ready: str) -> Iterator[Callable[..., JsRuntime]]:
    """Starts a runtime for an app (see ``start_runtime``); closes it after the test."""
    started: list[JsRuntime] = []

    def start(app: Any, **kwargs: Any) -> JsRuntime:
        runtime = start_runtime(app, **kwargs)
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

"""Fixtures for the server tests: a live reflectd on a free port, per test."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from reflectd import App, WriteTransaction

from .harness import Harness, serve


def put(tx: WriteTransaction, args: dict[str, Any]) -> None:
    tx.set(args["key"], args["value"])


def delete(tx: WriteTransaction, args: dict[str, Any]) -> None:
    tx.delete(args["key"])


def fail(tx: WriteTransaction, args: Any) -> None:
    tx.set("partial", True)
    raise RuntimeError("this mutator always fails")


def save_auth(tx: WriteTransaction, args: Any) -> None:
    tx.set("auth", dict(tx.auth or {}))


MUTATORS = {"put": put, "delete": delete, "fail": fail, "saveAuth": save_auth}


def make_app(**kwargs: Any) -> App:
    """An app with the test mutators (``put``, ``delete``, ``fail``, ``saveAuth``)."""
    return App(mutators=MUTATORS, env={}, **kwargs)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def server() -> AsyncIterator[Harness]:
    """reflectd with the test mutators, no auth handler, in-memory storage."""
    async with serve(make_app()) as harness:
        yield harness


class _Crashes(logging.Handler):
    """Collects what uvicorn logs when the ASGI app raises: a crash of the server."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "Exception in ASGI application" in record.getMessage():
            self.records.append(record)


@pytest.fixture(autouse=True)
def no_unhandled_exceptions() -> Iterator[None]:
    """Every server test fails if an exception escaped the ASGI app."""
    crashes = _Crashes()
    uvicorn_logger = logging.getLogger("uvicorn.error")
    uvicorn_logger.addHandler(crashes)
    try:
        yield
    finally:
        uvicorn_logger.removeHandler(crashes)
    assert not crashes.records, [crashes.format(r) for r in crashes.records]

"""The app the CLI tests serve: ``reflectd serve tests/server/apps.py:app``."""

from __future__ import annotations

import time
from typing import Any

from reflectd import App, WriteTransaction


def put(tx: WriteTransaction, args: dict[str, Any]) -> None:
    tx.set(args["key"], args["value"])


def slow_put(tx: WriteTransaction, args: dict[str, Any]) -> None:
    """``put`` after ``seconds`` (a turn still running when the server is told to stop)."""
    time.sleep(args["seconds"])
    tx.set(args["key"], args["value"])


app = App(mutators={"put": put, "slowPut": slow_put}, env={})

not_an_app = 42

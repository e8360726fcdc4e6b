"""Apps for `reflectd serve` in the hostile-client tests.

reflectd serve tests/reliability/apps.py:secret_app  # tokens are not userIDs
reflectd serve tests/reliability/apps.py:plain_app   # no auth handler
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reflectd import App

#: token -> userID; any other token is refused, ``raise-...`` tokens make the handler raise
TOKENS = {"tok-GOOD-7f3a9c1e5b2d4e6f8a0b": "alice"}


def auth_handler(token: str, room_id: str, env: Mapping[str, str]) -> dict[str, Any] | None:
    if token.startswith("tok-RAISE"):
        raise PermissionError("this token is not welcome")
    user = TOKENS.get(token)
    return None if user is None else {"userID": user, "role": "editor"}


def put(tx: Any, args: Mapping[str, Any]) -> None:
    tx.set(args["key"], args["value"])


def fail(tx: Any, args: Any) -> None:
    raise RuntimeError("this mutator always fails")


def save_auth(tx: Any, args: Any) -> None:
    tx.set("auth", dict(tx.auth or {}))


MUTATORS = {"put": put, "fail": fail, "saveAuth": save_auth}
secret_app = App(mutators=MUTATORS, auth_handler=auth_handler)
plain_app = App(mutators=MUTATORS)

"""The reference app (/work/shared/reference: src/mutators.js, reflect-server/index.ts and
noauth.ts) ported to reflectd, for the interop tests:

    reflectd serve tests/interop/app.py:app         # token must equal the userID
    reflectd serve tests/interop/app.py:noauth_app  # no auth handler

The client (tests/interop/node/driver.mjs) has one more mutator, ``clientOnly``, that this app
deliberately lacks: the server must skip it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reflectd import App


def _is_number(value: Any) -> bool:
    # JS `typeof value === 'number'`: booleans are not numbers there
    return isinstance(value, int | float) and not isinstance(value, bool)


def increment(tx: Any, args: Mapping[str, Any]) -> None:
    prev = tx.get(args["key"])
    tx.set(args["key"], (prev if _is_number(prev) else 0) + args["delta"])


def set_key(tx: Any, args: Mapping[str, Any]) -> None:
    tx.set(args["key"], args["value"])


def del_key(tx: Any, args: Mapping[str, Any]) -> None:
    tx.delete(args["key"])


def append_to_list(tx: Any, args: Mapping[str, Any]) -> None:
    prev = tx.get(args["key"])
    tx.set(args["key"], [*(prev if isinstance(prev, list) else []), args["item"]])


def throw_on_server(tx: Any, args: Mapping[str, Any]) -> None:
    """Writes optimistically on the client, raises here: the server skips the mutation."""
    tx.set(args["key"], args["value"])
    if tx.location == "server":
        raise RuntimeError("intentional server-side failure in throwOnServer")


def always_throws(tx: Any, args: Mapping[str, Any]) -> None:
    """Throws on the client too, so the client never sends it."""
    raise RuntimeError((args or {}).get("message") or "intentional failure in alwaysThrows")


def echo(tx: Any, args: Mapping[str, Any]) -> None:
    tx.set(args["key"], {"seq": args["seq"], "loc": tx.location, "clientID": tx.client_id})


MUTATORS = {
    "increment": increment,
    "setKey": set_key,
    "delKey": del_key,
    "appendToList": append_to_list,
    "throwOnServer": throw_on_server,
    "alwaysThrows": always_throws,
    "echo": echo,
}


def auth_handler(auth: str, room_id: str, env: Mapping[str, str]) -> dict[str, Any] | None:
    """Same contract as the `reflect create` template: the token is the userID;
    the token ``reject-me`` is refused."""
    if auth and auth != "reject-me":
        return {"userID": auth}
    return None


app = App(mutators=MUTATORS, auth_handler=auth_handler)
noauth_app = App(mutators=MUTATORS)

"""The benchmark app's mutators (bench/node/mutators.js, which the client runs) on reflectd:
the same work per mutation as the original server does serving bench/reflect/index.ts
(no auth handler).

    reflectd serve bench/app.py:app --port 8080 --db /tmp/bench.sqlite3
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
    """Records where the value was computed: the benchmark's confirmation signal."""
    tx.set(args["key"], {"seq": args["seq"], "loc": tx.location, "clientID": tx.client_id})


def fill(tx: Any, args: Mapping[str, Any]) -> None:
    """Writes ``count`` keys ``prefix`` + six digits, each a string of ``bytes`` characters
    (the big-room benchmarks)."""
    value = "x" * args["bytes"]
    for i in range(args["start"], args["start"] + args["count"]):
        tx.set(f"{args['prefix']}{i:06d}", value)


MUTATORS = {
    "increment": increment,
    "setKey": set_key,
    "delKey": del_key,
    "appendToList": append_to_list,
    "throwOnServer": throw_on_server,
    "alwaysThrows": always_throws,
    "echo": echo,
    "fill": fill,
}

app = App(mutators=MUTATORS)

#: the same app with ``smooth_playback=False`` (pokes without playback timestamps), to
#: measure what the client's playback buffer costs:
#: ``reflectd serve bench/app.py:app_unsmoothed``
app_unsmoothed = App(mutators=MUTATORS, smooth_playback=False)

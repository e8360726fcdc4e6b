"""The interop tests' app (the mutators of bench/node/mutators.js and the auth handler of
tests/interop/app/index.ts; noauth.ts leaves it out) ported to reflectd:

    reflectd serve tests/interop/app.py:app         # token must equal the userID
    reflectd serve tests/interop/app.py:noauth_app  # no auth handler

The client (tests/interop/node/driver.mjs) has one more mutator, ``clientOnly``, that this app
deliberately lacks: the server must skip it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reflectd import App

# the mutators, ported once, in bench/app.py (this file is loaded by path)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.app import MUTATORS


def auth_handler(auth: str, room_id: str, env: Mapping[str, str]) -> dict[str, Any] | None:
    """Same contract as the `reflect create` template: the token is the userID;
    the token ``reject-me`` is refused."""
    if auth and auth != "reject-me":
        return {"userID": auth}
    return None


app = App(mutators=MUTATORS, auth_handler=auth_handler)
noauth_app = App(mutators=MUTATORS)

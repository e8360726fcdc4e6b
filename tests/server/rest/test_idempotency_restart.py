"""An idempotency key outlives a restart of the server (it is stored with the mutation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import in_process

pytestmark = pytest.mark.anyio


async def test_an_idempotency_key_is_remembered_across_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "reflectd.sqlite3")
    call = {
        "body": '{"name": "increment", "args": "runs"}',
        "extra_headers": {"Idempotency-Key": "nightly-2026-12-08"},
    }
    async with in_process(db) as rest:
        await rest.create("r")
        first = await rest.ok("apps", "POST", "rooms:mutate", {"roomID": "r"}, **call)
    async with in_process(db) as rest:
        again = await rest.ok("apps", "POST", "rooms:mutate", {"roomID": "r"}, **call)
        assert again == {"version": first["version"], "replayed": True}
        contents = await rest.ok("apps", "GET", "rooms/contents", {"roomID": "r"})
        assert contents == {"contents": {"runs": 1}}

"""One caller's bad data never stops a room (issue: a close beacon with a huge
``lastMutationID`` used to fail the commit and close every socket of the room).

The edge refuses integers outside JavaScript's safe range; behind it, a commit that fails
because of one call's data fails only that call, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reflectd.errors import StorageError
from reflectd.storage import PostgresStore, SQLiteStore
from reflectd.storage.base import Backend
from storage.conftest import POSTGRES_URL, drop_schema, new_schema, require_postgres

from .conftest import make_app
from .harness import Client, Harness, serve

pytestmark = pytest.mark.anyio

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
MAX_SAFE = 2**53 - 1


@pytest.fixture(params=BACKENDS)
async def durable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """reflectd on SQLite or on PostgreSQL (a fresh schema, dropped afterwards)."""
    schema = None
    store: Backend
    if request.param == "postgres":
        await require_postgres()
        schema = new_schema()
        store = PostgresStore(POSTGRES_URL, schema=schema)
    else:
        store = SQLiteStore(tmp_path / "reflectd.sqlite3")
    try:
        async with serve(make_app(), store=store) as harness:
            yield harness
    finally:
        if schema is not None:
            await drop_schema(schema)


async def room_of_three(server: Harness) -> tuple[Client, Client, Client]:
    """alice and bob, and c1 (user u1) who will misbehave; all connected and synced."""
    alice = await server.connect("alice")
    bob = await server.connect("bob")
    c1 = await server.connect("c1", user_id="u1")
    await alice.mutate("put", {"key": "a", "value": 1})
    for client in (bob, c1):
        await client.sync_until(lambda c: c.data == {"a": 1})
    return alice, bob, c1


async def still_served(alice: Client, *others: Client, value: int = 2) -> None:
    """alice's next mutation reaches every other client: nobody was disconnected."""
    await alice.mutate("put", {"key": "a", "value": value})
    for client in others:
        await client.sync_until(lambda c: c.data.get("a") == value)


@pytest.mark.parametrize("last_mutation_id", [2**63, MAX_SAFE + 1, -1, 2**64, 10**30])
async def test_a_beacon_with_an_unsafe_last_mutation_id_is_refused_and_the_room_keeps_its_clients(
    durable: Harness, last_mutation_id: int
) -> None:
    alice, bob, c1 = await room_of_three(durable)
    async with durable.http() as http:
        response = await http.post(
            "/api/sync/v1/close",
            params={"roomID": "r1", "userID": "u1", "clientID": "c1"},
            content=b'{"lastMutationID":%d}' % last_mutation_id,
        )
    assert response.status_code == 400
    bound = "<= 9007199254740991" if last_mutation_id > 0 else ">= 0"
    assert response.json()["error"]["message"] == (
        f"Body schema error. Expected `int` {bound} - at `$.lastMutationID`"
    )
    await still_served(alice, bob, c1)
    assert (await durable.snapshot()).clients["c1"].last_mutation_id_at_close is None


async def test_a_beacon_at_the_safe_bound_is_accepted(durable: Harness) -> None:
    alice, bob, c1 = await room_of_three(durable)
    async with durable.http() as http:
        response = await http.post(
            "/api/sync/v1/close",
            params={"roomID": "r1", "userID": "u1", "clientID": "c1"},
            content=b'{"lastMutationID":%d}' % MAX_SAFE,
        )
    assert (response.status_code, response.text) == (200, "Client is still connected")
    await still_served(alice, bob, c1)
    assert (await durable.snapshot()).clients["c1"].last_mutation_id_at_close == MAX_SAFE


async def test_a_call_whose_data_the_storage_refuses_fails_alone_and_no_socket_closes(
    durable: Harness,
) -> None:
    """Behind the edge: a call that writes a value no int64 column holds (what the beacon
    did before its body was checked) gets the storage's error; the room goes on."""
    alice, bob, c1 = await room_of_three(durable)
    assert durable.server.registry is not None
    actor = durable.server.registry.actors["r1"]
    with pytest.raises(StorageError):
        await actor.call(lambda room: room.close_beacon("c1", 2**63, user_id="u1"))
    await still_served(alice, bob, c1)
    await still_served(c1, alice, bob, value=3)
    record = (await durable.snapshot()).clients["c1"]
    assert record.last_mutation_id_at_close is None
    assert record.last_mutation_id == 1


async def test_a_nul_in_the_beacons_query_is_refused_on_every_backend(durable: Harness) -> None:
    alice, bob, c1 = await room_of_three(durable)
    async with durable.http() as http:
        for name in ("roomID", "userID", "clientID"):
            params = {"roomID": "r1", "userID": "u1", "clientID": "c1", name: "r\x001"}
            response = await http.post(
                "/api/sync/v1/close", params=params, content=b'{"lastMutationID":1}'
            )
            assert response.status_code == 400, response.text
            assert response.json()["error"]["message"] == (
                f"Query string error. Invalid character (NUL) at {name}"
            )
    await still_served(alice, bob, c1)

"""Webhooks end to end: a live reflectd, real actions, a real HTTP receiver that verifies the
signatures with the ``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from reflectd.server.settings import ServerSettings, WebhookSettings
from reflectd.server.webhooks.endpoints import new_endpoint
from reflectd.storage import MemoryStore, PostgresStore, SQLiteStore
from reflectd.storage.base import Backend
from reflectd.storage.webhooks import EVENT_TYPES, WebhookEndpoint
from tests.storage.conftest import POSTGRES_URL, drop_schema, new_schema, require_postgres
from tests.webhook_receiver import Receiver, free_port, receiving

from .conftest import make_app
from .harness import Harness, serve, wait_until

pytestmark = pytest.mark.anyio

API_KEY = "webhooks-test-key"
FAST = WebhookSettings(
    webhook_changed_interval_ms=0,
    webhook_poll_ms=50,
    webhook_retry_base_ms=100,
    webhook_retry_max_ms=200,
    webhook_timeout_ms=2000,
)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


async def subscribe(harness: Harness, url: str, *types: str) -> WebhookEndpoint:
    """Add an endpoint and wait until the server knows of it (its next poll)."""
    endpoint = new_endpoint(url, types or EVENT_TYPES, now_ms=int(time.time() * 1000))
    await harness.store.add_webhook_endpoint(endpoint)  # type: ignore[attr-defined]
    hooks = harness.server.registry.webhooks  # type: ignore[union-attr]
    await wait_until(lambda: set(endpoint.event_types) <= hooks.subscribed)
    return endpoint


def settings(**webhooks: int) -> ServerSettings:
    return ServerSettings(db="memory://", api_key=API_KEY, webhooks=replace(FAST, **webhooks))


async def rest(harness: Harness, command: str, room_id: str) -> None:
    async with harness.http() as http:
        response = await http.post(
            f"/v1/apps/default/{command}",
            params={"roomID": room_id},
            headers={"Authorization": f"Basic {API_KEY}"},
            content=b"{}" if command == "rooms:create" else None,
        )
    assert response.status_code == 200, response.text


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A SQLite or PostgreSQL store, not open yet (the server opens it)."""
    if request.param == "sqlite":
        yield SQLiteStore(tmp_path / "reflectd.sqlite3")
        return
    await require_postgres()
    schema = new_schema()
    yield PostgresStore(POSTGRES_URL, schema=schema)
    await drop_schema(schema)


async def test_every_event_type_arrives_signed_with_its_data(
    sql_store: Backend, receiver: Receiver
) -> None:
    async with serve(make_app(), settings(), store=sql_store) as harness:
        endpoint = await subscribe(harness, receiver.url())
        await rest(harness, "rooms:create", "r1")
        client = await harness.connect("c1", room_id="r1", user_id="alice")
        await client.mutate("put", {"key": "a", "value": 1})
        await client.close()
        await receiver.wait_for(1, type="client.disconnected")
        await rest(harness, "rooms:close", "r1")
        await rest(harness, "rooms:delete", "r1")
        await receiver.wait_for(1, type="room.deleted")
    verified = [r.verify(endpoint.secret) for r in receiver.received]
    assert [e["type"] for e in verified] == [
        "room.created",
        "client.connected",
        "room.changed",
        "client.disconnected",
        "room.closed",
        "room.deleted",
    ]
    by_type = {e["type"]: e["data"] for e in verified}
    assert by_type["room.created"] == {"roomID": "r1", "jurisdiction": ""}
    assert by_type["client.connected"] == {"roomID": "r1", "clientID": "c1", "userID": "alice"}
    assert by_type["client.disconnected"] == by_type["client.connected"]
    assert by_type["room.changed"]["roomID"] == "r1"
    assert by_type["room.changed"]["version"] >= 1
    assert by_type["room.closed"] == by_type["room.deleted"] == {"roomID": "r1"}
    assert all(e["timestamp"].endswith("Z") for e in verified)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 6


async def test_a_signature_made_with_another_secret_does_not_verify(receiver: Receiver) -> None:
    async with serve(make_app(), settings()) as harness:
        await subscribe(harness, receiver.url(), "room.created")
        await rest(harness, "rooms:create", "r1")
        await receiver.wait_for(1)
    other = new_endpoint(receiver.url(), ["room.created"], now_ms=0).secret
    with pytest.raises(Exception, match="signature"):
        receiver.received[0].verify(other)


async def test_room_changed_is_throttled_and_carries_the_latest_version(
    receiver: Receiver,
) -> None:
    async with serve(make_app(), settings(webhook_changed_interval_ms=400)) as harness:
        await subscribe(harness, receiver.url(), "room.changed")
        client = await harness.connect("c1")
        for i in range(6):
            await client.mutate("put", {"key": "a", "value": i})
        version = client.cookie
        await receiver.wait_for(2)
        await client.mutate("put", {"key": "a", "value": 99})
        await receiver.wait_for(3)
    changed = receiver.events()
    assert changed[1]["data"]["version"] == version
    assert changed[2]["data"]["version"] == client.cookie
    first, second, third = (r.at for r in receiver.received)
    assert second - first >= 0.3 and third - second >= 0.3


async def test_a_receiver_that_is_down_gets_the_event_once_it_is_up() -> None:
    port = free_port()
    async with serve(make_app(), settings()) as harness:
        endpoint = await subscribe(harness, f"http://127.0.0.1:{port}/hooks", "room.created")
        await rest(harness, "rooms:create", "r1")
        store = harness.store

        async def attempted_twice() -> bool:
            log = await store.list_webhook_deliveries(limit=10)  # type: ignore[attr-defined]
            return bool(log) and log[0].attempts >= 2

        await wait_until(attempted_twice)
        [failing] = await store.list_webhook_deliveries(limit=10)  # type: ignore[attr-defined]
        assert failing.state == "pending" and failing.last_status is None
        assert "ConnectError" in (failing.last_error or "")
        async with receiving(port=port) as receiver:
            await receiver.wait_for(1)
        assert receiver.received[0].verify(endpoint.secret)["data"] == {
            "roomID": "r1",
            "jurisdiction": "",
        }

        async def delivered() -> bool:
            log = await store.list_webhook_deliveries(limit=10)  # type: ignore[attr-defined]
            return log[0].state == "delivered"

        await wait_until(delivered)


async def test_an_endpoint_that_keeps_failing_is_given_up_after_the_last_attempt(
    receiver: Receiver,
) -> None:
    receiver.status = 500
    async with serve(make_app(), settings(webhook_max_attempts=3)) as harness:
        await subscribe(harness, receiver.url(), "room.created")
        await rest(harness, "rooms:create", "r1")
        store = harness.store

        async def given_up() -> bool:
            log = await store.list_webhook_deliveries(limit=10)  # type: ignore[attr-defined]
            return log[0].state == "failed"

        await wait_until(given_up)
        [record] = await store.list_webhook_deliveries(limit=10)  # type: ignore[attr-defined]
        async with harness.http() as http:
            exposition = (await http.get("/metrics")).text
    assert (record.attempts, record.last_status, record.last_error) == (3, 500, "HTTP 500")
    assert len(receiver.received) == 3
    assert 'reflectd_webhook_deliveries_total{outcome="failed"}' in exposition
    assert "reflectd_webhook_outbox_depth" in exposition


async def test_a_slow_receiver_does_not_delay_pokes(sql_store: Backend, receiver: Receiver) -> None:
    receiver.delay_s = 5
    async with serve(make_app(), settings(webhook_timeout_ms=10_000), store=sql_store) as harness:
        await subscribe(harness, receiver.url(), "room.changed", "client.connected")
        client = await harness.connect("c1")
        other = await harness.connect("c2")
        await wait_until(lambda: receiver.arrived >= 2)  # the connects' events: held 5 s
        started = time.monotonic()
        for i in range(20):
            await client.mutate("put", {"key": "a", "value": i})
        elapsed = time.monotonic() - started
        await other.sync_until(lambda c: c.data.get("a") == 19)
        assert receiver.received == []  # every delivery is still held by the receiver
        assert receiver.arrived >= 3  # room.changed deliveries were sent meanwhile
    assert elapsed < 2, f"20 mutations took {elapsed:.2f} s behind a 5 s receiver"


async def test_no_event_is_stored_for_types_nobody_subscribes_to(receiver: Receiver) -> None:
    store = MemoryStore()
    async with serve(make_app(), settings(), store=store) as harness:
        client = await harness.connect("c1")
        await client.mutate("put", {"key": "a", "value": 1})
        await subscribe(harness, receiver.url(), "room.deleted")
        await client.mutate("put", {"key": "a", "value": 2})
        await rest(harness, "rooms:create", "r2")
        assert (await store.webhook_outbox_stats()).depth == 0
        assert await store.list_webhook_deliveries(limit=10) == []


async def test_deliveries_are_shared_by_two_servers_on_one_database_without_duplicates(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Two dispatchers on one PostgreSQL schema: each event is delivered once."""
    await require_postgres()
    schema = new_schema()
    one, two = (
        PostgresStore(POSTGRES_URL, schema=schema),
        PostgresStore(POSTGRES_URL, schema=schema),
    )
    try:
        async with (
            serve(make_app(), settings(), store=one) as first,
            serve(make_app(), settings(), store=two) as second,
        ):
            await subscribe(first, receiver.url(), "room.created")
            await wait_until(
                lambda: "room.created" in second.server.registry.webhooks.subscribed  # type: ignore[union-attr]
            )
            for i in range(20):
                await rest(first if i % 2 else second, "rooms:create", f"room-{i}")
            await receiver.wait_for(20)
            await asyncio.sleep(0.3)  # time for a duplicate, if any, to arrive
    finally:
        await drop_schema(schema)
    room_ids = sorted(e["data"]["roomID"] for e in receiver.events())
    assert room_ids == sorted(f"room-{i}" for i in range(20))

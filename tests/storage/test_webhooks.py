"""Contract tests for webhook endpoints, the outbox and deliveries, run against every backend."""

from __future__ import annotations

import pytest

from reflectd.engine.records import OutboxEvent, RoomRecord, RoomWrites
from reflectd.storage.webhooks import DeliveryOutcome, EventType, WebhookEndpoint

from .conftest import AnyStore, InjectedFault

pytestmark = pytest.mark.anyio


def endpoint(endpoint_id: str, *types: EventType, created_ms: int = 1) -> WebhookEndpoint:
    return WebhookEndpoint(
        endpoint_id=endpoint_id,
        url=f"http://127.0.0.1:9/{endpoint_id}",
        event_types=types,
        secret="whsec_c2VjcmV0",
        created_ms=created_ms,
    )


def event(
    event_id: str,
    type: str = "room.changed",
    *,
    room_id: str = "r",
    payload: bytes = b"{}",
    at_ms: int = 100,
    replaces: str | None = None,
) -> OutboxEvent:
    return OutboxEvent(
        event_id=event_id,
        type=type,
        room_id=room_id,
        payload=payload,
        created_ms=at_ms,
        deliver_after_ms=at_ms,
        replaces=replaces,
    )


async def test_endpoints_are_listed_oldest_first_and_deleted_by_id(store: AnyStore) -> None:
    await store.add_webhook_endpoint(endpoint("ep_b", "room.created", created_ms=2))
    await store.add_webhook_endpoint(endpoint("ep_a", "room.closed", "room.changed", created_ms=3))
    listed = await store.list_webhook_endpoints()
    assert [e.endpoint_id for e in listed] == ["ep_b", "ep_a"]
    assert listed[1] == endpoint("ep_a", "room.closed", "room.changed", created_ms=3)
    assert await store.delete_webhook_endpoint("ep_b")
    assert not await store.delete_webhook_endpoint("ep_b")
    assert [e.endpoint_id for e in await store.list_webhook_endpoints()] == ["ep_a"]


async def test_an_event_is_fanned_out_to_each_subscribed_endpoint_once_due(
    store: AnyStore,
) -> None:
    await store.add_webhook_endpoint(endpoint("ep_1", "room.changed"))
    await store.add_webhook_endpoint(endpoint("ep_2", "room.changed", "room.created"))
    await store.add_webhook_endpoint(endpoint("ep_3", "room.created"))
    await store.commit("r", RoomWrites(version=1, outbox=[event("msg_1", at_ms=100)]))
    assert (await store.webhook_outbox_stats()).depth == 1
    assert await store.fan_out_webhook_events(99, limit=10) == 0
    assert await store.fan_out_webhook_events(100, limit=10) == 1
    assert await store.fan_out_webhook_events(100, limit=10) == 0
    claimed = await store.claim_webhook_deliveries("n1", 100, lease_ms=1000, limit=10)
    assert sorted(c.endpoint_id for c in claimed) == ["ep_1", "ep_2"]
    assert {c.payload for c in claimed} == {b"{}"}
    assert await store.claim_webhook_deliveries("n2", 100, lease_ms=1000, limit=10) == []
    stats = await store.webhook_outbox_stats()
    assert (stats.depth, stats.oldest_created_ms) == (2, 100)


async def test_a_claim_expires_and_another_node_takes_the_delivery(store: AnyStore) -> None:
    await store.add_webhook_endpoint(endpoint("ep_1", "room.created"))
    await store.create_room(RoomRecord("r"), events=[event("msg_1", "room.created")])
    await store.fan_out_webhook_events(100, limit=10)
    assert len(await store.claim_webhook_deliveries("n1", 100, lease_ms=50, limit=10)) == 1
    assert len(await store.claim_webhook_deliveries("n2", 150, lease_ms=50, limit=10)) == 1
    outcome = DeliveryOutcome("msg_1", "ep_1", "delivered", 160, 204, "", 160)
    assert not await store.finish_webhook_delivery("n1", outcome)
    assert await store.finish_webhook_delivery("n2", outcome)
    [record] = await store.list_webhook_deliveries(limit=10)
    assert (record.state, record.attempts, record.last_status, record.type) == (
        "delivered",
        1,
        204,
        "room.created",
    )
    assert (await store.webhook_outbox_stats()).depth == 0


async def test_a_failed_attempt_is_retried_at_its_next_attempt_time(store: AnyStore) -> None:
    await store.add_webhook_endpoint(endpoint("ep_1", "room.closed"))
    await store.create_room(RoomRecord("r"))
    await store.set_room_status("r", "closed", events=[event("msg_1", "room.closed")])
    await store.fan_out_webhook_events(100, limit=10)
    await store.claim_webhook_deliveries("n1", 100, lease_ms=1000, limit=10)
    failed = DeliveryOutcome("msg_1", "ep_1", "pending", 101, 500, "HTTP 500", 2000)
    assert await store.finish_webhook_delivery("n1", failed)
    assert await store.claim_webhook_deliveries("n1", 1999, lease_ms=1000, limit=10) == []
    [again] = await store.claim_webhook_deliveries("n1", 2000, lease_ms=1000, limit=10)
    assert again.attempts == 1
    [record] = await store.list_webhook_deliveries(endpoint_id="ep_1", limit=10)
    assert (record.last_error, record.next_attempt_ms) == ("HTTP 500", 2000)
    assert await store.list_webhook_deliveries(endpoint_id="ep_other", limit=10) == []


async def test_an_event_replaces_a_waiting_one_until_it_is_fanned_out(store: AnyStore) -> None:
    await store.add_webhook_endpoint(endpoint("ep_1", "room.changed"))
    await store.commit("r", RoomWrites(outbox=[event("msg_1", payload=b"1", at_ms=500)]))
    await store.commit("r", RoomWrites(outbox=[event("msg_2", payload=b"2", replaces="msg_1")]))
    await store.fan_out_webhook_events(500, limit=10)
    await store.commit("r", RoomWrites(outbox=[event("msg_3", payload=b"3", replaces="msg_1")]))
    await store.fan_out_webhook_events(500, limit=10)
    claimed = await store.claim_webhook_deliveries("n1", 500, lease_ms=1000, limit=10)
    assert sorted((c.event_id, c.payload) for c in claimed) == [("msg_1", b"2"), ("msg_3", b"3")]


async def test_deleting_an_endpoint_deletes_its_deliveries(store: AnyStore) -> None:
    await store.add_webhook_endpoint(endpoint("ep_1", "room.changed"))
    await store.commit("r", RoomWrites(outbox=[event("msg_1")]))
    await store.fan_out_webhook_events(100, limit=10)
    assert await store.delete_webhook_endpoint("ep_1")
    assert await store.list_webhook_deliveries(limit=10) == []
    assert await store.claim_webhook_deliveries("n1", 100, lease_ms=1000, limit=10) == []


async def test_a_failed_commit_stores_none_of_its_events(store: AnyStore, faults: object) -> None:
    await store.add_webhook_endpoint(endpoint("ep_1", "room.changed"))
    faults.fail_at = "before_commit"  # type: ignore[attr-defined]
    with pytest.raises(Exception) as raised:
        await store.commit("r", RoomWrites(version=1, outbox=[event("msg_1")]))
    assert isinstance(raised.value, InjectedFault) or "injected" in str(raised.value)
    assert (await store.webhook_outbox_stats()).depth == 0


async def test_purge_forgets_old_deliveries_done_and_their_events(store: AnyStore) -> None:
    await store.add_webhook_endpoint(endpoint("ep_1", "room.changed"))
    await store.commit("r", RoomWrites(outbox=[event("msg_old", at_ms=100)]))
    await store.commit("r", RoomWrites(outbox=[event("msg_pending", at_ms=100)]))
    await store.commit("r", RoomWrites(outbox=[event("msg_new", at_ms=900)]))
    await store.fan_out_webhook_events(1000, limit=10)
    await store.claim_webhook_deliveries("n1", 1000, lease_ms=1000, limit=10)
    for event_id in ("msg_old", "msg_new"):
        done = DeliveryOutcome(event_id, "ep_1", "delivered", 1000, 200, "", 1000)
        assert await store.finish_webhook_delivery("n1", done)
    assert await store.purge_webhook_log(500) == 1
    log = await store.list_webhook_deliveries(limit=10)
    assert sorted(d.event_id for d in log) == ["msg_new", "msg_pending"]
    assert await store.purge_webhook_log(500) == 0

"""The in-memory side of ``reflectd.storage.webhooks``: the reference for the SQL backends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from reflectd.engine.records import OutboxEvent
from reflectd.storage import webhooks as w


@dataclass(slots=True)
class _Event:
    event: OutboxEvent
    fanned_out: bool = False


@dataclass(slots=True)
class _Delivery:
    event_id: str
    endpoint_id: str
    created_ms: int
    next_attempt_ms: int
    state: w.DeliveryState = "pending"
    attempts: int = 0
    claimed_by: str = ""
    claimed_until_ms: int = 0
    last_attempt_ms: int | None = None
    last_status: int | None = None
    last_error: str | None = None


class MemoryWebhooks:
    """``WebhookStore`` in dicts, for ``MemoryStore``."""

    def __init__(self) -> None:
        self._endpoints: dict[str, w.WebhookEndpoint] = {}
        self._events: dict[str, _Event] = {}
        self._deliveries: dict[tuple[str, str], _Delivery] = {}

    def _check_open(self) -> None:
        raise NotImplementedError

    def insert_events(self, events: Sequence[OutboxEvent]) -> None:
        for event in events:
            replaced = None if event.replaces is None else self._events.get(event.replaces)
            if replaced is not None and not replaced.fanned_out:
                replaced.event = msgspec.structs.replace(
                    replaced.event, payload=event.payload, created_ms=event.created_ms
                )
            else:
                self._events[event.event_id] = _Event(msgspec.structs.replace(event, replaces=None))

    async def add_webhook_endpoint(self, endpoint: w.WebhookEndpoint) -> None:
        self._check_open()
        self._endpoints[endpoint.endpoint_id] = endpoint

    async def list_webhook_endpoints(self) -> list[w.WebhookEndpoint]:
        self._check_open()
        return sorted(self._endpoints.values(), key=lambda e: (e.created_ms, e.endpoint_id))

    async def delete_webhook_endpoint(self, endpoint_id: str) -> bool:
        self._check_open()
        for key in [key for key in self._deliveries if key[1] == endpoint_id]:
            del self._deliveries[key]
        return self._endpoints.pop(endpoint_id, None) is not None

    async def add_webhook_events(self, events: Sequence[OutboxEvent]) -> None:
        self._check_open()
        self.insert_events(events)

    async def fan_out_webhook_events(self, now_ms: int, *, limit: int) -> int:
        self._check_open()
        due = sorted(
            (e for e in self._events.values() if not e.fanned_out),
            key=lambda e: e.event.deliver_after_ms,
        )
        due = [e for e in due if e.event.deliver_after_ms <= now_ms][:limit]
        for stored in due:
            event = stored.event
            for endpoint in self._endpoints.values():
                if event.type in endpoint.event_types:
                    key = (event.event_id, endpoint.endpoint_id)
                    self._deliveries.setdefault(
                        key, _Delivery(*key, event.created_ms, event.deliver_after_ms)
                    )
            stored.fanned_out = True
        return len(due)

    async def claim_webhook_deliveries(
        self, node_id: str, now_ms: int, *, lease_ms: int, limit: int
    ) -> list[w.ClaimedDelivery]:
        self._check_open()
        due = sorted(
            (
                d
                for d in self._deliveries.values()
                if d.state == "pending"
                and d.next_attempt_ms <= now_ms
                and d.claimed_until_ms <= now_ms
            ),
            key=lambda d: d.next_attempt_ms,
        )[:limit]
        claimed = []
        for delivery in due:
            delivery.claimed_by, delivery.claimed_until_ms = node_id, now_ms + lease_ms
            endpoint = self._endpoints[delivery.endpoint_id]
            claimed.append(
                w.ClaimedDelivery(
                    event_id=delivery.event_id,
                    endpoint_id=delivery.endpoint_id,
                    url=endpoint.url,
                    secret=endpoint.secret,
                    payload=self._events[delivery.event_id].event.payload,
                    attempts=delivery.attempts,
                    created_ms=delivery.created_ms,
                )
            )
        return claimed

    async def finish_webhook_delivery(self, node_id: str, outcome: w.DeliveryOutcome) -> bool:
        self._check_open()
        delivery = self._deliveries.get((outcome.event_id, outcome.endpoint_id))
        if delivery is None or delivery.claimed_by != node_id:
            return False
        delivery.state = outcome.state
        delivery.attempts += 1
        delivery.last_attempt_ms = outcome.attempted_ms
        delivery.last_status = outcome.status
        delivery.last_error = outcome.error
        delivery.next_attempt_ms = outcome.next_attempt_ms
        delivery.claimed_by, delivery.claimed_until_ms = "", 0
        return True

    async def list_webhook_deliveries(
        self, *, endpoint_id: str | None = None, limit: int
    ) -> list[w.DeliveryRecord]:
        self._check_open()
        chosen = [d for d in self._deliveries.values() if endpoint_id in (None, d.endpoint_id)]
        chosen.sort(key=lambda d: (d.created_ms, d.event_id), reverse=True)
        return [
            w.DeliveryRecord(
                event_id=d.event_id,
                endpoint_id=d.endpoint_id,
                type=self._events[d.event_id].event.type,
                room_id=self._events[d.event_id].event.room_id,
                state=d.state,
                attempts=d.attempts,
                created_ms=d.created_ms,
                next_attempt_ms=d.next_attempt_ms,
                last_attempt_ms=d.last_attempt_ms,
                last_status=d.last_status,
                last_error=d.last_error,
            )
            for d in chosen[:limit]
        ]

    async def webhook_outbox_stats(self) -> w.OutboxStats:
        self._check_open()
        waiting = [e.event.created_ms for e in self._events.values() if not e.fanned_out]
        waiting += [d.created_ms for d in self._deliveries.values() if d.state == "pending"]
        return w.OutboxStats(len(waiting), min(waiting) if waiting else None)

    async def purge_webhook_log(self, before_ms: int) -> int:
        self._check_open()
        done = [
            key
            for key, d in self._deliveries.items()
            if d.state != "pending" and d.created_ms < before_ms
        ]
        for key in done:
            del self._deliveries[key]
        kept = {event_id for event_id, _ in self._deliveries}
        for event_id, stored in list(self._events.items()):
            if stored.fanned_out and stored.event.created_ms < before_ms and event_id not in kept:
                del self._events[event_id]
        return len(done)

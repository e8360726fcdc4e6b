"""Webhooks in storage: endpoints, the outbox of events, and their deliveries.

Theory of operation. An event (``OutboxEvent``) is written in the same transaction as the
change that caused it: a room's round (``RoomWrites.outbox``), or a REST command
(``create_room`` and ``set_room_status`` take ``events``). So an event exists if and only if
its change was committed, and survives a crash with it.

The server's dispatcher then, on any node:

1. **fans out** the events that are due (``deliver_after_ms`` passed): one delivery row per
   endpoint subscribed to the event's type at that moment. From then on the event is frozen
   (a later ``replaces`` finds it fanned out and makes a new event);
2. **claims** due deliveries: each claimed one is leased to the claiming node until
   ``claimed_until_ms``, so that several nodes sharing a database do not send the same one
   at once (PostgreSQL: ``FOR UPDATE SKIP LOCKED``); a node that dies mid-send lets its lease
   expire and another node sends it again (at least once);
3. sends each and **finishes** it: ``delivered``, ``failed`` (no more attempts), or back to
   ``pending`` with its next attempt time (backoff).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, get_args

import msgspec

from reflectd.engine.records import OutboxEvent

EventType = Literal[
    "room.created",
    "room.closed",
    "room.deleted",
    "client.connected",
    "client.disconnected",
    "room.changed",
]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)

DeliveryState = Literal["pending", "delivered", "failed"]


class WebhookEndpoint(msgspec.Struct, frozen=True):
    """Where events of ``event_types`` are posted, signed with ``secret`` (``whsec_...``)."""

    endpoint_id: str
    url: str
    event_types: tuple[EventType, ...]
    secret: str
    created_ms: int


class ClaimedDelivery(msgspec.Struct, frozen=True):
    """A delivery this node claimed: what it needs to send it."""

    event_id: str
    endpoint_id: str
    url: str
    secret: str
    payload: bytes
    #: attempts made before this one
    attempts: int
    created_ms: int


class DeliveryOutcome(msgspec.Struct, frozen=True):
    """The result of one attempt, as ``finish_webhook_delivery`` records it."""

    event_id: str
    endpoint_id: str
    state: DeliveryState
    attempted_ms: int
    #: the HTTP status the receiver answered, None if there was no answer
    status: int | None
    #: why the attempt failed ("" if it did not)
    error: str
    #: the next attempt, when ``state`` is still pending
    next_attempt_ms: int


class DeliveryRecord(msgspec.Struct, frozen=True):
    """A row of the delivery log."""

    event_id: str
    endpoint_id: str
    type: str
    room_id: str
    state: DeliveryState
    attempts: int
    created_ms: int
    next_attempt_ms: int
    last_attempt_ms: int | None
    last_status: int | None
    last_error: str | None


class OutboxStats(msgspec.Struct, frozen=True):
    """How much waits to be delivered: events not yet fanned out plus pending deliveries, and
    the creation time of the oldest of them (None when nothing waits)."""

    depth: int
    oldest_created_ms: int | None


class WebhookStore(Protocol):
    """Webhook endpoints, events and deliveries; every backend implements it."""

    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """All endpoints, oldest first."""

    async def delete_webhook_endpoint(self, endpoint_id: str) -> bool:
        """Delete the endpoint and its deliveries; False if there is no such endpoint."""

    async def add_webhook_events(self, events: Sequence[OutboxEvent]) -> None:
        """Store events on their own (a room's round commits its events with its writes)."""

    async def fan_out_webhook_events(self, now_ms: int, *, limit: int) -> int:
        """Make the deliveries of up to ``limit`` due events; returns how many events."""

    async def claim_webhook_deliveries(
        self, node_id: str, now_ms: int, *, lease_ms: int, limit: int
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due pending deliveries to ``node_id``, oldest first."""

    async def finish_webhook_delivery(self, node_id: str, outcome: DeliveryOutcome) -> bool:
        """Record an attempt; False (nothing changed) if the delivery is no longer leased to
        ``node_id`` (another node claimed it after the lease ended)."""

    async def list_webhook_deliveries(
        self, *, endpoint_id: str | None = None, limit: int
    ) -> list[DeliveryRecord]:
        """The delivery log, newest first."""

    async def webhook_outbox_stats(self) -> OutboxStats: ...

    async def purge_webhook_log(self, before_ms: int) -> int:
        """Forget the deliveries done (delivered or failed) made before ``before_ms``, and the
        events left without deliveries; returns how many deliveries."""


# ---------------------------------------------------------------------------- rows

#: the columns of ``webhook_endpoints``, in the order of ``endpoint_values``
ENDPOINT_COLUMNS = "endpoint_id, url, event_types, secret, created_ms"

#: the columns of ``webhook_events``, in the order of ``event_values``
EVENT_COLUMNS = "event_id, type, room_id, payload, created_ms, deliver_after_ms"

#: the columns of the delivery log, as ``delivery_record`` reads them
DELIVERY_COLUMNS = (
    "d.event_id, d.endpoint_id, e.type, e.room_id, d.state, d.attempts, d.created_ms,"
    " d.next_attempt_ms, d.last_attempt_ms, d.last_status, d.last_error"
)


def endpoint_values(endpoint: WebhookEndpoint) -> tuple[object, ...]:
    return (
        endpoint.endpoint_id,
        endpoint.url,
        " ".join(endpoint.event_types),
        endpoint.secret,
        endpoint.created_ms,
    )


def endpoint_record(row: Any) -> WebhookEndpoint:
    event_types = str(row[2]).split()
    return WebhookEndpoint(
        endpoint_id=str(row[0]),
        url=str(row[1]),
        event_types=tuple(t for t in EVENT_TYPES if t in event_types),
        secret=str(row[3]),
        created_ms=int(row[4]),
    )


def event_values(event: OutboxEvent) -> tuple[object, ...]:
    return (
        event.event_id,
        event.type,
        event.room_id,
        event.payload,
        event.created_ms,
        event.deliver_after_ms,
    )


def delivery_record(row: Any) -> DeliveryRecord:
    """A row of ``DELIVERY_COLUMNS``."""
    return DeliveryRecord(*(row[i] for i in range(len(DeliveryRecord.__struct_fields__))))

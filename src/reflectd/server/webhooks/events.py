"""Webhook events: what a room's rounds and the REST commands put in the outbox.

An event is made only if some endpoint subscribes to its type (``WebhookEvents.subscribed``,
which the dispatcher re-reads from storage at every poll, so that every node learns of
endpoints added or deleted by ``reflectd webhooks``). It is then committed with the change
that caused it (``RoomWrites.outbox``, or the ``events`` of ``create_room`` and
``set_room_status``) and delivered later by the dispatcher.

A room's events come from the writes of its round (``RoomEvents``): a client that joins the
room's connected set (``client.connected``) or leaves it (``client.disconnected``, when the
turn runs the disconnect handler), and user entries written (``room.changed``, throttled).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from reflectd.engine.records import OutboxEvent, RoomWrites
from reflectd.engine.room import Room
from reflectd.server import metrics
from reflectd.server.settings import WebhookSettings
from reflectd.storage.webhooks import EventType


def new_event_id() -> str:
    """A Standard Webhooks message ID: the ``webhook-id`` of every attempt of the event."""
    return "msg_" + os.urandom(12).hex()


def iso_timestamp(ms: int) -> str:
    """``2026-01-02T03:04:05.678Z``"""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class WebhookEvents:
    """This process's side of the outbox: which event types have subscribers, and how an
    event is made. Shared by the rooms, the REST commands and the dispatcher."""

    def __init__(self, settings: WebhookSettings | None = None) -> None:
        self.settings = settings or WebhookSettings()
        #: the event types some endpoint subscribes to (refreshed by the dispatcher)
        self.subscribed: frozenset[str] = frozenset()
        #: set when events were committed: the dispatcher wakes up
        self.committed = asyncio.Event()

    def event(
        self,
        type: EventType,
        room_id: str,
        data: Mapping[str, Any],
        *,
        now_ms: int,
        deliver_after_ms: int | None = None,
        replaces: str | None = None,
    ) -> OutboxEvent:
        payload = {
            "type": type,
            "timestamp": iso_timestamp(now_ms),
            "data": {"roomID": room_id, **data},
        }
        return OutboxEvent(
            event_id=new_event_id(),
            type=type,
            room_id=room_id,
            payload=msgspec.json.encode(payload),
            created_ms=now_ms,
            deliver_after_ms=now_ms if deliver_after_ms is None else deliver_after_ms,
            replaces=replaces,
        )

    def outbox_written(self, events: list[OutboxEvent]) -> None:
        """``events`` were committed: count them, wake the dispatcher."""
        for event in events:
            metrics.WEBHOOK_EVENTS.labels(event.type).inc()
        self.committed.set()

    def room_events(
        self, type: EventType, room_id: str, data: Mapping[str, Any], *, now_ms: int
    ) -> list[OutboxEvent]:
        """The event of a REST command, if anyone subscribes to it."""
        if type not in self.subscribed:
            return []
        return [self.event(type, room_id, data, now_ms=now_ms)]

    def for_room(self, room: Room) -> RoomEvents:
        return RoomEvents(self, room.room_id, room.state.connected_clients)


class RoomEvents:
    """The events of one room's rounds; its state advances only with a commit.

    ``round_events`` makes the events of writes about to be committed; ``committed`` says that
    they were. A round whose commit fails is replayed, unit by unit: each unit's writes get
    their own events, from the state of the last commit.
    """

    def __init__(self, hooks: WebhookEvents, room_id: str, connected: frozenset[str]) -> None:
        self.hooks = hooks
        self.room_id = room_id
        #: the connected set as last committed
        self._connected = connected
        #: no ``room.changed`` is delivered before this time
        self._changed_next_ms = 0
        #: a ``room.changed`` waiting to be delivered (its ID, when it is due): a change
        #: before then updates it instead of making another
        self._waiting: tuple[str, int] | None = None
        self._staged: tuple[frozenset[str], int, tuple[str, int] | None] | None = None

    def round_events(self, room: Room, writes: RoomWrites, now_ms: int) -> list[OutboxEvent]:
        events: list[OutboxEvent] = []
        types = self.hooks.subscribed
        connected = self._connected
        if writes.connected_clients is not None:
            connected = writes.connected_clients
            if types:
                events += self._client_events(room, writes, connected, now_ms)
        next_ms, waiting = self._changed_next_ms, self._waiting
        if writes.entries and "room.changed" in types:
            version = writes.version if writes.version is not None else room.state.version
            event, next_ms, waiting = self._room_changed({"version": version}, now_ms)
            events.append(event)
        self._staged = (connected, next_ms, waiting)
        return events

    def _room_changed(
        self, data: dict[str, Any], now_ms: int
    ) -> tuple[OutboxEvent, int, tuple[str, int] | None]:
        """The throttled ``room.changed`` of a change at ``now_ms``, with the throttle's next
        state: (event, no other before this time, the event that waits)."""
        interval_ms = self.hooks.settings.webhook_changed_interval_ms
        next_ms, waiting = self._changed_next_ms, self._waiting
        if waiting is not None and now_ms < waiting[1]:  # one waits: carry the newer version
            return self._changed(data, now_ms, waiting[1], waiting[0]), next_ms, waiting
        if now_ms >= next_ms:  # quiet for an interval: at once
            return self._changed(data, now_ms, now_ms), now_ms + interval_ms, None
        event = self._changed(data, now_ms, next_ms)  # at the end of the interval
        return event, next_ms + interval_ms, (event.event_id, next_ms)

    def committed(self) -> None:
        if self._staged is not None:
            self._connected, self._changed_next_ms, self._waiting = self._staged
            self._staged = None

    def _changed(
        self, data: dict[str, Any], now_ms: int, due_ms: int, replaces: str | None = None
    ) -> OutboxEvent:
        return self.hooks.event(
            "room.changed",
            self.room_id,
            data,
            now_ms=now_ms,
            deliver_after_ms=due_ms,
            replaces=replaces,
        )

    def _client_events(
        self, room: Room, writes: RoomWrites, connected: frozenset[str], now_ms: int
    ) -> list[OutboxEvent]:
        types = self.hooks.subscribed
        events = []
        changes: list[tuple[EventType, list[str]]] = [
            ("client.connected", sorted(connected - self._connected)),
            ("client.disconnected", sorted(self._connected - connected)),
        ]
        for type, client_ids in changes:
            if type not in types:
                continue
            for client_id in client_ids:
                record = room.state.clients.get(client_id)
                user_id = (
                    record.user_id if record is not None else writes.deleted_clients.get(client_id)
                )
                data = {"clientID": client_id, "userID": user_id or None}
                events.append(self.hooks.event(type, self.room_id, data, now_ms=now_ms))
        return events

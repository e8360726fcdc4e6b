"""The events of a room's rounds, and the retry schedule: no server, no clock."""

from __future__ import annotations

import json

from reflectd.engine.handlers import RoomHandlers
from reflectd.engine.records import ClientRecord, Entry, OutboxEvent, RoomSnapshot, RoomWrites
from reflectd.engine.room import Room
from reflectd.server.settings import WebhookSettings
from reflectd.server.webhooks.dispatcher import retry_delay_ms
from reflectd.server.webhooks.events import RoomEvents, WebhookEvents

ENTRY = {"a": Entry(version=1, deleted=False, value=b"1")}


def room_events(*types: str, interval_ms: int = 1000) -> tuple[Room, RoomEvents]:
    hooks = WebhookEvents(WebhookSettings(webhook_changed_interval_ms=interval_ms))
    hooks.subscribed = frozenset(types)
    clients = {c: ClientRecord("g", None, 0, None, 0, user_id=f"user-{c}") for c in ("c1", "c2")}
    room = Room(
        "r1",
        RoomSnapshot(version=5, connected_clients=frozenset({"c1"}), clients=clients),
        handlers=RoomHandlers(mutators={}),
    )
    return room, hooks.for_room(room)


def data(event: OutboxEvent) -> dict[str, object]:
    payload: dict[str, object] = json.loads(event.payload)
    assert payload["type"] == event.type
    return payload["data"]  # type: ignore[return-value]


def test_clients_joining_and_leaving_the_connected_set_are_events() -> None:
    room, events = room_events("client.connected", "client.disconnected")
    made = events.round_events(room, RoomWrites(connected_clients=frozenset({"c2"})), 1000)
    assert [(e.type, data(e)) for e in made] == [
        ("client.connected", {"roomID": "r1", "clientID": "c2", "userID": "user-c2"}),
        ("client.disconnected", {"roomID": "r1", "clientID": "c1", "userID": "user-c1"}),
    ]


def test_a_round_whose_commit_failed_leaves_the_state_as_it_was() -> None:
    room, events = room_events("client.connected")
    writes = RoomWrites(connected_clients=frozenset({"c1", "c2"}))
    assert len(events.round_events(room, writes, 1000)) == 1
    # not committed: the replay makes the same event again
    assert len(events.round_events(room, writes, 1000)) == 1
    events.committed()
    assert events.round_events(room, writes, 1000) == []


def test_room_changed_is_sent_at_once_then_at_most_once_per_interval() -> None:
    room, events = room_events("room.changed")
    first = events.round_events(room, RoomWrites(version=6, entries=ENTRY), 1000)
    events.committed()
    second = events.round_events(room, RoomWrites(version=7, entries=ENTRY), 1200)
    events.committed()
    third = events.round_events(room, RoomWrites(version=8, entries=ENTRY), 1500)
    events.committed()
    [a], [b], [c] = first, second, third
    assert (a.deliver_after_ms, data(a)) == (1000, {"roomID": "r1", "version": 6})
    assert (b.deliver_after_ms, b.replaces, data(b)["version"]) == (2000, None, 7)
    # within the interval: replaces the waiting one, due at the same time, newer version
    assert (c.deliver_after_ms, c.replaces, data(c)["version"]) == (2000, b.event_id, 8)
    [d] = events.round_events(room, RoomWrites(version=9, entries=ENTRY), 2500)
    assert (d.deliver_after_ms, d.replaces) == (3000, None)


def test_nothing_is_made_for_types_nobody_subscribes_to() -> None:
    room, events = room_events("room.deleted")
    writes = RoomWrites(version=6, entries=ENTRY, connected_clients=frozenset({"c2"}))
    assert events.round_events(room, writes, 1000) == []


def test_retries_wait_twice_as_long_each_time_up_to_the_cap() -> None:
    waits = [retry_delay_ms(n, base_ms=2000, max_ms=3_600_000) for n in range(1, 15)]
    assert waits[:4] == [2000, 4000, 8000, 16000]
    assert waits[-3:] == [3_600_000] * 3
    assert sum(waits) == 14_894_000  # docs/backend.md: about 4 hours
    assert retry_delay_ms(10_000, base_ms=1, max_ms=5) == 5

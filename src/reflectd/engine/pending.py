"""Validating pushes and queueing their mutations.

The queue is mostly ordered by normalised timestamp, while keeping per-client id order and
each pusher's push order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reflectd.engine.records import ClientRecord
from reflectd.errors import InvalidPush
from reflectd.protocol.messages import PushBody

#: a mutation older than this (push timestamp minus mutation timestamp) is not "live"
LIVE_MUTATION_THRESHOLD_MS = 50
#: a push replaces the connection's clock offset only if it moved by more than this
CLOCK_OFFSET_RESET_MS = 1000


@dataclass(frozen=True, slots=True)
class Timestamps:
    normalized_ms: int
    origin_ms: int
    server_received_ms: int


@dataclass(slots=True)
class PendingMutation:
    client_id: str
    id: int
    name: str
    args: Any
    client_group_id: str
    #: clients whose pushes carried this mutation (the first pusher and duplicates' pushers)
    pusher_client_ids: set[str]
    timestamps: Timestamps | None
    #: the AuthData of the pushing connection (also for mutations recovered for others)
    auth: Mapping[str, Any]


@dataclass(slots=True)
class PushPlan:
    """What a validated push changes: applied by ``enqueue`` only once it is fully valid."""

    clock_offset_ms: float
    new_mutations: list[PendingMutation] = field(default_factory=list)
    new_client_ids: set[str] = field(default_factory=set)
    #: queued mutations whose pushers gain the pushing client
    duplicate_pushers: list[PendingMutation] = field(default_factory=list)


def next_clock_offset(current_ms: float | None, push: PushBody, now_ms: int) -> float:
    offset = now_ms - push.timestamp
    if current_ms is None or abs(current_ms - offset) > CLOCK_OFFSET_RESET_MS:
        return offset
    return current_ms


def plan_push(
    queue: list[PendingMutation],
    clients: Mapping[str, ClientRecord],
    *,
    pusher_id: str,
    pusher_user_id: str,
    push: PushBody,
    auth: Mapping[str, Any],
    clock_offset_ms: float,
    now_ms: int,
) -> PushPlan:
    """Validate ``push`` against the stored records and the queue; raise ``InvalidPush``.

    A push may carry mutations of other clients of its group (mutation recovery), but not of
    a client of another user: unlike the original, which accepts those (a legitimate group
    has one user; the mutations would run with the pusher's auth in the victim's name)."""
    for client_id in dict.fromkeys(m.client_id for m in push.mutations):
        group = _client_group(queue, clients, client_id)
        if group is not None and group != push.client_group_id:
            raise InvalidPush(
                f"Push for client {pusher_id} with clientGroupID {push.client_group_id} "
                f"contains mutation for client {client_id} which belongs to clientGroupID "
                f"{group}."
            )
        record = clients.get(client_id)
        if record is not None and record.user_id and record.user_id != pusher_user_id:
            raise InvalidPush(
                f"Push for client {pusher_id} contains mutation for client {client_id} "
                "which belongs to another user."
            )
    plan = PushPlan(clock_offset_ms=clock_offset_ms)
    previous: dict[str, int] = {}
    for m in push.mutations:
        if m.client_id not in previous:
            previous[m.client_id] = _last_known_id(queue, clients, m.client_id)
            if m.client_id not in clients:
                plan.new_client_ids.add(m.client_id)
        expected = previous[m.client_id] + 1
        if m.id < expected:
            duplicate = _find_queued(queue, m.client_id, m.id)
            if duplicate is not None:
                plan.duplicate_pushers.append(duplicate)
            continue
        if m.id > expected:
            raise InvalidPush(
                f"Push contains unexpected mutation id {m.id} for client {m.client_id}. "
                f"Expected mutation id {expected}."
            )
        previous[m.client_id] = m.id
        timestamps = None
        normalized_ms = m.timestamp + clock_offset_ms  # not finite if the clocks are absurd
        if (
            m.client_id == pusher_id
            and push.timestamp - m.timestamp < LIVE_MUTATION_THRESHOLD_MS
            and math.isfinite(normalized_ms)
        ):
            timestamps = Timestamps(
                normalized_ms=int(normalized_ms),
                origin_ms=int(m.timestamp),
                server_received_ms=now_ms,
            )
        plan.new_mutations.append(
            PendingMutation(
                client_id=m.client_id,
                id=m.id,
                name=m.name,
                args=m.args,
                client_group_id=push.client_group_id,
                pusher_client_ids={pusher_id},
                timestamps=timestamps,
                auth=auth,
            )
        )
    return plan


def enqueue(queue: list[PendingMutation], plan: PushPlan, pusher_id: str) -> None:
    """Insert the planned mutations in the queue and record duplicate pushers."""
    for duplicate in plan.duplicate_pushers:
        duplicate.pusher_client_ids.add(pusher_id)
    after = -1  # insertion happens after this index; successive mutations are chained
    for m in plan.new_mutations:
        position = max(after, _last_from_pusher(queue, m, pusher_id), _last_of_client(queue, m))
        position += 1
        if m.timestamps is not None:
            while position < len(queue):
                queued = queue[position].timestamps
                if queued is not None and queued.normalized_ms > m.timestamps.normalized_ms:
                    break
                position += 1
        queue.insert(position, m)
        after = position


def _client_group(
    queue: list[PendingMutation], clients: Mapping[str, ClientRecord], client_id: str
) -> str | None:
    record = clients.get(client_id)
    if record is not None:
        return record.client_group_id
    for m in queue:
        if m.client_id == client_id:
            return m.client_group_id
    return None


def _last_known_id(
    queue: list[PendingMutation], clients: Mapping[str, ClientRecord], client_id: str
) -> int:
    for m in reversed(queue):
        if m.client_id == client_id:
            return m.id
    record = clients.get(client_id)
    return record.last_mutation_id if record is not None else 0


def _find_queued(queue: list[PendingMutation], client_id: str, id: int) -> PendingMutation | None:
    for m in queue:
        if m.client_id == client_id and m.id == id:
            return m
    return None


def _last_from_pusher(queue: list[PendingMutation], m: PendingMutation, pusher_id: str) -> int:
    for index in range(len(queue) - 1, -1, -1):
        queued = queue[index]
        if queued.client_group_id == m.client_group_id and pusher_id in queued.pusher_client_ids:
            return index
    return -1


def _last_of_client(queue: list[PendingMutation], m: PendingMutation) -> int:
    for index in range(len(queue) - 1, -1, -1):
        if queue[index].client_id == m.client_id:
            return index
    return -1

"""The SQLite side of ``reflectd.storage.webhooks``: the queries, run on the writer thread.

A SQLite file serves one process, whose writer thread runs every write in turn: a claim
cannot race another node's, so it needs no locking beyond the transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from reflectd.engine.records import OutboxEvent
from reflectd.storage import webhooks as w

T = TypeVar("T")


def insert_events(conn: sqlite3.Connection, events: Sequence[OutboxEvent]) -> None:
    """Store ``events``; one that ``replaces`` an event not yet fanned out updates it."""
    for event in events:
        if event.replaces is not None:
            updated = conn.execute(
                "UPDATE webhook_events SET payload = ?, created_ms = ?"
                " WHERE event_id = ? AND fanned_out = 0",
                (event.payload, event.created_ms, event.replaces),
            )
            if updated.rowcount == 1:
                continue
        conn.execute(
            f"INSERT INTO webhook_events ({w.EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            w.event_values(event),
        )


def _fan_out(conn: sqlite3.Connection, now_ms: int, limit: int) -> int:
    due = [
        row[0]
        for row in conn.execute(
            "SELECT event_id FROM webhook_events WHERE fanned_out = 0 AND deliver_after_ms <= ?"
            " ORDER BY deliver_after_ms LIMIT ?",
            (now_ms, limit),
        )
    ]
    for event_id in due:
        conn.execute(
            "INSERT OR IGNORE INTO webhook_deliveries"
            " (event_id, endpoint_id, state, created_ms, next_attempt_ms)"
            " SELECT e.event_id, p.endpoint_id, 'pending', e.created_ms, e.deliver_after_ms"
            " FROM webhook_events e JOIN webhook_endpoints p"
            " ON instr(' ' || p.event_types || ' ', ' ' || e.type || ' ') > 0"
            " WHERE e.event_id = ?",
            (event_id,),
        )
        conn.execute("UPDATE webhook_events SET fanned_out = 1 WHERE event_id = ?", (event_id,))
    return len(due)


def _claim(
    conn: sqlite3.Connection, node_id: str, now_ms: int, lease_ms: int, limit: int
) -> list[w.ClaimedDelivery]:
    found = conn.execute(
        "SELECT d.event_id, d.endpoint_id, p.url, p.secret, e.payload, d.attempts, d.created_ms"
        " FROM webhook_deliveries d"
        " JOIN webhook_events e ON e.event_id = d.event_id"
        " JOIN webhook_endpoints p ON p.endpoint_id = d.endpoint_id"
        " WHERE d.state = 'pending' AND d.next_attempt_ms <= ? AND d.claimed_until_ms <= ?"
        " ORDER BY d.next_attempt_ms LIMIT ?",
        (now_ms, now_ms, limit),
    ).fetchall()
    conn.executemany(
        "UPDATE webhook_deliveries SET claimed_by = ?, claimed_until_ms = ?"
        " WHERE event_id = ? AND endpoint_id = ?",
        [(node_id, now_ms + lease_ms, row[0], row[1]) for row in found],
    )
    return [w.ClaimedDelivery(*row) for row in found]


def _finish(conn: sqlite3.Connection, node_id: str, outcome: w.DeliveryOutcome) -> bool:
    cursor = conn.execute(
        "UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1,"
        " last_attempt_ms = ?, last_status = ?, last_error = ?, next_attempt_ms = ?,"
        " claimed_by = '', claimed_until_ms = 0"
        " WHERE event_id = ? AND endpoint_id = ? AND claimed_by = ?",
        (
            outcome.state,
            outcome.attempted_ms,
            outcome.status,
            outcome.error,
            outcome.next_attempt_ms,
            outcome.event_id,
            outcome.endpoint_id,
            node_id,
        ),
    )
    return cursor.rowcount == 1


def _deliveries(
    conn: sqlite3.Connection, endpoint_id: str | None, limit: int
) -> list[w.DeliveryRecord]:
    where, args = ("", ()) if endpoint_id is None else (" WHERE d.endpoint_id = ?", (endpoint_id,))
    found = conn.execute(
        f"SELECT {w.DELIVERY_COLUMNS} FROM webhook_deliveries d"
        f" JOIN webhook_events e ON e.event_id = d.event_id{where}"
        " ORDER BY d.created_ms DESC, d.event_id DESC LIMIT ?",
        (*args, limit),
    )
    return [w.delivery_record(row) for row in found]


def _stats(conn: sqlite3.Connection) -> w.OutboxStats:
    events = conn.execute(
        "SELECT count(*), min(created_ms) FROM webhook_events WHERE fanned_out = 0"
    ).fetchone()
    deliveries = conn.execute(
        "SELECT count(*), min(created_ms) FROM webhook_deliveries WHERE state = 'pending'"
    ).fetchone()
    oldest = [ms for ms in (events[1], deliveries[1]) if ms is not None]
    return w.OutboxStats(events[0] + deliveries[0], min(oldest) if oldest else None)


def _purge(conn: sqlite3.Connection, before_ms: int) -> int:
    done = conn.execute(
        "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_ms < ?", (before_ms,)
    ).rowcount
    conn.execute(
        "DELETE FROM webhook_events WHERE fanned_out = 1 AND created_ms < ? AND NOT EXISTS"
        " (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.event_id)",
        (before_ms,),
    )
    return done


class SQLiteWebhooks:
    """``WebhookStore`` for ``SQLiteStore``, which provides ``_call``."""

    _call: Callable[..., Awaitable[Any]]

    async def add_webhook_endpoint(self, endpoint: w.WebhookEndpoint) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO webhook_endpoints ({w.ENDPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                w.endpoint_values(endpoint),
            )

        await self._call(run, "add webhook endpoint", write=True)

    async def list_webhook_endpoints(self) -> list[w.WebhookEndpoint]:
        def run(conn: sqlite3.Connection) -> list[w.WebhookEndpoint]:
            found = conn.execute(
                f"SELECT {w.ENDPOINT_COLUMNS} FROM webhook_endpoints"
                " ORDER BY created_ms, endpoint_id"
            )
            return [w.endpoint_record(row) for row in found]

        result: list[w.WebhookEndpoint] = await self._call(run, "list webhook endpoints")
        return result

    async def delete_webhook_endpoint(self, endpoint_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            args = (endpoint_id,)
            conn.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", args)
            found = conn.execute("DELETE FROM webhook_endpoints WHERE endpoint_id = ?", args)
            return found.rowcount == 1

        deleted: bool = await self._call(run, "delete webhook endpoint", write=True)
        return deleted

    async def add_webhook_events(self, events: Sequence[OutboxEvent]) -> None:
        await self._call(lambda conn: insert_events(conn, events), "add webhook events", write=True)

    async def fan_out_webhook_events(self, now_ms: int, *, limit: int) -> int:
        count: int = await self._call(
            lambda conn: _fan_out(conn, now_ms, limit), "fan out webhook events", write=True
        )
        return count

    async def claim_webhook_deliveries(
        self, node_id: str, now_ms: int, *, lease_ms: int, limit: int
    ) -> list[w.ClaimedDelivery]:
        claimed: list[w.ClaimedDelivery] = await self._call(
            lambda conn: _claim(conn, node_id, now_ms, lease_ms, limit),
            "claim webhook deliveries",
            write=True,
        )
        return claimed

    async def finish_webhook_delivery(self, node_id: str, outcome: w.DeliveryOutcome) -> bool:
        finished: bool = await self._call(
            lambda conn: _finish(conn, node_id, outcome), "record a webhook delivery", write=True
        )
        return finished

    async def list_webhook_deliveries(
        self, *, endpoint_id: str | None = None, limit: int
    ) -> list[w.DeliveryRecord]:
        found: list[w.DeliveryRecord] = await self._call(
            lambda conn: _deliveries(conn, endpoint_id, limit), "list webhook deliveries"
        )
        return found

    async def webhook_outbox_stats(self) -> w.OutboxStats:
        stats: w.OutboxStats = await self._call(_stats, "read the webhook outbox")
        return stats

    async def purge_webhook_log(self, before_ms: int) -> int:
        purged: int = await self._call(
            lambda conn: _purge(conn, before_ms), "purge the webhook log", write=True
        )
        return purged

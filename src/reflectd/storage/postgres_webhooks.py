"""The PostgreSQL side of ``reflectd.storage.webhooks``.

Several nodes share the tables, so the dispatcher's steps lock what they take: fanning out
locks the due events (``FOR UPDATE SKIP LOCKED``) and marks them in the same statement that
makes their deliveries; a claim locks the due deliveries the same way and leases them to the
node. A node skips what another node is taking, and a commit that ``replaces`` an event
being fanned out waits for it, then finds it fanned out and stores a new event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reflectd.engine.records import OutboxEvent
from reflectd.storage import webhooks as w

if TYPE_CHECKING:
    from reflectd.storage.postgres import Connection


@dataclass(frozen=True, slots=True)
class WebhookStatements:
    add_endpoint: str
    list_endpoints: str
    delete_deliveries_of: str
    delete_endpoint: str
    replace_event: str
    insert_events: str
    fan_out: str
    claim: str
    finish: str
    deliveries: str
    deliveries_of: str
    stats: str
    purge_deliveries: str
    purge_events: str

    @classmethod
    def for_schema(cls, s: str) -> WebhookStatements:
        log = (
            f"SELECT {w.DELIVERY_COLUMNS} FROM {s}.webhook_deliveries d"
            f" JOIN {s}.webhook_events e ON e.event_id = d.event_id"
        )
        order = " ORDER BY d.created_ms DESC, d.event_id DESC LIMIT $1"
        return cls(
            add_endpoint=(
                f"INSERT INTO {s}.webhook_endpoints ({w.ENDPOINT_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5)"
            ),
            list_endpoints=(
                f"SELECT {w.ENDPOINT_COLUMNS} FROM {s}.webhook_endpoints"
                " ORDER BY created_ms, endpoint_id"
            ),
            delete_deliveries_of=f"DELETE FROM {s}.webhook_deliveries WHERE endpoint_id = $1",
            delete_endpoint=f"DELETE FROM {s}.webhook_endpoints WHERE endpoint_id = $1",
            replace_event=(
                f"UPDATE {s}.webhook_events SET payload = $2, created_ms = $3"
                " WHERE event_id = $1 AND NOT fanned_out"
            ),
            insert_events=(
                f"INSERT INTO {s}.webhook_events ({w.EVENT_COLUMNS})"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[],"
                " $5::int8[], $6::int8[])"
            ),
            fan_out=(
                f"WITH due AS (UPDATE {s}.webhook_events SET fanned_out = TRUE"
                f" WHERE event_id IN (SELECT event_id FROM {s}.webhook_events"
                " WHERE NOT fanned_out AND deliver_after_ms <= $1"
                " ORDER BY deliver_after_ms LIMIT $2 FOR UPDATE SKIP LOCKED)"
                " RETURNING event_id, type, created_ms, deliver_after_ms),"
                f" made AS (INSERT INTO {s}.webhook_deliveries"
                " (event_id, endpoint_id, state, created_ms, next_attempt_ms)"
                " SELECT due.event_id, p.endpoint_id, 'pending', due.created_ms,"
                f" due.deliver_after_ms FROM due JOIN {s}.webhook_endpoints p"
                " ON due.type = ANY(string_to_array(p.event_types, ' '))"
                " ON CONFLICT DO NOTHING)"
                " SELECT count(*) FROM due"
            ),
            claim=(
                f"WITH claimed AS (UPDATE {s}.webhook_deliveries d"
                " SET claimed_by = $2, claimed_until_ms = $1 + $3"
                f" FROM (SELECT event_id, endpoint_id FROM {s}.webhook_deliveries"
                " WHERE state = 'pending' AND next_attempt_ms <= $1 AND claimed_until_ms <= $1"
                " ORDER BY next_attempt_ms LIMIT $4 FOR UPDATE SKIP LOCKED) due"
                " WHERE d.event_id = due.event_id AND d.endpoint_id = due.endpoint_id"
                " RETURNING d.event_id, d.endpoint_id, d.attempts, d.created_ms,"
                " d.next_attempt_ms)"
                " SELECT c.event_id, c.endpoint_id, p.url, p.secret, e.payload, c.attempts,"
                f" c.created_ms FROM claimed c JOIN {s}.webhook_events e USING (event_id)"
                f" JOIN {s}.webhook_endpoints p USING (endpoint_id) ORDER BY c.next_attempt_ms"
            ),
            finish=(
                f"UPDATE {s}.webhook_deliveries SET state = $4, attempts = attempts + 1,"
                " last_attempt_ms = $5, last_status = $6, last_error = $7,"
                " next_attempt_ms = $8, claimed_by = '', claimed_until_ms = 0"
                " WHERE event_id = $1 AND endpoint_id = $2 AND claimed_by = $3"
            ),
            deliveries=log + order,
            deliveries_of=log + " WHERE d.endpoint_id = $2" + order,
            stats=(
                f"SELECT (SELECT count(*) FROM {s}.webhook_events WHERE NOT fanned_out)"
                f" + (SELECT count(*) FROM {s}.webhook_deliveries WHERE state = 'pending'),"
                f" least((SELECT min(created_ms) FROM {s}.webhook_events WHERE NOT fanned_out),"
                f" (SELECT min(created_ms) FROM {s}.webhook_deliveries WHERE state = 'pending'))"
            ),
            purge_deliveries=(
                f"DELETE FROM {s}.webhook_deliveries WHERE state <> 'pending' AND created_ms < $1"
            ),
            purge_events=(
                f"DELETE FROM {s}.webhook_events e WHERE fanned_out AND created_ms < $1"
                f" AND NOT EXISTS (SELECT FROM {s}.webhook_deliveries d"
                " WHERE d.event_id = e.event_id)"
            ),
        )


async def insert_events(
    conn: Connection, sql: WebhookStatements, events: Sequence[OutboxEvent]
) -> None:
    """Store ``events`` (in the caller's transaction); one that ``replaces`` an event not yet
    fanned out updates it instead."""
    new = []
    for event in events:
        if event.replaces is not None:
            status = await conn.execute(
                sql.replace_event, event.replaces, event.payload, event.created_ms
            )
            if status == "UPDATE 1":
                continue
        new.append(w.event_values(event))
    if new:
        await conn.execute(sql.insert_events, *(list(column) for column in zip(*new, strict=True)))


class PostgresWebhooks:
    """``WebhookStore`` for ``PostgresStore``, which provides ``_call`` and ``_hooks``."""

    _call: Callable[..., Awaitable[Any]]
    _hooks: WebhookStatements

    async def add_webhook_endpoint(self, endpoint: w.WebhookEndpoint) -> None:
        async def run(conn: Connection) -> None:
            await conn.execute(self._hooks.add_endpoint, *w.endpoint_values(endpoint))

        await self._call(run, "add webhook endpoint")

    async def list_webhook_endpoints(self) -> list[w.WebhookEndpoint]:
        async def run(conn: Connection) -> list[w.WebhookEndpoint]:
            return [w.endpoint_record(row) for row in await conn.fetch(self._hooks.list_endpoints)]

        found: list[w.WebhookEndpoint] = await self._call(run, "list webhook endpoints")
        return found

    async def delete_webhook_endpoint(self, endpoint_id: str) -> bool:
        async def run(conn: Connection) -> bool:
            async with conn.transaction():
                await conn.execute(self._hooks.delete_deliveries_of, endpoint_id)
                status = await conn.execute(self._hooks.delete_endpoint, endpoint_id)
                return status == "DELETE 1"

        deleted: bool = await self._call(run, "delete webhook endpoint")
        return deleted

    async def add_webhook_events(self, events: Sequence[OutboxEvent]) -> None:
        async def run(conn: Connection) -> None:
            async with conn.transaction():
                await insert_events(conn, self._hooks, events)

        await self._call(run, "add webhook events")

    async def fan_out_webhook_events(self, now_ms: int, *, limit: int) -> int:
        async def run(conn: Connection) -> int:
            return int(await conn.fetchval(self._hooks.fan_out, now_ms, limit))

        count: int = await self._call(run, "fan out webhook events")
        return count

    async def claim_webhook_deliveries(
        self, node_id: str, now_ms: int, *, lease_ms: int, limit: int
    ) -> list[w.ClaimedDelivery]:
        async def run(conn: Connection) -> list[w.ClaimedDelivery]:
            found = await conn.fetch(self._hooks.claim, now_ms, node_id, lease_ms, limit)
            return [w.ClaimedDelivery(*(row[i] for i in range(7))) for row in found]

        claimed: list[w.ClaimedDelivery] = await self._call(run, "claim webhook deliveries")
        return claimed

    async def finish_webhook_delivery(self, node_id: str, outcome: w.DeliveryOutcome) -> bool:
        async def run(conn: Connection) -> bool:
            status = await conn.execute(
                self._hooks.finish,
                outcome.event_id,
                outcome.endpoint_id,
                node_id,
                outcome.state,
                outcome.attempted_ms,
                outcome.status,
                outcome.error,
                outcome.next_attempt_ms,
            )
            return status == "UPDATE 1"

        finished: bool = await self._call(run, "record a webhook delivery")
        return finished

    async def list_webhook_deliveries(
        self, *, endpoint_id: str | None = None, limit: int
    ) -> list[w.DeliveryRecord]:
        async def run(conn: Connection) -> list[w.DeliveryRecord]:
            if endpoint_id is None:
                found = await conn.fetch(self._hooks.deliveries, limit)
            else:
                found = await conn.fetch(self._hooks.deliveries_of, limit, endpoint_id)
            return [w.delivery_record(row) for row in found]

        records: list[w.DeliveryRecord] = await self._call(run, "list webhook deliveries")
        return records

    async def webhook_outbox_stats(self) -> w.OutboxStats:
        async def run(conn: Connection) -> w.OutboxStats:
            row = await conn.fetchrow(self._hooks.stats)
            assert row is not None
            return w.OutboxStats(int(row[0]), None if row[1] is None else int(row[1]))

        stats: w.OutboxStats = await self._call(run, "read the webhook outbox")
        return stats

    async def purge_webhook_log(self, before_ms: int) -> int:
        async def run(conn: Connection) -> int:
            async with conn.transaction():
                status = await conn.execute(self._hooks.purge_deliveries, before_ms)
                await conn.execute(self._hooks.purge_events, before_ms)
                return int(status.rsplit(" ", 1)[1])

        purged: int = await self._call(run, "purge the webhook log")
        return purged

"""The webhook dispatcher: one background task per node that delivers the outbox.

Each pass (every ``--webhook-poll-ms``, or at once when this node committed events):

1. re-read the endpoints, so that the rooms know which event types have subscribers;
2. read the outbox's depth (metrics); if nothing waits, stop here;
3. fan out the due events, claim due deliveries (leased to this node: other nodes skip them),
   and send each in a task of its own (at most ``MAX_IN_FLIGHT`` at once), signed as Standard
   Webhooks, with its own timeout: a slow receiver holds only its own deliveries;
4. record each attempt: delivered (2xx), or retried after a backoff that doubles, or failed
   once ``--webhook-max-attempts`` were made.

It runs beside the rooms on the event loop and only awaits I/O: a slow or dead receiver holds
its own deliveries, never a room's turn. A node that stops mid-send leaves its claims to
expire; another node (or this one after a restart) sends them again: at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from reflectd import __version__
from reflectd.clock import now_ms
from reflectd.server import metrics
from reflectd.server.webhooks.events import WebhookEvents
from reflectd.storage.base import Backend
from reflectd.storage.webhooks import ClaimedDelivery, DeliveryOutcome

logger = logging.getLogger(__name__)

#: deliveries claimed per pass
CLAIM_BATCH = 32
#: deliveries under way at once, per node
MAX_IN_FLIGHT = 128
#: events fanned out per pass
FAN_OUT_BATCH = 256
#: a claim lasts this many times the request's timeout: then another node (or this one after
#: a restart) may send the delivery again
CLAIM_TIMEOUTS = 2
#: the longest error message kept in the delivery log
MAX_ERROR_CHARS = 300
#: how often a node forgets the deliveries older than ``--webhook-log-retention-ms`` (ms)
PURGE_INTERVAL_MS = 600_000


def retry_delay_ms(attempts: int, *, base_ms: int, max_ms: int) -> int:
    """The wait after the ``attempts``-th failed attempt: base, 2 x base, 4 x base... capped."""
    delay: int = base_ms * 2 ** min(attempts - 1, 40)
    return min(delay, max_ms)


class WebhookDispatcher:
    def __init__(self, store: Backend, events: WebhookEvents, *, node_id: str) -> None:
        self.store = store
        self.events = events
        self.settings = events.settings
        self.node_id = node_id
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            headers={"user-agent": f"reflectd/{__version__} (webhooks)"},
        )
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._next_purge_ms = 0
        self._next_refresh_ms = 0

    async def start(self) -> None:
        """Learn the subscribed event types (before any room runs), then start delivering."""
        await self._refresh()
        self._task = asyncio.create_task(self._run(), name="webhook dispatcher")

    async def close(self) -> None:
        """Stop; deliveries under way are cut short, their claims expire and they are sent
        again later (by another node, or this one after a restart)."""
        tasks = [*self._in_flight, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    # ----------------------------------------------------------------------- the loop

    async def _run(self) -> None:
        poll_s = self.settings.webhook_poll_ms / 1000
        while True:
            busy = False
            try:
                busy = await self.deliver_once()
            except Exception as e:
                metrics.STORAGE_ERRORS.labels("webhooks").inc()
                logger.warning("webhook dispatcher: %s; trying again", e)
            if busy:
                continue
            self.events.committed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.events.committed.wait(), poll_s)

    async def deliver_once(self) -> bool:
        """One pass; True if it claimed a full batch (more may wait)."""
        if now_ms() >= self._next_refresh_ms:
            await self._refresh()
        if now_ms() >= self._next_purge_ms:
            self._next_purge_ms = now_ms() + PURGE_INTERVAL_MS
            await self.store.purge_webhook_log(now_ms() - self.settings.webhook_log_retention_ms)
        stats = await self.store.webhook_outbox_stats()
        metrics.WEBHOOK_OUTBOX_DEPTH.set(stats.depth)
        oldest = stats.oldest_created_ms
        metrics.WEBHOOK_OUTBOX_AGE.set(0 if oldest is None else max(0, now_ms() - oldest) / 1000)
        if stats.depth == 0:
            return False
        now = now_ms()
        await self.store.fan_out_webhook_events(now, limit=FAN_OUT_BATCH)
        room = min(CLAIM_BATCH, MAX_IN_FLIGHT - len(self._in_flight))
        if room <= 0:
            return False
        claimed = await self.store.claim_webhook_deliveries(
            self.node_id,
            now,
            lease_ms=CLAIM_TIMEOUTS * self.settings.webhook_timeout_ms,
            limit=room,
        )
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery), name="webhook delivery")
            self._in_flight.add(task)
            task.add_done_callback(self._delivered)
        return len(claimed) == CLAIM_BATCH

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            metrics.STORAGE_ERRORS.labels("webhooks").inc()
            logger.warning("webhook delivery not recorded: %s", task.exception())
        if len(self._in_flight) == MAX_IN_FLIGHT - 1:
            self.events.committed.set()  # it was full: look again now

    async def _refresh(self) -> None:
        self._next_refresh_ms = now_ms() + self.settings.webhook_poll_ms
        endpoints = await self.store.list_webhook_endpoints()
        self.events.subscribed = frozenset(t for e in endpoints for t in e.event_types)

    # ----------------------------------------------------------------------- one delivery

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        started = time.perf_counter()
        status, error = await self._send(delivery)
        metrics.WEBHOOK_DELIVERY_SECONDS.observe(time.perf_counter() - started)
        attempted = now_ms()
        attempts = delivery.attempts + 1
        settings = self.settings
        if not error:
            state, next_ms, outcome = "delivered", attempted, "delivered"
        elif attempts >= settings.webhook_max_attempts:
            state, next_ms, outcome = "failed", attempted, "failed"
        else:
            state, outcome = "pending", "retrying"
            next_ms = attempted + retry_delay_ms(
                attempts,
                base_ms=settings.webhook_retry_base_ms,
                max_ms=settings.webhook_retry_max_ms,
            )
        metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
        if error:
            logger.log(
                logging.WARNING if state == "failed" else logging.INFO,
                "webhook %s to %s, attempt %d: %s%s",
                delivery.event_id,
                delivery.endpoint_id,
                attempts,
                error,
                " (given up)" if state == "failed" else "",
            )
        result = DeliveryOutcome(
            event_id=delivery.event_id,
            endpoint_id=delivery.endpoint_id,
            state=state,  # type: ignore[arg-type]
            attempted_ms=attempted,
            status=status,
            error=error,
            next_attempt_ms=next_ms,
        )
        await self.store.finish_webhook_delivery(self.node_id, result)

    async def _send(self, delivery: ClaimedDelivery) -> tuple[int | None, str]:
        """POST the event; (the HTTP status or None, "" or why the attempt failed)."""
        sent_at = datetime.now(UTC)
        try:
            signature = Webhook(delivery.secret).sign(delivery.event_id, sent_at, delivery.payload)
        except Exception as e:  # a secret that is not base64: nothing can be sent
            return None, f"cannot sign: {e}"
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
        }
        timeout_s = self.settings.webhook_timeout_ms / 1000
        try:
            response = await self._client.post(
                delivery.url, content=delivery.payload, headers=headers, timeout=timeout_s
            )
        except httpx.TimeoutException:
            return None, f"no answer within {timeout_s:g} s"
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as e:
            return None, _short(f"{type(e).__name__}: {e}")
        if 200 <= response.status_code < 300:
            return response.status_code, ""
        return response.status_code, f"HTTP {response.status_code}"


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."

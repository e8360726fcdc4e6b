"""The server's Prometheus metrics: every one declared here, served at ``GET /metrics``.

They live in ``REGISTRY``, this process's registry (not ``prometheus_client``'s default one,
so that an app's own metrics do not mix in unasked), with the process collector. The servers
of one process (tests start several) share them: a metric counts for the whole process, as a
scrape sees it.

Labels stay bounded: a mutator name only if the app declares it (``unknown`` otherwise), a
REST route's template (never its path), error kinds and reasons from fixed sets. No room ID,
client ID, user ID, token or key is ever a label value. ``docs/operations.md`` lists every
metric; ``python -m reflectd.server.metrics docs/operations.md`` regenerates that list.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request

from reflectd.js.runtime import JS_RUNTIME_COUNTS
from reflectd.server.auth import AUTH_HANDLER_COUNTS

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

#: the buckets (seconds) of the turn and commit histograms: 0.1 ms to 5 s
DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
)  # fmt: skip

#: the label value of a mutator the app does not declare
UNKNOWN_MUTATOR = "unknown"

# ---------------------------------------------------------------------------- connections

CONNECTIONS_OPEN = Gauge(
    "reflectd_connections_open",
    "Sync WebSockets open now (proxied ones included).",
    registry=REGISTRY,
)
CONNECTIONS_OPENED = Counter(
    "reflectd_connections_opened",
    "Sync WebSockets accepted (refused connects included).",
    registry=REGISTRY,
)
CONNECTS_REFUSED = Counter(
    "reflectd_connects_refused",
    "Connects answered with an error frame, by Reflect error kind.",
    ["kind"],
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "reflectd_auth_failures",
    "Failed authentications: api=sync (the auth handler refused a connect or close "
    "beacon), api=rest (no key or an unknown key).",
    ["api"],
    registry=REGISTRY,
)
SLOW_READERS_DROPPED = Counter(
    "reflectd_slow_readers_dropped",
    "Sockets closed because more than --max-send-buffer-bytes waited to be sent to them.",
    registry=REGISTRY,
)

# ---------------------------------------------------------------------------- rooms and turns

ROOMS_LOADED = Gauge(
    "reflectd_rooms_loaded",
    "Rooms live in this process's memory now.",
    registry=REGISTRY,
)
MUTATIONS = Counter(
    "reflectd_mutations",
    "Mutations the turns ran, by mutator and outcome: applied, skipped_error (the mutator "
    "raised: its writes were dropped), skipped_unknown_mutator.",
    ["mutator", "outcome"],
    registry=REGISTRY,
)
TURN_SECONDS = Histogram(
    "reflectd_turn_duration_seconds",
    "How long a room's turn took to run (the mutators, then the pokes made), without its commit.",
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
COMMIT_SECONDS = Histogram(
    "reflectd_commit_duration_seconds",
    "How long a room's commit to storage took (a round's writes, one transaction).",
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
POKES_SENT = Counter(
    "reflectd_pokes_sent",
    "Poke messages the rooms sent to clients.",
    registry=REGISTRY,
)
STREAMED_POKES = Counter(
    "reflectd_streamed_pokes",
    "Poke messages too big for one frame (big fast-forwards), sent in pieces as the client"
    " read them.",
    registry=REGISTRY,
)
SENT_BYTES = Counter(
    "reflectd_sent_bytes",
    "Bytes of the messages the rooms sent to clients (pokes, connected, errors).",
    registry=REGISTRY,
)

# ---------------------------------------------------------------------------- REST

REST_REQUESTS = Counter(
    "reflectd_rest_requests",
    "REST API requests answered, by method, route template (unmatched: no route, or refused "
    "before one was found) and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)

# ---------------------------------------------------------------------------- storage, leases

STORAGE_ERRORS = Counter(
    "reflectd_storage_errors",
    "Storage operations that failed: operation=commit (a round's commit; it is replayed), "
    "lease_renewal, readiness_check, webhooks (the webhook dispatcher's; it tries again).",
    ["operation"],
    registry=REGISTRY,
)
LEASE_ACQUISITIONS = Counter(
    "reflectd_lease_acquisitions",
    "Room leases this node acquired (several nodes on PostgreSQL).",
    registry=REGISTRY,
)
LEASE_LOSSES = Counter(
    "reflectd_lease_losses",
    "Room leases this node lost: reason=taken (another node holds it), expired (not "
    "renewed in time), fenced (a commit found it gone).",
    ["reason"],
    registry=REGISTRY,
)

# ---------------------------------------------------------------------------- webhooks

WEBHOOK_EVENTS = Counter(
    "reflectd_webhook_events",
    "Webhook events this node committed to the outbox (only types some endpoint subscribes "
    "to), by type.",
    ["type"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "reflectd_webhook_deliveries",
    "Webhook delivery attempts this node made, by outcome: delivered (a 2xx answer), retrying "
    "(failed, tried again later), failed (failed for the last time).",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "reflectd_webhook_delivery_duration_seconds",
    "How long webhook receivers took to answer (or the attempt to fail).",
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_OUTBOX_DEPTH = Gauge(
    "reflectd_webhook_outbox_depth",
    "Webhook deliveries waiting in the outbox (in the whole database), as this node last read "
    "it: events not yet due or fanned out, and pending deliveries.",
    registry=REGISTRY,
)
WEBHOOK_OUTBOX_AGE = Gauge(
    "reflectd_webhook_outbox_oldest_age_seconds",
    "Age of the oldest webhook event still waiting to be delivered (0 when none waits).",
    registry=REGISTRY,
)


class _CountsCollector(Collector):
    """Counts that the auth handler (``AUTH_HANDLER_COUNTS``, ``server/auth.py``) and the JS
    runtime (``JS_RUNTIME_COUNTS``, ``js/runtime.py``) keep, read at each scrape."""

    def collect(self) -> Iterator[Metric]:
        js = JS_RUNTIME_COUNTS
        yield CounterMetricFamily(
            "reflectd_js_runtime_errors",
            "Batches of calls during which the JS runtime stopped (a call crashed it or passed "
            "the heap or time limit); their calls are run again one at a time.",
            value=js.errors,
        )
        yield CounterMetricFamily(
            "reflectd_js_runtime_restarts",
            "Times the JS runtime was started again after it stopped.",
            value=js.restarts,
        )
        yield CounterMetricFamily(
            "reflectd_js_runtime_timeouts",
            "Calls of the app's JS code stopped at the time limit (--js-cpu-limit-ms).",
            value=js.timeouts,
        )
        counts = AUTH_HANDLER_COUNTS
        yield CounterMetricFamily(
            "reflectd_auth_handler_calls", "Auth handler calls started.", value=counts.calls
        )
        yield CounterMetricFamily(
            "reflectd_auth_handler_timeouts",
            "Auth handler calls that passed --auth-timeout-ms.",
            value=counts.timeouts,
        )
        yield CounterMetricFamily(
            "reflectd_auth_handler_refused_busy",
            "Connects refused without a call: every auth thread was held (authHandler busy).",
            value=counts.refused_busy,
        )


REGISTRY.register(_CountsCollector())


# ---------------------------------------------------------------------------- recording


def connection_opened() -> None:
    CONNECTIONS_OPENED.inc()
    CONNECTIONS_OPEN.inc()


def connect_refused(kind: str) -> None:
    """A connect answered with an error frame of ``kind`` (a Reflect error kind)."""
    CONNECTS_REFUSED.labels(kind).inc()
    if kind == "Unauthorized":
        AUTH_FAILURES.labels("sync").inc()


def turn_ran(seconds: float, outcomes: Mapping[tuple[str, str], int]) -> None:
    """A turn took ``seconds``; ``outcomes`` counts its mutations by (mutator name,
    outcome) (``Room.take_mutation_outcomes``). A mutator the app does not declare is
    labelled ``unknown`` (its name came from a client)."""
    TURN_SECONDS.observe(seconds)
    for (name, outcome), count in outcomes.items():
        if outcome == "applied":
            MUTATIONS.labels(name, outcome).inc(count)
        elif outcome == "unknown_mutator":
            MUTATIONS.labels(UNKNOWN_MUTATOR, "skipped_" + outcome).inc(count)
        else:
            MUTATIONS.labels(name, "skipped_" + outcome).inc(count)


def count_sent(frames: list[bytes]) -> None:
    """The messages a room's round sent."""
    if frames:
        POKES_SENT.inc(sum(frame.startswith(_POKE_PREFIX) for frame in frames))
        SENT_BYTES.inc(sum(map(len, frames)))


def count_streamed(message_bytes: int) -> None:
    """A poke message sent in pieces, all of it written."""
    STREAMED_POKES.inc()
    SENT_BYTES.inc(message_bytes)


_POKE_PREFIX = b'["poke",'


#: the methods counted by name (any other is ``other``: a client may send any token)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def count_rest_request(request: Request, status: int) -> None:
    """Count a REST call under its route's template (set by the REST API once it found the
    route), and a 401 as a failed authentication."""
    method = request.method if request.method in _METHODS else "other"
    route = getattr(request.state, "route", None) or "unmatched"
    REST_REQUESTS.labels(method, route, str(status)).inc()
    if status == 401:
        AUTH_FAILURES.labels("rest").inc()


def exposition() -> bytes:
    """The text format of every metric, as ``/metrics`` answers."""
    return generate_latest(REGISTRY)


# ---------------------------------------------------------------------------- the docs

_BEGIN = "<!-- metrics: generated by `python -m reflectd.server.metrics docs/operations.md` -->"
_END = "<!-- end of metrics -->"


def metrics_table() -> str:
    """The Markdown table of every metric of ``REGISTRY`` (the process collector's
    ``process_*`` metrics are the standard ones and are listed as one row)."""
    rows = ["| metric | type | labels | what it counts |", "|---|---|---|---|"]
    for family in REGISTRY.collect():
        if family.name.startswith("process_"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = _labels(family)
        rows.append(f"| `{name}` | {family.type} | {labels} | {family.documentation} |")
    rows.append(
        "| `process_*` | | | The standard process metrics: CPU seconds, resident and "
        "virtual memory, open and maximum file descriptors, start time. |"
    )
    return "\n".join(rows)


def _labels(family: Metric) -> str:
    declared = _LABEL_NAMES.get(family.name, ())
    return ", ".join(f"`{n}`" for n in declared)


#: the label names of each family declared here (known before any sample exists)
_LABEL_NAMES: dict[str, tuple[str, ...]] = {
    metric._name: tuple(metric._labelnames)
    for metric in (
        CONNECTS_REFUSED,
        AUTH_FAILURES,
        MUTATIONS,
        REST_REQUESTS,
        STORAGE_ERRORS,
        LEASE_LOSSES,
        WEBHOOK_EVENTS,
        WEBHOOK_DELIVERIES,
    )
}


def rewrite_docs(text: str) -> str:
    """``text`` with the part between the metrics markers replaced by ``metrics_table()``."""
    pattern = re.compile(re.escape(_BEGIN) + r".*?" + re.escape(_END), re.S)
    if not pattern.search(text):
        raise ValueError("the document has no metrics markers")
    return pattern.sub(lambda _: f"{_BEGIN}\n\n{metrics_table()}\n\n{_END}", text)


if __name__ == "__main__":
    doc = Path(sys.argv[1])
    doc.write_text(rewrite_docs(doc.read_text()))

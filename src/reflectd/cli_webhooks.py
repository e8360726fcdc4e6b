"""``reflectd webhooks``: webhook endpoints and the delivery log, on the server's database.

A running server (every node of a cluster) learns of an endpoint added or deleted here at its
next poll (``--webhook-poll-ms``).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reflectd.cli_admin import CreateOpt, Shared, fail, run_on_store, shown, tell, utc_time
from reflectd.cli_admin import admin_command as _admin_command
from reflectd.server.webhooks.endpoints import new_endpoint, parse_event_types, parse_url
from reflectd.storage import Backend
from reflectd.storage.webhooks import EVENT_TYPES

webhooks = typer.Typer(
    help="Manage webhook endpoints and read the delivery log (on the server's database)."
)

EventOpt = Annotated[
    list[str],
    typer.Option(
        "--event", "-e", help=f"An event type (repeat for several): {', '.join(EVENT_TYPES)}."
    ),
]

#: the most rows ``deliveries`` prints
MAX_LIMIT = 10_000


@_admin_command(webhooks, "add", "db")
def webhooks_add(options: Shared, url: str, event: EventOpt, create: CreateOpt = False) -> None:
    """Add an endpoint for the events given; its signing secret is the last line printed."""
    try:
        parse_url(url)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="URL") from None
    try:
        parse_event_types(event)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--event") from None
    endpoint = new_endpoint(url, event, now_ms=int(time.time() * 1000))

    async def work(store: Backend) -> None:
        await store.add_webhook_endpoint(endpoint)

    run_on_store(options.db, work, create=create)
    tell(
        f"Added webhook endpoint {endpoint.endpoint_id} for {', '.join(endpoint.event_types)}"
        f" to {url}. Its signing secret follows: store it now, it is not shown again."
    )
    print(endpoint.secret)


@_admin_command(webhooks, "list", "db", "as_json")
def webhooks_list(options: Shared) -> None:
    """List endpoints: ID, URL, event types, when added (never their secrets)."""

    async def work(store: Backend) -> Any:
        return await store.list_webhook_endpoints()

    rows = [
        {
            "id": e.endpoint_id,
            "url": e.url,
            "events": list(e.event_types),
            "created": utc_time(e.created_ms),
        }
        for e in run_on_store(options.db, work)
    ]
    if options.as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("url", overflow="fold")
    table.add_column("events")
    table.add_column("created")
    for row in rows:
        table.add_row(row["id"], Text(shown(row["url"])), " ".join(row["events"]), row["created"])
    Console().print(table)


@_admin_command(webhooks, "delete", "db")
def webhooks_delete(options: Shared, endpoint_id: str) -> None:
    """Delete an endpoint and its deliveries (those not yet made are dropped)."""

    async def work(store: Backend) -> bool:
        return await store.delete_webhook_endpoint(endpoint_id)

    if not run_on_store(options.db, work):
        fail(f"no webhook endpoint {shown(endpoint_id)!r}")
    tell(f"Webhook endpoint {shown(endpoint_id)} deleted.")


@_admin_command(webhooks, "deliveries", "db", "as_json")
def webhooks_deliveries(
    options: Shared,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's deliveries.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_LIMIT, help="At most this many, newest first.")
    ] = 50,
) -> None:
    """The delivery log, newest first: state, attempts, last status and error of each."""

    async def work(store: Backend) -> Any:
        return await store.list_webhook_deliveries(endpoint_id=endpoint, limit=limit)

    rows = [
        {
            "eventID": d.event_id,
            "endpoint": d.endpoint_id,
            "type": d.type,
            "roomID": d.room_id,
            "state": d.state,
            "attempts": d.attempts,
            "status": d.last_status,
            "error": d.last_error or None,
            "created": utc_time(d.created_ms),
            "lastAttempt": None if d.last_attempt_ms is None else utc_time(d.last_attempt_ms),
            "nextAttempt": utc_time(d.next_attempt_ms) if d.state == "pending" else None,
        }
        for d in run_on_store(options.db, work)
    ]
    if options.as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(_log_line(row))


def _log_line(row: dict[str, Any]) -> str:
    """A delivery as one line of the log: when, what, where to, how it went."""
    when = row["lastAttempt"] or row["created"]
    status = "" if row["status"] is None else f" status={row['status']}"
    error = f" error={json.dumps(row['error'])}" if row["error"] else ""
    after = f" next={row['nextAttempt']}" if row["nextAttempt"] else ""
    return (
        f"{when}  {row['state']:<9} {row['type']:<19} room={shown(row['roomID'])}"
        f" event={row['eventID']} endpoint={row['endpoint']}"
        f" attempts={row['attempts']}{status}{error}{after}"
    )

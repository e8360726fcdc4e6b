"""``reflectd webhooks add|list|delete|deliveries`` on a database."""

from __future__ import annotations

import asyncio
import json

from standardwebhooks import Webhook

from reflectd.engine.records import OutboxEvent, RoomWrites
from reflectd.storage import open_store
from reflectd.storage.webhooks import DeliveryOutcome

from .conftest import plain, run, run_program


def _add(db: str, url: str, *events: str) -> str:
    args = [a for e in events for a in ("--event", e)]
    result = run("webhooks", "add", url, *args, "--db", db)
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()[-1]


def _endpoints(db: str) -> list[dict[str, object]]:
    result = run("webhooks", "list", "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    endpoints: list[dict[str, object]] = json.loads(result.stdout)
    return endpoints


def test_add_prints_the_signing_secret_alone_on_the_last_line(db: str) -> None:
    result = run_program(
        "webhooks", "add", "https://example.com/hooks", "-e", "room.changed", "--db", db
    )
    assert result.returncode == 0, result.stderr
    [secret] = result.stdout.splitlines()
    assert secret.startswith("whsec_")
    Webhook(secret)  # a secret the standard library takes
    [endpoint] = _endpoints(db)
    assert f"Added webhook endpoint {endpoint['id']} for room.changed" in plain(result.stderr)
    assert secret not in result.stderr


def test_list_shows_endpoints_oldest_first_without_their_secrets(db: str) -> None:
    secret = _add(db, "http://127.0.0.1:9000/a", "room.deleted", "room.created")
    _add(db, "https://hooks.example.com/b?x=1", "client.connected")
    endpoints = _endpoints(db)
    assert [(e["url"], e["events"]) for e in endpoints] == [
        ("http://127.0.0.1:9000/a", ["room.created", "room.deleted"]),
        ("https://hooks.example.com/b?x=1", ["client.connected"]),
    ]
    table = run("webhooks", "list", "--db", db)
    assert table.exit_code == 0
    assert secret not in table.stdout and str(endpoints[0]["id"]) in table.stdout


def test_delete_removes_the_endpoint_and_an_unknown_id_is_an_error(db: str) -> None:
    _add(db, "http://127.0.0.1:9000/a", "room.created")
    [endpoint] = _endpoints(db)
    result = run("webhooks", "delete", str(endpoint["id"]), "--db", db)
    assert result.exit_code == 0, result.stderr
    assert _endpoints(db) == []
    again = run("webhooks", "delete", str(endpoint["id"]), "--db", db)
    assert again.exit_code == 1
    assert f"error: no webhook endpoint '{endpoint['id']}'" in plain(again.stderr)


def test_bad_urls_are_refused_and_nothing_is_stored(db: str) -> None:
    for url in [
        "ftp://example.com/x",
        "example.com/hooks",
        "http://",
        "http://exa mple.com/",
        "http://example.com/\x07",
        "https://example.com/" + "a" * 2001,
    ]:
        result = run("webhooks", "add", url, "-e", "room.created", "--db", db)
        assert result.exit_code == 2, url
        assert "Invalid value for URL" in plain(result.stderr), url
    assert _endpoints(db) == []


def test_unknown_or_missing_event_types_are_refused(db: str) -> None:
    result = run("webhooks", "add", "http://x.example/", "-e", "room.create", "--db", db)
    assert result.exit_code == 2
    message = plain(result.stderr)
    assert "unknown event type 'room.create'" in message and "room.changed" in message
    missing = run("webhooks", "add", "http://x.example/", "--db", db)
    assert missing.exit_code == 2 and "--event" in plain(missing.stderr)
    assert _endpoints(db) == []


def test_commands_on_a_database_that_is_not_there_fail_in_one_line(tmp_path: object) -> None:
    result = run("webhooks", "list", "--db", f"{tmp_path}/none.sqlite3")
    assert result.exit_code == 1
    assert "error: no SQLite database" in result.stderr


def test_deliveries_shows_the_log_newest_first_and_by_endpoint(db: str) -> None:
    _add(db, "http://127.0.0.1:9000/a", "room.changed")
    _add(db, "http://127.0.0.1:9000/b", "room.changed")
    ids = [str(e["id"]) for e in _endpoints(db)]
    asyncio.run(_deliver_one_of_two(db, ids))
    result = run("webhooks", "deliveries", "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    log = json.loads(result.stdout)
    assert [(d["endpoint"], d["state"], d["attempts"]) for d in log] == [
        (ids[1], "pending", 1),
        (ids[0], "delivered", 1),
    ] or [(d["endpoint"], d["state"], d["attempts"]) for d in log] == [
        (ids[0], "delivered", 1),
        (ids[1], "pending", 1),
    ]
    failing = next(d for d in log if d["state"] == "pending")
    assert (failing["status"], failing["error"], failing["type"], failing["roomID"]) == (
        503,
        "HTTP 503",
        "room.changed",
        "r1",
    )
    assert failing["nextAttempt"] and failing["lastAttempt"]
    only = run("webhooks", "deliveries", "--endpoint", ids[0], "--limit", "5", "--db", db, "--json")
    assert [d["endpoint"] for d in json.loads(only.stdout)] == [ids[0]]
    table = run("webhooks", "deliveries", "--db", db)
    assert "HTTP 503" in table.stdout and "delivered" in table.stdout
    assert run("webhooks", "deliveries", "--limit", "0", "--db", db).exit_code == 2


async def _deliver_one_of_two(db: str, endpoint_ids: list[str]) -> None:
    """An event for both endpoints; the first delivered, the second answered 503."""
    store = await open_store(db)
    try:
        event = OutboxEvent("msg_1", "room.changed", "r1", b"{}", 1000, 1000)
        await store.commit("r1", RoomWrites(outbox=[event]))
        await store.fan_out_webhook_events(1000, limit=10)
        await store.claim_webhook_deliveries("n", 1000, lease_ms=1000, limit=10)
        ok = DeliveryOutcome("msg_1", endpoint_ids[0], "delivered", 1100, 204, "", 1100)
        failed = DeliveryOutcome("msg_1", endpoint_ids[1], "pending", 1100, 503, "HTTP 503", 5000)
        await store.finish_webhook_delivery("n", ok)
        await store.finish_webhook_delivery("n", failed)
    finally:
        await store.close()

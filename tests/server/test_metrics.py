"""``GET /metrics``: each metric family moves when its event happens, the endpoint is open,
off or behind a key as the operator says, and no label value is ever a room, client, user,
token or key."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from cluster.in_process import LEASE_MS, SharedLeaseStore, node
from reflectd.server import metrics
from reflectd.server.rest.keys import new_key_record
from reflectd.server.settings import Limits, MetricsAccess, ServerSettings

from .conftest import make_app
from .harness import GatedStore, Harness, connect_params, now_ms, serve, wait_until

pytestmark = pytest.mark.anyio

ENV_KEY = "rfd_env-key-for-the-metrics-tests"


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def moved(*samples: str | tuple[str, dict[str, str]]) -> Callable[..., float]:
    """A function that tells how much each sample moved since this call."""
    before = {}
    for sample in samples:
        name, labels = (sample, {}) if isinstance(sample, str) else sample
        before[name, tuple(sorted(labels.items()))] = value(name, **labels)

    def delta(name: str, **labels: str) -> float:
        return value(name, **labels) - before[name, tuple(sorted(labels.items()))]

    return delta


# ---------------------------------------------------------------------------- the endpoint


async def test_metrics_are_open_by_default_in_the_prometheus_text_format(server: Harness) -> None:
    async with server.http() as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE reflectd_connections_open gauge" in response.text
    assert "reflectd_auth_handler_calls_total" in response.text
    assert "process_cpu_seconds_total" in response.text


async def test_metrics_off_is_not_found() -> None:
    settings = ServerSettings(db="memory://", metrics=MetricsAccess.OFF)
    async with serve(make_app(), settings) as harness, harness.http() as http:
        response = await http.get("/metrics")
    assert response.status_code == 404


async def test_metrics_behind_a_key_ask_for_a_key_with_metrics_read() -> None:
    settings = ServerSettings(db="memory://", metrics=MetricsAccess.KEY, api_key=ENV_KEY)
    store = GatedStore()
    ops, ops_record = new_key_record("ops", ("rooms:read",), now_ms())
    scraper, scraper_record = new_key_record("prometheus", ("metrics:read",), now_ms())
    async with serve(make_app(), settings, store=store) as harness, harness.http() as http:
        await store.create_api_key(ops_record)
        await store.create_api_key(scraper_record)
        missing = await http.get("/metrics")
        unknown = await http.get("/metrics", headers={"Authorization": "Basic rfd_nope"})
        lacking = await http.get("/metrics", headers={"Authorization": f"Basic {ops}"})
        basic = await http.get("/metrics", headers={"Authorization": f"Basic {scraper}"})
        bearer = await http.get("/metrics", headers={"Authorization": f"Bearer {scraper}"})
        env = await http.get("/metrics", headers={"Authorization": f"Basic {ENV_KEY}"})
    assert (missing.status_code, unknown.status_code, lacking.status_code) == (401, 401, 403)
    assert missing.json()["error"]["code"] == 401
    assert lacking.json()["error"]["message"] == ('API key "ops" lacks the permission metrics:read')
    assert [r.status_code for r in (basic, bearer, env)] == [200, 200, 200]
    assert "reflectd_rooms_loaded" in basic.text


# ---------------------------------------------------------------------------- the families


async def test_connections_and_rooms_loaded_move_when_a_client_connects_and_leaves() -> None:
    delta = moved(
        "reflectd_connections_open",
        "reflectd_connections_opened_total",
        "reflectd_rooms_loaded",
    )
    settings = ServerSettings(db="memory://", room_idle_unload_ms=50)
    async with serve(make_app(), settings) as harness:
        client = await harness.connect("c1", room_id="metrics-room")
        assert delta("reflectd_connections_open") == 1
        assert delta("reflectd_connections_opened_total") == 1
        assert delta("reflectd_rooms_loaded") == 1
        await client.close()
        await wait_until(lambda: delta("reflectd_connections_open") == 0)
        await wait_until(lambda: delta("reflectd_rooms_loaded") == 0)


async def test_mutations_are_counted_by_declared_mutator_and_outcome(server: Harness) -> None:
    samples = [
        ("reflectd_mutations_total", {"mutator": "put", "outcome": "applied"}),
        ("reflectd_mutations_total", {"mutator": "fail", "outcome": "skipped_error"}),
        (
            "reflectd_mutations_total",
            {"mutator": "unknown", "outcome": "skipped_unknown_mutator"},
        ),
        "reflectd_turn_duration_seconds_count",
        "reflectd_commit_duration_seconds_count",
        "reflectd_pokes_sent_total",
        "reflectd_sent_bytes_total",
    ]
    delta = moved(*samples)
    client = await server.connect("c1")
    await client.mutate("put", {"key": "k", "value": 1})
    await client.mutate("fail")
    await client.mutate("noSuchMutator", {"x": 1})
    assert delta("reflectd_mutations_total", mutator="put", outcome="applied") == 1
    assert delta("reflectd_mutations_total", mutator="fail", outcome="skipped_error") == 1
    unknown = {"mutator": "unknown", "outcome": "skipped_unknown_mutator"}
    assert delta("reflectd_mutations_total", **unknown) == 1
    assert delta("reflectd_turn_duration_seconds_count") >= 3
    assert delta("reflectd_commit_duration_seconds_count") >= 3
    assert delta("reflectd_pokes_sent_total") >= 3
    assert delta("reflectd_sent_bytes_total") > 100


async def test_a_failed_commit_counts_a_storage_error() -> None:
    store = GatedStore()
    delta = moved(("reflectd_storage_errors_total", {"operation": "commit"}))
    async with serve(make_app(), ServerSettings(db="memory://"), store=store) as harness:
        client = await harness.connect("c1")
        store.fail_next = 1
        await client.push("put", {"key": "k", "value": 1})
        await wait_until(lambda: delta("reflectd_storage_errors_total", operation="commit") == 1)


async def test_a_client_that_stops_reading_counts_as_a_slow_reader_dropped() -> None:
    delta = moved("reflectd_slow_readers_dropped_total")
    settings = ServerSettings(db="memory://", limits=Limits(max_send_buffer_bytes=200_000))
    async with serve(make_app(), settings) as harness:
        writer = await harness.connect("writer")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", harness.port))
        await harness.connect("stuck", options={"sock": sock, "max_queue": 1})
        await writer.sync_until(lambda c: c.presence == {"writer", "stuck"})
        for _ in range(500):
            await writer.mutate("put", {"key": "big", "value": "x" * 100_000})
            if writer.presence == {"writer"}:
                break
    assert delta("reflectd_slow_readers_dropped_total") == 1


async def test_rest_requests_are_counted_by_route_template_and_status() -> None:
    settings = ServerSettings(db="memory://", api_key=ENV_KEY)
    route = "/v1/apps/{app-id}/rooms"
    delta = moved(
        ("reflectd_rest_requests_total", {"method": "GET", "route": route, "status": "200"}),
        (
            "reflectd_rest_requests_total",
            {"method": "GET", "route": "unmatched", "status": "401"},
        ),
        ("reflectd_auth_failures_total", {"api": "rest"}),
    )
    async with serve(make_app(), settings) as harness, harness.http() as http:
        ok = await http.get("/v1/apps/default/rooms", headers={"Authorization": f"Basic {ENV_KEY}"})
        refused = await http.get("/v1/apps/default/rooms")
    assert (ok.status_code, refused.status_code) == (200, 401)
    assert delta("reflectd_rest_requests_total", method="GET", route=route, status="200") == 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "401"}
    assert delta("reflectd_rest_requests_total", **unmatched) == 1
    assert delta("reflectd_auth_failures_total", api="rest") == 1


async def test_a_refused_sync_auth_counts_a_failed_authentication_and_a_handler_call() -> None:
    delta = moved(
        ("reflectd_auth_failures_total", {"api": "sync"}),
        ("reflectd_connects_refused_total", {"kind": "Unauthorized"}),
        "reflectd_auth_handler_calls_total",
    )
    app = make_app(auth_handler=lambda token, room_id, env: None)
    async with serve(app) as harness:
        await harness.refused(connect_params(client_id="c1"), "Unauthorized", protocol="bad")
    assert delta("reflectd_auth_failures_total", api="sync") == 1
    assert delta("reflectd_connects_refused_total", kind="Unauthorized") == 1
    assert delta("reflectd_auth_handler_calls_total") == 1


async def test_lease_acquisitions_and_losses_are_counted() -> None:
    delta = moved(
        "reflectd_lease_acquisitions_total",
        ("reflectd_lease_losses_total", {"reason": "taken"}),
        ("reflectd_lease_losses_total", {"reason": "fenced"}),
    )
    store = SharedLeaseStore()
    async with node(make_app(), store, "a") as a:
        alice = await a.connect("alice")
        assert delta("reflectd_lease_acquisitions_total") == 1
        store.clock_offset_ms = 10 * LEASE_MS
        assert await store.acquire_lease("r1", "thief", "", LEASE_MS) is not None
        await alice.push("put", {"key": "x", "value": 2})
        await alice.expect_closed()
    lost = delta("reflectd_lease_losses_total", reason="taken")
    lost += delta("reflectd_lease_losses_total", reason="fenced")
    assert lost >= 1


# ---------------------------------------------------------------------------- bounded labels


async def test_no_label_value_is_a_room_client_user_mutator_name_or_key() -> None:
    secrets = {
        "room": "room-7f3a9c-secret",
        "client": "client-7f3a9c-secret",
        "user": "user-7f3a9c-secret",
        "mutator": "mutator7f3a9cSecret",
        "key": "rfd_key-7f3a9c-secret",
    }
    settings = ServerSettings(db="memory://", api_key=ENV_KEY)
    async with serve(make_app(), settings) as harness, harness.http() as http:
        client = await harness.connect(
            secrets["client"], room_id=secrets["room"], user_id=secrets["user"]
        )
        await client.mutate(secrets["mutator"], {"x": 1})
        await http.get(
            "/v1/apps/default/rooms", headers={"Authorization": f"Basic {secrets['key']}"}
        )
        await http.get(f"/v1/apps/default/rooms/{secrets['room']}/contents")
        await http.get(
            f"/v1/apps/default/rooms/{secrets['room']}/contents",
            headers={"Authorization": f"Basic {ENV_KEY}"},
        )
        scraped = (await http.get("/metrics")).text
    for what, secret in secrets.items():
        assert secret not in scraped, f"a {what} appears in /metrics"
    assert ENV_KEY not in scraped
    assert "7f3a9c" not in scraped

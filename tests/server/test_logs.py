"""Structured log lines: the fields of a sync socket's and a REST call's lines, the request id
header, the access log line, and the text and JSON formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from reflectd.logs import (
    ContextFields,
    JSONFormatter,
    TextFormatter,
    bind_log_fields,
    unbind_log_fields,
)
from reflectd.server.log_tail import LogTail, Subscriber, TailFilter
from reflectd.server.settings import ServerSettings

from .conftest import make_app
from .harness import Harness, connect_params, serve

pytestmark = pytest.mark.anyio

API_KEY = "rfd_the-environment-key-of-these-tests"


class JSONLog:
    """What the root logger writes at info, as ``--log-format json`` writes it."""

    def __init__(self) -> None:
        self.out = io.StringIO()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def find(self, message: str) -> dict[str, Any]:
        found = [e for e in self.entries() if e["message"] == message]
        assert found, f"no {message!r} line in {self.entries()}"
        return found[-1]


@pytest.fixture
def json_log() -> Iterator[JSONLog]:
    log = JSONLog()
    handler = logging.StreamHandler(log.out)
    handler.addFilter(ContextFields())
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield log
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
async def keyed_server() -> Any:
    async with serve(make_app(), ServerSettings(db="memory://", api_key=API_KEY)) as harness:
        yield harness


async def test_a_sync_socket_lines_carry_its_request_id_room_client_and_user(
    server: Harness, json_log: JSONLog
) -> None:
    client = await server.connect("c1", room_id="lobby", user_id="alice")
    await client.ws.close()
    await server.close_clients()
    opened = json_log.find("connection opened")
    assert opened["room_id"] == "lobby"
    assert opened["client_id"] == "c1"
    assert opened["user_id"] == "alice"
    assert opened["level"] == "info" and opened["logger"] == "reflectd.server.sync"
    assert len(opened["request_id"]) == 16


async def test_a_room_actor_lines_carry_the_room_and_not_the_first_client(
    server: Harness, json_log: JSONLog
) -> None:
    await server.connect("c1", room_id="lobby", user_id="alice")
    logging.getLogger("reflectd.server.actor").info("checking")  # not in a room's task
    await server.close_clients()
    for entry in json_log.entries():
        if entry["logger"] == "reflectd.server.rooms" and "loaded" in entry["message"]:
            assert entry["room_id"] == "lobby" and "client_id" not in entry


async def test_a_rest_call_answers_its_request_id_and_writes_one_access_line(
    keyed_server: Harness, json_log: JSONLog
) -> None:
    async with keyed_server.http() as http:
        response = await http.post(
            "/v1/apps/default/rooms:create?roomID=lobby",
            headers={"Authorization": f"Basic {API_KEY}"},
            content="{}",
        )
        refused = await http.get("/v1/apps/default/rooms", headers={"Authorization": "Basic x"})
    assert response.status_code == 200
    request_id = response.headers["X-Request-Id"]
    assert len(request_id) == 16 and refused.headers["X-Request-Id"] != request_id
    access = [e for e in json_log.entries() if e["logger"] == "reflectd.access"]
    assert len(access) == 2
    created = next(e for e in access if e["request_id"] == request_id)
    assert created["method"] == "POST"
    assert created["route"] == "/v1/apps/{app-id}/rooms:create"
    assert created["status"] == 200
    assert created["key_name"] == "REFLECTD_API_KEY"
    assert created["duration_ms"] >= 0
    assert refused_entry(access, refused.headers["X-Request-Id"])["status"] == 401
    # the room's own lines carry the call's request id and the room
    started = [e for e in json_log.entries() if e.get("request_id") == request_id]
    assert any(e.get("room_id") == "lobby" for e in started) or started
    assert API_KEY not in json_log.out.getvalue()


def refused_entry(access: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    entry = next(e for e in access if e["request_id"] == request_id)
    assert "key_name" not in entry and "route" not in entry
    return entry


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("reflectd.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def test_text_lines_end_with_the_fields_as_name_value_pairs() -> None:
    token = bind_log_fields(request_id="0123456789abcdef", user_id="Ann Lee")
    try:
        record = _record(room_id="lobby")
        ContextFields().filter(record)
    finally:
        unbind_log_fields(token)
    line = TextFormatter().format(record)
    assert line.endswith(
        'INFO    reflectd.test: hello x request_id=0123456789abcdef room_id=lobby user_id="Ann Lee"'
    )


def test_a_field_given_with_extra_wins_over_the_bound_one() -> None:
    token = bind_log_fields(room_id="bound")
    try:
        record = _record(room_id="given")
        ContextFields().filter(record)
    finally:
        unbind_log_fields(token)
    assert json.loads(JSONFormatter().format(record))["room_id"] == "given"


def test_binding_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        bind_log_fields(token="secret")


def test_a_tail_filter_keeps_the_level_room_and_user_asked_for() -> None:
    wanted = TailFilter(logging.WARNING, room_id="lobby", user_id="alice")
    assert wanted.wants(_record(room_id="lobby", user_id="alice", levelno=logging.ERROR))
    assert not wanted.wants(_record(room_id="lobby", user_id="alice"))  # info
    assert not wanted.wants(_record(room_id="other", user_id="alice", levelno=logging.ERROR))
    assert not wanted.wants(_record(room_id="lobby", levelno=logging.ERROR))


async def test_a_slow_tail_reader_loses_lines_beyond_its_queue_and_is_told_how_many() -> None:
    subscriber = Subscriber(TailFilter(), max_queued_lines=3)
    for n in range(5):
        subscriber.offer(f"line {n}")
    assert await subscriber.take(0.1) == (["line 0", "line 1", "line 2"], 2)
    subscriber.offer("line 5")
    assert await subscriber.take(0.1) == (["line 5"], 0)


async def test_the_log_stream_refuses_a_query_it_does_not_take(keyed_server: Harness) -> None:
    headers = {"Authorization": f"Basic {API_KEY}"}
    async with keyed_server.http() as http:
        for query in ("level=loud", "room=lobby"):
            response = await http.get(f"/v1/apps/default/logs:tail?{query}", headers=headers)
            assert response.status_code == 400, query
            assert "logs:tail takes level" in response.json()["error"]["message"]
        response = await http.post("/v1/apps/default/logs:tail", headers=headers)
        assert response.status_code == 405


async def test_log_streams_beyond_the_limit_are_refused() -> None:
    log_tail = LogTail(max_subscribers=1)
    assert not log_tail.full
    subscriber = log_tail.subscribe(TailFilter())
    assert log_tail.full
    log_tail.unsubscribe(subscriber)
    assert not log_tail.full


async def test_a_refused_connect_line_carries_the_room_client_and_user_it_named(
    server: Harness, json_log: JSONLog
) -> None:
    params = connect_params(client_id="c9", room_id="lobby", user_id="eve")
    del params["clientGroupID"]
    await server.refused(params, "InvalidConnectionRequest")
    refused = next(e for e in json_log.entries() if e["message"].startswith("connect refused"))
    assert (refused["room_id"], refused["client_id"], refused["user_id"]) == ("lobby", "c9", "eve")
    assert len(refused["request_id"]) == 16


async def test_the_lines_about_a_users_clients_carry_the_user_for_tail_user(
    keyed_server: Harness, json_log: JSONLog
) -> None:
    """``reflectd tail --user alice`` keeps the lines whose ``user_id`` is alice: those of her
    sockets, of her mutations that failed in the room's task, and of invalidating her."""
    alice = await keyed_server.connect("c1", room_id="lobby", user_id="alice")
    await keyed_server.connect("c2", room_id="lobby", user_id="bob")
    await alice.mutate("fail")
    await alice.mutate("noSuchMutator")
    async with keyed_server.http() as http:
        response = await http.post(
            "/v1/apps/default/connections/users:invalidate?userID=alice",
            headers={"Authorization": f"Basic {API_KEY}"},
        )
    assert response.status_code == 200
    await keyed_server.close_clients()
    alices = [e for e in json_log.entries() if e.get("user_id") == "alice"]
    messages = [e["message"] for e in alices]
    assert "connection opened" in messages and "connection closed" in messages
    assert any(m.startswith("mutator 'fail' failed in room lobby") for m in messages)
    assert "room lobby: unknown mutator 'noSuchMutator', mutation skipped" in messages
    assert "the user's connections invalidated (1 closed here)" in messages
    for entry in alices:
        if entry["logger"].startswith("reflectd.engine"):
            assert entry["client_id"] == "c1" and entry["room_id"] == "lobby"
    assert all(
        e.get("user_id") != "alice" for e in json_log.entries() if e.get("client_id") == "c2"
    )

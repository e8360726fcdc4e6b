"""Changes from the app's backend (``rooms:mutate``, ``rooms:import``) seen by the real
client, in both forms of the test app; a ``kill -9`` right after the answer loses nothing."""

from __future__ import annotations

import signal
import uuid
from typing import Any

import httpx
import pytest

from .harness import NodeClients, ServerProcess

pytestmark = pytest.mark.interop

API_KEY = "backend-test-" + uuid.uuid4().hex


@pytest.fixture
def backend_server(target: str, start_server: Any) -> ServerProcess:
    if target == "original":
        pytest.skip("rooms:mutate and rooms:import are reflectd's (the original has neither)")
    server: ServerProcess = start_server(auth=False, env={"REFLECTD_API_KEY": API_KEY})
    return server


def call(server: ServerProcess, command: str, room: str, body: Any, **headers: str) -> Any:
    response = httpx.post(
        f"{server.url}/v1/apps/default/{command}",
        params={"roomID": room},
        json=body,
        headers={"Authorization": f"Basic {API_KEY}", **headers},
        timeout=30,
    )
    return response.status_code, response.json()


def contents(server: ServerProcess, room: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.url}/v1/apps/default/rooms/contents",
        params={"roomID": room},
        headers={"Authorization": f"Basic {API_KEY}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["result"]["contents"])


def test_a_backend_mutation_reaches_every_connected_client(
    clients: NodeClients, backend_server: ServerProcess, room: str
) -> None:
    for name in ("a", "b"):
        clients.open(name, server=backend_server.url, room_id=room, user_id=name)
    clients.mutate("a", "setKey", {"key": "from-client", "value": 1})
    clients.wait_for("b", "from-client", 1)

    status, answer = call(
        backend_server,
        "rooms:mutate",
        room,
        {"name": "appendToList", "args": {"key": "orders", "item": "o-17"}},
    )
    assert status == 200, answer
    for name in ("a", "b"):
        clients.wait_for(name, "orders", ["o-17"])
    status, answer = call(
        backend_server, "rooms:mutate", room, {"name": "echo", "args": {"key": "who", "seq": 1}}
    )
    assert status == 200, answer
    clients.wait_for("a", "who", {"seq": 1, "loc": "server", "clientID": "$server"})

    status, answer = call(
        backend_server,
        "rooms:mutate",
        room,
        {"name": "throwOnServer", "args": {"key": "x", "value": 1}},
    )
    assert status == 422, answer
    assert "intentional server-side failure in throwOnServer" in answer["error"]["message"]
    status, answer = call(backend_server, "rooms:mutate", room, {"name": "noSuchMutator"})
    assert (status, answer["error"]["message"]) == (400, 'Unknown mutator "noSuchMutator"')

    # the clients go on as before
    clients.mutate("b", "increment", {"key": "n", "delta": 2})
    clients.wait_for("a", "n", 2)
    assert "x" not in clients.scan("a")
    clients.assert_healthy()


def test_merge_and_replace_imports_reach_a_real_client(
    clients: NodeClients, backend_server: ServerProcess, room: str
) -> None:
    clients.open("a", server=backend_server.url, room_id=room, user_id="a")
    clients.mutate("a", "setKey", {"key": "old", "value": "kept by merge"})
    clients.wait_for("a", "old", "kept by merge")

    nested = {"shapes": [{"id": i, "points": list(range(50))} for i in range(100)]}
    status, answer = call(
        backend_server, "rooms:import", room, {"contents": {"board": nested, "title": "Q4"}}
    )
    assert (status, answer["result"]["written"]) == (200, 2)
    clients.wait_for("a", "board", nested)
    assert clients.scan("a") == {"old": "kept by merge", "board": nested, "title": "Q4"}

    status, answer = call(
        backend_server, "rooms:import", room, {"contents": {"title": "Q1"}, "mode": "replace"}
    )
    assert (status, answer["result"]["deleted"]) == (200, 2), answer
    clients.wait_for("a", "title", "Q1")  # one poke: the deletes came with it
    assert clients.scan("a") == {"title": "Q1"}

    # a client that joins later gets the same contents
    clients.open("late", server=backend_server.url, room_id=room, user_id="late")
    clients.wait_for("late", "title", "Q1")
    assert clients.scan("late") == {"title": "Q1"}
    clients.assert_healthy()


def test_kill_9_right_after_the_answer_loses_no_backend_write(
    backend_server: ServerProcess, room: str
) -> None:
    assert call(backend_server, "rooms:import", room, {"contents": {}})[0] == 200

    def append(i: int) -> tuple[int, Any]:
        body = {"name": "appendToList", "args": {"key": "log", "item": i}}
        return call(backend_server, "rooms:mutate", room, body, **{"Idempotency-Key": f"a-{i}"})

    versions = []
    for i in range(20):
        status, answer = append(i)
        assert status == 200, answer
        versions.append(answer["result"]["version"])
    backend_server.restart(signal.SIGKILL)  # right after the last answer
    assert contents(backend_server, room) == {"log": list(range(20))}
    # a retry of the last call after the crash is answered, not applied again
    assert append(19) == (200, {"result": {"version": versions[-1], "replayed": True}})
    assert contents(backend_server, room) == {"log": list(range(20))}

"""Presence, mutators that fail on the server or are unknown to it, and auth, seen by the client."""

from __future__ import annotations

import time

import pytest

from .harness import DriverError, NodeClients, ServerProcess

pytestmark = pytest.mark.interop


def _open(clients: NodeClients, server: ServerProcess, name: str, room: str, user: str) -> str:
    return str(
        clients.open(name, server=server.url, room_id=room, user_id=user, auth=user)["clientID"]
    )


def test_presence_adds_and_removes_clients(
    clients: NodeClients, server: ServerProcess, room: str
) -> None:
    a = _open(clients, server, "a", room, "alice")
    clients.wait_presence("a", [a])

    b = _open(clients, server, "b", room, "bob")
    clients.wait_presence("a", [a, b])
    clients.wait_presence("b", [a, b])

    c = _open(clients, server, "c", room, "carol")
    for name in ("a", "b", "c"):
        clients.wait_presence(name, [a, b, c])

    clients.close("b")
    clients.wait_presence("a", [a, c])
    clients.wait_presence("c", [a, c])

    # a client of another room is never present here
    _open(clients, server, "elsewhere", f"{room}-other", "dave")
    clients.mutate("a", "setKey", {"key": "still", "value": "here"})
    clients.wait_for("c", "still", "here")
    assert sorted(clients.presence("a")) == sorted([a, c])

    clients.close("c")
    clients.wait_presence("a", [a])
    clients.assert_healthy()


def test_a_mutator_that_raises_on_the_server_is_rolled_back_and_the_room_keeps_working(
    clients: NodeClients, server: ServerProcess, room: str
) -> None:
    _open(clients, server, "a", room, "alice")
    _open(clients, server, "b", room, "bob")
    clients.mutate("a", "setKey", {"key": "k", "value": "before"})
    clients.wait_for("b", "k", "before")

    # optimistic on the client, then skipped by the server: the write is rolled back
    pending = clients.mutate_async("a", "throwOnServer", {"key": "k", "value": "optimistic"})
    pending_new = clients.mutate_async("a", "throwOnServer", {"key": "new", "value": 1})
    first, second = NodeClients.gather([pending, pending_new])
    assert second["id"] == first["id"] + 1
    assert clients.get("a", "k") == "before"
    assert not clients.has("a", "new")

    # later mutations from the same client still apply, in order, for everyone
    clients.mutate("a", "setKey", {"key": "k", "value": "after"})
    clients.mutate("a", "increment", {"key": "n", "delta": 1})
    clients.mutate("b", "increment", {"key": "n", "delta": 1})
    for name in ("a", "b"):
        clients.wait_for(name, "k", "after")
        clients.wait_for(name, "n", 2)
        assert not clients.has(name, "new")
    assert clients.scan("a") == clients.scan("b") == {"k": "after", "n": 2}
    clients.assert_healthy()


def test_a_mutation_the_server_does_not_know_is_skipped_and_later_mutations_still_apply(
    clients: NodeClients, server: ServerProcess, room: str
) -> None:
    _open(clients, server, "a", room, "alice")
    _open(clients, server, "b", room, "bob")

    # `clientOnly` exists only in the client: the server must consume its id and go on
    unknown = clients.mutate_async("a", "clientOnly", {"key": "ghost", "value": "boo"})
    known = clients.mutate_async("a", "setKey", {"key": "real", "value": 1})
    unknown_result, known_result = NodeClients.gather([unknown, known], timeout=40)
    assert known_result["id"] == unknown_result["id"] + 1

    clients.wait_for("b", "real", 1)
    for name in ("a", "b"):
        clients.wait_for(name, "ghost", absent=True)
    clients.mutate("b", "increment", {"key": "real", "delta": 41})
    clients.wait_for("a", "real", 42)
    assert clients.scan("a") == clients.scan("b") == {"real": 42}
    clients.assert_healthy()


def test_a_mutator_that_throws_on_the_client_rejects_and_sends_nothing(
    clients: NodeClients, server: ServerProcess, room: str
) -> None:
    _open(clients, server, "a", room, "alice")
    clients.mutate("a", "setKey", {"key": "k", "value": 1})
    pushes = clients.state("a", levels=())["wire"]["pushes"]
    with pytest.raises(DriverError, match="boom"):
        clients.mutate("a", "alwaysThrows", {"message": "boom"})
    clients.mutate("a", "setKey", {"key": "k", "value": 2})
    assert clients.state("a", levels=())["wire"]["pushes"] == pushes + 1
    assert clients.scan("a") == {"k": 2}
    clients.assert_healthy()


def test_auth_accepts_a_token_equal_to_the_user_id(
    clients: NodeClients, server: ServerProcess, room: str
) -> None:
    _open(clients, server, "a", room, "alice")
    clients.mutate("a", "setKey", {"key": "k", "value": "ok"})
    state = clients.state("a", levels=())
    assert state["online"] and state["wire"]["errors"] == []
    assert state["wire"]["connects"][0]["withAuth"]
    clients.assert_healthy()


@pytest.mark.parametrize(
    ("user", "token", "kind", "message"),
    [
        ("reject-me", "reject-me", "Unauthorized", "no authData"),
        (
            "alice",
            "mallory",
            "Unauthorized",
            "userID returned by authHandler must match userID specified in Reflect constructor.",
        ),
        ("alice", None, "InvalidConnectionRequest", "auth required"),
    ],
    ids=["refused-token", "token-for-another-user", "no-token"],
)
def test_auth_refuses_bad_tokens_with_an_error_the_client_sees(
    clients: NodeClients,
    server: ServerProcess,
    room: str,
    user: str,
    token: str | None,
    kind: str,
    message: str,
) -> None:
    _open(clients, server, "good", room, "bob")
    clients.open(
        "bad", server=server.url, room_id=room, user_id=user, auth=token, wait_online=False
    )
    deadline = time.monotonic() + 15
    while not (errors := clients.state("bad", levels=())["wire"]["errors"]):
        assert time.monotonic() < deadline, "the refused client got no error frame"
        time.sleep(0.05)
    assert (errors[0]["kind"], errors[0]["message"]) == (kind, message)

    state = clients.state("bad", levels=("info", "error"))
    assert not state["online"]
    assert any(f"{kind}: {message}" in line["text"] for line in state["logs"]), state["logs"]
    assert state["pokesApplied"] == 0
    # the refused client never shows up in the room
    good = clients.presence("good")
    assert state["clientID"] not in good and len(good) == 1
    clients.close("bad")
    clients.assert_healthy()

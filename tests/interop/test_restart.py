"""A server restarted under connected clients: nothing confirmed is lost, nobody reloads."""

from __future__ import annotations

import shutil
import signal
import time

import pytest

from .harness import NodeClients

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "kill-9"])
def test_clients_resume_with_their_data_after_the_server_restarts_mid_session(
    clients: NodeClients, start_server, room: str, sig: int, record_timing
) -> None:
    server = start_server()
    names = ("a", "b")
    for name in names:
        clients.open(name, server=server.url, room_id=room, user_id=name, auth=name)
    for i in range(10):
        clients.mutate("a", "setKey", {"key": f"a/{i}", "value": i})
    clients.mutate("b", "appendToList", {"key": "log", "item": "b-before"})
    for name in names:
        clients.wait_for(name, "log", ["b-before"])
    confirmed_before = clients.scan("a")

    # in flight while the server goes down: sent, maybe applied, not yet confirmed
    pushes = {name: clients.state(name, levels=())["wire"]["pushes"] for name in names}
    in_flight = [
        clients.mutate_async(name, "increment", {"key": "n", "delta": 1}, timeout=60)
        for name in names
        for _ in range(5)
    ]
    deadline = time.monotonic() + 10
    for name in names:
        while clients.state(name, levels=())["wire"]["pushes"] < pushes[name] + 5:
            assert time.monotonic() < deadline, f"{name} did not push its mutations"
            time.sleep(0.005)
    started = time.monotonic()
    unconfirmed = sum(not f.done() for f in in_flight)
    server.restart(sig)
    restarted = time.monotonic() - started

    # clients reconnect on their own (the client waits 5 s after a failed attempt)
    for name in names:
        clients.wait_online(name, connected=2, timeout=40)
    reconnected = time.monotonic() - started
    # The client re-sends its unconfirmed mutations with its next push, i.e. with its next
    # mutation; the server must apply each exactly once.
    clients.mutate("a", "appendToList", {"key": "log", "item": "a-after"})
    clients.mutate("b", "appendToList", {"key": "log", "item": "b-after"})
    NodeClients.gather(in_flight, timeout=70)
    for name in names:
        clients.wait_for(name, "n", 10, timeout=30)
        clients.wait_for(name, "log", ["b-before", "a-after", "b-after"])

    expected = {**confirmed_before, "n": 10, "log": ["b-before", "a-after", "b-after"]}
    assert clients.scan("a") == clients.scan("b") == expected

    # a client that arrives after the restart sees the same room
    clients.open("late", server=server.url, room_id=room, user_id="late", auth="late")
    clients.wait_for("late", "log", ["b-before", "a-after", "b-after"])
    assert clients.scan("late") == expected

    for name in names:
        wire = clients.state(name, levels=())["wire"]
        assert len(wire["connects"]) >= 2, "the client should have reconnected"
        assert wire["connects"][-1]["baseCookie"] != "", "it reconnects with its cookie"
        assert wire["errors"] == [], "no error frames (server-ahead or otherwise)"
    clients.assert_healthy()
    record_timing(
        f"restart with {signal.Signals(sig).name}: server back in {restarted:.1f} s, "
        f"clients reconnected {reconnected:.1f} s after the signal; {unconfirmed} of "
        f"{len(in_flight)} mutations were unconfirmed at the signal"
    )


def test_a_server_that_lost_its_data_is_caught_as_server_ahead_by_the_harness(
    clients: NodeClients, start_server, room: str
) -> None:
    """The negative control for the test above: what losing data looks like to the client."""
    server = start_server()
    clients.open("a", server=server.url, room_id=room, user_id="alice", auth="alice")
    for i in range(3):
        clients.mutate("a", "setKey", {"key": "k", "value": i})
    clients.close("a", persist=True)
    server.stop()
    assert server.data_dir is not None
    shutil.rmtree(server.data_dir)
    server.start()

    # same store: the client comes back with a cookie this (empty) server never issued
    clients.open(
        "a", server=server.url, room_id=room, user_id="alice", auth="alice", wait_online=False
    )
    deadline = time.monotonic() + 15
    while not (errors := clients.state("a", levels=())["wire"]["errors"]):
        assert time.monotonic() < deadline, "no error frame for a client ahead of the server"
        time.sleep(0.05)
    assert errors[0]["kind"] == "InvalidConnectionRequestBaseCookie"
    with pytest.raises(AssertionError, match="InvalidConnectionRequestBaseCookie"):
        clients.assert_healthy()

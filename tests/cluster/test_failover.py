"""A room's owner dies (kill -9) or stalls (SIGSTOP past its lease) under load: another node
takes the room, no confirmed mutation is lost, none is applied twice, presence is right, and
the stalled ex-owner can never commit again."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future
from typing import Any

import pytest

from interop.harness import NodeClients

from .nodes import Cluster, lease_row, rest, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.postgres]


class Load:
    """Each writer increments its own counter; the counters must end at what was issued."""

    def __init__(self, clients: NodeClients, writers: list[str]) -> None:
        self.clients = clients
        self.writers = writers
        self.issued = dict.fromkeys(writers, 0)
        self.futures: list[tuple[str, Future[Any]]] = []

    def issue(self, count: int, writers: list[str] | None = None) -> None:
        """``count`` increments by each writer. The client sends the mutations that a dead
        socket swallowed again with its next push: after a reconnect, issue some more."""
        for _ in range(count):
            for name in writers or self.writers:
                self.issued[name] += 1
                future = self.clients.mutate_async(
                    name, "increment", {"key": f"n/{name}", "delta": 1}, timeout=90
                )
                self.futures.append((name, future))

    def confirmed(self) -> int:
        return sum(1 for _, f in self.futures if f.done() and f.exception() is None)

    def finish(self, readers: list[str]) -> None:
        NodeClients.gather([f for _, f in self.futures], timeout=120)
        expected = {f"n/{name}": count for name, count in self.issued.items()}
        for reader in readers:
            for key, value in expected.items():
                self.clients.wait_for(reader, key, value, timeout=30)
            got = {k: v for k, v in self.clients.scan(reader, "n/").items()}
            assert got == expected, f"{reader}: every mutation applied exactly once"


def test_kill_9_of_a_rooms_owner_under_load_moves_the_room_and_loses_nothing_confirmed(
    cluster: Cluster, clients: NodeClients, room: str, record_figure
) -> None:
    a, b, c = cluster.start(3)
    assert rest(a, "POST", "/rooms:create", {}, roomID=room) == (200, {})
    writers = [f"w{i}" for i in range(6)]
    ids = {}
    for i, name in enumerate(writers):
        node = (b, c)[i % 2]
        ids[name] = clients.open(name, server=node.url, room_id=room, user_id=name, auth=name)[
            "clientID"
        ]
    # a client of the dying node: it stays present in the stored room until the new owner
    # processes its disconnect
    gone = clients.open("gone", server=a.url, room_id=room, user_id="gone", auth="gone")
    everyone = [*ids.values(), gone["clientID"]]
    for name in writers:
        clients.wait_presence(name, everyone)
    assert lease_row(cluster.db, room) == ("node0", 1, True)

    load = Load(clients, writers)
    load.issue(20)
    NodeClients.gather([f for _, f in load.futures], timeout=60)
    load.issue(10)  # in flight at the kill
    time.sleep(0.05)
    confirmed_at_kill = load.confirmed()
    killed = time.monotonic()
    a.kill()
    load.issue(10)  # issued while the room has no owner (some pushes die with the sockets)
    for name in writers:
        clients.wait_online(name, connected=2, timeout=30)
    load.issue(1)  # the next push carries what the dead sockets swallowed
    clients.mutate("w0", "setKey", {"key": "probe", "value": 1}, timeout=30)
    failover_s = time.monotonic() - killed

    load.finish(writers)
    owner, epoch, live = lease_row(cluster.db, room) or ("", 0, False)
    assert live and owner in ("node1", "node2") and epoch == 2
    # presence: the new owner disconnected the client of the dead node
    for name in writers:
        clients.wait_presence(name, list(ids.values()), timeout=20)
    clients.close("gone")
    clients.assert_healthy()
    total = sum(load.issued.values())
    record_figure(
        f"kill -9 of the owner: room served again by {owner} {failover_s:.1f} s after the "
        f"kill (lease {cluster.lease_ms} ms); {total} mutations checked exactly once, "
        f"{confirmed_at_kill} confirmed before the kill"
    )


def test_an_owner_paused_past_its_lease_cannot_commit_after_another_node_took_the_room(
    cluster: Cluster, clients: NodeClients, room: str, record_figure
) -> None:
    a, b = cluster.start(2)
    assert rest(a, "POST", "/rooms:create", {}, roomID=room) == (200, {})
    on_a, on_b = ["a1", "a2"], ["b1", "b2"]
    for name in on_a:
        clients.open(name, server=a.url, room_id=room, user_id=name, auth=name)
    for name in on_b:
        clients.open(name, server=b.url, room_id=room, user_id=name, auth=name)
    load = Load(clients, on_a + on_b)
    load.issue(10)
    NodeClients.gather([f for _, f in load.futures], timeout=60)

    assert a.proc is not None
    os.kill(a.proc.pid, signal.SIGSTOP)
    paused = time.monotonic()
    try:
        # a's clients hang; b's clients (proxied to a) notice, reconnect to b, which takes
        # the room once a's lease has expired
        load.issue(5)
        for name in on_b:
            clients.wait_online(name, connected=2, timeout=40)
        took_s = time.monotonic() - paused
        assert (lease_row(cluster.db, room) or ("",))[0] == "node1", "b took the room"
        load.issue(2, on_b)
        for name in on_b:
            wait_until(
                lambda n=name: clients.get(n, f"n/{n}") == load.issued[n], 30, f"{name} confirmed"
            )
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    # a wakes up: its lease is gone, its commits are refused, its sockets close
    wait_until(
        lambda: (
            "another node took it" in a.log_path.read_text()
            or "lease lost to another node" in a.log_path.read_text()
        ),
        15,
        "a to find out it lost the room",
    )
    for name in on_a:
        clients.wait_online(name, connected=2, timeout=40)
    load.issue(5)
    load.finish(on_a + on_b)
    assert (lease_row(cluster.db, room) or ("",))[0] == "node1"
    assert rest(a, "GET", "/rooms/contents", roomID=room)[1]["contents"] == {
        f"n/{n}": count for n, count in load.issued.items()
    }
    clients.assert_healthy()
    record_figure(
        f"SIGSTOP of the owner: another node took the room {took_s:.1f} s after the pause; "
        f"after SIGCONT the ex-owner dropped it; {sum(load.issued.values())} mutations exact"
    )

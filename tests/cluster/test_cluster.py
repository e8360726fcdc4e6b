"""Several nodes on one PostgreSQL, driven by the real client: one owner per room, sockets
proxied to it, REST and invalidation on any node, graceful drain."""

from __future__ import annotations

import time

import pytest

from interop.harness import NodeClients

from .nodes import Cluster, lease_row, rest, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.postgres]


def test_clients_of_one_room_spread_over_three_nodes_converge(
    cluster: Cluster, clients: NodeClients, room: str, record_figure
) -> None:
    nodes = cluster.start(3)
    names = [f"c{i}" for i in range(20)]
    for i, name in enumerate(names):
        clients.open(name, server=nodes[i % 3].url, room_id=room, user_id=name, auth=name)
    owner, epoch, live = lease_row(cluster.db, room) or ("", 0, False)
    assert live and owner in {"node0", "node1", "node2"}

    started = time.monotonic()
    futures = [
        clients.mutate_async(name, "increment", {"key": "n", "delta": 1}, timeout=90)
        for _ in range(50)
        for name in names
    ]
    NodeClients.gather(futures, timeout=120)
    elapsed = time.monotonic() - started
    for name in names:
        clients.wait_for(name, "n", 1000, timeout=30)
    for node in nodes:
        assert rest(node, "GET", "/rooms/contents", roomID=room) == (200, {"contents": {"n": 1000}})
    assert lease_row(cluster.db, room) == (owner, epoch, True), "the room never moved"
    proxied = [n for n in nodes if n.name != owner]
    for node in proxied:
        assert "proxying a socket" in node.log_path.read_text()
    clients.assert_healthy()
    record_figure(
        f"20 clients on 3 nodes, 1000 increments confirmed in {elapsed:.1f} s "
        f"(owner {owner}, the other two proxy)"
    )


def test_rest_on_any_node_sees_rooms_and_contents_of_the_others(
    cluster: Cluster, clients: NodeClients, room: str
) -> None:
    a, b, c = cluster.start(3)
    assert rest(b, "POST", "/rooms:create", {}, roomID=room) == (200, {})
    assert rest(a, "POST", "/rooms:create", {}, roomID=room)[0] == 409
    listed = rest(a, "GET", "/rooms")[1]["results"]
    (created,) = [r for r in listed if r["roomID"] == room]
    assert created["status"] == "open" and isinstance(created["createdMs"], int)
    assert rest(c, "GET", f"/rooms/{room}")[1]["status"] == "open"

    clients.open("w", server=b.url, room_id=room, user_id="w", auth="w")
    clients.mutate("w", "setKey", {"key": "k", "value": {"x": 1}})
    # the room lives on b; a and c read its committed state from the database
    for node in (a, b, c):
        assert rest(node, "GET", "/rooms/contents", roomID=room) == (
            200,
            {"contents": {"k": {"x": 1}}},
        )

    assert rest(c, "POST", "/rooms:close", roomID=room) == (200, {})
    assert rest(a, "GET", f"/rooms/{room}")[1]["status"] == "closed"
    # deleting through a, while b owns the room: b drops it, its data is gone
    assert rest(a, "POST", "/rooms:delete", roomID=room) == (200, {})
    assert rest(b, "GET", f"/rooms/{room}")[1]["status"] == "deleted"
    assert rest(b, "GET", "/rooms/contents", roomID=room)[0] == 410
    wait_until(lambda: "delete_room from node" in b.log_path.read_text(), 5, "b to drop it")


def test_backend_writes_through_any_node_are_made_by_the_owner(
    cluster: Cluster, clients: NodeClients, room: str
) -> None:
    a, b = cluster.start(2)
    clients.open("w", server=b.url, room_id=room, user_id="w", auth="w")
    clients.mutate("w", "setKey", {"key": "k", "value": 0})
    owner = (lease_row(cluster.db, room) or ("",))[0]
    assert owner == "node1", "the room lives on b"
    # through a, which forwards to b: the client on b sees both at once
    call = {"name": "appendToList", "args": {"key": "log", "item": "from a"}}
    first = rest(a, "POST", "/rooms:mutate", call, roomID=room)
    assert first[0] == 200, first
    clients.wait_for("w", "log", ["from a"])
    # with its Idempotency-Key forwarded too: a retry through either node applies once
    headers = {"Idempotency-Key": "once"}
    again = [rest(node, "POST", "/rooms:mutate", call, headers, roomID=room) for node in (a, b)]
    assert again[0][0] == again[1][0] == 200
    assert again[1][1] == {**again[0][1], "replayed": True}
    imported = rest(a, "POST", "/rooms:import", {"contents": {"title": "t"}}, roomID=room)
    assert imported[0] == 200, imported
    clients.wait_for("w", "title", "t")
    assert clients.scan("w") == {"k": 0, "log": ["from a", "from a"], "title": "t"}
    assert "forwarding" not in a.log_path.read_text()  # nothing failed on the way
    clients.assert_healthy()


def test_invalidating_a_user_closes_their_sockets_on_every_node(
    cluster: Cluster, clients: NodeClients, room: str
) -> None:
    a, b, c = cluster.start(3)
    other = f"{room}-2"
    assert rest(a, "POST", "/rooms:create", {}, roomID=room) == (200, {})
    assert rest(b, "POST", "/rooms:create", {}, roomID=other) == (200, {})
    # alice has a socket on a (owner), one on c proxied to a, one on c proxied to b
    clients.open("alice1", server=a.url, room_id=room, user_id="alice", auth="alice")
    clients.open("alice2", server=c.url, room_id=room, user_id="alice", auth="alice")
    clients.open("alice3", server=c.url, room_id=other, user_id="alice", auth="alice")
    clients.open("bob", server=b.url, room_id=room, user_id="bob", auth="bob")

    assert rest(c, "POST", "/connections/users:invalidate", userID="alice") == (200, {})
    for name in ("alice1", "alice2", "alice3"):
        clients.wait_online(name, connected=2, timeout=20)
    assert len(clients.state("bob", levels=())["wire"]["connects"]) == 1, "bob stays"

    clients.mutate("alice3", "setKey", {"key": "after", "value": 1})
    clients.mutate("alice2", "setKey", {"key": "after", "value": 2})
    clients.wait_for("bob", "after", 2)
    clients.assert_healthy()


def test_sigterm_releases_the_nodes_leases_so_another_node_takes_its_rooms_at_once(
    cluster: Cluster, clients: NodeClients, room: str, record_figure
) -> None:
    a, b = cluster.start(2)
    assert rest(a, "POST", "/rooms:create", {}, roomID=room) == (200, {})
    clients.open("x", server=b.url, room_id=room, user_id="x", auth="x")
    clients.mutate("x", "increment", {"key": "n", "delta": 1})
    owner, epoch, _ = lease_row(cluster.db, room) or ("", 0, False)
    assert owner == "node0"

    started = time.monotonic()
    a.stop()  # SIGTERM: drain
    row = lease_row(cluster.db, room)
    assert row is not None and row[0] in ("", "node1"), f"a's lease was released: {row}"
    clients.wait_online("x", connected=2, timeout=20)
    clients.mutate("x", "increment", {"key": "n", "delta": 1})
    moved = time.monotonic() - started
    clients.wait_for("x", "n", 2)
    assert lease_row(cluster.db, room) == ("node1", epoch + 1, True)
    clients.assert_healthy()
    record_figure(f"SIGTERM of a room's owner: the room served by another node {moved:.1f} s later")

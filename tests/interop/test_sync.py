"""Data sync between real clients: values, convergence, reconnects, room isolation."""

from __future__ import annotations

import time

import pytest

from bench.stats import percentile

from .harness import NodeClients, ServerProcess

pytestmark = pytest.mark.interop

NESTED = {
    "unicode": 'héllo wörld · 你好 · Ελληνικά · עברית · 🎉👩‍👩‍👧 · \u2028\u2029 · "q" \\ \t\n',
    "astral_key_sorting": {"\U0001f600": 1, "\ue000": 2, "z": 3, "": 4},
    "floats": [0.1, -2.5, 1e-7, 3.141592653589793, 1.7976931348623157e308, 5e-324, 1e21],
    "max_safe": 2**53 - 1,
    "min_safe": -(2**53 - 1),
    "zero": 0,
    "null": None,
    "bools": [True, False],
    "empty_object": {},
    "empty_list": [],
    "empty_string": "",
    "deep": {"a": [{"b": [[], {}, [None, [1, [2, [3, {"c": {}}]]]]]}]},
    "long_list": list(range(500)),
}


def _open(clients: NodeClients, server: ServerProcess, name: str, room: str, user: str) -> str:
    return str(
        clients.open(name, server=server.url, room_id=room, user_id=user, auth=user)["clientID"]
    )


def test_two_clients_sync_nested_json_values_exactly(
    clients: NodeClients, server: ServerProcess, room: str
) -> None:
    _open(clients, server, "a", room, "alice")
    _open(clients, server, "b", room, "bob")
    key = "doc/ключ/🔑"

    clients.mutate("a", "setKey", {"key": key, "value": NESTED})
    clients.wait_for("b", key, NESTED)
    assert clients.get("b", key) == NESTED
    assert clients.get("a", key) == NESTED  # the server's value replaced the optimistic one

    # and back the other way, with a value that is only a scalar null
    clients.mutate("b", "setKey", {"key": "nothing", "value": None})
    clients.wait_for("a", "nothing", None)
    assert clients.has("a", "nothing") and clients.get("a", "nothing") is None

    clients.mutate("b", "appendToList", {"key": "list", "item": {"x": [1.5, "y"]}})
    clients.mutate("a", "appendToList", {"key": "list", "item": 2**53 - 1})
    expected = [{"x": [1.5, "y"]}, 2**53 - 1]
    clients.wait_for("a", "list", expected)
    clients.wait_for("b", "list", expected)

    clients.mutate("a", "delKey", {"key": key})
    clients.wait_for("b", key, absent=True)
    assert clients.scan("a") == clients.scan("b") == {"nothing": None, "list": expected}
    clients.assert_healthy()


def test_twenty_clients_with_fifty_concurrent_increments_each_converge_to_exactly_1000(
    clients: NodeClients, server: ServerProcess, room: str, record_timing
) -> None:
    names = [f"c{i}" for i in range(20)]
    futures = [
        clients.submit(
            "open", name=n, server=server.url, roomID=room, userID=f"user{i}", auth=f"user{i}"
        )
        for i, n in enumerate(names)
    ]
    NodeClients.gather(futures, timeout=60)

    started = time.monotonic()
    futures = [
        clients.mutate_async(n, "increment", {"key": "counter", "delta": 1}, timeout=60)
        for _ in range(50)
        for n in names
    ]
    results = NodeClients.gather(futures, timeout=90)
    elapsed = time.monotonic() - started

    round_trips = [r["ms"] for r in results]
    ids_by_client: dict[str, list[int]] = {}
    for n, r in zip([n for _ in range(50) for n in names], results, strict=True):
        ids_by_client.setdefault(n, []).append(r["id"])
    assert all(sorted(ids) == list(range(1, 51)) for ids in ids_by_client.values())

    for n in names:
        clients.wait_for(n, "counter", 1000, timeout=30)
    record_timing(
        f"20 clients x 50 concurrent increments: all confirmed in {elapsed:.2f} s "
        f"({1000 / elapsed:.0f} mutations/s); round trip to confirmation "
        f"p50 {percentile(round_trips, 50):.0f} ms, p99 {percentile(round_trips, 99):.0f} ms, "
        f"max {max(round_trips):.0f} ms"
    )
    clients.assert_healthy()


def test_a_reconnecting_client_with_a_saved_cookie_and_a_fresh_client_see_the_same_snapshot(
    clients: NodeClients, server: ServerProcess, room: str
) -> None:
    # "a" writes, then goes away (its in-memory store keeps its snapshot and cookie)
    _open(clients, server, "a", room, "alice")
    for i in range(5):
        clients.mutate("a", "setKey", {"key": f"k{i}", "value": {"i": i, "by": "a"}})
    clients.mutate("a", "increment", {"key": "n", "delta": 2})
    clients.close("a", persist=True)

    # while it is away: updates, deletes and new keys
    _open(clients, server, "b", room, "bob")
    clients.wait_for("b", "n", 2)
    clients.mutate("b", "delKey", {"key": "k1"})
    clients.mutate("b", "setKey", {"key": "k2", "value": "changed"})
    clients.mutate("b", "increment", {"key": "n", "delta": 3})
    clients.mutate("b", "setKey", {"key": "new", "value": [1, {"two": 2}]})
    expected = {
        "k0": {"i": 0, "by": "a"},
        "k2": "changed",
        "k3": {"i": 3, "by": "a"},
        "k4": {"i": 4, "by": "a"},
        "n": 5,
        "new": [1, {"two": 2}],
    }
    assert clients.scan("b") == expected

    # reopen "alice" in the same room: same store, so it connects with its saved cookie
    _open(clients, server, "a2", room, "alice")
    _open(clients, server, "fresh", room, "carol")
    clients.wait_for("a2", "new", [1, {"two": 2}])
    clients.wait_for("a2", "k1", absent=True)
    clients.wait_for("fresh", "new", [1, {"two": 2}])
    assert clients.scan("a2") == expected
    assert clients.scan("fresh") == expected

    saved = clients.state("a2", levels=())["wire"]["connects"][0]
    fresh = clients.state("fresh", levels=())["wire"]["connects"][0]
    assert saved["baseCookie"] != "", "the reopened client should connect with its cookie"
    assert fresh["baseCookie"] == "", "a fresh client connects without a cookie"

    # both keep syncing
    clients.mutate("a2", "increment", {"key": "n", "delta": 10})
    for name in ("a2", "fresh", "b"):
        clients.wait_for(name, "n", 15)
    clients.assert_healthy()


def test_two_hundred_rooms_stay_isolated(
    clients: NodeClients, server: ServerProcess, room: str, record_timing
) -> None:
    rooms = [f"{room}-{i:03d}" for i in range(200)]
    started = time.monotonic()
    batch = 40

    # one writer per room, one mutation each (same key everywhere, a room-specific value)
    for start in range(0, len(rooms), batch):
        chunk = list(enumerate(rooms))[start : start + batch]
        opened = [
            clients.submit(
                "open", name=f"w{i}", server=server.url, roomID=r, userID=f"w{i}", auth=f"w{i}"
            )
            for i, r in chunk
        ]
        NodeClients.gather(opened, timeout=60)
        NodeClients.gather(
            [clients.mutate_async(f"w{i}", "setKey", {"key": "k", "value": r}) for i, r in chunk],
            timeout=60,
        )
        for i, r in chunk:  # confirmed: the writer's view is the server's
            assert clients.scan(f"w{i}") == {"k": r}
        NodeClients.gather([clients.submit("close", name=f"w{i}") for i, _ in chunk])
    writes = time.monotonic() - started

    # fresh readers (fast-forward from scratch): a room holds exactly its own value
    sample = rooms[::10] + rooms[1::50]
    readers = [(f"r{i}-{j}", r) for i, r in enumerate(sample) for j in range(2)]
    NodeClients.gather(
        [
            clients.submit("open", name=n, server=server.url, roomID=r, userID=n, auth=n)
            for n, r in readers
        ],
        timeout=60,
    )
    NodeClients.gather([clients.wait_for_async(n, "k", r) for n, r in readers], timeout=60)
    for n, r in readers:
        assert clients.scan(n) == {"k": r}
    record_timing(
        f"200 rooms: 200 writers connected, wrote and closed in {writes:.1f} s; "
        f"{len(readers)} readers in {len(sample)} rooms checked; total "
        f"{time.monotonic() - started:.1f} s"
    )
    clients.assert_healthy()

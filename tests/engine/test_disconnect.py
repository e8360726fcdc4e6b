"""Disconnects and the disconnect handler: when it runs, what its writes bump and poke."""

from __future__ import annotations

from reflectd.engine.records import RoomSnapshot
from reflectd.engine.transaction import WriteTransaction

from .harness import START_MS, RoomDriver, delete, poke, present, put, set_key


def _bye(tx: WriteTransaction) -> None:
    tx.set(f"bye/{tx.client_id}", True)


def test_disconnect_with_no_handler_still_bumps_the_version_and_pokes_the_others() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.connect("c2")
    driver.turn()

    driver.disconnect("c2")
    frames = driver.turn()

    assert frames.pokes("c1") == [poke(0, 1, presence=[delete("c2")])]
    assert driver.room.state.version == 1


def test_disconnect_handler_that_writes_nothing_still_bumps_the_version() -> None:
    driver = RoomDriver(on_client_disconnect=lambda tx: None)
    driver.connect("c1")
    driver.turn()

    driver.disconnect("c1")
    driver.turn()

    assert driver.room.state.version == 1
    assert driver.room.state.connected_clients == frozenset()


def test_disconnect_handler_runs_for_the_departed_client_and_its_writes_are_poked() -> None:
    seen: list[tuple[object, ...]] = []

    def handler(tx: WriteTransaction) -> None:
        seen.append((tx.client_id, tx.mutation_id, tx.auth, dict(tx.env)))
        _bye(tx)

    driver = RoomDriver(on_client_disconnect=handler, env={"K": "v"})
    driver.connect("c1")
    driver.connect("c2")
    driver.turn()

    driver.disconnect("c2")
    frames = driver.turn()

    assert seen == [("c2", -1, None, {"K": "v"})]
    assert frames.pokes("c1") == [poke(0, 1, patch=[put("bye/c2", True)], presence=[delete("c2")])]
    assert driver.room.state.entries["bye/c2"].version == 1


def test_disconnect_handler_that_raises_bumps_nothing_and_its_writes_are_dropped() -> None:
    def handler(tx: WriteTransaction) -> None:
        _bye(tx)
        raise RuntimeError("handler bug")

    driver = RoomDriver(on_client_disconnect=handler)
    driver.connect("c1")
    driver.turn()

    driver.disconnect("c1")
    driver.turn()

    assert driver.room.state.version == 0
    assert driver.live_data() == {}
    assert driver.room.state.connected_clients == frozenset()


def test_disconnect_handler_that_raises_still_lets_presence_reach_the_others() -> None:
    def handler(tx: WriteTransaction) -> None:
        raise RuntimeError("handler bug")

    driver = RoomDriver(on_client_disconnect=handler)
    driver.connect("c1")
    driver.connect("c2")
    driver.turn()

    driver.disconnect("c2")
    frames = driver.turn()

    assert frames.pokes("c1") == [poke(0, 1, presence=[delete("c2")])]


def test_disconnects_of_one_turn_share_one_version_and_one_poke() -> None:
    driver = RoomDriver(on_client_disconnect=_bye)
    for client_id in ("stay", "a", "b"):
        driver.connect(client_id)
    driver.turn()

    driver.disconnect("a")
    driver.disconnect("b")
    frames = driver.turn()

    assert frames.pokes("stay") == [
        poke(
            0,
            1,
            patch=[put("bye/a", True), put("bye/b", True)],
            presence=[delete("a"), delete("b")],
        )
    ]


def test_disconnect_sets_last_seen_on_the_departed_clients_record() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()
    driver.disconnect("c1")
    driver.advance(1234)

    driver.turn()

    assert driver.room.state.clients["c1"].last_seen_ms == START_MS + 1234


def test_disconnect_poke_follows_the_turns_mutation_pokes() -> None:
    driver = RoomDriver(on_client_disconnect=_bye)
    driver.connect("c1")
    driver.connect("c2")
    driver.turn()

    driver.push("c1", set_key(1, "x", 1))
    driver.disconnect("c2")
    frames = driver.turn()

    assert frames.pokes("c1") == [
        poke(
            0, 1, lmids={"c1": 1}, patch=[put("x", 1)], timestamp=START_MS, presence=[delete("c2")]
        ),
        poke(1, 2, patch=[put("bye/c2", True)]),
    ]


def test_disconnect_after_a_close_beacon_deletes_the_client_and_its_per_client_keys() -> None:
    deleted: list[str] = []
    driver = RoomDriver(on_client_delete=lambda tx: deleted.append(tx.client_id))
    driver.connect("c1")
    driver.connect("c2")
    driver.push("c2", set_key(1, "-/p/c2/cursor", [1, 2]), set_key(2, "shared", 1))
    driver.turn()
    assert driver.close_beacon("c2", 2).text == "Client is still connected"

    driver.disconnect("c2")
    frames = driver.turn()

    assert deleted == ["c2"]
    assert "c2" not in driver.room.state.clients
    assert driver.durable.clients.keys() == {"c1"}
    assert frames.pokes("c1") == [
        poke(2, 3, patch=[delete("-/p/c2/cursor")], presence=[delete("c2")])
    ]
    assert driver.live_data() == {"shared": 1}


def test_disconnect_after_a_close_beacon_keeps_a_client_with_unapplied_mutations() -> None:
    deleted: list[str] = []
    driver = RoomDriver(on_client_delete=lambda tx: deleted.append(tx.client_id))
    driver.connect("c1")
    driver.connect("c2")
    driver.push("c2", set_key(1, "-/p/c2/cursor", 1))
    driver.turn()
    driver.close_beacon("c2", 3)  # c2 created mutations 2 and 3, never pushed

    driver.disconnect("c2")
    driver.turn()

    assert deleted == []
    assert driver.room.state.clients["c2"].last_mutation_id == 1
    assert driver.live_data() == {"-/p/c2/cursor": 1}


def test_stale_connected_client_without_a_record_is_disconnected_without_error() -> None:
    calls: list[str] = []
    driver = RoomDriver(
        snapshot=RoomSnapshot(version=4, connected_clients=frozenset({"lost"})),
        on_client_disconnect=lambda tx: calls.append(tx.client_id),
    )
    driver.connect("c1")
    frames = driver.turn()

    assert calls == ["lost"]
    assert driver.room.state.connected_clients == {"c1"}
    assert [(p["baseCookie"], p["cookie"]) for p in frames.pokes("c1")] == [(None, 4), (4, 5)]


def test_two_clients_with_a_no_op_disconnect_handler_get_a_disconnect_poke() -> None:
    driver = RoomDriver(on_client_disconnect=lambda tx: None)
    driver.connect("c1")
    driver.turn()
    driver.connect("c2")
    frames = driver.turn()
    assert frames.pokes("c1") == [poke(0, 1, presence=present("c2"))]

    driver.disconnect("c2")
    frames = driver.turn()

    assert frames.pokes("c1") == [poke(1, 2, presence=[delete("c2")])]

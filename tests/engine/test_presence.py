"""Presence patches: the initial presence on a client's first poke, then the changes."""

from __future__ import annotations

from reflectd.engine.handlers import EngineSettings

from .harness import (
    CLEAR,
    RoomDriver,
    initial_presence,
    poke,
    present,
    put,
    set_key,
)


def test_first_poke_carries_the_initial_presence_starting_with_clear() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.connect("c2")
    frames = driver.turn()

    for client_id in ("c1", "c2"):
        assert frames.pokes(client_id)[0]["presence"] == [CLEAR, *present("c1", "c2")]
    assert driver.clients["c1"].presence == {"c1", "c2"}


def test_second_client_gets_initial_presence_and_the_first_an_incremental_put() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", set_key(1, "x", 1))
    driver.turn()

    driver.connect("c2")
    frames = driver.turn()

    assert frames.pokes("c2") == [
        poke(None, 1, patch=[put("x", 1)], presence=initial_presence("c1", "c2")),
        poke(1, 2),
    ]
    assert frames.pokes("c1") == [poke(1, 2, presence=present("c2"))]


def test_presence_rides_on_the_first_poke_of_the_turn_not_a_new_one() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()
    driver.connect("c2")
    driver.push("c1", set_key(1, "x", 1), set_key(2, "y", 2))

    frames = driver.turn()

    assert [p["presence"] for p in frames.pokes("c1")] == [present("c2"), []]
    assert driver.room.state.version == 2, "no version bump: everyone had a poke"


def test_closing_client_is_deleted_from_the_others_presence() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.connect("c2")
    driver.turn()

    driver.disconnect("c2")
    frames = driver.turn()

    assert frames.pokes("c1") == [poke(0, 1, presence=[{"op": "del", "key": "c2"}])]
    assert driver.clients["c1"].presence == {"c1"}
    assert driver.clients["c2"].presence == {"c2"}, "a closed socket resets presence to self"


def test_connect_then_disconnect_between_two_turns_is_invisible() -> None:
    calls: list[str] = []
    driver = RoomDriver(on_client_disconnect=lambda tx: calls.append(tx.client_id))
    driver.connect("c1")
    driver.turn()

    driver.connect("visitor")
    driver.disconnect("visitor")

    assert driver.turn() == {}
    assert calls == []
    assert driver.room.state.version == 0


def test_disconnected_client_with_unprocessed_mutations_stays_present_until_applied() -> None:
    driver = RoomDriver(settings=EngineSettings(max_mutations_per_turn=1))
    driver.connect("c1")
    driver.connect("c2")
    driver.turn()
    driver.push("c2", 1, 2)
    driver.disconnect("c2")

    first = driver.turn()
    assert all(p["presence"] == [] for p in first.pokes("c1"))
    assert "c2" in driver.room.state.connected_clients

    second = driver.turn()
    assert second.pokes("c1")[0]["presence"] == [{"op": "del", "key": "c2"}]
    assert driver.room.state.connected_clients == {"c1"}


def test_incremental_presence_lists_puts_then_dels() -> None:
    driver = RoomDriver()
    driver.connect("stays")
    driver.connect("leaves")
    driver.turn()

    driver.disconnect("leaves")
    driver.connect("arrives")
    frames = driver.turn()

    assert frames.pokes("stays")[0]["presence"] == [
        {"op": "put", "key": "arrives", "value": 1},
        {"op": "del", "key": "leaves"},
    ]
    assert frames.pokes("arrives")[0]["presence"] == initial_presence("arrives", "stays")


def test_presence_change_when_every_client_needs_initial_presence_is_not_incremental() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.connect("c2")
    frames = driver.turn()
    for client_id in ("c1", "c2"):
        presence = [p["presence"] for p in frames.pokes(client_id)]
        assert presence == [initial_presence("c1", "c2")]


def test_after_a_restart_stale_clients_leave_presence_at_the_first_turn() -> None:
    calls: list[str] = []
    driver = RoomDriver(on_client_disconnect=lambda tx: calls.append(tx.client_id))
    driver.connect("c1")
    driver.connect("c2")
    driver.turn()

    driver.restart()
    assert driver.room.state.connected_clients == {"c1", "c2"}
    driver.connect("c1")
    frames = driver.turn()

    assert calls == ["c2"]
    assert frames.pokes("c1") == [poke(0, 1, presence=initial_presence("c1"))]

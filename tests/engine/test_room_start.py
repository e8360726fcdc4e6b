"""The room-start handler: its writes bump the version, without a poke; a failure stops the room."""

from __future__ import annotations

import pytest

from reflectd.engine.transaction import WriteTransaction
from reflectd.errors import AppCodeFailed

from .harness import RoomDriver, initial_presence, poke, put


def test_room_start_handler_writes_bump_the_version_without_a_poke() -> None:
    seen: list[tuple[object, ...]] = []

    def on_start(tx: WriteTransaction, room_id: str) -> None:
        seen.append((room_id, tx.client_id, tx.mutation_id, tx.auth, dict(tx.env)))
        tx.set("started", True)

    driver = RoomDriver(room_start_handler=on_start, env={"A": "1"})  # the driver starts it

    assert seen == [("r1", "", -1, None, {"A": "1"})]
    assert driver.room.state.version == 1
    assert driver.durable.version == 1
    assert driver.room.state.entries["started"].version == 1


def test_room_start_handler_that_writes_nothing_leaves_the_version_alone() -> None:
    driver = RoomDriver(room_start_handler=lambda tx, room_id: None)
    assert driver.room.state.version is None


def test_room_start_writes_reach_clients_by_fast_forward() -> None:
    driver = RoomDriver(room_start_handler=lambda tx, room_id: tx.set("k", room_id))
    driver.connect("c1")
    frames = driver.turn()
    assert frames.pokes("c1") == [
        poke(None, 1, patch=[put("k", "r1")], presence=initial_presence("c1"))
    ]


def test_room_start_handler_runs_again_after_a_restart_at_the_next_version() -> None:
    versions: list[int] = []

    def on_start(tx: WriteTransaction, room_id: str) -> None:
        tx.set("starts", (tx.get("starts") or 0) + 1)

    driver = RoomDriver(room_start_handler=on_start)
    driver.connect("c1")
    driver.turn()
    versions.append(driver.room.state.version or 0)
    driver.restart()
    versions.append(driver.room.state.version or 0)

    assert versions == [1, 2]
    assert driver.live_data() == {"starts": 2}
    driver.connect("c1")
    frames = driver.turn()
    assert frames.pokes("c1")[0] == poke(
        1, 2, patch=[put("starts", 2)], presence=initial_presence("c1")
    )


def test_room_start_handler_that_raises_propagates_and_writes_nothing() -> None:
    def on_start(tx: WriteTransaction, room_id: str) -> None:
        tx.set("half", 1)
        raise RuntimeError("cannot start")

    driver = RoomDriver(room_start_handler=on_start, start=False)
    with pytest.raises(AppCodeFailed, match="RuntimeError: cannot start"):
        driver.room.start()
    assert driver.room.state.version is None
    assert dict(driver.room.state.entries) == {}
    assert driver.room.take_writes().is_empty()

"""The close beacon, room side: its answers, and when the client's record and keys go."""

from __future__ import annotations

from reflectd.engine.room import BeaconOutcome
from reflectd.engine.transaction import WriteTransaction

from .harness import RoomDriver, delete, poke, put, set_key


def _room_where_gone_left_after_two_mutations(**kwargs: object) -> RoomDriver:
    driver = RoomDriver(**kwargs)  # type: ignore[arg-type]
    driver.connect("c1")
    driver.connect("gone")
    driver.push("gone", set_key(1, "-/p/gone/cursor", 1), set_key(2, "shared", 2))
    driver.turn()
    driver.disconnect("gone")
    driver.turn()  # version 3
    return driver


def test_close_beacon_for_an_unknown_client_answers_404_and_changes_nothing() -> None:
    driver = RoomDriver()
    before = driver.observe()
    assert driver.close_beacon("nobody", 0) == BeaconOutcome(404, "client record not found")
    assert driver.observe() == before


def test_close_beacon_from_another_user_answers_403_and_changes_nothing() -> None:
    driver = _room_where_gone_left_after_two_mutations()
    before = driver.observe()
    assert driver.close_beacon("gone", 2, user_id="mallory") == BeaconOutcome(
        403, "client belongs to another user"
    )
    assert driver.observe() == before


def test_close_beacon_while_connected_records_the_id_for_the_disconnect() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()

    outcome = driver.close_beacon("c1", 7)

    assert outcome == BeaconOutcome(200, "Client is still connected")
    assert driver.room.state.clients["c1"].last_mutation_id_at_close == 7
    assert driver.durable.clients["c1"].last_mutation_id_at_close == 7


def test_close_beacon_for_a_connected_client_before_its_first_turn_counts_as_connected() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    assert driver.close_beacon("c1", 0).text == "Client is still connected"
    assert "c1" in driver.room.state.clients


def test_close_beacon_with_a_lower_id_than_the_record_answers_500_and_changes_nothing() -> None:
    driver = _room_where_gone_left_after_two_mutations()
    before = driver.observe()
    assert driver.close_beacon("gone", 1) == BeaconOutcome(
        500, "Client mutationID is less than existing"
    )
    assert driver.observe() == before


def test_close_beacon_with_a_higher_id_answers_pending_mutations_and_stores_nothing() -> None:
    driver = _room_where_gone_left_after_two_mutations()
    before = driver.observe()
    assert driver.close_beacon("gone", 3) == BeaconOutcome(200, "Client has pending mutations")
    assert driver.observe() == before


def test_close_beacon_with_the_equal_id_deletes_the_client_and_its_per_client_keys() -> None:
    calls: list[tuple[str, int, object]] = []

    def on_delete(tx: WriteTransaction) -> None:
        calls.append((tx.client_id, tx.mutation_id, tx.auth))

    driver = _room_where_gone_left_after_two_mutations(on_client_delete=on_delete)

    assert driver.close_beacon("gone", 2) == BeaconOutcome(200, "ok")

    assert calls == [("gone", -1, None)]
    assert "gone" not in driver.room.state.clients
    assert "gone" not in driver.durable.clients
    assert driver.room.state.entries["-/p/gone/cursor"].deleted
    assert driver.room.state.entries["-/p/gone/cursor"].version == 4
    assert driver.room.state.version == 4
    assert driver.live_data() == {"shared": 2}


def test_close_beacon_never_pokes_and_connected_clients_catch_up_by_fast_forward() -> None:
    driver = _room_where_gone_left_after_two_mutations(
        on_client_delete=lambda tx: tx.set("deleted", tx.client_id)
    )
    driver.close_beacon("gone", 2)  # the driver checks that nothing is sent

    driver.push("c1", set_key(1, "x", 1))
    frames = driver.turn()

    assert frames.pokes("c1")[0] == poke(
        3, 4, patch=[delete("-/p/gone/cursor"), put("deleted", "gone")]
    )


def test_close_beacon_with_equal_id_and_nothing_to_delete_does_not_bump_the_version() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.connect("quiet")
    driver.turn()
    driver.disconnect("quiet")
    driver.turn()
    version = driver.room.state.version

    assert driver.close_beacon("quiet", 0) == BeaconOutcome(200, "ok")

    assert "quiet" not in driver.room.state.clients
    assert driver.room.state.version == version


def test_close_beacon_delete_handler_that_raises_still_deletes_the_client() -> None:
    def on_delete(tx: WriteTransaction) -> None:
        tx.set("half", 1)
        raise RuntimeError("bug")

    driver = _room_where_gone_left_after_two_mutations(on_client_delete=on_delete)
    assert driver.close_beacon("gone", 2).text == "ok"
    assert "gone" not in driver.room.state.clients
    assert "half" not in driver.live_data()


def test_close_beacon_after_the_socket_closed_but_before_the_next_turn_counts_as_connected() -> (
    None
):
    deleted: list[str] = []
    driver = RoomDriver(on_client_delete=lambda tx: deleted.append(tx.client_id))
    driver.connect("c1")
    driver.connect("c2")
    driver.push("c2", 1)
    driver.turn()
    driver.disconnect("c2")  # still in the stored connected clients until the next turn

    assert driver.close_beacon("c2", 1) == BeaconOutcome(200, "Client is still connected")
    driver.turn()

    assert deleted == ["c2"], "collected at its disconnect"
    assert "c2" not in driver.room.state.clients

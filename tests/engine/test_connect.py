"""Connecting to a room: the room's checks of the request, the client record, ``connected``."""

from __future__ import annotations

from reflectd.errors import (
    ClientNotFound,
    InvalidConnectionRequest,
    InvalidConnectionRequestBaseCookie,
    InvalidConnectionRequestLastMutationID,
)

from .harness import START_MS, RoomDriver, initial_presence, poke, put, set_key


def test_connect_to_a_fresh_room_sends_connected_then_a_poke_from_null_to_zero() -> None:
    driver = RoomDriver()
    c1 = driver.connect("c1", wsid="w1")
    assert c1.frames == [["connected", {"wsid": "w1", "timestamp": START_MS}]]

    frames = driver.turn()

    assert frames.pokes("c1") == [poke(None, 0, presence=initial_presence("c1"))]
    assert driver.room.state.version == 0
    assert c1.presence == {"c1"}


def test_connect_writes_the_client_record_before_anything_is_sent() -> None:
    driver = RoomDriver()
    driver.connect("c1", group="g1", user="u1")

    record = driver.durable.clients["c1"]
    assert record.client_group_id == "g1"
    assert record.base_cookie is None
    assert record.last_mutation_id == 0
    assert record.last_mutation_id_version is None
    assert record.last_seen_ms == START_MS
    assert record.user_id == "u1"


def test_connect_with_empty_wsid_echoes_it() -> None:
    driver = RoomDriver()
    c1 = driver.connect("c1", wsid="")
    assert c1.frames[0] == ["connected", {"wsid": "", "timestamp": START_MS}]


def test_connect_with_base_cookie_above_the_room_version_raises_base_cookie_error() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()  # version 0

    driver.assert_rejected(
        InvalidConnectionRequestBaseCookie,
        lambda: driver.connect("c2", base_cookie=1),
        match="^Unexpected baseCookie.$",
    )


def test_connect_with_any_base_cookie_to_a_room_without_version_raises_base_cookie_error() -> None:
    driver = RoomDriver()
    driver.assert_rejected(
        InvalidConnectionRequestBaseCookie, lambda: driver.connect("c1", base_cookie=0)
    )


def test_connect_with_lmid_above_the_stored_one_raises_last_mutation_id_error() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", 1, 2)
    driver.turn()
    driver.disconnect("c1")

    driver.assert_rejected(
        InvalidConnectionRequestLastMutationID,
        lambda: driver.connect("c1", lmid=3),
        match="^Unexpected lmid.$",
    )
    driver.connect("c1", lmid=2)


def test_connect_of_an_unknown_client_with_lmid_above_zero_raises_last_mutation_id_error() -> None:
    driver = RoomDriver()
    driver.assert_rejected(
        InvalidConnectionRequestLastMutationID, lambda: driver.connect("c1", lmid=1)
    )


def test_connect_with_another_client_group_than_the_record_raises_and_changes_nothing() -> None:
    driver = RoomDriver()
    driver.connect("c1", group="g1")
    driver.turn()
    driver.disconnect("c1")

    driver.assert_rejected(
        InvalidConnectionRequest,
        lambda: driver.connect("c1", group="g2"),
        match="^Unexpected clientGroupID.$",
    )


def test_connect_with_another_user_than_the_record_raises_unexpected_user_id() -> None:
    driver = RoomDriver()
    driver.connect("c1", user="alice")
    driver.turn()
    driver.disconnect("c1")

    error = driver.assert_rejected(
        InvalidConnectionRequest, lambda: driver.connect("c1", user="mallory")
    )
    assert error.message == "Unexpected userID"
    assert type(error) is InvalidConnectionRequest


def test_reconnect_replaces_the_record_keeping_last_mutation_ids_and_dropping_at_close() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", 1)
    driver.turn()
    assert driver.close_beacon("c1", 1).text == "Client is still connected"
    assert driver.room.state.clients["c1"].last_mutation_id_at_close == 1
    driver.disconnect("c1")
    driver.advance(500)

    driver.connect("c1")

    record = driver.room.state.clients["c1"]
    assert record.last_mutation_id == 1
    assert record.last_mutation_id_version == 1
    assert record.base_cookie == 1
    assert record.last_seen_ms == START_MS + 500
    assert record.last_mutation_id_at_close is None


def test_second_connection_with_the_same_client_id_closes_the_old_socket_silently() -> None:
    driver = RoomDriver()
    first = driver.connect("c1")
    old_connection = first.connection_id
    driver.turn()

    driver.connect("c1")

    assert driver.closed_connections == [old_connection]
    assert ["error"] not in [frame[:1] for frame in first.frames]
    assert driver.room.connections["c1"].connection_id == first.connection_id != old_connection


def test_close_of_the_replaced_socket_does_not_forget_the_new_connection() -> None:
    driver = RoomDriver()
    old = driver.connect("c1").connection_id
    driver.turn()
    new = driver.connect("c1").connection_id
    assert old is not None and new is not None

    driver.room.disconnect("c1", old)  # the old socket's close handler runs late

    assert driver.room.connections["c1"].connection_id == new
    driver.push("c1", set_key(1, "x", 1))
    frames = driver.turn()
    assert frames.pokes("c1")[-1]["patch"] == [put("x", 1)]


def test_replacing_connection_gets_the_initial_presence_again() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.connect("c2")
    driver.turn()

    driver.connect("c1")
    frames = driver.turn()

    assert frames.pokes("c1") == [poke(0, 1, presence=initial_presence("c1", "c2"))]
    assert frames.pokes("c2") == [poke(0, 1)]


def test_messages_on_a_socket_that_is_no_longer_the_clients_raise_client_not_found() -> None:
    driver = RoomDriver()
    old = driver.connect("c1").connection_id
    driver.connect("c1")

    driver.assert_rejected(
        ClientNotFound,
        lambda: driver.push("c1", 1, connection_id=old),
        match="^c1$",
    )


def test_messages_after_disconnect_raise_client_not_found() -> None:
    driver = RoomDriver()
    connection = driver.connect("c1").connection_id
    driver.disconnect("c1")

    driver.assert_rejected(ClientNotFound, lambda: driver.push("c1", 1, connection_id=connection))

"""Fast-forward of clients behind the room version: their first poke brings them up to it."""

from __future__ import annotations

from .harness import (
    RoomDriver,
    del_key,
    delete,
    initial_presence,
    mutation,
    poke,
    put,
    set_key,
)


def _room_with_history() -> RoomDriver:
    """A room at version 4 where "a" was set then deleted, "b" set, "c" set at 3."""
    driver = RoomDriver()
    driver.connect("writer")
    driver.push("writer", set_key(1, "a", 1), set_key(2, "b", 2), set_key(3, "c", 3))
    driver.push("writer", del_key(4, "a"))
    driver.turn()
    return driver


def test_fast_forward_from_null_sends_only_live_values_without_del_or_clear() -> None:
    driver = _room_with_history()

    driver.connect("fresh")
    frames = driver.turn()

    assert frames.pokes("fresh") == [
        poke(
            None,
            4,
            patch=[put("b", 2), put("c", 3)],
            presence=initial_presence("fresh", "writer"),
        ),
        poke(4, 5),  # the writer gets nothing else: presence bumps the version
    ]


def test_fast_forward_from_a_cookie_sends_del_for_keys_deleted_since() -> None:
    driver = RoomDriver()
    driver.connect("writer")
    driver.connect("reader")
    driver.push("writer", set_key(1, "a", 1), set_key(2, "keep", 2))
    driver.turn()
    driver.disconnect("reader")
    driver.turn()  # version 3: the reader's disconnect
    driver.push("writer", del_key(3, "a"), set_key(4, "new", 4), set_key(5, "keep", 5))
    driver.push("writer", set_key(6, "temp", 0), del_key(7, "temp"))
    driver.turn()
    assert driver.clients["reader"].cookie == 2

    driver.connect("reader")
    frames = driver.turn()

    [fast_forward, bump] = frames.pokes("reader")
    assert fast_forward["baseCookie"] == 2 and fast_forward["cookie"] == 8
    assert sorted(fast_forward["patch"], key=lambda op: op["key"]) == [
        delete("a"),
        put("keep", 5),
        put("new", 4),
        delete("temp"),
    ]
    assert bump == poke(8, 9)
    assert driver.clients["reader"].data == {"keep": 5, "new": 4}


def test_client_at_the_current_version_gets_no_fast_forward() -> None:
    driver = _room_with_history()
    driver.connect("reader")
    driver.turn()  # version 5
    assert driver.clients["reader"].cookie == driver.room.state.version == 5

    driver.connect("reader")  # a new socket, at the current version
    frames = driver.turn()

    assert frames.pokes("reader") == [poke(5, 6, presence=initial_presence("reader", "writer"))]


def test_tombstones_are_kept_forever_and_reach_a_client_from_an_old_cookie() -> None:
    driver = RoomDriver()
    driver.connect("writer")
    driver.connect("old")
    driver.push("writer", set_key(1, "gone", "soon"))
    driver.turn()
    driver.disconnect("old")
    driver.turn()
    driver.push("writer", del_key(2, "gone"))
    driver.push("writer", *(mutation(i, "increment") for i in range(3, 50)))
    driver.turn()

    assert driver.room.state.entries["gone"].deleted
    driver.connect("old")
    frames = driver.turn()
    assert delete("gone") in frames.pokes("old")[0]["patch"]
    assert "gone" not in driver.clients["old"].data


def test_fast_forward_confirms_mutations_of_every_client_of_the_group_connected_or_not() -> None:
    driver = RoomDriver()
    driver.connect("tab1", group="g")
    driver.connect("tab2", group="g")
    driver.connect("stranger", group="h")
    driver.push("tab1", 1, 2)
    driver.push("tab2", 1)
    driver.push("stranger", 1)
    driver.turn()
    driver.disconnect("tab1")
    driver.disconnect("tab2")
    driver.turn()

    driver.connect("tab3", group="g")
    driver.connect("late-stranger", group="h")
    frames = driver.turn()

    assert frames.pokes("tab3")[0]["lastMutationIDChanges"] == {"tab1": 2, "tab2": 1}
    assert frames.pokes("late-stranger")[0]["lastMutationIDChanges"] == {"stranger": 1}


def test_fast_forward_from_a_cookie_confirms_only_ids_changed_after_it() -> None:
    driver = RoomDriver()
    driver.connect("a", group="g")
    driver.connect("b", group="g")
    driver.push("a", 1)
    driver.push("b", 1)
    driver.turn()  # a: lmid 1 at version 1, b: lmid 1 at version 2
    driver.disconnect("b")
    driver.turn()
    driver.push("a", 2)
    driver.turn()

    driver.connect("b")
    frames = driver.turn()

    assert frames.pokes("b")[0]["lastMutationIDChanges"] == {"a": 2}


def test_fast_forward_has_no_timestamp() -> None:
    driver = _room_with_history()
    driver.connect("fresh")
    frames = driver.turn()
    assert "timestamp" not in frames.pokes("fresh")[0]


def test_clients_behind_and_new_get_one_fast_forward_each_before_the_turns_mutations() -> None:
    driver = _room_with_history()
    driver.connect("new1")
    driver.connect("new2")
    driver.push("writer", set_key(5, "d", 4))

    frames = driver.turn()

    for client_id in ("new1", "new2"):
        pokes = frames.pokes(client_id)
        assert [(p["baseCookie"], p["cookie"]) for p in pokes] == [(None, 4), (4, 5)]
        assert pokes[1]["patch"] == [put("d", 4)]
    assert [(p["baseCookie"], p["cookie"]) for p in frames.pokes("writer")] == [(4, 5)]


def _big_room(keys: int = 1500) -> RoomDriver:
    """A room with more entries than a fast-forward sends in one frame, one of them deleted."""
    driver = RoomDriver()
    driver.connect("writer")
    values = {f"k/{i:05d}": i for i in range(keys)}
    driver.push("writer", mutation(1, "setMany", values), del_key(2, "k/00007"))
    driver.turn()
    return driver


def test_a_big_fast_forward_is_streamed_and_brings_the_client_in_sync() -> None:
    driver = _big_room()

    driver.connect("fresh")
    frames = driver.turn()  # the turn checks that every recipient is in sync

    [stream] = driver.streams
    assert stream.pieces.base_cookie is None and stream.pieces.cookie == 2
    [fast_forward, _bump] = frames.pokes("fresh")
    assert len(fast_forward["patch"]) == 1499
    assert {op["op"] for op in fast_forward["patch"]} == {"put"}
    assert fast_forward["presence"] == initial_presence("fresh", "writer")


def test_a_client_joining_while_a_stream_runs_shares_it_and_catches_up() -> None:
    driver = _big_room()
    driver.connect("first")
    driver.turn()
    driver.push("writer", set_key(3, "k/00001", "changed"), del_key(4, "k/00002"))
    driver.turn()

    driver.connect("second")
    frames = driver.turn()

    first, second = driver.streams
    assert second.pieces is first.pieces, "the encoded patch is shared"
    [streamed, catch_up, *_] = frames.pokes("second")
    assert (streamed["baseCookie"], streamed["cookie"]) == (None, 2)
    assert catch_up["baseCookie"] == 2
    assert catch_up["patch"] == [put("k/00001", "changed"), delete("k/00002")]
    assert catch_up["lastMutationIDChanges"] == {}  # another client group's mutations
    assert driver.clients["second"].data == driver.live_data()

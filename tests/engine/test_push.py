"""Validating pushes and queueing their mutations: refusals, duplicates, order."""

from __future__ import annotations

from reflectd.engine.handlers import EngineSettings
from reflectd.errors import InvalidPush

from .harness import START_MS, RoomDriver, mutation, poke, put, set_key


def test_pushes_of_ids_one_two_three_give_three_pokes_with_consecutive_cookies() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()

    driver.push("c1", 1)
    driver.push("c1", 2)
    driver.push("c1", 3)
    frames = driver.turn()

    assert len(frames.poke_frames("c1")) == 1, "one poke message per client per turn"
    assert frames.pokes("c1") == [
        poke(0, 1, lmids={"c1": 1}, timestamp=START_MS),
        poke(1, 2, lmids={"c1": 2}, timestamp=START_MS),
        poke(2, 3, lmids={"c1": 3}, timestamp=START_MS),
    ]


def test_re_push_of_an_applied_id_is_ignored_silently() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", 1, 2, 3)
    driver.turn()

    driver.push("c1", 2)

    assert driver.room.queue == []
    assert driver.turn() == {}
    assert driver.room.state.version == 3


def test_re_push_of_a_queued_id_is_ignored_and_applied_once() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()

    driver.push("c1", mutation(1, "increment"))
    driver.push("c1", mutation(1, "increment"), mutation(2, "increment"))
    frames = driver.turn()

    assert [p["lastMutationIDChanges"] for p in frames.pokes("c1")] == [{"c1": 1}, {"c1": 2}]
    assert driver.live_data() == {"count": 2}


def test_client_re_sending_all_pending_mutations_after_reconnect_applies_each_once() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", *(mutation(i, "increment") for i in (1, 2, 3)))
    driver.turn()
    driver.push("c1", mutation(4, "increment"))
    driver.disconnect("c1")  # before 4 was confirmed

    driver.connect("c1")
    driver.push("c1", *(mutation(i, "increment") for i in (1, 2, 3, 4, 5)))
    driver.turn()

    assert driver.live_data() == {"count": 5}
    assert driver.clients["c1"].lmid == 5


def test_push_with_gap_in_mutation_ids_raises_invalid_push() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", 1, 2, 3)
    driver.turn()

    driver.assert_rejected(
        InvalidPush,
        lambda: driver.push("c1", 5),
        match=r"^Push contains unexpected mutation id 5 for client c1\. "
        r"Expected mutation id 4\.$",
    )


def test_push_with_gap_after_queued_mutations_expects_the_id_after_the_queue() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", 1, 2)

    driver.assert_rejected(
        InvalidPush, lambda: driver.push("c1", 4), match="Expected mutation id 3"
    )


def test_push_with_a_gap_after_valid_mutations_rejects_the_whole_push() -> None:
    driver = RoomDriver()
    driver.connect("c1")

    driver.assert_rejected(
        InvalidPush, lambda: driver.push("c1", set_key(1, "x", 1), set_key(3, "x", 3))
    )
    assert driver.turn().pokes("c1")[-1]["patch"] == []


def test_push_of_first_mutation_with_id_two_raises_invalid_push() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.assert_rejected(
        InvalidPush, lambda: driver.push("c1", 2), match="Expected mutation id 1"
    )


def test_push_for_a_client_of_another_group_raises_invalid_push_and_changes_nothing() -> None:
    driver = RoomDriver()
    driver.connect("c1", group="g1")
    driver.connect("c2", group="g2")
    driver.push("c1", 1)
    driver.turn()

    driver.assert_rejected(
        InvalidPush,
        lambda: driver.push("c2", 1, mutation(2, client_id="c1"), mutation(1)),
        match=r"^Push for client c2 with clientGroupID g2 contains mutation for client c1 "
        r"which belongs to clientGroupID g1\.$",
    )


def test_push_for_another_users_client_of_the_same_group_raises_invalid_push() -> None:
    """Stricter than the original (which runs it with the pusher's auth): a legitimate
    group has one user, so this is a forgery."""
    driver = RoomDriver()
    driver.connect("alice-c", group="g", user="alice")
    driver.connect("mallory-c", group="g", user="mallory")
    driver.push("alice-c", 1)
    driver.turn()

    driver.assert_rejected(
        InvalidPush,
        lambda: driver.push("mallory-c", mutation(1), mutation(2, client_id="alice-c")),
        match=r"^Push for client mallory-c contains mutation for client alice-c which belongs "
        r"to another user\.$",
    )


def test_push_recovering_a_client_of_the_same_user_and_group_is_accepted() -> None:
    driver = RoomDriver()
    driver.connect("tab1", group="g", user="alice")
    driver.connect("tab2", group="g", user="alice")
    driver.push("tab2", mutation(1, client_id="tab1"), mutation(1))
    driver.turn()
    assert driver.room.state.clients["tab1"].last_mutation_id == 1
    assert driver.room.state.clients["tab2"].last_mutation_id == 1


def test_push_whose_body_names_another_group_than_the_pushers_raises_invalid_push() -> None:
    driver = RoomDriver()
    driver.connect("c1", group="g1")
    driver.assert_rejected(InvalidPush, lambda: driver.push("c1", 1, group="g2"))


def test_push_for_a_new_client_queued_with_another_group_raises_invalid_push() -> None:
    driver = RoomDriver()
    driver.connect("c1", group="g1")
    driver.connect("c2", group="g2")
    driver.push("c1", mutation(1, client_id="lost"))  # recovery of "lost", group g1

    driver.assert_rejected(
        InvalidPush,
        lambda: driver.push("c2", mutation(2, client_id="lost")),
        match="belongs to clientGroupID g1",
    )


def test_push_recovering_another_clients_mutations_creates_its_record() -> None:
    driver = RoomDriver()
    driver.connect("c1", group="g1", user="u1")
    driver.turn()

    driver.push("c1", set_key(1, "x", 1, client_id="old"), set_key(2, "y", 2, client_id="old"))

    record = driver.room.state.clients["old"]
    assert (record.client_group_id, record.last_mutation_id, record.user_id) == ("g1", 0, "u1")
    assert record.base_cookie is None and record.last_seen_ms == START_MS
    frames = driver.turn()
    assert frames.pokes("c1") == [
        poke(0, 1, lmids={"old": 1}, patch=[put("x", 1)]),
        poke(1, 2, lmids={"old": 2}, patch=[put("y", 2)]),
    ], "recovered mutations have no timestamp"


def test_recovered_mutations_run_with_the_pushing_connections_auth() -> None:
    seen = []
    driver = RoomDriver(mutators={"probe": lambda tx, args: seen.append((tx.client_id, tx.auth))})
    driver.connect("c1", auth={"userID": "u1", "role": "admin"})
    driver.push("c1", mutation(1, "probe", client_id="old"), mutation(1, "probe"))
    driver.turn()

    assert seen == [
        ("old", {"userID": "u1", "role": "admin"}),
        ("c1", {"userID": "u1", "role": "admin"}),
    ]


def test_each_clients_mutations_stay_in_id_order_with_interleaved_pushers() -> None:
    applied: list[tuple[str, int]] = []
    driver = RoomDriver(
        mutators={"log": lambda tx, args: applied.append((tx.client_id, tx.mutation_id))}
    )
    driver.connect("a", group="g")
    driver.connect("b", group="g")
    driver.connect("c", group="h")
    log = "log"

    # b recovers a's mutations while a pushes them itself; c pushes with older timestamps
    driver.push("a", mutation(1, log))
    driver.push("b", mutation(1, log, client_id="a"), mutation(2, log, client_id="a"))
    driver.push("c", mutation(1, log, timestamp=START_MS - 40))
    driver.push("a", mutation(2, log), mutation(3, log))
    driver.push("b", mutation(1, log), mutation(4, log, client_id="a"))
    driver.push("c", mutation(2, log, timestamp=START_MS - 45))
    driver.turn()

    for client_id in ("a", "b", "c"):
        ids = [i for who, i in applied if who == client_id]
        assert ids == sorted(ids) == list(range(1, len(ids) + 1)), f"{client_id}: {ids}"
    assert len(applied) == 7


def test_one_pushers_mutations_keep_push_order_whatever_their_timestamps() -> None:
    applied: list[tuple[str, int]] = []
    driver = RoomDriver(
        mutators={"log": lambda tx, args: applied.append((tx.client_id, tx.mutation_id))}
    )
    driver.connect("a", group="g")
    driver.push(
        "a",
        mutation(1, "log", timestamp=START_MS - 10),
        mutation(1, "log", client_id="other"),
        mutation(2, "log", timestamp=START_MS - 30),
    )
    driver.turn()
    assert applied == [("a", 1), ("other", 1), ("a", 2)]


def test_live_mutations_of_different_pushers_are_applied_in_timestamp_order() -> None:
    applied: list[str] = []
    driver = RoomDriver(mutators={"log": lambda tx, args: applied.append(tx.client_id)})
    driver.connect("late", group="g1")
    driver.connect("early", group="g2")

    driver.push("late", mutation(1, "log", timestamp=START_MS - 5))
    driver.push("early", mutation(1, "log", timestamp=START_MS - 30))
    driver.turn()

    assert applied == ["early", "late"]


def test_poke_timestamp_is_the_mutation_timestamp_plus_the_clock_offset() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()

    # the client's clock is 10 s behind: offset = now - push timestamp = 10_000
    client_now = START_MS - 10_000
    driver.push("c1", mutation(1, timestamp=client_now - 20), timestamp=client_now)
    frames = driver.turn()

    assert frames.pokes("c1")[0]["timestamp"] == START_MS - 20


def test_clock_offset_is_kept_until_it_moves_by_more_than_a_second() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()
    driver.push("c1", 1, timestamp=START_MS - 10_000)  # offset 10_000
    driver.turn()

    driver.push("c1", 2, timestamp=START_MS - 9_100)  # offset 9_100: within 1 s, kept
    driver.push("c1", 3, timestamp=START_MS - 8_000)  # offset 8_000: replaced
    frames = driver.turn()

    assert [p["timestamp"] for p in frames.pokes("c1")] == [START_MS + 900, START_MS]


def test_clock_offset_of_a_rejected_push_is_not_kept() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", 1, timestamp=START_MS)

    driver.assert_rejected(InvalidPush, lambda: driver.push("c1", 3, timestamp=START_MS - 99_000))
    driver.push("c1", 2)
    frames = driver.turn()
    assert frames.pokes("c1")[-1]["timestamp"] == START_MS


def test_mutation_older_than_fifty_ms_at_push_time_gets_no_poke_timestamp() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()

    driver.push("c1", mutation(1, timestamp=START_MS - 49), mutation(2, timestamp=START_MS - 50))
    frames = driver.turn()

    assert "timestamp" in frames.pokes("c1")[0]
    assert "timestamp" not in frames.pokes("c1")[1]


def test_extreme_timestamps_do_not_break_the_push() -> None:
    # the most extreme timestamps the codec admits (JS safe integers; beyond: InvalidMessage)
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()
    extreme = float(2**53 - 1)

    driver.push("c1", mutation(1, timestamp=extreme), timestamp=-extreme)
    driver.push("c1", mutation(2, timestamp=-extreme), timestamp=extreme)
    driver.push("c1", mutation(3, timestamp=0), timestamp=0)
    frames = driver.turn()

    assert [p["lastMutationIDChanges"] for p in frames.pokes("c1")] == [
        {"c1": 1},
        {"c1": 2},
        {"c1": 3},
    ]


def test_push_with_no_mutations_is_accepted_and_queues_nothing() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1")
    assert driver.room.queue == []


def test_mutations_beyond_the_per_turn_limit_wait_for_the_next_turn() -> None:
    driver = RoomDriver(settings=EngineSettings(max_mutations_per_turn=2))
    driver.connect("c1")
    driver.turn()
    driver.push("c1", 1, 2, 3)

    first, second = driver.turn(), driver.turn()

    assert [p["cookie"] for p in first.pokes("c1")] == [1, 2]
    assert [p["cookie"] for p in second.pokes("c1")] == [3]


def test_push_for_a_deleted_client_with_queued_mutations_checks_the_queued_group() -> None:
    driver = RoomDriver()
    driver.connect("c1", group="g1")
    driver.connect("c2", group="g2")
    driver.push("c1", mutation(1, client_id="ghost"))
    driver.close_beacon("ghost", 0)  # the record goes, the queued mutation stays
    assert "ghost" not in driver.room.state.clients

    driver.assert_rejected(
        InvalidPush,
        lambda: driver.push("c2", mutation(2, client_id="ghost")),
        match="belongs to clientGroupID g1",
    )

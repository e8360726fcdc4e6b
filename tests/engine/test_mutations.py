"""Applying mutations in a turn: one version and one poke each, in order, failures skipped."""

from __future__ import annotations

from typing import Any

from reflectd.engine.handlers import EngineSettings
from reflectd.engine.transaction import WriteTransaction

from .harness import (
    START_MS,
    RoomDriver,
    del_key,
    delete,
    initial_presence,
    mutation,
    poke,
    put,
    set_key,
)


def test_every_applied_mutation_gets_its_own_version_and_its_own_poke() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.connect("c2")
    driver.turn()

    driver.push("c1", set_key(1, "a", 1), set_key(2, "b", 2))
    driver.push("c2", set_key(1, "c", 3))
    frames = driver.turn()

    assert [(p["baseCookie"], p["cookie"]) for p in frames.pokes("c1")] == [(0, 1), (1, 2), (2, 3)]
    assert [p["patch"] for p in frames.pokes("c2")] == [[put("a", 1)], [put("b", 2)], [put("c", 3)]]
    versions = {key: entry.version for key, entry in driver.room.state.entries.items()}
    assert versions == {"a": 1, "b": 2, "c": 3}
    assert driver.room.state.version == 3


def test_mutation_poke_confirms_the_id_only_to_clients_of_the_same_group() -> None:
    driver = RoomDriver()
    driver.connect("c1", group="g1")
    driver.connect("tab2", group="g1")
    driver.connect("other", group="g2")
    driver.turn()

    driver.push("c1", set_key(1, "x", 1))
    frames = driver.turn()

    assert frames.pokes("c1") == [
        poke(0, 1, lmids={"c1": 1}, patch=[put("x", 1)], timestamp=START_MS)
    ]
    assert frames.pokes("tab2") == frames.pokes("c1")
    assert frames.pokes("other") == [poke(0, 1, patch=[put("x", 1)], timestamp=START_MS)]


def test_mutator_that_raises_consumes_the_id_with_an_empty_patch() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.connect("c2", group="g2")
    driver.turn()

    driver.push("c1", mutation(1, "fail", {"key": "partial"}))
    frames = driver.turn()

    assert frames.pokes("c1") == [poke(0, 1, lmids={"c1": 1}, timestamp=START_MS)]
    assert frames.pokes("c2") == [poke(0, 1, timestamp=START_MS)]
    assert driver.room.state.clients["c1"].last_mutation_id == 1
    assert driver.room.state.clients["c1"].last_mutation_id_version == 1
    assert "partial" not in driver.room.state.entries, "the failed mutator's writes are dropped"


def test_unknown_mutator_consumes_the_id_with_an_empty_patch() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.turn()

    driver.push("c1", mutation(1, "noSuchMutator", {"x": 1}))
    frames = driver.turn()

    assert frames.pokes("c1") == [poke(0, 1, lmids={"c1": 1}, timestamp=START_MS)]


def test_room_keeps_working_after_failed_and_unknown_mutators() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push(
        "c1",
        mutation(1, "fail"),
        mutation(2, "noSuchMutator"),
        set_key(3, "x", "ok"),
        mutation(4, "fail"),
    )
    driver.turn()
    driver.push("c1", set_key(5, "y", "still ok"))
    driver.turn()

    assert driver.live_data() == {"x": "ok", "y": "still ok"}
    assert driver.clients["c1"].lmid == 5
    assert driver.room.state.version == 5


def test_mutator_raising_after_catching_its_own_error_keeps_nothing() -> None:
    def stubborn(tx: WriteTransaction, args: Any) -> None:
        tx.set("a", 1)
        try:
            tx.set("b", float("nan"))
        except ValueError:
            tx.set("c", 3)
        raise KeyError("finally gives up")

    driver = RoomDriver(mutators={"stubborn": stubborn})
    driver.connect("c1")
    driver.push("c1", mutation(1, "stubborn"))
    driver.turn()
    assert driver.live_data() == {}


def test_mutation_patch_lists_each_written_key_once_with_its_final_state() -> None:
    def churn(tx: WriteTransaction, args: Any) -> None:
        tx.set("a", 1)
        tx.set("b", 1)
        tx.set("a", 2)
        tx.delete("b")
        tx.set("same", "value")  # writing an unchanged value still puts it

    driver = RoomDriver(mutators={"churn": churn, "set": lambda tx, a: tx.set("same", "value")})
    driver.connect("c1")
    driver.push("c1", mutation(1, "set"))
    driver.turn()

    driver.push("c1", mutation(2, "churn"))
    frames = driver.turn()

    assert frames.pokes("c1")[0]["patch"] == [put("a", 2), delete("b"), put("same", "value")]


def test_mutation_deleting_a_key_writes_a_tombstone_at_its_version() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", set_key(1, "x", {"deep": [1, 2]}), del_key(2, "x"))
    frames = driver.turn()

    entry = driver.room.state.entries["x"]
    assert (entry.version, entry.deleted) == (2, True)
    assert entry.value == b'{"deep":[1,2]}', "a tombstone keeps the last value"
    assert frames.pokes("c1")[-1]["patch"] == [delete("x")]


def test_later_mutation_of_a_turn_sees_the_writes_of_earlier_ones() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", *(mutation(i, "increment", {"delta": i}) for i in range(1, 5)))
    frames = driver.turn()

    assert [p["patch"] for p in frames.pokes("c1")[1:]] == [
        [put("count", 1)],
        [put("count", 3)],
        [put("count", 6)],
        [put("count", 10)],
    ]


def test_all_pokes_of_a_turn_for_a_client_go_in_one_message_in_order() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    frames = driver.turn()
    assert len(frames["c1"]) == 1

    driver.connect("c2")
    driver.push("c1", 1, 2)
    frames = driver.turn()

    assert len(frames["c2"]) == 1
    assert frames.pokes("c2") == [
        poke(None, 0, presence=initial_presence("c1", "c2")),
        poke(0, 1, timestamp=START_MS),
        poke(1, 2, timestamp=START_MS),
    ]
    assert frames.pokes("c1")[0]["presence"] == [{"op": "put", "key": "c2", "value": 1}]


def test_poke_request_id_is_the_servers_not_the_pushs() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.push("c1", 1)
    frames = driver.turn()
    assert frames["c1"][0][1]["requestID"] == f"turn-{driver.turns}"


def test_pokes_go_only_to_clients_connected_at_the_start_of_the_turn() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.connect("gone")
    driver.turn()
    driver.push("c1", set_key(1, "x", 1))
    driver.disconnect("gone")

    frames = driver.turn()

    assert set(frames) == {"c1"}
    late = driver.connect("late")
    assert late.cookie is None and late.frames[-1][0] == "connected"
    frames = driver.turn()
    assert frames.pokes("late") == [
        poke(None, 2, patch=[put("x", 1)], presence=initial_presence("c1", "late")),
        poke(2, 3),  # c1 has no poke for the presence change: the version is bumped
    ]


def test_queued_mutation_of_a_deleted_client_is_dropped_and_the_room_keeps_working() -> None:
    driver = RoomDriver()
    driver.connect("c1", group="g1")
    driver.push("c1", set_key(1, "x", 1, client_id="ghost"))  # recovery: creates "ghost"
    driver.close_beacon("ghost", 0)  # deletes ghost's record while its mutation is queued
    assert "ghost" not in driver.room.state.clients

    driver.push("c1", set_key(1, "y", 2))
    frames = driver.turn()

    assert driver.live_data() == {"y": 2}
    assert [p["lastMutationIDChanges"] for p in frames.pokes("c1")] == [{}, {"c1": 1}]


def test_oversized_value_fails_its_mutation_instead_of_poisoning_the_turn() -> None:
    driver = RoomDriver(settings=EngineSettings(max_value_bytes=10))
    driver.connect("c1")
    driver.push("c1", set_key(1, "big", "x" * 100), set_key(2, "small", "ok"))
    frames = driver.turn()

    assert [p["patch"] for p in frames.pokes("c1")] == [[], [], [put("small", "ok")]]
    assert driver.clients["c1"].lmid == 2


def test_mutator_sees_its_mutation_and_the_pushers_auth() -> None:
    seen: list[tuple[Any, ...]] = []

    def probe(tx: WriteTransaction, args: Any) -> None:
        seen.append((tx.client_id, tx.mutation_id, tx.auth, dict(tx.env), args))
        seen.append((tx.reason, tx.location, tx.environment))

    driver = RoomDriver(mutators={"probe": probe}, env={"STAGE": "test"})
    driver.connect("c1", auth={"userID": "u1", "plan": "pro"})
    driver.push("c1", 1, mutation(2, "probe", {"n": [1, None]}))
    driver.turn()

    assert seen == [
        ("c1", 2, {"userID": "u1", "plan": "pro"}, {"STAGE": "test"}, {"n": [1, None]}),
        ("authoritative", "server", "server"),
    ]


def test_mutator_changing_its_args_or_a_read_value_changes_nothing_stored() -> None:
    def sneaky(tx: WriteTransaction, args: Any) -> None:
        value = tx.get("list")
        value.append("sneaked")
        args["list"].append("also sneaked")

    driver = RoomDriver(mutators={"sneaky": sneaky, "set": lambda tx, a: tx.set("list", a["list"])})
    driver.connect("c1")
    driver.push("c1", mutation(1, "set", {"list": [1]}), mutation(2, "sneaky", {"list": [2]}))
    driver.turn()

    assert driver.live_data() == {"list": [1]}


def test_turn_whose_only_work_is_a_dropped_mutation_sends_nothing() -> None:
    driver = RoomDriver()
    driver.connect("c1", group="g1")
    driver.turn()
    driver.push("c1", mutation(1, client_id="ghost"))
    driver.close_beacon("ghost", 0)

    assert driver.turn() == {}
    assert driver.room.queue == []
    assert driver.room.state.version == 0


def test_queued_mutation_beyond_the_next_id_of_a_re_created_client_is_skipped() -> None:
    driver = RoomDriver(settings=EngineSettings(max_mutations_per_turn=1))
    driver.connect("c1", group="g1")
    driver.turn()
    driver.push("c1", set_key(1, "a", 1, client_id="ghost"), set_key(2, "b", 2, client_id="ghost"))
    driver.turn()  # applies ghost's 1
    driver.close_beacon("ghost", 1)  # ghost is deleted with its 2 still queued
    driver.connect("ghost", group="g1")  # and comes back as a new client (lmid 0)

    driver.turn()

    assert driver.live_data() == {"a": 1}, "ghost's 2 is not its next id any more"
    assert driver.room.state.clients["ghost"].last_mutation_id == 0
    assert driver.room.queue == []


def test_without_smooth_playback_mutation_pokes_carry_no_timestamp() -> None:
    driver = RoomDriver(smooth_playback=False)
    driver.connect("c1")
    driver.connect("other", group="g2")
    driver.turn()

    driver.push("c1", set_key(1, "x", 1))
    frames = driver.turn()

    assert frames.pokes("c1") == [poke(0, 1, lmids={"c1": 1}, patch=[put("x", 1)])]
    assert frames.pokes("other") == [poke(0, 1, patch=[put("x", 1)])]

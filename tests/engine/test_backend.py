"""Changes from the app's backend between turns: a mutator run as the server and an import,
each one version that the next turn's fast-forward pokes to every client."""

from __future__ import annotations

from typing import Any

from reflectd.engine.backend import (
    IDEMPOTENCY_RETENTION_MS,
    ImportApplied,
    MutationApplied,
    ServerMutation,
    import_contents,
    mutate_as_server,
)
from reflectd.engine.handlers import CallFailed
from reflectd.engine.records import RememberedCall
from reflectd.engine.transaction import WriteTransaction
from reflectd.engine.turn import has_work

from .harness import START_MS, RoomDriver, set_key


def server_call(name: str, args: Any = None, key: str | None = None) -> ServerMutation:
    return ServerMutation(name, args, "billing", key, START_MS)


def test_a_server_mutation_is_one_version_poked_to_every_client() -> None:
    seen: list[tuple[str, Any, str, int]] = []

    def who(tx: WriteTransaction, args: Any) -> None:
        seen.append((tx.client_id, dict(tx.auth or {}), tx.reason, tx.mutation_id))
        tx.set("paid", args)

    driver = RoomDriver(mutators={"set": set_key_mutator, "who": who})
    for name in ("a", "b"):
        driver.connect(name)
    driver.turn()
    before = driver.room.state.version or 0

    outcome = mutate_as_server(driver.room, server_call("who", {"order": 1}))
    assert outcome == MutationApplied(before + 1)
    assert seen == [
        ("$server", {"userID": "$server", "apiKeyName": "billing"}, "authoritative", -1)
    ]
    assert has_work(driver.room)
    frames = driver.turn()  # the harness checks each client's cookie chain
    for name in ("a", "b"):
        (poke,) = frames.pokes(name)
        assert (poke["baseCookie"], poke["cookie"]) == (before, before + 1)
        assert poke["patch"] == [{"op": "put", "key": "paid", "value": {"order": 1}}]
        assert poke["lastMutationIDChanges"] == {}
    assert not has_work(driver.room)


def set_key_mutator(tx: WriteTransaction, args: Any) -> None:
    tx.set(args["key"], args["value"])


def test_a_throwing_server_mutation_changes_nothing_not_even_the_version() -> None:
    def fails(tx: WriteTransaction, args: Any) -> None:
        tx.set("half", True)
        raise ValueError("no such order")

    driver = RoomDriver(mutators={"fails": fails})
    driver.connect("a")
    driver.turn()
    version = driver.room.state.version
    outcome = mutate_as_server(driver.room, server_call("fails"))
    assert outcome == CallFailed("ValueError: no such order")
    assert driver.room.state.version == version and "half" not in driver.room.state.entries
    assert not has_work(driver.room)
    assert driver.commit().is_empty()


def test_an_idempotency_key_answers_the_first_outcome_and_is_committed() -> None:
    runs: list[Any] = []
    driver = RoomDriver(mutators={"count": lambda tx, args: runs.append(args)})
    first = mutate_as_server(driver.room, server_call("count", 1, key="k"))
    again = mutate_as_server(driver.room, server_call("count", 2, key="k"))
    assert isinstance(first, MutationApplied)
    assert again == MutationApplied(first.version, replayed=True)
    assert runs == [1]
    writes = driver.room.take_writes()
    assert writes.remembered == {"k": RememberedCall(first.version, START_MS)}


def test_remembered_keys_older_than_the_retention_are_forgotten_in_memory() -> None:
    driver = RoomDriver(mutators={"noop": lambda tx, args: None})
    mutate_as_server(driver.room, server_call("noop", key="old"))
    later = ServerMutation("noop", None, "billing", "new", START_MS + IDEMPOTENCY_RETENTION_MS)
    mutate_as_server(driver.room, later)
    assert list(driver.room.state.remembered) == ["new"]


def test_an_import_merges_or_replaces_in_one_poke_and_leaves_client_keys_alone() -> None:
    driver = RoomDriver()
    driver.connect("a")
    driver.turn()
    driver.push("a", set_key(1, "-/p/a/cursor", [1, 2]), set_key(2, "keep", 1))
    driver.turn()
    version = driver.room.state.version or 0

    merged = import_contents(
        driver.room, {"keep": b"1", "new": b'{"x":1}', "-/p/z": b"0"}, replace=False
    )
    assert merged == ImportApplied(version + 1, written=1, deleted=0, skipped=1)
    (poke,) = driver.turn().pokes("a")
    assert poke["patch"] == [{"op": "put", "key": "new", "value": {"x": 1}}]

    replaced = import_contents(driver.room, {"only": b'"this"'}, replace=True)
    assert replaced == ImportApplied(version + 2, written=1, deleted=2, skipped=0)
    (poke,) = driver.turn().pokes("a")
    assert sorted(op["key"] for op in poke["patch"]) == ["keep", "new", "only"]
    live = {k for k, e in driver.room.state.entries.items() if not e.deleted}
    assert live == {"-/p/a/cursor", "only"}


def test_an_import_that_changes_nothing_keeps_the_version() -> None:
    driver = RoomDriver()
    import_contents(driver.room, {"k": b"1"}, replace=False)
    driver.settle()
    version = driver.room.state.version
    assert import_contents(driver.room, {"k": b"1"}, replace=True) == ImportApplied(
        version or 0, written=0, deleted=0, skipped=0
    )
    assert not has_work(driver.room)

"""The mutator transaction API, exercised by mutators inside real turns."""

from __future__ import annotations

from typing import Any

import pytest

from reflectd.engine.handlers import EngineSettings
from reflectd.engine.transaction import WriteTransaction
from reflectd.errors import ValueTooLarge

from .harness import MAX_SAFE_INTEGER, RoomDriver, delete, put


def _driver_with(values: dict[str, Any], *, deleted: tuple[str, ...] = ()) -> RoomDriver:
    """A room holding ``values``, plus tombstones for ``deleted``."""
    driver = RoomDriver()

    def seed(tx: WriteTransaction) -> None:
        for key in deleted:
            tx.set(key, "to be deleted")
        for key, value in values.items():
            tx.set(key, value)

    driver.mutate(seed)
    driver.mutate(lambda tx: [tx.delete(key) for key in deleted])
    return driver


# ----------------------------------------------------------------------------- reads


def test_get_returns_the_value_or_none_and_has_tells_absent_from_null() -> None:
    driver = _driver_with({"n": None, "x": {"a": [1, 2.5, "s", True]}}, deleted=("gone",))

    outcome = driver.mutate(
        lambda tx: [(tx.get(key), tx.has(key)) for key in ("n", "x", "gone", "never")]
    )

    assert outcome.result == [
        (None, True),
        ({"a": [1, 2.5, "s", True]}, True),
        (None, False),
        (None, False),
    ]


def test_get_returns_a_fresh_copy_each_time() -> None:
    driver = _driver_with({"x": {"list": [1]}})

    def body(tx: WriteTransaction) -> Any:
        tx.get("x")["list"].append(2)
        return tx.get("x")

    assert driver.mutate(body).result == {"list": [1]}


def test_reads_see_the_transactions_own_writes_and_deletes() -> None:
    driver = _driver_with({"a": 1, "b": 2})

    def body(tx: WriteTransaction) -> Any:
        tx.set("a", 10)
        tx.set("c", 30)
        tx.delete("b")
        return [tx.get("a"), tx.has("b"), tx.get("b"), tx.get("c"), tx.scan().entries()]

    assert driver.mutate(body).result == [10, False, None, 30, [("a", 10), ("c", 30)]]


def test_is_empty_counts_only_live_entries_including_own_writes() -> None:
    driver = RoomDriver()
    assert driver.mutate(lambda tx: tx.is_empty()).result is True

    driver = _driver_with({}, deleted=("gone",))
    assert driver.mutate(lambda tx: tx.is_empty()).result is True

    def write_then_check(tx: WriteTransaction) -> Any:
        tx.set("k", 1)
        first = tx.is_empty()
        tx.delete("k")
        return first, tx.is_empty()

    assert driver.mutate(write_then_check).result == (False, True)


def test_scan_lists_live_entries_in_key_order_with_keys_values_and_entries() -> None:
    driver = _driver_with({"b": 2, "a": 1, "c": 3}, deleted=("bb",))

    def body(tx: WriteTransaction) -> Any:
        result = tx.scan()
        return result.keys(), result.values(), result.entries(), list(result), len(result)

    assert driver.mutate(body).result == (
        ["a", "b", "c"],
        [1, 2, 3],
        [("a", 1), ("b", 2), ("c", 3)],
        [1, 2, 3],
        3,
    )


def test_scan_with_prefix_lists_only_keys_starting_with_it() -> None:
    driver = _driver_with({"user/1": "a", "user/2": "b", "users": "no", "use": "no", "v": "no"})
    assert driver.mutate(lambda tx: tx.scan(prefix="user/").keys()).result == ["user/1", "user/2"]


def test_scan_from_a_start_key_is_inclusive_unless_exclusive() -> None:
    driver = _driver_with({key: key for key in ("a", "b", "c", "d")})

    def body(tx: WriteTransaction) -> Any:
        return (
            tx.scan(start_key="b").keys(),
            tx.scan(start_key="b", exclusive=True).keys(),
            tx.scan(start_key="bb").keys(),
            tx.scan(start_key="bb", exclusive=True).keys(),
        )

    assert driver.mutate(body).result == (
        ["b", "c", "d"],
        ["c", "d"],
        ["c", "d"],
        ["c", "d"],
    )


def test_scan_with_prefix_and_start_key_combines_them() -> None:
    driver = _driver_with({key: 0 for key in ("p/a", "p/b", "p/c", "q/a", "o/z")})

    def body(tx: WriteTransaction) -> Any:
        return (
            tx.scan(prefix="p/", start_key="a").keys(),  # start before the prefix: from it
            tx.scan(prefix="p/", start_key="p/b", exclusive=True).keys(),
            tx.scan(prefix="p/", start_key="q").keys(),  # start after the prefix: nothing
        )

    assert driver.mutate(body).result == (["p/a", "p/b", "p/c"], ["p/c"], [])


def test_scan_limit_caps_the_live_entries_returned() -> None:
    driver = _driver_with({"a": 1, "c": 3, "d": 4}, deleted=("b",))

    def body(tx: WriteTransaction) -> Any:
        return (
            tx.scan(limit=2).keys(),
            tx.scan(limit=0).keys(),
            tx.scan(limit=-1).keys(),
            tx.scan(limit=10).keys(),
            tx.scan(start_key="a", exclusive=True, limit=1).keys(),
        )

    assert driver.mutate(body).result == (["a", "c"], [], [], ["a", "c", "d"], ["c"])


def test_scan_merges_the_transactions_own_writes_in_key_order() -> None:
    driver = _driver_with({"b": 2, "d": 4})

    def body(tx: WriteTransaction) -> Any:
        tx.set("c", 3)
        tx.set("a", 1)
        tx.set("d", 40)
        tx.delete("b")
        tx.set("e", 5)
        tx.delete("e")
        return tx.scan().entries()

    assert driver.mutate(body).result == [("a", 1), ("c", 3), ("d", 40)]


def test_scan_orders_keys_by_code_point_which_is_utf8_byte_order() -> None:
    keys = ["b", "\U0001f600", "\uffff", "\ue000", "a", "é", "A"]
    driver = _driver_with(dict.fromkeys(keys, 0))
    scanned = driver.mutate(lambda tx: tx.scan().keys()).result
    assert scanned == sorted(keys, key=lambda key: key.encode())
    assert scanned == ["A", "a", "b", "é", "\ue000", "\uffff", "\U0001f600"]


# ----------------------------------------------------------------------------- writes


def test_set_and_put_store_a_value_at_the_mutations_version() -> None:
    driver = RoomDriver()

    def body(tx: WriteTransaction) -> Any:
        return tx.set("a", 1), tx.put("b", [2])

    outcome = driver.mutate(body)

    assert outcome.result == (None, None)
    assert outcome.patch == [put("a", 1), put("b", [2])]
    version = driver.room.state.version
    assert [driver.room.state.entries[k].version for k in ("a", "b")] == [version, version]


def test_delete_returns_whether_there_was_a_live_value() -> None:
    driver = _driver_with({"x": 1}, deleted=("gone",))

    def body(tx: WriteTransaction) -> Any:
        return [tx.delete("x"), tx.delete("x"), tx.delete("gone"), tx.del_("never")]

    outcome = driver.mutate(body)

    assert outcome.result == [True, False, False, False]
    assert outcome.patch == [delete("x")]


def test_delete_writes_a_versioned_tombstone_keeping_the_last_value() -> None:
    driver = _driver_with({"x": {"v": 1}})
    outcome = driver.mutate(lambda tx: tx.del_("x"))

    entry = driver.room.state.entries["x"]
    assert outcome.result is True
    assert entry.deleted and entry.version == driver.room.state.version
    assert entry.value == b'{"v":1}'


def test_delete_of_a_key_set_in_the_same_mutation_gives_a_del_op() -> None:
    driver = RoomDriver()

    def body(tx: WriteTransaction) -> Any:
        tx.set("temp", 1)
        return tx.delete("temp")

    outcome = driver.mutate(body)
    assert outcome.result is True
    assert outcome.patch == [delete("temp")]


def test_set_after_delete_revives_the_key() -> None:
    driver = _driver_with({}, deleted=("k",))
    outcome = driver.mutate(lambda tx: tx.set("k", "back"))
    assert outcome.patch == [put("k", "back")]
    assert driver.live_data() == {"k": "back"}


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        MAX_SAFE_INTEGER,
        -MAX_SAFE_INTEGER,
        0.1,
        -0.0,
        1e21,
        5e-324,
        1.7976931348623157e308,
        True,
        None,
        "",
        "é\u2028\U0001f600\x00",
        [],
        {},
        {"nested": {"list": [1, [2, [3]]], "": None}},
        (1, 2),
    ],
)
def test_json_values_reach_the_client_as_javascript_reads_them(value: Any) -> None:
    driver = RoomDriver()
    driver.connect("reader")
    outcome = driver.mutate(lambda tx: tx.set("v", value))

    expected = list(value) if isinstance(value, tuple) else value
    assert outcome.patch == [put("v", expected)]
    assert driver.clients["reader"].data == {"v": expected}
    assert driver.mutate(lambda tx: tx.get("v")).result == expected


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        {"ok": [1, float("nan")]},
        {1: "non-string key"},
        {("tuple",): 1},
        object(),
        {1, 2},
        b"bytes",
        "\ud800",
        {"\udfff": 1},
    ],
    ids=repr,
)
def test_values_that_are_not_json_make_the_mutator_fail_cleanly(value: Any) -> None:
    driver = RoomDriver()

    def body(tx: WriteTransaction) -> None:
        tx.set("before", "written first")
        tx.set("bad", value)

    outcome = driver.mutate(body)

    assert isinstance(outcome.error, ValueError), outcome.error
    assert outcome.patch == [], "the mutation is consumed with an empty patch"
    assert driver.live_data() == {}


def test_value_nested_too_deeply_makes_the_mutator_fail_cleanly() -> None:
    value: Any = "leaf"
    for _ in range(5000):
        value = [value]
    outcome = RoomDriver().mutate(lambda tx: tx.set("deep", value))
    assert isinstance(outcome.error, ValueError), outcome.error
    assert outcome.patch == []


def test_keys_must_be_strings() -> None:
    outcome = RoomDriver().mutate(lambda tx: tx.set(1, "x"))  # type: ignore[arg-type]
    assert isinstance(outcome.error, TypeError)
    assert outcome.patch == []


def test_key_size_limit_counts_utf8_bytes() -> None:
    driver = RoomDriver(settings=EngineSettings(max_key_bytes=8))

    assert driver.mutate(lambda tx: tx.set("k" * 8, 1)).error is None
    assert driver.mutate(lambda tx: tx.set("é" * 4, 1)).error is None
    too_long = driver.mutate(lambda tx: tx.set("é" * 4 + "k", 1))
    assert isinstance(too_long.error, ValueTooLarge)
    assert too_long.patch == []
    assert isinstance(driver.mutate(lambda tx: tx.set("\ud800", 1)).error, ValueError)


def test_value_size_limit_counts_json_bytes() -> None:
    driver = RoomDriver(settings=EngineSettings(max_value_bytes=10))

    assert driver.mutate(lambda tx: tx.set("ok", "x" * 8)).error is None  # '"xxxxxxxx"'
    too_big = driver.mutate(lambda tx: tx.set("big", "x" * 9))
    assert isinstance(too_big.error, ValueTooLarge)
    assert "more than the limit of 10" in str(too_big.error)
    assert driver.live_data() == {"ok": "x" * 8}


# ----------------------------------------------------------------------------- context


def test_transaction_tells_who_is_mutating_and_where() -> None:
    driver = RoomDriver(env={"REGION": "eu"})
    driver.connect("c1", auth={"userID": "u1", "extra": [1]})
    driver.turn()
    driver.mutate(lambda tx: None, client_id="c1")

    outcome = driver.mutate(
        lambda tx: (
            tx.client_id,
            tx.mutation_id,
            tx.auth,
            dict(tx.env),
            tx.reason,
            tx.location,
            tx.environment,
        ),
        client_id="c1",
    )

    assert outcome.result == (
        "c1",
        2,
        {"userID": "u1", "extra": [1]},
        {"REGION": "eu"},
        "authoritative",
        "server",
        "server",
    )

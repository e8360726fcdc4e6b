"""The transaction a server module's mutators get (node/prelude.js): Reflect's server
``WriteTransaction``, over the runtime's copy of the room (tests/js/apps/transaction.ts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reflectd.engine.transaction import WriteTransaction
from reflectd.js import JsRuntime

from ..harness import JsRoom, failure, mutation, start_runtime, written


@pytest.fixture(scope="module")
def runtime(node_ready: str) -> Iterator[JsRuntime]:
    runtime = start_runtime("transaction.ts", env={"REGION": "eu", "TIER": "gold"})
    yield runtime
    runtime.close()


@pytest.fixture
def room(runtime: JsRuntime) -> JsRoom:
    return JsRoom(runtime)


def python_scan(room: JsRoom, **options: Any) -> list[str]:
    """The keys the Python engine's transaction scans from the same entries."""
    tx = WriteTransaction(
        room.room.state.entries,
        version=room.version + 1,
        client_id="c1",
        mutation_id=1,
        auth=None,
        env={},
        max_key_bytes=2048,
        max_value_bytes=128 * 1024,
    )
    return tx.scan(**options).keys()


# ---------------------------------------------------------------------------- reads


def test_get_and_has_read_stored_values_and_missing_keys(room: JsRoom) -> None:
    room.mutate("put", {"key": "k", "value": {"n": [1, "two", None, True]}})

    assert room.out("read", {"key": "k"}) == {"value": {"n": [1, "two", None, True]}, "has": True}
    assert room.out("read", {"key": "missing"}) == {"value": "<undefined>", "has": False}


def test_has_is_true_for_a_stored_null(room: JsRoom) -> None:
    room.mutate("put", {"key": "k", "value": None})
    assert room.out("read", {"key": "k"}) == {"value": "<undefined>", "has": True}


def test_is_empty_until_something_is_written(room: JsRoom) -> None:
    assert room.out("isEmpty") is True
    assert room.out("isEmpty") is False  # the first call wrote `out`


def test_is_empty_ignores_deleted_keys(room: JsRoom) -> None:
    room.mutate("put", {"key": "k", "value": 1})
    room.mutate("delMany", ["k"])
    assert room.values() == {}
    assert room.out("isEmpty") is True


# ---------------------------------------------------------------------------- scans

SCAN_KEYS = ["a", "b/1", "b/2", "b/3", "b/4", "c"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"prefix": "b/"}, ["b/1", "b/2", "b/3", "b/4"]),
        ({"prefix": "b/", "limit": 2}, ["b/1", "b/2"]),
        ({"prefix": "b/", "start": {"key": "b/2"}}, ["b/2", "b/3", "b/4"]),
        ({"prefix": "b/", "start": {"key": "b/2", "exclusive": True}}, ["b/3", "b/4"]),
        ({"prefix": "b/", "start": {"key": "b/2", "exclusive": True}, "limit": 1}, ["b/3"]),
        ({"prefix": "b/", "start": {"key": "a"}}, ["b/1", "b/2", "b/3", "b/4"]),
        ({"prefix": "b/", "start": {"key": "b/9"}}, []),
        ({"start": {"key": "b/4", "exclusive": True}, "limit": 1}, ["c"]),
        ({"prefix": "b/", "limit": 0}, []),
        ({"prefix": "zzz"}, []),
    ],
)
def test_scan_with_prefix_start_and_limit_matches_the_python_engine(
    room: JsRoom, options: dict[str, Any], expected: list[str]
) -> None:
    room.mutate("putMany", [[key, key] for key in SCAN_KEYS])

    keys = room.out("scan", {"options": options, "via": "keys"})

    assert keys == expected
    start = options.get("start", {})
    assert keys == python_scan(
        room,
        prefix=options.get("prefix", ""),
        start_key=start.get("key"),
        exclusive=start.get("exclusive", False),
        limit=options.get("limit"),
    )


@pytest.mark.parametrize(
    ("via", "expected"),
    [
        ("keys", ["b/1", "b/2"]),
        ("values", [{"v": "b/1"}, {"v": "b/2"}]),
        ("entries", [["b/1", {"v": "b/1"}], ["b/2", {"v": "b/2"}]]),
        ("toArray", [{"v": "b/1"}, {"v": "b/2"}]),
        ("forAwait", [{"v": "b/1"}, {"v": "b/2"}]),
        ("forAwaitEntries", [["b/1", {"v": "b/1"}], ["b/2", {"v": "b/2"}]]),
    ],
)
def test_scan_results_read_as_keys_values_entries_arrays_and_async_iterables(
    room: JsRoom, via: str, expected: list[Any]
) -> None:
    room.mutate("putMany", [["a", 0], ["b/1", {"v": "b/1"}], ["b/2", {"v": "b/2"}], ["c", 0]])
    assert room.out("scan", {"options": {"prefix": "b/"}, "via": via}) == expected


def test_breaking_out_of_a_scan_loop_stops_it(room: JsRoom) -> None:
    room.mutate("putMany", [[f"k/{i}", i] for i in range(5)])
    assert room.out("scanStopEarly", {"prefix": "k/"}) == ["k/0", "k/1"]


#: keys whose UTF-8 order differs from JavaScript's UTF-16 order: U+FFFF and U+E000 sort
#: before an astral character in UTF-8 (EF.. < F0..), after it in UTF-16 (FFFF > D83D)
ORDER_KEYS = ["o/\uffff", "o/\U0001f600", "o/\ue000", "o/\ud7ff", "o/z", "o/\U00010000x", "o/"]


def test_scan_orders_keys_by_utf8_bytes_as_the_python_engine_does(room: JsRoom) -> None:
    room.mutate("putMany", [[key, key] for key in ORDER_KEYS])

    keys = room.out("scan", {"options": {"prefix": "o/"}, "via": "keys"})

    assert keys == sorted(ORDER_KEYS, key=lambda k: k.encode())
    assert keys == python_scan(room, prefix="o/")


def test_scan_merges_stored_keys_and_the_calls_own_writes_in_utf8_order(room: JsRoom) -> None:
    stored, new = ORDER_KEYS[::2], ORDER_KEYS[1::2]
    room.mutate("putMany", [[key, key] for key in stored])

    keys = room.out("putThenScan", {"keys": new, "options": {"prefix": "o/"}})

    assert keys == sorted(ORDER_KEYS, key=lambda k: k.encode())
    assert keys == python_scan(room, prefix="o/")


@pytest.mark.parametrize("start", ["o/\uffff", "o/\U0001f600", "o/\ue000"])
def test_scan_start_key_compares_by_utf8_bytes(room: JsRoom, start: str) -> None:
    room.mutate("putMany", [[key, key] for key in ORDER_KEYS])
    options = {"prefix": "o/", "start": {"key": start, "exclusive": True}}

    keys = room.out("scan", {"options": options, "via": "keys"})

    assert keys == python_scan(room, prefix="o/", start_key=start, exclusive=True)
    assert keys == [k for k in sorted(ORDER_KEYS, key=str.encode) if k.encode() > start.encode()]


# ---------------------------------------------------------------------------- writes


def test_set_and_put_store_and_del_reports_whether_the_key_existed(room: JsRoom) -> None:
    assert written(room.mutate("put", {"key": "a", "value": 1})) == {"a": 1}
    assert written(room.mutate("putMany", [["b", 2]])) == {"b": 2}

    assert written(room.mutate("del", {"key": "a"})) == {"a": "<deleted>", "out": True}
    assert written(room.mutate("del", {"key": "a"})) == {"out": False}
    assert written(room.mutate("del", {"key": "never"})) == {"out": False}
    assert room.values() == {"b": 2, "out": False}


def test_reads_see_the_calls_own_writes_and_deletes(room: JsRoom) -> None:
    room.mutate("putMany", [["w/a", "old"], ["w/c", "to delete"]])

    out = room.out("writeThenRead")

    assert out == {
        "a": "replaced",
        "c": "absent",
        "d": "absent",
        "deleted": True,
        "deletedAgain": False,
        "entries": [["w/a", "replaced"], ["w/b", "new"]],
    }
    assert {k: v for k, v in room.values().items() if k.startswith("w/")} == {
        "w/a": "replaced",
        "w/b": "new",
    }


def test_a_call_sees_the_writes_of_earlier_calls_of_its_batch_and_of_earlier_batches(
    room: JsRoom,
) -> None:
    results = room.batch(*[mutation("increment", {"key": "n"}) for _ in range(3)])
    assert [written(r) for r in results] == [{"n": 1}, {"n": 2}, {"n": 3}]

    room.batch(mutation("increment", {"key": "n"}), mutation("read", {"key": "n"}))
    assert room.values()["n"] == 4
    assert room.values()["out"] == {"value": 4, "has": True}


def test_a_call_that_fails_is_not_seen_by_the_next_calls_of_its_batch(room: JsRoom) -> None:
    results = room.batch(
        mutation("failAfterWrite", {"message": "no"}), mutation("read", {"key": "partial"})
    )

    assert failure(results[0]) == "Error: no"
    assert written(results[1]) == {"out": {"value": "<undefined>", "has": False}}


# ---------------------------------------------------------------------------- its fields


def test_the_transaction_carries_client_mutation_reason_location_auth_and_env(
    room: JsRoom,
) -> None:
    auth = {"userID": "u1", "role": "admin", "groups": ["a", "b"]}
    room.mutate("put", {"key": "x", "value": 0}, client_id="c7")

    out = room.out("txInfo", {"arg": 1}, client_id="c7", auth=auth)

    assert out == {
        "args": {"arg": 1},
        "clientID": "c7",
        "mutationID": 2,
        "reason": "authoritative",
        "location": "server",
        "auth": auth,
        "env": {"REGION": "eu", "TIER": "gold"},
    }


def test_a_mutator_called_with_no_argument_sees_null(room: JsRoom) -> None:
    assert room.out("txInfo")["args"] is None


def test_a_room_handler_has_no_auth(room: JsRoom) -> None:
    assert room.out("txInfo", auth=None)["auth"] is None


# ---------------------------------------------------------------------------- values


def test_object_properties_whose_value_is_undefined_are_dropped(room: JsRoom) -> None:
    result = room.mutate("putUndefinedProperties")
    assert result["out"].value == b'{"kept":1,"nested":{"list":[1]}}'  # type: ignore[index]


@pytest.mark.parametrize(
    "kind",
    ["function", "nan", "infinity", "date", "bigint", "cyclic", "undefined", "map", "nested"],
)
def test_a_value_that_is_not_json_fails_the_mutation_and_stores_nothing(
    room: JsRoom, kind: str
) -> None:
    message = failure(room.mutate("putNotJSON", {"kind": kind}))

    assert "not a JSON value" in message, message
    assert room.values() == {}


def test_a_mutator_that_throws_is_skipped_with_its_writes(room: JsRoom) -> None:
    results = room.batch(
        mutation("put", {"key": "before", "value": 1}),
        mutation("failAfterWrite", {"message": "this mutator always fails"}),
        mutation("throwString"),
        mutation("put", {"key": "after", "value": 2}),
    )

    assert failure(results[1]) == "Error: this mutator always fails"
    assert failure(results[2]) == "a plain string"
    assert room.values() == {"before": 1, "after": 2}


def test_an_unknown_name_in_a_batch_fails_alone(room: JsRoom) -> None:
    results = room.batch(mutation("noSuchMutator"), mutation("put", {"key": "k", "value": 1}))
    assert "noSuchMutator" in failure(results[0]) or "not a function" in failure(results[0])
    assert room.values() == {"k": 1}


# ---------------------------------------------------------------------------- size limits


@pytest.fixture(scope="module")
def small_runtime(node_ready: str) -> Iterator[JsRuntime]:
    runtime = start_runtime("transaction.ts", max_key_bytes=16, max_value_bytes=32)
    yield runtime
    runtime.close()


@pytest.mark.parametrize(
    ("key", "ok"),
    [("k" * 16, True), ("k" * 17, False), ("\u00e9" * 8, True), ("\u00e9" * 9, False)],
)
def test_keys_are_limited_in_utf8_bytes(small_runtime: JsRuntime, key: str, ok: bool) -> None:
    room = JsRoom(small_runtime)
    result = room.mutate("put", {"key": key, "value": 1})
    if ok:
        assert written(result) == {key: 1}
    else:
        assert "more than the limit of 16" in failure(result)
        assert room.values() == {}


@pytest.mark.parametrize(("value", "ok"), [("x" * 30, True), ("x" * 31, False)])
def test_values_are_limited_in_bytes_of_json(
    small_runtime: JsRuntime, value: str, ok: bool
) -> None:
    room = JsRoom(small_runtime)
    result = room.mutate("put", {"key": "k", "value": value})
    if ok:
        assert written(result) == {"k": value}
    else:
        assert "more than the limit of 32" in failure(result)
        assert room.values() == {}

"""Changes from the app's backend: ``rooms:mutate`` runs a mutator and ``rooms:import``
writes contents, each as one authoritative change that connected clients get in their next
poke; bad calls are refused with nothing stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from .conftest import BOTH_BACKENDS, SHAPES, Live, Rest, Socket, assert_error

pytestmark = [pytest.mark.anyio, BOTH_BACKENDS]


def body(name: str, args: Any = None) -> str:
    return json.dumps({"name": name, "args": args})


async def mutate(rest: Rest, room_id: str, name: str, args: Any = None, **kwargs: Any) -> Any:
    return await rest.ok(
        "apps", "POST", "rooms:mutate", {"roomID": room_id}, body=body(name, args), **kwargs
    )


async def contents(rest: Rest, room_id: str) -> dict[str, Any]:
    result = await rest.ok("apps", "GET", "rooms/contents", {"roomID": room_id})
    return dict(result["contents"])


async def next_poke(sock: Socket) -> dict[str, Any]:
    """The next poke message's only poke."""
    frame = await sock.next()
    while frame[0] != "poke":
        frame = await sock.next()
    (poke,) = frame[1]["pokes"]
    return dict(poke)


# ------------------------------------------------------------------------------ rooms:mutate


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_mutation_reaches_a_connected_client_in_its_next_poke(
    live: Live, shape: str
) -> None:
    sock = await live.connect("r", "a")
    result = await live.ok(
        shape,
        "POST",
        "rooms:mutate",
        {"roomID": "r"},
        body=body("put", {"key": "paid", "value": {"order": 17}}),
    )
    poke = await next_poke(sock)
    assert result == {"version": poke["cookie"], "replayed": False}
    assert poke["patch"] == [{"op": "put", "key": "paid", "value": {"order": 17}}]
    assert poke["lastMutationIDChanges"] == {}
    assert await contents(live, "r") == {"paid": {"order": 17}}


async def test_the_mutator_runs_as_the_server_with_the_key_name(rest: Rest) -> None:
    await rest.create("r")
    key = await rest.make_key("billing-backend", "rooms:write")
    await mutate(rest, "r", "whoami", [1, "two"], key=key)
    assert (await contents(rest, "r"))["caller"] == {
        "clientID": "$server",
        "auth": {"userID": "$server", "apiKeyName": "billing-backend"},
        "reason": "authoritative",
        "args": [1, "two"],
    }


async def test_no_client_may_connect_as_the_server(live: Live) -> None:
    sock = await live.open("r", "$server")
    frames = await sock.closed()
    assert frames == [
        [
            "error",
            "InvalidConnectionRequest",
            "clientID $server is reserved for the server's own mutations",
        ]
    ]


async def test_a_throwing_mutator_gets_422_and_changes_nothing(rest: Rest) -> None:
    await rest.create("r")
    before = await mutate(rest, "r", "put", {"key": "k", "value": 1})
    response = await rest.call(
        "apps", "POST", "rooms:mutate", {"roomID": "r"}, body=body("fail", "order 9")
    )
    assert_error(response, 422, 'Mutator "fail" failed: ValueError: refused order 9', "rooms")
    assert await contents(rest, "r") == {"k": 1}
    after = await mutate(rest, "r", "put", {"key": "k", "value": 2})
    assert after["version"] == before["version"] + 1  # the failed call took no version


@pytest.mark.parametrize(
    ("room", "call", "status", "message", "resource"),
    [
        ("open", body("nope"), 400, 'Unknown mutator "nope"', "rooms"),
        ("missing", body("put"), 404, 'Room "missing" not found', "rooms"),
        ("closed", body("put"), 409, 'Room "closed" is closed', "rooms"),
        ("deleted", body("put"), 410, 'Room "deleted" is deleted', "rooms"),
        (
            "open",
            '{"args": 1}',
            400,
            "Body schema error. Object missing required field `name`",
            "request",
        ),
        (
            "open",
            '{"name": 7}',
            400,
            "Body schema error. Expected `str`, got `int` - at `$.name`",
            "request",
        ),
        (
            "open",
            '{"name": "put", "arg": 1}',
            400,
            "Body schema error. Unexpected property arg",
            "request",
        ),
        ("open", '["put"]', 400, "Body schema error. Expected object. Got array", "request"),
        ("open", "", 400, "Body must be valid json.", "request"),
    ],
)
async def test_bad_calls_are_refused_and_nothing_changes(
    rest: Rest, room: str, call: str, status: int, message: str, resource: str
) -> None:
    for name in ("open", "closed", "deleted"):
        await rest.create(name)
    for name in ("closed", "deleted"):
        await rest.ok("apps", "POST", "rooms:close", {"roomID": name})
    await rest.ok("apps", "POST", "rooms:delete", {"roomID": "deleted"})
    await mutate(rest, "open", "put", {"key": "k", "value": 1})
    response = await rest.call("apps", "POST", "rooms:mutate", {"roomID": room}, body=call)
    assert_error(response, status, message, resource)
    assert await contents(rest, "open") == {"k": 1}


async def test_concurrent_retries_with_one_idempotency_key_apply_once(rest: Rest) -> None:
    await rest.create("r")
    headers = {"Idempotency-Key": "order-17-paid"}
    results = await asyncio.gather(
        *(mutate(rest, "r", "increment", "paid", extra_headers=headers) for _ in range(10))
    )
    assert len({r["version"] for r in results}) == 1
    assert sorted(r["replayed"] for r in results) == [False] + [True] * 9
    later = await mutate(rest, "r", "increment", "paid", extra_headers=headers)
    assert later == {"version": results[0]["version"], "replayed": True}
    assert await contents(rest, "r") == {"paid": 1}
    other = await mutate(rest, "r", "increment", "paid", extra_headers={"Idempotency-Key": "b"})
    assert other["version"] == results[0]["version"] + 1
    assert await contents(rest, "r") == {"paid": 2}


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "a\tb"])
async def test_a_bad_idempotency_key_is_refused(rest: Rest, key: str) -> None:
    await rest.create("r")
    response = await rest.call(
        "apps",
        "POST",
        "rooms:mutate",
        {"roomID": "r"},
        body=body("increment", "n"),
        extra_headers={"Idempotency-Key": key.encode()},
    )
    assert_error(
        response,
        400,
        "Header error. Idempotency-Key must be 1 to 255 printable ASCII characters",
    )
    assert await contents(rest, "r") == {}


# ------------------------------------------------------------------------------ rooms:import


async def imported(rest: Rest, room_id: str, payload: Any) -> Any:
    return await rest.ok(
        "apps", "POST", "rooms:import", {"roomID": room_id}, body=json.dumps(payload)
    )


async def test_merge_and_replace_reach_a_connected_client_as_one_patch(live: Live) -> None:
    sock = await live.connect("r", "a")
    await mutate(live, "r", "put", {"key": "-/p/a/cursor", "value": [1, 2]})
    await mutate(live, "r", "put", {"key": "keep", "value": 1})
    await next_poke(sock)
    await next_poke(sock)

    merged = await imported(
        live, "r", {"contents": {"keep": 1, "new": {"deep": [1, {"x": None}]}, "-/p/z": 0}}
    )
    poke = await next_poke(sock)
    assert merged == {"version": poke["cookie"], "written": 1, "deleted": 0, "skipped": 1}
    assert poke["patch"] == [{"op": "put", "key": "new", "value": {"deep": [1, {"x": None}]}}]

    replaced = await imported(live, "r", {"contents": {"only": "this"}, "mode": "replace"})
    poke = await next_poke(sock)
    assert replaced == {"version": poke["cookie"], "written": 1, "deleted": 2, "skipped": 0}
    assert sorted(poke["patch"], key=lambda op: op["key"]) == [
        {"op": "del", "key": "keep"},
        {"op": "del", "key": "new"},
        {"op": "put", "key": "only", "value": "this"},
    ]
    # a client's own keys stay
    assert await contents(live, "r") == {"-/p/a/cursor": [1, 2], "only": "this"}


async def test_an_export_imports_into_a_new_room_unchanged(rest: Rest) -> None:
    big = {"blob": "x" * 100_000, "nested": {"a": [1, 2, {"b": "\u00e9\u4e2d\U0001f600"}]}}
    await imported(rest, "source", {"contents": {f"k{i}": {"i": i, **big} for i in range(20)}})
    exported = await contents(rest, "source")
    result = await imported(rest, "copy", {"contents": exported, "mode": "replace"})
    assert result["written"] == 20
    assert await contents(rest, "copy") == exported
    again = await imported(rest, "copy", {"contents": exported})
    assert again == {"version": result["version"], "written": 0, "deleted": 0, "skipped": 0}


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (
            b'{"contents": []}',
            400,
            "Body schema error. Expected `object`, got `array` - at `$.contents`",
        ),
        (
            b'{"contents": {}, "mode": "upsert"}',
            400,
            "Body schema error. Invalid enum value 'upsert' - at `$.mode`",
        ),
        (b'{"mode": "merge"}', 400, "Body schema error. Object missing required field `contents`"),
        (
            b'{"contents": {"a": 1}, "extra": 1}',
            400,
            "Body schema error. Unexpected property extra",
        ),
        (b'{"contents": {"a": "\xff"}}', 400, "Body must be valid json."),
        (b'{"contents": {"a": "\\ud800"}}', 400, "Body must be valid json."),
        (b'{"contents": {"a": 1}', 400, "Body must be valid json."),
    ],
)
async def test_hostile_import_bodies_are_refused_with_nothing_stored(
    rest: Rest, payload: bytes, status: int, message: str
) -> None:
    await imported(rest, "r", {"contents": {"k": 1}})
    response = await rest.call("apps", "POST", "rooms:import", {"roomID": "r"}, body=payload)
    assert_error(response, status, message)
    assert await contents(rest, "r") == {"k": 1}


async def test_keys_and_values_beyond_the_limits_are_refused_with_nothing_stored(
    rest: Rest,
) -> None:
    await imported(rest, "r", {"contents": {"k": 1}})
    for bad, reason in [
        ({"ok": 1, "x" * 3000: 1}, "the key is longer than 2048 bytes"),
        ({"ok": 1, "big": "v" * 200_000}, "the value is larger than 131072 bytes"),
    ]:
        response = await rest.call(
            "apps",
            "POST",
            "rooms:import",
            {"roomID": "r"},
            body=json.dumps({"contents": bad, "mode": "replace"}),
        )
        key = next(k for k in bad if k != "ok")
        quoted = json.dumps(key[:80])
        assert_error(response, 400, f"Invalid contents at key {quoted}: {reason}", "rooms")
    assert await contents(rest, "r") == {"k": 1}


async def test_an_import_larger_than_64_mib_is_refused(rest: Rest) -> None:
    payload = b'{"contents": {"a": "' + b"x" * (64 * 1024 * 1024) + b'"}}'
    response = await rest.call("apps", "POST", "rooms:import", {"roomID": "r"}, body=payload)
    assert_error(response, 413, f"Request body larger than {64 * 1024 * 1024} bytes")
    assert await rest.store.get_room("r") is None


async def test_an_import_into_a_closed_or_invalid_room_is_refused(rest: Rest) -> None:
    await rest.create("c")
    await rest.ok("apps", "POST", "rooms:close", {"roomID": "c"})
    response = await rest.call(
        "apps", "POST", "rooms:import", {"roomID": "c"}, body='{"contents": {"a": 1}}'
    )
    assert_error(response, 409, 'Room "c" is closed', "rooms")
    response = await rest.call(
        "apps", "POST", "rooms:import", {"roomID": "no way"}, body='{"contents": {"a": 1}}'
    )
    assert_error(response, 400, 'Invalid roomID "no way" (must match /^[A-Za-z0-9_/-]+$/)', "rooms")
    assert await rest.store.get_room("no way") is None


async def test_a_body_that_is_not_utf8_is_refused_by_every_route(rest: Rest) -> None:
    """(It was a 500 for ``rooms:create`` once.)"""
    for command in ("rooms:create", "rooms:import", "rooms:mutate"):
        response = await rest.call(
            "apps", "POST", command, {"roomID": "r"}, body=b'{"jurisdiction": "\xff"}'
        )
        assert_error(response, 400, "Body must be valid json.")

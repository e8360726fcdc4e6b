"""The JS runtime (runtime.py): room handlers and the auth handler of a server module, the
app's console in reflectd's log, and the room copy kept coherent with writes made elsewhere
and across restarts of the Node.js process."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from reflectd.app import App
from reflectd.engine.handlers import AppCall
from reflectd.engine.records import Entry, RoomSnapshot
from reflectd.errors import AppCodeFailed
from reflectd.js import JsRuntime
from reflectd.js.runtime import JsError
from reflectd.server.auth import Authenticator

from .harness import JsRoom, failure, mutation, written

Start = Callable[..., JsRuntime]


def entry(value: bytes, version: int = 1) -> Entry:
    return Entry(version=version, deleted=False, value=value)


# ---------------------------------------------------------------------------- room handlers


def test_room_start_handler_seeds_an_empty_room(runtime_of: Start) -> None:
    room = JsRoom(runtime_of("handlers.ts"), room_id="lobby")

    room.room.start()

    assert room.values() == {"seeded": {"roomID": "lobby", "clientID": ""}, "starts": 1}
    assert room.version == 1


def test_room_start_handler_does_not_seed_a_room_that_has_entries(runtime_of: Start) -> None:
    snapshot = RoomSnapshot(version=4, entries={"kept": entry(b"1", 3), "starts": entry(b"2", 3)})
    room = JsRoom(runtime_of("handlers.ts"), snapshot=snapshot)

    room.room.start()

    assert room.values() == {"kept": 1, "starts": 3}
    assert room.version == 5


def test_room_start_handler_that_throws_raises_app_code_failed(runtime_of: Start) -> None:
    room = JsRoom(runtime_of("handlers.ts"), room_id="cannot-start")

    with pytest.raises(AppCodeFailed, match="Error: room cannot-start refuses to start"):
        room.room.start()
    assert room.values() == {}
    assert room.room.take_writes().is_empty()


@pytest.mark.parametrize("app", ["handlers.ts", "disconnect_alias.ts"])
def test_on_client_disconnect_and_its_deprecated_alias_run_for_the_client(
    runtime_of: Start, app: str
) -> None:
    room = JsRoom(runtime_of(app))
    room.mutate("putPresence", client_id="c1")
    room.mutate("putPresence", client_id="c2")

    result = room.room.run_call(AppCall("clientDisconnect", client_id="c1", version=3))

    assert written(result)["presence/c1"] == "<deleted>"
    assert "presence/c1" not in room.values()
    assert "presence/c2" in room.values()


def test_on_client_delete_runs_before_the_clients_keys_are_deleted(runtime_of: Start) -> None:
    room = JsRoom(runtime_of("handlers.ts"))
    room.add_client("c1")

    writes = room.room.delete_client("c1", version=1)

    assert {k: e.deleted for k, e in writes.items()} == {"deleted/c1": False}
    assert room.values() == {"deleted/c1": "authoritative"}


def test_the_runtime_reports_which_handlers_the_module_has(runtime_of: Start) -> None:
    full = runtime_of("handlers.ts")
    alias = runtime_of("disconnect_alias.ts")
    assert full.handler_kinds == {"roomStart", "clientDisconnect", "clientDelete"}
    assert alias.handler_kinds == {"clientDisconnect"}
    assert full.mutator_names == {"putPresence", "saveAuth"}


# ---------------------------------------------------------------------------- the auth handler


def authenticator(runtime: JsRuntime, env: dict[str, str] | None = None) -> Authenticator:
    app = App(mutators={}, auth_handler=runtime.authenticate, env=env or {}, runtime=runtime)
    return Authenticator(app, timeout_ms=5000, threads=2)


@pytest.mark.anyio
async def test_auth_handler_result_keeps_its_extra_fields(runtime_of: Start) -> None:
    runtime = runtime_of("handlers.ts", env={"REGION": "eu"})
    auth = await authenticator(runtime)(token="alice", room_id="r1", user_id="alice")
    assert auth == {
        "userID": "alice",
        "roomID": "r1",
        "role": "admin",
        "tags": ["a", "b"],
        "region": "eu",
    }


@pytest.mark.anyio
async def test_async_and_sync_auth_handlers_are_awaited(runtime_of: Start) -> None:
    assert await runtime_of("handlers.ts").authenticate("async", "r9", {}) == {
        "userID": "later",
        "roomID": "r9",
    }
    assert await runtime_of("disconnect_alias.ts").authenticate("ok", "r1", {}) == {
        "userID": "sync-user"
    }


@pytest.mark.anyio
@pytest.mark.parametrize("app", ["handlers.ts", "disconnect_alias.ts"])
async def test_auth_handler_returning_null_refuses(runtime_of: Start, app: str) -> None:
    runtime = runtime_of(app)
    assert await runtime.authenticate("null", "r1", {}) is None
    with pytest.raises(Exception, match="no authData"):
        await authenticator(runtime)(token="null", room_id="r1", user_id="u")


@pytest.mark.anyio
async def test_auth_handler_that_throws_refuses_with_its_error(runtime_of: Start) -> None:
    runtime = runtime_of("handlers.ts")
    with pytest.raises(JsError, match="bad token for r1") as raised:
        await runtime.authenticate("throw", "r1", {})
    assert raised.value.js_name == "TypeError"

    with pytest.raises(Exception) as refused:
        await authenticator(runtime)(token="throw", room_id="r1", user_id="u")
    assert str(refused.value) == "authHandler rejected: TypeError: bad token for r1"

    with pytest.raises(Exception) as refused:
        await authenticator(runtime)(token="throw-string", room_id="r1", user_id="u")
    assert str(refused.value) == "authHandler rejected: Error: just a string"


# ---------------------------------------------------------------------------- console


def app_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, Any, Any]]:
    return [
        (r.levelno, r.getMessage(), getattr(r, "room_id", None), getattr(r, "client_id", None))
        for r in caplog.records
        if r.name == "reflectd.app"
    ]


def test_console_goes_to_the_reflectd_app_logger_with_room_and_client(
    runtime_of: Start, caplog: pytest.LogCaptureFixture
) -> None:
    room = JsRoom(runtime_of("console.ts"), room_id="lobby")
    caplog.set_level(logging.DEBUG, logger="reflectd.app")

    room.mutate("talk", {"text": "hi"}, client_id="c5")

    assert app_records(caplog) == [
        (logging.INFO, 'room lobby client c5: log hi {"n":1}', "lobby", "c5"),
        (logging.INFO, "room lobby client c5: info hi", "lobby", "c5"),
        (logging.WARNING, "room lobby client c5: warn hi", "lobby", "c5"),
        (logging.ERROR, "room lobby client c5: error hi", "lobby", "c5"),
        (logging.DEBUG, "room lobby client c5: debug hi", "lobby", "c5"),
    ]


def test_log_level_error_drops_the_apps_info_and_debug_output(
    runtime_of: Start, caplog: pytest.LogCaptureFixture
) -> None:
    room = JsRoom(runtime_of("console.ts", env={"LOG_LEVEL": "error"}))
    caplog.set_level(logging.DEBUG, logger="reflectd.app")

    room.mutate("talk", {"text": "hi"})

    assert [m for _, m, _, _ in app_records(caplog)] == ["room r1 client c1: error hi"]


def test_console_output_while_the_module_loads_reaches_the_log(
    runtime_of: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="reflectd.app")
    runtime_of("console.ts")
    messages = [m for _, m, _, _ in app_records(caplog)]
    assert "console.ts loaded" in messages
    assert "makeOptions called" in messages


# ---------------------------------------------------------------------------- coherence


def test_writes_made_outside_the_runtime_are_seen_by_the_next_call(runtime_of: Start) -> None:
    room = JsRoom(runtime_of("transaction.ts"))
    room.mutate("putMany", [["a", 1], ["-/p/c1/cursor", 5], ["-/p/c2/cursor", 6]])
    room.add_client("c1")

    room.put_from_python({"a": 2, "b": 3})
    room.room.delete_client("c1", version=room.version + 1)

    assert room.out("scan", {"options": {"prefix": ""}, "via": "entries"}) == [
        ["-/p/c2/cursor", 6],
        ["a", 2],
        ["b", 3],
    ]


def test_two_rooms_have_copies_of_their_own(runtime_of: Start) -> None:
    runtime = runtime_of("transaction.ts")
    one, two = JsRoom(runtime, room_id="same"), JsRoom(runtime, room_id="same")
    one.mutate("put", {"key": "k", "value": 1})
    assert two.out("read", {"key": "k"}) == {"value": "<undefined>", "has": False}


def test_a_reloaded_room_is_sent_whole(runtime_of: Start) -> None:
    runtime = runtime_of("transaction.ts")
    room = JsRoom(runtime)
    room.mutate("put", {"key": "k", "value": 1})
    snapshot = RoomSnapshot(version=room.version, entries=dict(room.room.state.entries))
    snapshot.entries["k"] = entry(b"41")

    reloaded = JsRoom(runtime, snapshot=snapshot)

    assert written(reloaded.mutate("increment", {"key": "k"})) == {"k": 42}


def test_a_killed_node_process_is_restarted_and_the_room_resynced(runtime_of: Start) -> None:
    runtime = runtime_of("transaction.ts")
    room = JsRoom(runtime)
    room.batch(*[mutation("increment", {"key": "n"}) for _ in range(3)])
    room.put_from_python({"from-python": True})
    assert runtime._channel is not None
    runtime._channel.process.kill()
    runtime._channel.process.wait()

    results = room.batch(
        mutation("increment", {"key": "n"}),
        mutation("failAfterWrite", {"message": "still fails"}),
        mutation("read", {"key": "from-python"}),
    )

    assert written(results[0]) == {"n": 4}
    assert failure(results[1]) == "Error: still fails"
    assert written(results[2]) == {"out": {"value": True, "has": True}}
    assert runtime._channel is not None and runtime._channel.process.poll() is None


def test_a_killed_node_process_is_restarted_for_the_auth_handler(runtime_of: Start) -> None:
    runtime = runtime_of("handlers.ts")
    assert runtime._channel is not None
    runtime._channel.process.kill()
    runtime._channel.process.wait()
    room = JsRoom(runtime)

    assert written(room.mutate("putPresence")) == {"presence/c1": True}
    assert asyncio.run(runtime.authenticate("bob", "r1", {}))["userID"] == "bob"  # type: ignore[index]


def test_node_killed_during_a_batch_loses_nothing_and_gives_the_same_results(
    runtime_of: Start,
) -> None:
    runtime = runtime_of("limits.ts")
    room = JsRoom(runtime)
    room.mutate("put", {"key": "before", "value": 0})
    assert runtime._channel is not None
    process = runtime._channel.process
    killer = threading.Timer(0.1, process.kill)
    killer.start()

    results = room.batch(
        mutation("put", {"key": "a", "value": 1}),
        mutation("busy", {"ms": 300}),  # still running when the process is killed
        mutation("put", {"key": "b", "value": 2}),
    )

    killer.join()
    assert process.poll() is not None  # it was killed mid-batch
    assert [written(r) for r in results] == [{"a": 1}, {"busy/3": 300}, {"b": 2}]
    assert room.values() == {"before": 0, "a": 1, "busy/3": 300, "b": 2}

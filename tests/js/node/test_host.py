"""The Node.js side of the runtime (node/host.mjs): the default export's two forms, and the
limits that stop runaway app code (tests/js/apps/limits.ts) without stopping the room."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

import pytest

from reflectd.js import JsLimits, JsRuntime
from reflectd.js.runtime import JsError

from ..harness import JsRoom, failure, mutation, written

Start = Callable[..., JsRuntime]

#: a small CPU limit keeps these tests fast
LIMITS = JsLimits(cpu_limit_ms=200)


# ---------------------------------------------------------------------------- the default export


@pytest.mark.parametrize("app", ["handlers.ts", "disconnect_alias.ts"])
def test_default_export_is_make_options_or_the_options_object(runtime_of: Start, app: str) -> None:
    room = JsRoom(runtime_of(app))
    assert written(room.mutate("putPresence")) == {"presence/c1": True}


# ---------------------------------------------------------------------------- CPU time


def test_a_mutator_that_spins_is_stopped_and_the_rest_of_its_batch_applies(
    runtime_of: Start,
) -> None:
    room = JsRoom(runtime_of("limits.ts", limits=LIMITS))
    started = time.monotonic()

    results = room.batch(
        mutation("put", {"key": "a", "value": 1}),
        mutation("spin"),
        mutation("put", {"key": "b", "value": 2}),
        mutation("spinAfterAwait"),
        mutation("put", {"key": "c", "value": 3}),
    )

    elapsed = time.monotonic() - started
    assert "ran past the time limit of 200 ms" in failure(results[1])
    assert "ran past the time limit of 200 ms" in failure(results[3])
    assert room.values() == {"a": 1, "b": 2, "c": 3}
    assert elapsed < 3, f"two runaways took {elapsed:.1f} s to stop"


def test_the_room_goes_on_after_a_runaway_mutator(runtime_of: Start) -> None:
    room = JsRoom(runtime_of("limits.ts", limits=LIMITS))
    room.mutate("spinAfterAwait")
    assert written(room.mutate("put", {"key": "k", "value": 1})) == {"k": 1}
    assert room.values() == {"k": 1}


def test_each_call_of_a_batch_has_the_whole_time_limit(runtime_of: Start) -> None:
    room = JsRoom(runtime_of("limits.ts", limits=LIMITS))

    results = room.batch(*[mutation("busy", {"ms": 120}) for _ in range(3)])

    assert [written(r) for r in results] == [{"busy/1": 120}, {"busy/2": 120}, {"busy/3": 120}]


def test_a_mutator_may_await_a_timer_and_crypto_subtle(runtime_of: Start) -> None:
    room = JsRoom(runtime_of("limits.ts", limits=LIMITS))

    results = room.batch(
        mutation("waitForTimer", {"ms": 20}),
        mutation("digest", {"text": "abc"}),
        mutation("put", {"key": "k", "value": 1}),
    )

    assert [written(r) for r in results] == [
        {"waited": 20},
        {"digest": hashlib.sha256(b"abc").hexdigest()},
        {"k": 1},
    ]


def test_a_mutator_that_waits_past_the_time_limit_fails_alone(runtime_of: Start) -> None:
    room = JsRoom(runtime_of("limits.ts", limits=LIMITS))

    results = room.batch(
        mutation("waitForTimer", {"ms": 5000}),
        mutation("put", {"key": "k", "value": 1}),
    )

    assert "did not finish within the time limit of 200 ms" in failure(results[0])
    assert room.values() == {"k": 1}


def test_a_mutator_that_awaits_what_never_settles_fails_at_once(runtime_of: Start) -> None:
    room = JsRoom(runtime_of("limits.ts", limits=LIMITS))

    results = room.batch(mutation("waitForever"), mutation("put", {"key": "k", "value": 1}))

    assert "did not finish" in failure(results[0])
    assert room.values() == {"k": 1}


@pytest.mark.anyio
async def test_an_auth_handler_that_spins_is_stopped_and_later_logins_work(
    runtime_of: Start,
) -> None:
    runtime = runtime_of("limits.ts", limits=LIMITS)
    started = time.monotonic()

    with pytest.raises(JsError, match="time limit"):
        await asyncio.wait_for(runtime.authenticate("spin", "r1", {}), timeout=10)

    assert time.monotonic() - started < 5
    assert await runtime.authenticate("bob", "r1", {}) == {"userID": "bob"}
    assert written(JsRoom(runtime).mutate("put", {"key": "k", "value": 1})) == {"k": 1}


# ---------------------------------------------------------------------------- the heap


def test_a_heap_bomb_fails_alone_and_the_runtime_recovers(runtime_of: Start) -> None:
    runtime = runtime_of("limits.ts", limits=JsLimits(cpu_limit_ms=5000, heap_limit_mb=64))
    room = JsRoom(runtime)
    room.mutate("put", {"key": "before", "value": 0})

    results = room.batch(
        mutation("put", {"key": "a", "value": 1}),
        mutation("heapBomb"),
        mutation("put", {"key": "b", "value": 2}),
    )

    assert "stopped" in failure(results[1])
    assert room.values() == {"before": 0, "a": 1, "b": 2}
    assert written(room.mutate("put", {"key": "c", "value": 3})) == {"c": 3}

"""Values that no ID holds and integers past JavaScript's safe range are refused at the edge
with a 400, on every backend alike (PostgreSQL text cannot hold a NUL; its int64 columns
cannot hold 2^63); during the shutdown drain every request is a 503 with Retry-After; and a
500 never carries an exception's text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.conftest import POSTGRES_URL, drop_schema, new_schema, require_postgres

from .conftest import SHAPES, Rest, assert_error, in_process

pytestmark = pytest.mark.anyio

MAX_SAFE = 2**53 - 1
#: the int64 and JavaScript safe-integer boundaries, and a step past each
BOUNDARIES = [0, 1, -1, MAX_SAFE, MAX_SAFE + 1, -MAX_SAFE, -MAX_SAFE - 1, 2**63 - 1, 2**63]
BOUNDARIES += [-(2**63), -(2**63) - 1, 2**64, 10**400]
BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
async def any_rest(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rest]:
    """The REST API on memory, SQLite or PostgreSQL (a fresh schema, dropped afterwards)."""
    schema = None
    if request.param == "postgres":
        await require_postgres()
        schema = new_schema()
        db = f"{POSTGRES_URL}?schema={schema}"
    elif request.param == "sqlite":
        db = str(tmp_path / "reflectd.sqlite3")
    else:
        db = "memory://"
    try:
        async with in_process(db) as rest:
            await rest.create("r1")
            yield rest
    finally:
        if schema is not None:
            await drop_schema(schema)


# ------------------------------------------------------------------------------ NUL


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["startKey", "startAfterKey", "roomID"])
async def test_a_nul_in_a_list_parameter_is_a_400(any_rest: Rest, shape: str, name: str) -> None:
    response = await any_rest.call(shape, "GET", "rooms", {name: "r\x001"})
    assert_error(response, 400, f"Query string error. Invalid character (NUL) at {name}")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    ("method", "command"),
    [
        ("GET", "rooms/contents"),
        ("POST", "rooms:close"),
        ("POST", "rooms:delete"),
        ("POST", "connections/rooms:invalidate"),
    ],
)
async def test_a_nul_in_a_room_id_is_a_400(
    any_rest: Rest, shape: str, method: str, command: str
) -> None:
    response = await any_rest.call(shape, method, command, {"roomID": "r1\x00"})
    assert_error(response, 400, "Query string error. Invalid character (NUL) at roomID")


async def test_a_nul_in_a_user_id_is_a_400(any_rest: Rest) -> None:
    response = await any_rest.call(
        "apps", "POST", "connections/users:invalidate", {"userID": "u\x00"}
    )
    assert_error(response, 400, "Query string error. Invalid character (NUL) at userID")


@pytest.mark.parametrize("path", ["rooms/r1%00", "rooms/r1%00:close", "rooms/%00:delete"])
async def test_a_nul_in_a_legacy_path_segment_is_a_400(any_rest: Rest, path: str) -> None:
    method = "GET" if ":" not in path else "POST"
    response = await any_rest.http.request(
        method, f"/api/v1/{path}", headers={"x-reflect-api-key": "env-key-with-every-permission"}
    )
    assert_error(response, 400, "Invalid character (NUL) in path segment")


async def test_the_room_is_still_served_after_nul_requests(any_rest: Rest) -> None:
    await any_rest.call("apps", "GET", "rooms/contents", {"roomID": "r1\x00"})
    assert await any_rest.ok("apps", "GET", "rooms/contents", {"roomID": "r1"}) == {"contents": {}}


# ------------------------------------------------------------------------------ integers

_fuzz = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_fuzz
@given(value=st.sampled_from(BOUNDARIES) | st.integers(-(2**70), 2**70))
async def test_max_results_is_accepted_exactly_within_the_safe_integer_range(value: int) -> None:
    async with in_process() as rest:
        response = await rest.call("apps", "GET", "rooms", {"maxResults": str(value)})
    if -MAX_SAFE <= value <= MAX_SAFE:
        assert response.status_code == 200, response.text
    else:
        assert_error(
            response, 400, f'Query string error. Expected safe integer at maxResults. Got "{value}"'
        )


@_fuzz
@given(value=st.sampled_from(BOUNDARIES) | st.integers(-(2**70), 2**70))
async def test_the_beacon_body_is_accepted_exactly_within_the_safe_non_negative_range(
    value: int,
) -> None:
    async with in_process() as rest:
        await rest.create("r1")
        response = await rest.http.post(
            "/api/sync/v1/close",
            params={"roomID": "r1", "userID": "u1", "clientID": "c1"},
            content=b'{"lastMutationID":%d}' % value,
        )
    if 0 <= value <= MAX_SAFE:
        assert (response.status_code, response.text) == (404, "client record not found")
    else:
        bound = ">= 0" if value < 0 else "<= 9007199254740991"
        assert_error(
            response, 400, f"Body schema error. Expected `int` {bound} - at `$.lastMutationID`"
        )


# ------------------------------------------------------------------------------ drain


async def assert_unavailable(rest: Rest) -> None:
    for shape in SHAPES:
        response = await rest.call(shape, "GET", "rooms/contents", {"roomID": "r1"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "store" not in response.text and "/" not in response.text.replace("r1", "")
    response = await rest.http.post(
        "/api/sync/v1/close",
        params={"roomID": "r1", "userID": "u1", "clientID": "c1"},
        content=b'{"lastMutationID":1}',
    )
    assert (response.status_code, response.text) == (503, "the server is shutting down")
    assert response.headers["retry-after"] == "5"


async def test_rest_after_the_drain_is_a_503_with_retry_after_not_a_closed_store(
    tmp_path: Path,
) -> None:
    async with in_process(str(tmp_path / "reflectd.sqlite3")) as rest:
        await rest.create("r1")
        await rest.server.shutdown()  # storage closed; uvicorn would still be listening
        await assert_unavailable(rest)


async def test_rest_during_the_drain_is_a_503_with_retry_after(tmp_path: Path) -> None:
    async with in_process(str(tmp_path / "reflectd.sqlite3")) as rest:
        await rest.create("r1")
        assert rest.server.registry is not None
        actor = await rest.server.registry.actor("r1")
        held = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            held.set()
            await release.wait()

        stop = actor.stop

        async def slow_stop() -> None:  # the room's round in progress takes its time
            await hold()
            await stop()

        actor.stop = slow_stop  # type: ignore[method-assign]
        shutdown = asyncio.create_task(rest.server.shutdown())
        await held.wait()
        await assert_unavailable(rest)
        release.set()
        await shutdown

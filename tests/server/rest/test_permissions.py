"""API keys and permissions: each permission opens exactly its routes, in both shapes and the
legacy forms; the environment's key opens all; the order 401 → 404 → 405 → 403 → 400."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from reflectd.server.rest.keys import hash_key
from reflectd.storage.base import PERMISSIONS, Permission

from .conftest import BOTH_BACKENDS, ENV_KEY, Rest, assert_error, assert_unauthorized

pytestmark = pytest.mark.anyio

_names = itertools.count()

_PUT = '{"name": "put", "args": {"key": "k", "value": 1}}'

#: (shape, method, command, query, body, permission) of every route; {new} is a fresh roomID;
#: a permission of None: any valid key
ROUTES: list[tuple[str, str, str, dict[str, str], str | None, Permission | None]] = []
for _shape in ("apps", "original"):
    ROUTES += [
        (_shape, "GET", "rooms", {}, None, "rooms:read"),
        (_shape, "GET", "rooms/contents", {"roomID": "open"}, None, "rooms:read"),
        (_shape, "GET", "rooms/clients", {"roomID": "open"}, None, "rooms:read"),
        (_shape, "GET", "key", {}, None, None),
        (_shape, "POST", "rooms:create", {"roomID": "{new}"}, "{}", "rooms:create"),
        (_shape, "POST", "rooms:close", {"roomID": "open"}, None, "rooms:close"),
        (_shape, "POST", "rooms:delete", {"roomID": "closed"}, None, "rooms:delete"),
        (_shape, "POST", "rooms:mutate", {"roomID": "open"}, _PUT, "rooms:write"),
        (
            _shape,
            "POST",
            "rooms:import",
            {"roomID": "open"},
            '{"contents": {"a": 1}}',
            "rooms:write",
        ),
        (_shape, "POST", "connections/all:invalidate", {}, None, "connections:invalidate"),
        (
            _shape,
            "POST",
            "connections/rooms:invalidate",
            {"roomID": "open"},
            None,
            "connections:invalidate",
        ),
        (
            _shape,
            "POST",
            "connections/users:invalidate",
            {"userID": "u1"},
            None,
            "connections:invalidate",
        ),
    ]
ROUTES += [
    ("original", "GET", "rooms/open", {}, None, "rooms:read"),
    ("original", "POST", "rooms/{new}:create", {}, "{}", "rooms:create"),
    ("original", "POST", "rooms/open:close", {}, None, "rooms:close"),
    ("original", "POST", "rooms/closed:delete", {}, None, "rooms:delete"),
    ("original", "POST", "connections/rooms/open:invalidate", {}, None, "connections:invalidate"),
    ("original", "POST", "connections/users/u1:invalidate", {}, None, "connections:invalidate"),
]


async def _prepare(rest: Rest) -> None:
    await rest.create("open")
    await rest.create("closed")
    await rest.ok("apps", "POST", "rooms:close", {"roomID": "closed"})


async def _request(rest: Rest, route: tuple[Any, ...], key: str) -> Any:
    shape, method, command, query, body, _ = route
    new = f"new-{next(_names)}"
    command = command.replace("{new}", new)
    query = {k: v.replace("{new}", new) for k, v in query.items()}
    return await rest.call(shape, method, command, query, body=body, key=key)


#: permissions of endpoints that are not REST table routes (tested with their endpoint)
OUTSIDE_THE_TABLE = {"logs:read", "metrics:read"}


def test_the_matrix_covers_every_route_and_permission() -> None:
    from reflectd.server.rest.routes import ROUTES as SERVED

    assert {r[5] for r in ROUTES} == set(PERMISSIONS) - OUTSIDE_THE_TABLE | {None}
    assert len(ROUTES) == sum(1 if r.legacy else 2 for r in SERVED)


@BOTH_BACKENDS
@pytest.mark.parametrize("permission", PERMISSIONS)
async def test_a_key_with_one_permission_opens_exactly_its_routes(
    rest: Rest, permission: Permission
) -> None:
    await _prepare(rest)
    key = await rest.make_key("only", permission)
    for route in ROUTES:
        response = await _request(rest, route, key)
        if route[5] in (permission, None):
            assert response.status_code == 200, (route, response.text)
        else:
            assert_error(response, 403, f'API key "only" lacks the permission {route[5]}')
        if route[3].get("roomID") == "open" and route[2].endswith(":close"):
            await rest.store.set_room_status("open", "open")  # keep it open for the next


@BOTH_BACKENDS
async def test_a_key_with_every_permission_and_the_env_key_open_every_route(rest: Rest) -> None:
    await _prepare(rest)
    stored = await rest.make_key("all", *PERMISSIONS)
    for key in (stored, ENV_KEY):
        for route in ROUTES:
            response = await _request(rest, route, key)
            assert response.status_code == 200, (route, response.text)
            await rest.store.set_room_status("open", "open")
            await rest.store.set_room_status("closed", "closed")


@BOTH_BACKENDS
async def test_a_key_with_no_permission_is_known_but_forbidden(rest: Rest) -> None:
    key = await rest.make_key("none")
    for shape in ("apps", "original"):
        response = await rest.call(shape, "GET", "rooms", key=key)
        assert_error(response, 403, 'API key "none" lacks the permission rooms:read')


@BOTH_BACKENDS
@pytest.mark.parametrize("shape", ["apps", "original"])
async def test_order_of_checks(rest: Rest, shape: str) -> None:
    reader = await rest.make_key("reader", "rooms:read")
    # 401 before everything
    response = await rest.call(shape, "PUT", "rooms:create", {"x": "1"}, body="x", key="bad")
    assert_unauthorized(response, shape)
    # 404 (unknown path) before 405 and 403
    response = await rest.call(shape, "PUT", "nope", key=reader)
    assert_error(response, 404, "Unknown or invalid URL")
    # 405 before 403
    response = await rest.call(shape, "GET", "rooms:create", key=reader)
    assert_error(response, 405, "unsupported method")
    # 403 before the 400 of bad input and the 413 of a large body
    for body in ("not json", "x" * 100_000):
        response = await rest.call(shape, "POST", "rooms:create", {"x": "1"}, body=body, key=reader)
        assert_error(response, 403, 'API key "reader" lacks the permission rooms:create')
    # 400 before the 404 of a room
    response = await rest.call(
        shape, "GET", "rooms/contents", {"roomID": "x", "y": "1"}, key=reader
    )
    assert_error(response, 400, "Query string error. Unexpected property y")


@BOTH_BACKENDS
async def test_a_key_on_another_app_id_is_404(rest: Rest) -> None:
    stored = await rest.make_key("all", *PERMISSIONS)
    for key in (stored, ENV_KEY):
        for app_id in ("other", "default", "test-app2", "test-ap", "%74est-app-x"):
            response = await rest.call("apps", "GET", "rooms", key=key, app_id=app_id)
            assert_error(response, 404, "Unknown or invalid URL")
        # the app-id may be percent-encoded
        assert (
            await rest.call("apps", "GET", "rooms", key=key, app_id="%74est-app")
        ).status_code == 200


@BOTH_BACKENDS
async def test_edited_and_deleted_keys_take_effect_at_once(rest: Rest) -> None:
    key = await rest.make_key("k", "rooms:read")
    assert (await rest.call("apps", "GET", "rooms", key=key)).status_code == 200
    assert await rest.store.set_api_key_permissions("k", ("rooms:create",))
    response = await rest.call("apps", "GET", "rooms", key=key)
    assert_error(response, 403, 'API key "k" lacks the permission rooms:read')
    await rest.create("r", "apps")  # with the env key
    response = await rest.call("apps", "POST", "rooms:create", {"roomID": "s"}, body="{}", key=key)
    assert response.status_code == 200
    assert await rest.store.delete_api_key("k")
    for shape in ("apps", "original"):
        assert_unauthorized(await rest.call(shape, "GET", "rooms", key=key), shape)


@BOTH_BACKENDS
async def test_use_is_recorded_and_only_hashes_are_stored(rest: Rest) -> None:
    key = await rest.make_key("k", "rooms:read")
    (record,) = await rest.store.list_api_keys()
    assert record.last_used_ms is None
    assert record.key_hash == hash_key(key) != key
    await rest.call("original", "GET", "rooms", key=key)
    (record,) = await rest.store.list_api_keys()
    assert record.last_used_ms is not None and record.last_used_ms > 0


@BOTH_BACKENDS
async def test_a_key_hash_is_not_a_key(rest: Rest) -> None:
    key = await rest.make_key("k", "rooms:read")
    for presented in (hash_key(key), key.upper(), key[:-1], key + "x", f"Basic {key}"):
        assert_unauthorized(await rest.call("original", "GET", "rooms", key=presented), "original")

"""A room's connected clients and presence (``rooms/clients``), and the request's own key
(``key``): reflectd additions to the REST API."""

from __future__ import annotations

import asyncio
import time

import pytest

from reflectd.engine.records import ClientRecord, RoomWrites

from .conftest import BOTH_BACKENDS, SHAPES, Live, Rest, assert_error
from .test_lifecycle import push

pytestmark = pytest.mark.anyio


@BOTH_BACKENDS
@pytest.mark.parametrize("shape", SHAPES)
async def test_the_clients_of_a_live_room_are_listed_with_their_user_since_and_last_mutation(
    live: Live, shape: str
) -> None:
    before_ms = int(time.time() * 1000)
    a = await live.connect("r", "a", "alice")
    await live.connect("r", "b", "bob")
    await live.connect("other", "c", "carol")
    await push(a, "a", "title", "hello")

    result = await live.ok(shape, "GET", "rooms/clients", {"roomID": "r"})

    assert result["live"] is True
    assert result["presence"] == ["a", "b"]
    clients = result["clients"]
    assert [(c["clientID"], c["clientGroupID"], c["userID"]) for c in clients] == [
        ("a", "g-a", "alice"),
        ("b", "g-b", "bob"),
    ]
    assert [c["lastMutationID"] for c in clients] == [1, 0]
    for client in clients:
        assert before_ms <= client["connectedMs"] <= int(time.time() * 1000)


async def test_a_client_that_left_is_no_longer_listed(live: Live) -> None:
    a = await live.connect("r", "a", "alice")
    await live.connect("r", "b", "bob")
    await a.close()
    for _ in range(100):
        result = await live.ok("apps", "GET", "rooms/clients", {"roomID": "r"})
        if result["presence"] == ["b"]:
            break
        await asyncio.sleep(0.02)
    assert [c["clientID"] for c in result["clients"]] == ["b"]
    assert result["presence"] == ["b"]


@BOTH_BACKENDS
async def test_a_room_not_loaded_is_answered_from_storage_without_loading_it(rest: Rest) -> None:
    await rest.create("quiet")
    await rest.server.registry.drop_room("quiet")  # type: ignore[union-attr]
    assert await rest.ok("apps", "GET", "rooms/clients", {"roomID": "quiet"}) == {
        "clients": [],
        "presence": [],
        "live": False,
    }
    # as another node of a cluster would have left it: one client connected
    record = ClientRecord("g1", 3, 7, 3, 1, "alice")
    await rest.store.commit(
        "quiet", RoomWrites(version=3, connected_clients=frozenset({"c1"}), clients={"c1": record})
    )
    assert await rest.ok("apps", "GET", "rooms/clients", {"roomID": "quiet"}) == {
        "clients": [
            {
                "clientID": "c1",
                "clientGroupID": "g1",
                "userID": "alice",
                "connectedMs": None,
                "lastMutationID": 7,
            }
        ],
        "presence": ["c1"],
        "live": False,
    }
    assert "quiet" not in rest.server.registry.actors  # type: ignore[union-attr]


@pytest.mark.parametrize("shape", SHAPES)
async def test_the_clients_of_an_unknown_room_are_404_and_of_a_deleted_room_none(
    rest: Rest, shape: str
) -> None:
    response = await rest.call(shape, "GET", "rooms/clients", {"roomID": "nope"})
    assert_error(response, 404, 'Room "nope" not found', "rooms")
    await rest.create("gone")
    await rest.ok(shape, "POST", "rooms:close", {"roomID": "gone"})
    await rest.ok(shape, "POST", "rooms:delete", {"roomID": "gone"})
    result = await rest.ok(shape, "GET", "rooms/clients", {"roomID": "gone"})
    assert result["clients"] == [] and result["presence"] == []


async def test_the_clients_route_checks_its_query_and_permission(rest: Rest) -> None:
    response = await rest.call("apps", "GET", "rooms/clients")
    assert response.status_code == 400
    response = await rest.call("apps", "GET", "rooms/clients", {"roomID": "r", "x": "1"})
    assert_error(response, 400, "Query string error. Unexpected property x")
    key = await rest.make_key("writer", "rooms:create")
    response = await rest.call("apps", "GET", "rooms/clients", {"roomID": "r"}, key=key)
    assert_error(response, 403, 'API key "writer" lacks the permission rooms:read')


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_key_learns_its_own_name_and_permissions(rest: Rest, shape: str) -> None:
    key = await rest.make_key("ops", "logs:read", "rooms:read")
    assert await rest.ok(shape, "GET", "key", key=key) == {
        "name": "ops",
        "permissions": ["rooms:read", "logs:read"],
    }
    none = await rest.make_key("nothing")
    assert await rest.ok(shape, "GET", "key", key=none) == {"name": "nothing", "permissions": []}
    env = await rest.ok(shape, "GET", "key")
    assert env["name"] == "REFLECTD_API_KEY" and "metrics:read" in env["permissions"]


async def test_the_key_route_refuses_an_unknown_key_and_any_query(rest: Rest) -> None:
    response = await rest.call("apps", "GET", "key", key="not-a-key")
    assert response.status_code == 401
    response = await rest.call("apps", "GET", "key", {"x": "1"})
    assert response.status_code == 400
    response = await rest.call("apps", "POST", "key")
    assert_error(response, 405, "unsupported method")

"""Contract tests for API keys, run against every backend."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from reflectd.storage.base import ApiKeyRecord

from .conftest import AnyStore

pytestmark = pytest.mark.anyio


def key(name: str, key_hash: str = "", **changes: Any) -> ApiKeyRecord:
    record = ApiKeyRecord(
        name=name,
        key_hash=key_hash or f"hash-of-{name}",
        permissions=("rooms:read",),
        created_ms=1000,
    )
    return msgspec.structs.replace(record, **changes)


async def test_a_created_key_is_found_by_its_hash_and_listed_by_name(store: AnyStore) -> None:
    assert await store.create_api_key(key("b"))
    assert await store.create_api_key(key("a", permissions=("rooms:create", "rooms:close")))
    assert await store.find_api_key("hash-of-a") == key(
        "a", permissions=("rooms:create", "rooms:close")
    )
    assert [k.name for k in await store.list_api_keys()] == ["a", "b"]
    assert await store.find_api_key("no-such-hash") is None


async def test_creating_a_key_with_a_taken_name_changes_nothing(store: AnyStore) -> None:
    assert await store.create_api_key(key("a"))
    assert not await store.create_api_key(key("a", key_hash="other"))
    assert await store.find_api_key("other") is None
    assert await store.list_api_keys() == [key("a")]


async def test_permissions_and_last_use_can_be_changed(store: AnyStore) -> None:
    await store.create_api_key(key("a"))
    assert await store.set_api_key_permissions("a", ("rooms:delete",))
    await store.touch_api_key("a", 5000)
    assert await store.find_api_key("hash-of-a") == key(
        "a", permissions=("rooms:delete",), last_used_ms=5000
    )
    assert not await store.set_api_key_permissions("nobody", ("rooms:read",))


async def test_a_deleted_key_is_gone(store: AnyStore) -> None:
    await store.create_api_key(key("a"))
    assert await store.delete_api_key("a")
    assert not await store.delete_api_key("a")
    assert await store.find_api_key("hash-of-a") is None
    assert await store.list_api_keys() == []

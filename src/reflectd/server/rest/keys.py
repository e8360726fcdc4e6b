"""REST API keys: random tokens, stored only as SHA-256 hashes, each with permissions.

A key given in the environment (``REFLECTD_API_KEY``) is accepted with every permission, for
bootstrapping and scripts. Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass

from reflectd.storage.base import PERMISSIONS, ApiKeyRecord, KeyStore, Permission

KEY_PREFIX = "rfd_"
ENV_KEY_NAME = "REFLECTD_API_KEY"


def new_key_value() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def parse_permissions(names: list[str]) -> tuple[Permission, ...]:
    """Validate permission names; raise ValueError naming the valid ones."""
    unknown = [name for name in names if name not in PERMISSIONS]
    if unknown:
        raise ValueError(
            f"unknown permission {unknown[0]!r}; the permissions are: {', '.join(PERMISSIONS)}"
        )
    return tuple(p for p in PERMISSIONS if p in names)


def check_key_name(name: str) -> None:
    """Refuse an empty key name, or one with control or format characters (which would
    reach the operator's terminal in ``keys list``): raise ValueError."""
    if not name.strip():
        raise ValueError("a key name cannot be empty or only spaces")
    for c in name:
        if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise ValueError(
                f"a key name cannot hold control or format characters ({c!a} in {name!a})"
            )


def new_key_record(
    name: str, permissions: tuple[Permission, ...], now_ms: int
) -> tuple[str, ApiKeyRecord]:
    """A new key's value (shown once) and its record (to store); ValueError for a name that
    ``check_key_name`` refuses."""
    check_key_name(name)
    value = new_key_value()
    record = ApiKeyRecord(
        name=name, key_hash=hash_key(value), permissions=permissions, created_ms=now_ms
    )
    return value, record


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a REST request acts as."""

    key_name: str
    permissions: frozenset[Permission]


class KeyRing:
    """Checks presented keys against the stored ones and the environment's key."""

    def __init__(self, store: KeyStore, env_key: str | None) -> None:
        self._store = store
        self._env_key_hash = hash_key(env_key) if env_key else None

    async def authenticate(self, presented: str | None, now_ms: int) -> Principal | None:
        if not presented:
            return None
        presented_hash = hash_key(presented)
        if self._env_key_hash is not None and hmac.compare_digest(
            presented_hash, self._env_key_hash
        ):
            return Principal(ENV_KEY_NAME, frozenset(PERMISSIONS))
        record = await self._store.find_api_key(presented_hash)
        if record is None or not hmac.compare_digest(record.key_hash, presented_hash):
            return None
        await self._store.touch_api_key(record.name, now_ms)
        return Principal(record.name, frozenset(record.permissions))

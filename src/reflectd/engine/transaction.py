"""The mutator transaction: what a mutator sees as ``tx``.

Reads see the transaction's own writes first, then the earlier writes of the turn (which are
already in the room state), then storage (also the room state: a room's data lives in memory).
A transaction buffers its writes; the turn keeps them only if the mutator returned normally.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import msgspec
from sortedcontainers import SortedDict

from reflectd.engine.records import Entry
from reflectd.errors import InvalidJSONValue, ValueTooLarge
from reflectd.protocol.codec import decode_json_value, encode_json_value

#: the mutation id handlers see (room start, disconnect, delete): the original's NOOP_MUTATION_ID
NO_MUTATION_ID = -1


class ScanResult:
    """The live entries a scan found, in key order. Iterating yields the values."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        self._items = items

    def keys(self) -> list[str]:
        return [key for key, _ in self._items]

    def values(self) -> list[Any]:
        return [value for _, value in self._items]

    def entries(self) -> list[tuple[str, Any]]:
        return list(self._items)

    items = entries

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())

    def __len__(self) -> int:
        return len(self._items)


class WriteTransaction:
    """The transaction a mutator or handler runs in, at room version ``version``."""

    reason: Literal["authoritative"] = "authoritative"
    location: Literal["server"] = "server"
    environment: Literal["server"] = "server"

    def __init__(
        self,
        entries: SortedDict,
        *,
        version: int,
        client_id: str,
        mutation_id: int,
        auth: Mapping[str, Any] | None,
        env: Mapping[str, str],
        max_key_bytes: int,
        max_value_bytes: int,
    ) -> None:
        self._entries: SortedDict = entries  # the room's entries: str -> Entry, read only here
        self._writes: dict[str, Entry] = {}
        self._version = version
        self._max_key_bytes = max_key_bytes
        self._max_value_bytes = max_value_bytes
        self.client_id = client_id
        self.mutation_id = mutation_id
        self.auth = auth
        self.env = env

    # ------------------------------------------------------------------------ reads

    def get(self, key: str) -> Any:
        """The value at ``key``, or None if there is none (use ``has`` to tell them apart)."""
        entry = self._entry(key)
        if entry is None or entry.deleted:
            return None
        return decode_json_value(entry.value)

    def has(self, key: str) -> bool:
        entry = self._entry(key)
        return entry is not None and not entry.deleted

    def is_empty(self) -> bool:
        return len(self.scan(limit=1)) == 0

    def scan(
        self,
        *,
        prefix: str = "",
        start_key: str | None = None,
        exclusive: bool = False,
        limit: int | None = None,
    ) -> ScanResult:
        """Live entries whose key starts with ``prefix``, in key (UTF-8 byte) order, from
        ``start_key`` (excluded if ``exclusive``), at most ``limit`` of them."""
        start = prefix if start_key is None or start_key < prefix else start_key
        found: list[tuple[str, Any]] = []
        if limit is not None and limit <= 0:
            return ScanResult(found)
        for key in self._keys_from(start):
            if not key.startswith(prefix):
                break
            if exclusive and key == start_key:
                continue
            entry = self._entry(key)
            if entry is None or entry.deleted:
                continue
            found.append((key, decode_json_value(entry.value)))
            if limit is not None and len(found) >= limit:
                break
        return ScanResult(found)

    # ------------------------------------------------------------------------ writes

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (any JSON value) at ``key``."""
        self._check_key(key)
        try:
            encoded = encode_json_value(value)
        except (InvalidJSONValue, UnicodeEncodeError, msgspec.EncodeError) as e:
            raise ValueError(f"cannot store value at {key!r}: {e}") from None
        if len(encoded) > self._max_value_bytes:
            raise ValueTooLarge(
                f"value at {key!r} is {len(encoded)} bytes of JSON, "
                f"more than the limit of {self._max_value_bytes}"
            )
        self._writes[key] = Entry(version=self._version, deleted=False, value=encoded)

    put = set

    def delete(self, key: str) -> bool:
        """Delete ``key``; return False if there was nothing to delete."""
        entry = self._entry(key)
        if entry is None or entry.deleted:
            return False
        self._writes[key] = Entry(version=self._version, deleted=True, value=entry.value)
        return True

    def del_(self, key: str) -> bool:
        """Alias of ``delete`` (Reflect's ``tx.del``)."""
        return self.delete(key)

    # ------------------------------------------------------------------------ internals

    @property
    def writes(self) -> dict[str, Entry]:
        """The entries this transaction wrote, in the order their keys were first written."""
        return self._writes

    def _entry(self, key: str) -> Entry | None:
        entry = self._writes.get(key)
        if entry is not None:
            return entry
        stored: Entry | None = self._entries.get(key)
        return stored

    def _keys_from(self, start: str) -> Iterator[str]:
        stored = self._entries.irange(minimum=start)
        written = sorted(key for key in self._writes if key >= start)
        previous: str | None = None
        for key in heapq.merge(stored, written):
            if key != previous:
                yield key
                previous = key

    def _check_key(self, key: str) -> None:
        if not isinstance(key, str):
            raise TypeError(f"keys are strings, got {type(key).__name__}")
        try:
            size = len(key.encode())
        except UnicodeEncodeError:
            raise ValueError(f"key {key!r} is not valid Unicode") from None
        if size > self._max_key_bytes:
            raise ValueTooLarge(
                f"key is {size} bytes, more than the limit of {self._max_key_bytes}"
            )

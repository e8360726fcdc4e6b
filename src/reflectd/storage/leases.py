"""Room ownership by lease, with the epoch as fencing token: what several nodes sharing one
store need (``ClusterStore``).

Each room has at most one owner node at a time: the node holding its lease. A lease names the
owner (``node_id``, and ``address`` where other nodes reach it), an ``epoch`` and an expiry.
Rules, the same in every backend that implements ``LeaseStore``:

- ``acquire_lease`` takes the lease if nobody holds it, if it has expired, or if the caller
  already holds it (then it is renewed, same epoch). Every other acquisition (a takeover, or
  taking back one's own expired or released lease) gets the previous epoch + 1, so epochs of a
  room only grow and are never reused.
- ``renew_lease`` pushes the expiry back; it fails with ``LeaseLost`` if the lease changed hands
  or was released. A lease that expired but that nobody took can still be renewed: the epoch,
  not the clock, fences.
- ``commit(room_id, writes, lease=lease)`` checks, in the commit's own transaction, that the
  room's lease still has the lease's owner and epoch, and raises ``LeaseLost`` having applied
  nothing if not. A takeover waits for a commit under way to end (PostgreSQL: the commit holds
  the lease row with ``FOR SHARE``), so once a new owner holds the lease and loads the room, no
  write of the old owner can land.

Expiry times are milliseconds since the Unix epoch, on the store's clock (PostgreSQL's clock,
shared by every node; the memory store's ``now_ms``).

The nodes sharing a store also share a secret, ``cluster_secret``: random bytes made once, by
the first node that asks, and kept in the store. A node signs what it forwards to another
with it, so that a request from a client cannot pass for one from a node
(``reflectd.server.peers``).

A ``ClusterStore`` is a ``LeaseStore`` that also carries the nodes' control messages
(``control_bus``, ``reflectd.storage.control``). A backend offers all of this through
``Backend.cluster()``: the PostgreSQL backend and ``MemoryLeaseStore`` return themselves, the
others None.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from reflectd import clock
from reflectd.engine.records import RoomWrites
from reflectd.errors import LeaseLost as LeaseLost  # defined in the one exception tree
from reflectd.storage.base import Backend
from reflectd.storage.control import ControlBus, MemoryControlHub
from reflectd.storage.memory import MemoryStore
from reflectd.storage.rows import FaultHook


@dataclass(frozen=True, slots=True)
class Lease:
    """A room's ownership, as granted to ``node_id``."""

    room_id: str
    node_id: str
    #: where other nodes reach the owner (to proxy sockets, forward commands)
    address: str
    #: the fencing token: grows by one each time the lease changes hands
    epoch: int
    #: when the lease ends unless renewed (ms since the Unix epoch, the store's clock)
    expires_at_ms: int


class LeaseStore(Protocol):
    """Room leases, beside a ``Store`` (see the module's docstring for the rules)."""

    async def acquire_lease(
        self, room_id: str, node_id: str, address: str, ttl_ms: int
    ) -> Lease | None:
        """The lease, now ``node_id``'s for ``ttl_ms``; None if another node holds it."""

    async def renew_lease(self, lease: Lease, ttl_ms: int) -> Lease:
        """``lease`` extended to ``ttl_ms`` from now; raises ``LeaseLost``."""

    async def release_lease(self, lease: Lease) -> bool:
        """Give the lease up (it is free at once); False if it was not ``lease`` any more."""

    async def current_lease(self, room_id: str) -> Lease | None:
        """The room's unexpired lease, if any."""

    async def commit(self, room_id: str, writes: RoomWrites, *, lease: Lease | None = None) -> None:
        """``Store.commit``; with ``lease``, fenced by it (``LeaseLost``, nothing applied)."""

    async def cluster_secret(self) -> bytes:
        """The secret of the nodes sharing this store (``CLUSTER_SECRET_BYTES`` random bytes,
        made by the first call and the same for every node afterwards)."""


class ClusterStore(LeaseStore, Protocol):
    """Everything the nodes sharing a store need from it: room leases, the cluster's secret,
    and the bus of their control messages."""

    def control_bus(self, node_id: str) -> ControlBus:
        """A new, unstarted end of the bus for the node ``node_id``."""


async def commit_as_owner(
    store: Backend, room_id: str, writes: RoomWrites, *, lease: Lease | None
) -> None:
    """Commit ``writes`` to the room: fenced by ``lease`` when this node holds the room by
    lease (``LeaseLost``, nothing applied, once it does not), plainly without one."""
    if lease is None:
        await store.commit(room_id, writes)
        return
    cluster = store.cluster()
    assert cluster is not None, "a lease comes from a store with leases"
    await cluster.commit(room_id, writes, lease=lease)


#: the length of a new cluster secret
CLUSTER_SECRET_BYTES = 32


def new_cluster_secret() -> bytes:
    return os.urandom(CLUSTER_SECRET_BYTES)


def check_lease_request(node_id: str, ttl_ms: int) -> None:
    """Refuse an empty node ID (a released lease has none) or a ttl that is not positive."""
    if not node_id:
        raise ValueError("a lease needs a node ID")
    if ttl_ms <= 0:
        raise ValueError(f"a lease's ttl_ms must be positive, got {ttl_ms}")


@dataclass(slots=True)
class _Held:
    """A room's lease row; a released lease has no owner (node_id "")."""

    node_id: str
    address: str
    epoch: int
    expires_at_ms: int


class MemoryLeaseStore(MemoryStore):
    """A ``MemoryStore`` with room leases and a control bus, for tests and nodes in one
    process: the reference ``ClusterStore``.

    ``now_ms`` is its clock (the wall clock by default); tests move it by hand.
    """

    def __init__(
        self,
        *,
        fault: FaultHook | None = None,
        now_ms: Callable[[], int] = clock.now_ms,
    ) -> None:
        super().__init__(fault=fault)
        self._now_ms = now_ms
        self._leases: dict[str, _Held] = {}
        self._secret: bytes | None = None
        self._control = MemoryControlHub()

    def cluster(self) -> ClusterStore:
        return self

    def control_bus(self, node_id: str) -> ControlBus:
        return self._control.bus(node_id)

    async def acquire_lease(
        self, room_id: str, node_id: str, address: str, ttl_ms: int
    ) -> Lease | None:
        self._check_open()
        check_lease_request(node_id, ttl_ms)
        now = self._now_ms()
        held = self._leases.get(room_id)
        if held is None:
            epoch = 1
        elif held.node_id == node_id and held.expires_at_ms > now:
            epoch = held.epoch
        elif held.expires_at_ms <= now or held.node_id == node_id:
            epoch = held.epoch + 1
        else:
            return None
        self._leases[room_id] = _Held(node_id, address, epoch, now + ttl_ms)
        return Lease(room_id, node_id, address, epoch, now + ttl_ms)

    async def renew_lease(self, lease: Lease, ttl_ms: int) -> Lease:
        self._check_open()
        check_lease_request(lease.node_id, ttl_ms)
        held = self._held(lease)
        if held is None:
            raise LeaseLost(f"memory store: lease of room {lease.room_id!r} lost")
        held.expires_at_ms = self._now_ms() + ttl_ms
        return replace(lease, address=held.address, expires_at_ms=held.expires_at_ms)

    async def release_lease(self, lease: Lease) -> bool:
        self._check_open()
        held = self._held(lease)
        if held is None:
            return False
        held.node_id, held.address, held.expires_at_ms = "", "", 0
        return True

    async def current_lease(self, room_id: str) -> Lease | None:
        self._check_open()
        held = self._leases.get(room_id)
        if held is None or held.expires_at_ms <= self._now_ms():
            return None
        return Lease(room_id, held.node_id, held.address, held.epoch, held.expires_at_ms)

    async def commit(self, room_id: str, writes: RoomWrites, *, lease: Lease | None = None) -> None:
        self._check_open()
        if lease is not None and (lease.room_id != room_id or self._held(lease) is None):
            raise LeaseLost(
                f"memory store: commit to room {room_id!r} refused: lease epoch {lease.epoch}"
                f" of node {lease.node_id!r} lost"
            )
        await super().commit(room_id, writes)

    async def cluster_secret(self) -> bytes:
        self._check_open()
        if self._secret is None:
            self._secret = new_cluster_secret()
        return self._secret

    def _held(self, lease: Lease) -> _Held | None:
        """The room's lease row if it is still ``lease`` (same owner and epoch)."""
        held = self._leases.get(lease.room_id)
        if held is None or (held.node_id, held.epoch) != (lease.node_id, lease.epoch):
            return None
        return held


if TYPE_CHECKING:
    _BACKEND: type[Backend] = MemoryLeaseStore
    _CLUSTER_STORE: type[ClusterStore] = MemoryLeaseStore

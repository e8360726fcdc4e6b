"""The live rooms of this process: loading, auto-creating, unloading and draining them.

With a backend that several nodes may share (``Backend.cluster()``: PostgreSQL) a room is
loaded only once this node holds its lease: ``actor`` raises ``NotOwner`` (naming the owner)
when another node holds it. A background task renews the leases held; a lost lease (or a
renewal that fails past the lease's end) drops the room: its sockets are closed, its clients
reconnect and reach the new owner. Every commit of a room carries its lease, so an ex-owner
can never write. Idle unload and shutdown release the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from reflectd.app import App
from reflectd.clock import now_ms
from reflectd.engine.records import RoomRecord, RoomStatus
from reflectd.engine.room import Room
from reflectd.errors import LeaseLost, NotOwner, RoomClosed, RoomNotFound, RoomUnavailable
from reflectd.logs import log_context
from reflectd.server import metrics
from reflectd.server.actor import RoomActor
from reflectd.server.settings import ServerSettings
from reflectd.server.sockets import ClientSocket
from reflectd.server.webhooks import WebhookEvents
from reflectd.storage.base import Backend
from reflectd.storage.leases import ClusterStore, Lease, commit_as_owner
from reflectd.storage.webhooks import EventType

logger = logging.getLogger(__name__)


class RoomRegistry:
    """Finds or loads the actor of a room; one actor per live room in this process."""

    def __init__(
        self,
        store: Backend,
        app: App,
        settings: ServerSettings,
        *,
        node_id: str = "",
        webhooks: WebhookEvents | None = None,
    ) -> None:
        self.store = store
        #: the webhook events of this process (none are made while nobody subscribes)
        self.webhooks = webhooks or WebhookEvents(settings.webhooks)
        self.app = app
        self.settings = settings
        self.node_id = node_id or settings.node_id
        #: the room leases (and control bus) of the nodes sharing the store; None: this
        #: process alone serves every room
        self.leases: ClusterStore | None = store.cluster() if self.node_id else None
        self.actors: dict[str, RoomActor] = {}
        self._loading: dict[str, asyncio.Task[RoomActor]] = {}
        self._releasing: dict[str, asyncio.Task[None]] = {}
        self._create_lock = asyncio.Lock()
        #: the app's mutators and room handlers
        self.handlers = app.room_handlers()
        #: the room engine's limits and timings (the app may set max_mutations_per_turn)
        self.engine = settings.engine
        if app.max_mutations_per_turn is not None:
            self.engine = replace(self.engine, max_mutations_per_turn=app.max_mutations_per_turn)
        self._renewer: asyncio.Task[None] | None = None
        self.closing = False
        #: the last lease renewal raised (storage unreachable); ``/readyz`` reports it
        self.lease_renewal_failing = False

    async def actor(self, room_id: str) -> RoomActor:
        """The room's actor, loading the room (and running its start handler) if needed;
        ``NotOwner`` if another node owns the room."""
        if self.closing:
            raise RoomUnavailable("the server is shutting down")
        actor = self.actors.get(room_id)
        if actor is not None and not actor.stopped:
            return actor
        task = self._loading.get(room_id)
        if task is None:
            task = asyncio.create_task(self._load(room_id), context=log_context(room_id=room_id))
            self._loading[room_id] = task
            task.add_done_callback(lambda _: self._loading.pop(room_id, None))
        return await asyncio.shield(task)

    async def _load(self, room_id: str) -> RoomActor:
        releasing = self._releasing.get(room_id)
        if releasing is not None:
            await asyncio.shield(releasing)
        acquired_at = time.monotonic()
        lease = await self._acquire(room_id)
        try:
            snapshot = await self.store.load_room(room_id)
            room = Room(room_id, snapshot, handlers=self.handlers, settings=self.engine)
            room.start()
            writes = room.take_writes()
            if not writes.is_empty():
                await commit_as_owner(self.store, room_id, writes, lease=lease)
        except BaseException:
            if lease is not None and self.leases is not None:
                with contextlib.suppress(Exception):
                    await self.leases.release_lease(lease)
            raise
        actor = RoomActor(
            room,
            self.store,
            idle_unload_ms=self.settings.room_idle_unload_ms,
            on_stop=self._forget,
            lease=lease,
            events=self.webhooks.for_room(room),
        )
        actor.lease_valid_until = acquired_at + self.settings.lease_ms / 1000
        self.actors[room_id] = actor
        metrics.ROOMS_LOADED.inc()
        if lease is not None:
            logger.info("room %s loaded (lease epoch %d)", room_id, lease.epoch)
            self._start_renewer()
        return actor

    async def _acquire(self, room_id: str) -> Lease | None:
        """This node's lease on the room (None without leases); ``NotOwner`` if another node
        holds it."""
        if self.leases is None:
            return None
        ttl = self.settings.lease_ms
        for _ in range(3):
            lease = await self.leases.acquire_lease(
                room_id, self.node_id, self.settings.advertise_url, ttl
            )
            if lease is not None:
                metrics.LEASE_ACQUISITIONS.inc()
                return lease
            owner = await self.leases.current_lease(room_id)
            if owner is not None:
                raise NotOwner(owner)
            # expired or released between the two calls: try again
        raise RoomUnavailable(f"room {room_id}: could not acquire its lease")

    def _forget(self, actor: RoomActor) -> None:
        if self.actors.get(actor.room_id) is actor:
            del self.actors[actor.room_id]
            metrics.ROOMS_LOADED.dec()
        if actor.lease is not None and self.leases is not None and not actor.lease_lost:
            room_id = actor.room_id
            task = asyncio.create_task(self._release(actor.lease))
            self._releasing[room_id] = task
            task.add_done_callback(
                lambda t: (
                    self._releasing.pop(room_id, None)
                    if self._releasing.get(room_id) is t
                    else None
                )
            )

    async def _release(self, lease: Lease) -> None:
        assert self.leases is not None
        try:
            await self.leases.release_lease(lease)
        except Exception as exc:  # it expires on its own
            logger.warning(
                "releasing the lease of room %s failed: %s",
                lease.room_id,
                exc,
                extra={"room_id": lease.room_id},
            )

    # ----------------------------------------------------------------------- lease renewal

    def _start_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_loop(), name="lease renewal")

    async def _renew_loop(self) -> None:
        interval_s = self.settings.lease_ms / 3000
        while not self.closing:
            await asyncio.sleep(interval_s)
            held = [a for a in self.actors.values() if a.lease is not None and not a.stopped]
            if not held and not self._loading:
                return  # started again by the next load
            await asyncio.gather(*(self._renew(actor) for actor in held))

    async def _renew(self, actor: RoomActor) -> None:
        assert self.leases is not None and actor.lease is not None
        started = time.monotonic()
        try:
            renewed = await self.leases.renew_lease(actor.lease, self.settings.lease_ms)
            self.lease_renewal_failing = False
        except LeaseLost:
            metrics.LEASE_LOSSES.labels("taken").inc()
            logger.warning(
                "room %s: lease lost to another node; dropping it",
                actor.room_id,
                extra={"room_id": actor.room_id},
            )
            actor.drop(lease_lost=True)
        except Exception as exc:
            self.lease_renewal_failing = True
            metrics.STORAGE_ERRORS.labels("lease_renewal").inc()
            if time.monotonic() >= actor.lease_valid_until:
                metrics.LEASE_LOSSES.labels("expired").inc()
                logger.warning(
                    "room %s: lease not renewed before its end (%s); dropping it",
                    actor.room_id,
                    exc,
                    extra={"room_id": actor.room_id},
                )
                actor.drop(lease_lost=True)
            else:
                logger.warning(
                    "room %s: lease renewal failed: %s",
                    actor.room_id,
                    exc,
                    extra={"room_id": actor.room_id},
                )
        else:
            if not actor.stopped and actor.lease.epoch == renewed.epoch:
                actor.lease = renewed
                actor.lease_valid_until = started + self.settings.lease_ms / 1000

    # ----------------------------------------------------------------------- rooms

    async def open_room(self, room_id: str, jurisdiction: str) -> RoomActor:
        """The actor of an open room, creating the room on its first connect (as the original
        server does); ``RoomClosed`` for a closed or deleted room, ``NotOwner`` if the room
        lives on another node."""
        record = await self.store.get_room(room_id)
        if record is None:
            record = await self._auto_create(room_id, jurisdiction)
        if record.status != "open":
            raise RoomClosed(room_id)
        return await self.actor(room_id)

    async def _auto_create(self, room_id: str, jurisdiction: str) -> RoomRecord:
        try:
            await self.create_room(room_id, jurisdiction)
        except Exception:
            logger.exception("creating room %s failed", room_id)
            raise RoomClosed(room_id) from None
        record = await self.store.get_room(room_id)
        if record is None:
            raise RoomNotFound(room_id)
        return record

    async def create_room(self, room_id: str, jurisdiction: str) -> bool:
        """Create the room (its start handler runs first); False if the roomID exists in any
        status. If the start handler raises, no record is written and the error propagates.
        When another node owns the room (creating it at the same time), its load ran the
        start handler."""
        async with self._create_lock:
            if await self.store.get_room(room_id) is not None:
                return False
            with contextlib.suppress(NotOwner):
                await self.actor(room_id)
            record = RoomRecord(
                room_id=room_id, jurisdiction="eu" if jurisdiction else "", created_ms=now_ms()
            )
            data = {"jurisdiction": record.jurisdiction}
            events = self.webhooks.room_events("room.created", room_id, data, now_ms=now_ms())
            created = await self.store.create_room(record, events=events)
            if created and events:
                self.webhooks.outbox_written(events)
            return created

    async def delete_room(self, room_id: str) -> None:
        """Mark the room deleted (no new connects), close its sockets, drop it from memory and
        delete its data; the record stays, so the roomID is never reused."""
        await self.set_room_status(room_id, "deleted")
        await self.drop_room(room_id)
        lease = await self._take_for_delete(room_id)
        try:
            await self.store.delete_room_data(room_id)
        finally:
            if lease is not None:
                await self._release(lease)

    async def set_room_status(self, room_id: str, status: RoomStatus) -> None:
        """Set the room's status, with its webhook event (``room.closed``, ``room.deleted``)."""
        type: EventType = "room.closed" if status == "closed" else "room.deleted"
        events = self.webhooks.room_events(type, room_id, {}, now_ms=now_ms())
        await self.store.set_room_status(room_id, status, events=events)
        if events:
            self.webhooks.outbox_written(events)

    async def drop_room(self, room_id: str) -> None:
        """Close the room's sockets and stop its actor (the round in progress finishes)."""
        actor = self.actors.get(room_id)
        if actor is not None:
            for socket in list(actor.sockets.values()):
                socket.close()
            await actor.stop()
        releasing = self._releasing.get(room_id)
        if releasing is not None:
            await asyncio.shield(releasing)

    async def _take_for_delete(self, room_id: str) -> Lease | None:
        """With leases: hold the room's lease (waiting for its owner to let it go, at most
        about two lease periods) so that no node commits to the room while its data goes."""
        if self.leases is None:
            return None
        deadline = time.monotonic() + 2 * self.settings.lease_ms / 1000
        while True:
            lease = await self.leases.acquire_lease(
                room_id, self.node_id, self.settings.advertise_url, self.settings.lease_ms
            )
            if lease is not None or time.monotonic() >= deadline:
                return lease
            await asyncio.sleep(0.05)

    def close_connections(self, matches: Callable[[ClientSocket], bool]) -> int:
        """Close (without an error frame) every socket that ``matches``; the clients reconnect
        at once and are authenticated again. Returns how many were closed."""
        closed = 0
        for actor in list(self.actors.values()):
            for socket in list(actor.sockets.values()):
                if matches(socket):
                    socket.close()
                    closed += 1
        return closed

    async def drain(self) -> None:
        """Finish every room's round in progress, stop the actors and release their leases;
        sockets stay open."""
        self.closing = True
        await asyncio.gather(*(actor.stop() for actor in list(self.actors.values())))
        if self._releasing:
            await asyncio.gather(*self._releasing.values(), return_exceptions=True)
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer

"""A room actor: the one task that runs a live room.

All work of a room is serialised here. Each round of the loop:

1. run the engine calls that arrived (connects, pushes, pulls, disconnects, beacons);
2. run a turn if there is work (whatever arrived meanwhile forms the next turn);
3. commit the writes of 1 and 2 in one transaction and wait until they are durable;
4. only then send the frames (``connected``, pokes) and settle the callers' futures.

If a commit fails, nothing of the round is sent. The round is undone (the stored state is
reloaded, the rest comes from a ``Checkpoint``) and replayed one unit at a time, each unit
committed before its frames are sent: first each call alone, then the turn one mutation at
a time. A unit whose commit fails again is refused alone: its caller gets the error, the
socket that posted it (or that pushed the mutation) is closed, and the other clients of the
room stay connected. So bad data from one client (that got past the checks at the edge)
costs only that client, and a transient fault costs nothing. Only when nobody can be blamed
(a turn without mutations fails again, or the state cannot be reloaded) does the actor
close every socket of the room and stop; the clients reconnect and the room is reloaded.

With a lease (several nodes share the storage) every commit is fenced by it: ``LeaseLost``
means another node took the room, and the actor is dropped the same way (its clients
reconnect and reach the new owner).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from reflectd.clock import now_ms
from reflectd.engine.checkpoint import Checkpoint
from reflectd.engine.handlers import AsyncAppRuntime
from reflectd.engine.pending import PendingMutation
from reflectd.engine.room import Close, Effect, Room, Send, SendStream
from reflectd.engine.turn import has_work, planned_calls, run_turn
from reflectd.errors import LeaseLost, ProtocolError, RoomUnavailable
from reflectd.logs import log_context
from reflectd.server import metrics
from reflectd.server.errors import send_error_frame
from reflectd.server.sockets import ClientSocket
from reflectd.server.webhooks import RoomEvents
from reflectd.storage.base import Backend
from reflectd.storage.leases import Lease, commit_as_owner

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Call:
    call: Callable[[Room], Any]
    future: asyncio.Future[Any] | None
    #: a ProtocolError without a future is reported on this socket
    socket: ClientSocket | None = None
    result: Any = None
    error: BaseException | None = field(default=None)


_request_ids = itertools.count(1)
_request_prefix = os.urandom(4).hex()


class RoomActor:
    def __init__(
        self,
        room: Room,
        store: Backend,
        *,
        idle_unload_ms: int,
        on_stop: Callable[[RoomActor], None],
        lease: Lease | None = None,
        events: RoomEvents | None = None,
    ) -> None:
        self.room = room
        self.room_id = room.room_id
        self.store = store
        self.sockets: dict[int, ClientSocket] = {}
        self._calls: list[_Call] = []
        self._wake = asyncio.Event()
        self._idle_unload_s = idle_unload_ms / 1000
        self._on_stop = on_stop
        self.stopped = False
        self._stopping = False
        self._in_flight: list[_Call] = []
        #: this node's lease on the room (None without leases); renewed by the registry
        self.lease = lease
        #: the lease was lost: do not release it, it is not ours any more
        self.lease_lost = False
        #: (monotonic seconds) until when the lease is surely still ours
        self.lease_valid_until = time.monotonic()
        #: the webhook events of the room's rounds, committed with them
        self.events = events
        # its own log context: the room's lines carry its room_id, not the first client's
        self._task = asyncio.create_task(
            self._run(), name=f"room {room.room_id}", context=log_context(room_id=room.room_id)
        )

    # ----------------------------------------------------------------------- submitting

    def call(self, call: Callable[[Room], Any]) -> asyncio.Future[Any]:
        """Run ``call(room)`` in the next round; the future settles after the commit."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._submit(_Call(call, future))
        return future

    def post(self, call: Callable[[Room], Any], socket: ClientSocket) -> None:
        """Run ``call(room)`` for ``socket``; a ProtocolError is reported on the socket."""
        self._submit(_Call(call, None, socket))

    def _submit(self, call: _Call) -> None:
        if self.stopped:
            raise RoomUnavailable(f"room {self.room_id} is not loaded")
        self._calls.append(call)
        self._wake.set()

    def attach(self, socket: ClientSocket) -> None:
        self.sockets[socket.connection_id] = socket

    def detach(self, socket: ClientSocket) -> None:
        """The socket closed: forget it and let the engine process the disconnect."""
        if self.sockets.get(socket.connection_id) is socket:
            del self.sockets[socket.connection_id]
            client_id, connection_id = socket.client_id, socket.connection_id
            if not self.stopped:
                self.post(lambda room: room.disconnect(client_id, connection_id), socket)

    # ----------------------------------------------------------------------- the loop

    async def _run(self) -> None:
        failed = False
        try:
            while await self._wait_for_work():
                await self._round()
        except LeaseLost as e:
            failed = self.lease_lost = True
            metrics.LEASE_LOSSES.labels("fenced").inc()
            logger.warning("room dropped, another node took it: %s", e)
        except Exception:
            failed = True
            logger.exception("room stopped after an error; its clients will reconnect")
        finally:
            self._stop(close_sockets=failed)

    async def _wait_for_work(self) -> bool:
        while not self._stopping and not self._calls and not has_work(self.room):
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._idle_unload_s)
            except TimeoutError:
                if not self._calls and self.room.is_idle():
                    return False
        return not self._stopping

    async def _round(self) -> None:
        calls = self._in_flight = self._calls
        self._calls = []
        checkpoint = Checkpoint.take(self.room)
        for call in calls:
            _run_call(call, self.room)
        queued = self.room.queued_mutations()
        if has_work(self.room):
            await self._prepare_turn()
            self._run_turn()
        try:
            await self._commit_and_deliver()
        except LeaseLost:
            raise
        except Exception as e:
            metrics.STORAGE_ERRORS.labels("commit").inc()
            logger.warning("the commit of a round failed (%s); replaying it one unit at a time", e)
            await self._restore(checkpoint)
            await self._replay(calls, min(queued, self.room.settings.max_mutations_per_turn))
        else:
            for call in calls:
                self._settle(call)
        self._in_flight = []

    async def _prepare_turn(self) -> None:
        """Let an app runtime run the turn's mutations ahead, while the event loop goes on
        (with the other rooms' that ask at the same time)."""
        runtime = self.room.handlers.runtime
        # (a Python app has none; an isinstance check against a Protocol is slow)
        if runtime is not None and isinstance(runtime, AsyncAppRuntime):
            calls = planned_calls(self.room)
            if calls:
                self.room.prepare(calls, await runtime.run_async(self.room, calls))

    def _run_turn(self) -> None:
        request_id = f"{_request_prefix}{next(_request_ids):x}"
        started = time.perf_counter()
        run_turn(self.room, now_ms=now_ms(), request_id=request_id)
        metrics.turn_ran(time.perf_counter() - started, self.room.take_mutation_outcomes())

    async def _commit_and_deliver(self) -> None:
        """Commit what the engine wrote (with the webhook events it causes), then (only then)
        send what it queued."""
        writes = self.room.take_writes()
        effects = self.room.take_effects()
        if self.events is not None:
            writes.outbox += self.events.round_events(self.room, writes, now_ms())
        if not writes.is_empty():
            started = time.perf_counter()
            await commit_as_owner(self.store, self.room_id, writes, lease=self.lease)
            metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        if self.events is not None:
            self.events.committed()
            if writes.outbox:
                self.events.hooks.outbox_written(writes.outbox)
        self._deliver(effects)

    # ----------------------------------------------------------------------- replay

    async def _replay(self, calls: list[_Call], mutations: int) -> None:
        """Replay an undone round: each call alone, then its turn one mutation at a time;
        a unit whose commit fails again is refused alone. Raises when nobody can be
        blamed (the room then stops)."""
        for call in calls:
            checkpoint = Checkpoint.take(self.room)
            call.result, call.error = None, None
            _run_call(call, self.room)
            try:
                await self._commit_and_deliver()
            except LeaseLost:
                raise
            except Exception as e:
                await self._restore(checkpoint)
                call.error = e
                logger.error("a call was refused, its commit failed: %s", e)
            self._settle(call)
        settings = self.room.settings
        self.room.settings = replace(settings, max_mutations_per_turn=1)
        try:
            for _ in range(max(mutations, 1)):
                if not has_work(self.room):
                    return
                checkpoint = Checkpoint.take(self.room)
                first = self.room.next_mutation()
                self._run_turn()
                try:
                    await self._commit_and_deliver()
                except LeaseLost:
                    raise
                except Exception as e:
                    if first is None:
                        raise  # a turn without mutations: the storage itself fails
                    await self._restore(checkpoint)
                    self._refuse(first, e)
        finally:
            self.room.settings = settings

    def _refuse(self, mutation: PendingMutation, error: Exception) -> None:
        """Drop ``mutation`` and its client's later ones; close the sockets that pushed it
        (the client reconnects and pushes again from its last confirmed mutation)."""
        logger.error(
            "mutation %d was refused, its commit failed: %s",
            mutation.id,
            error,
            extra=self.room.client_log_fields(mutation.client_id),
        )
        self.room.drop_mutations_of(mutation.client_id)
        for client_id in {mutation.client_id, *mutation.pusher_client_ids}:
            connection_id = self.room.connection_id(client_id)
            socket = None if connection_id is None else self.sockets.get(connection_id)
            if socket is not None:
                socket.close()

    async def _restore(self, checkpoint: Checkpoint) -> None:
        """Undo what the room did since ``checkpoint``: storage holds the state from before."""
        checkpoint.restore(self.room, await self.store.load_room(self.room_id))

    def _deliver(self, effects: list[Effect]) -> None:
        sent: list[bytes] = []
        for effect in effects:
            socket = self.sockets.get(effect.connection_id)
            if socket is None:
                continue
            if isinstance(effect, Send):
                socket.send(effect.frame)
                sent.append(effect.frame)
            elif isinstance(effect, SendStream):
                socket.send_stream(effect.stream)
                sent.append(effect.stream.head)  # the rest is counted once written
            elif isinstance(effect, Close):
                socket.close()
        metrics.count_sent(sent)

    def _settle(self, call: _Call) -> None:
        if call.future is not None:
            if call.future.done():
                return
            if call.error is not None:
                call.future.set_exception(call.error)
            else:
                call.future.set_result(call.result)
        elif isinstance(call.error, ProtocolError) and call.socket is not None:
            logger.info(
                "%s: %s",
                call.error.kind,
                call.error.message,
                extra={"client_id": call.socket.client_id, "user_id": call.socket.user_id},
            )
            send_error_frame(call.socket, call.error)
        elif call.error is not None and call.socket is not None:
            call.socket.close()  # its commit failed: the client reconnects

    def _stop(self, *, close_sockets: bool) -> None:
        """Stop for good: fail waiting callers, leave the registry."""
        self.stopped = True
        for call in self._in_flight + self._calls:
            if call.future is not None and not call.future.done():
                call.future.set_exception(RoomUnavailable(f"room {self.room_id} stopped"))
        self._in_flight = self._calls = []
        if close_sockets:
            for socket in list(self.sockets.values()):
                socket.close()
        self._on_stop(self)

    def drop(self, *, lease_lost: bool) -> None:
        """Give the room up at once (its lease is gone): close its sockets so that the
        clients reconnect, and stop after the round in progress (whose commit is fenced)."""
        self.lease_lost = self.lease_lost or lease_lost
        for socket in list(self.sockets.values()):
            socket.close()
        self._stopping = True
        self._wake.set()

    async def stop(self) -> None:
        """Finish the round in progress (its commit and pokes), then stop."""
        self._stopping = True
        self._wake.set()
        await asyncio.shield(self._task)


def _run_call(call: _Call, room: Room) -> None:
    try:
        call.result = call.call(room)
    except ProtocolError as e:
        call.error = e

"""The room engine: one room's clients, pending mutations and turns, with no I/O.

Messages, the time (``now_ms``) and identifiers go in; changes to persist (``take_writes``)
and frames to send (``take_effects``) come out. The caller commits the writes before it
delivers the effects: nothing that depends on a write leaves before the write is durable.
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from reflectd.engine.handlers import (
    AppCall,
    CallFailed,
    CallResult,
    EngineSettings,
    RoomHandlers,
)
from reflectd.engine.pending import PendingMutation, enqueue, next_clock_offset, plan_push
from reflectd.engine.records import ClientRecord, Entry, RoomSnapshot, RoomWrites
from reflectd.engine.state import RoomState
from reflectd.engine.streamed import PatchPieces, PokeStream
from reflectd.engine.transaction import NO_MUTATION_ID, WriteTransaction
from reflectd.errors import (
    AppCodeFailed,
    ClientNotFound,
    InvalidConnectionRequest,
    InvalidConnectionRequestBaseCookie,
    InvalidConnectionRequestLastMutationID,
)
from reflectd.protocol.codec import encode_connected, encode_pull_response
from reflectd.protocol.connect import ConnectQuery
from reflectd.protocol.messages import ConnectedBody, PullBody, PullResponseBody, PushBody

logger = logging.getLogger(__name__)

#: prefix of per-client user keys, soft-deleted when the client is deleted
PER_CLIENT_PREFIX = "-/p/"


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``frame`` on the socket of ``connection_id``."""

    connection_id: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the socket of ``connection_id`` without an error frame."""

    connection_id: int


@dataclass(frozen=True, slots=True)
class SendStream:
    """Send ``stream``, a poke message too big for one frame, on the socket of
    ``connection_id``, piece by piece as the socket drains."""

    connection_id: int
    stream: PokeStream


Effect = Send | SendStream | Close


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    connection_id: int
    client_id: str
    client_group_id: str
    #: the AuthData: the auth handler's result, or ``{"userID": ...}``
    auth: Mapping[str, Any]
    base_cookie: int | None
    lmid: int
    wsid: str
    debug_perf: bool = False

    @classmethod
    def of(
        cls, query: ConnectQuery, *, connection_id: int, auth: Mapping[str, Any]
    ) -> ConnectRequest:
        """The request of a connect whose query passed every check, authenticated as ``auth``."""
        return cls(
            connection_id=connection_id,
            client_id=query.client_id,
            client_group_id=query.client_group_id,
            auth=auth,
            base_cookie=query.base_cookie,
            lmid=query.lmid,
            wsid=query.wsid,
            debug_perf=query.debug_perf,
        )


@dataclass(slots=True)
class Connection:
    """A connected client, in memory only (the original's ClientState)."""

    connection_id: int
    client_id: str
    client_group_id: str
    auth: Mapping[str, Any]
    debug_perf: bool = False
    clock_offset_ms: float | None = None
    sent_initial_presence: bool = False

    @property
    def user_id(self) -> str:
        return str(self.auth.get("userID", ""))


@dataclass(frozen=True, slots=True)
class BeaconOutcome:
    """The close beacon's HTTP answer."""

    status: int
    text: str


def compare_cookies(a: int | None, b: int | None) -> int:
    """Order cookies with ``None`` below every number."""
    if a == b:
        return 0
    if a is None:
        return -1
    if b is None:
        return 1
    return -1 if a < b else 1


class Room:
    """One room's engine. Not thread-safe: the caller serialises all calls."""

    def __init__(
        self,
        room_id: str,
        snapshot: RoomSnapshot,
        *,
        handlers: RoomHandlers,
        settings: EngineSettings | None = None,
    ) -> None:
        self.room_id = room_id
        self.state = RoomState(snapshot)
        self.handlers = handlers
        self.settings = settings or EngineSettings()
        self.connections: dict[str, Connection] = {}
        self.queue: list[PendingMutation] = []
        self.last_gc_ms: int | None = None
        #: the version moved outside a turn (a change from the app's backend): the next
        #: turn's fast-forward pokes every client
        self.unpoked = False
        self._effects: list[Effect] = []
        #: base cookie -> the patch of the big fast-forwards still being streamed from it
        self.streamed_patches: weakref.WeakValueDictionary[int | None, PatchPieces] = (
            weakref.WeakValueDictionary()
        )
        #: calls an app runtime ran ahead for the next turn, with their results
        self._prepared: tuple[list[AppCall], list[CallResult]] | None = None
        #: (mutator name, outcome) of the mutations the turns ran, for the server's metrics:
        #: ``applied``, ``error`` (the mutator raised), ``unknown_mutator``
        self.mutation_outcomes: Counter[tuple[str, str]] = Counter()

    # ----------------------------------------------------------------------- outputs

    def take_writes(self) -> RoomWrites:
        return self.state.take_writes()

    def take_mutation_outcomes(self) -> Counter[tuple[str, str]]:
        outcomes, self.mutation_outcomes = self.mutation_outcomes, Counter()
        return outcomes

    def take_effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def emit(self, effect: Effect) -> None:
        self._effects.append(effect)

    # ----------------------------------------------------------------------- what the server asks

    def is_idle(self) -> bool:
        """No client connected and no mutation waiting: the room may be unloaded."""
        return not self.connections and not self.queue

    def queued_mutations(self) -> int:
        return len(self.queue)

    def next_mutation(self) -> PendingMutation | None:
        """The mutation the next turn applies first, if any."""
        return self.queue[0] if self.queue else None

    def drop_mutations_of(self, client_id: str) -> None:
        """Forget the queued mutations of ``client_id`` (its client pushes them again)."""
        self.queue = [m for m in self.queue if m.client_id != client_id]

    def connection_id(self, client_id: str) -> int | None:
        """The connection of ``client_id``, if it is connected."""
        connection = self.connections.get(client_id)
        return None if connection is None else connection.connection_id

    def client_log_fields(self, client_id: str) -> dict[str, str]:
        """The log fields of a line about ``client_id``: it and its user, when known (so that
        ``reflectd tail --user`` finds the line)."""
        if not client_id:
            return {}
        connection = self.connections.get(client_id)
        record = self.state.clients.get(client_id)
        user_id = connection.user_id if connection is not None else None
        if not user_id and record is not None:
            user_id = record.user_id
        return {"client_id": client_id, "user_id": user_id} if user_id else {"client_id": client_id}

    def live_entries(self) -> Iterator[tuple[str, bytes]]:
        """The room's contents: each live key with its value's JSON, in key order."""
        for key, entry in self.state.entries.items():
            if not entry.deleted:
                yield key, entry.value

    # ----------------------------------------------------------------------- room start

    def start(self) -> None:
        """Run the room-start handler. Its writes bump the version; no poke.

        Raises ``AppCodeFailed`` if the handler fails; the room must then not be used.
        """
        if not self.handlers.has_handler("roomStart"):
            return
        version = (self.state.version or 0) + 1
        result = self.run_call(AppCall("roomStart", client_id="", version=version))
        if isinstance(result, CallFailed):
            raise AppCodeFailed(f"roomStartHandler failed: {result.message}")
        if result:
            self.state.set_version(version)

    # ----------------------------------------------------------------------- connect

    def connect(self, request: ConnectRequest, *, now_ms: int) -> None:
        """Validate and register a connection; queue its ``connected`` frame.

        Raises an ``InvalidConnectionRequest`` (or subclass) and changes nothing if invalid.
        """
        user_id = str(request.auth.get("userID", ""))
        record = self.state.clients.get(request.client_id)
        if record is not None:
            if record.client_group_id != request.client_group_id:
                raise InvalidConnectionRequest("Unexpected clientGroupID.")
            if record.user_id and record.user_id != user_id:
                raise InvalidConnectionRequest("Unexpected userID")
        if request.lmid > (record.last_mutation_id if record is not None else 0):
            raise InvalidConnectionRequestLastMutationID("Unexpected lmid.")
        if compare_cookies(request.base_cookie, self.state.version) > 0:
            raise InvalidConnectionRequestBaseCookie("Unexpected baseCookie.")
        self.state.put_client(
            request.client_id,
            ClientRecord(
                client_group_id=request.client_group_id,
                base_cookie=request.base_cookie,
                last_mutation_id=record.last_mutation_id if record is not None else 0,
                last_mutation_id_version=(
                    record.last_mutation_id_version if record is not None else None
                ),
                last_seen_ms=now_ms,
                user_id=user_id,
            ),
        )
        previous = self.connections.get(request.client_id)
        if previous is not None:
            self.emit(Close(previous.connection_id))
        self.connections[request.client_id] = Connection(
            connection_id=request.connection_id,
            client_id=request.client_id,
            client_group_id=request.client_group_id,
            auth=request.auth,
            debug_perf=request.debug_perf,
        )
        frame = encode_connected(ConnectedBody(wsid=request.wsid, timestamp=now_ms))
        self.emit(Send(request.connection_id, frame))

    def disconnect(self, client_id: str, connection_id: int) -> None:
        """Forget a closed socket, unless its client has reconnected on another one."""
        connection = self.connections.get(client_id)
        if connection is not None and connection.connection_id == connection_id:
            del self.connections[client_id]

    def connection(self, client_id: str, connection_id: int) -> Connection:
        connection = self.connections.get(client_id)
        if connection is None or connection.connection_id != connection_id:
            raise ClientNotFound(client_id)
        return connection

    # ----------------------------------------------------------------------- push / pull

    def push(self, client_id: str, connection_id: int, push: PushBody, *, now_ms: int) -> None:
        """Validate a push and queue its new mutations; raise ``InvalidPush``."""
        connection = self.connection(client_id, connection_id)
        plan = plan_push(
            self.queue,
            self.state.clients,
            pusher_id=client_id,
            pusher_user_id=connection.user_id,
            push=push,
            auth=connection.auth,
            clock_offset_ms=next_clock_offset(connection.clock_offset_ms, push, now_ms),
            now_ms=now_ms,
        )
        for new_id in sorted(plan.new_client_ids):
            self.state.put_client(
                new_id,
                ClientRecord(
                    client_group_id=push.client_group_id,
                    base_cookie=None,
                    last_mutation_id=0,
                    last_mutation_id_version=None,
                    last_seen_ms=now_ms,
                    user_id=connection.user_id,
                ),
            )
        connection.clock_offset_ms = plan.clock_offset_ms
        enqueue(self.queue, plan, client_id)

    def pull(self, client_id: str, connection_id: int, pull: PullBody) -> None:
        """Answer a pull (mutation recovery of another client group)."""
        self.connection(client_id, connection_id)
        changes = {
            other_id: record.last_mutation_id
            for other_id, record in self.state.clients.items()
            if record.client_group_id == pull.client_group_id
            and record.last_mutation_id_version is not None
            and compare_cookies(pull.cookie, record.last_mutation_id_version) < 0
        }
        body = PullResponseBody(
            cookie=self.state.version or 0,
            request_id=pull.request_id,
            last_mutation_id_changes=changes,
        )
        self.emit(Send(connection_id, encode_pull_response(body)))

    # ----------------------------------------------------------------------- close beacon

    def close_beacon(self, client_id: str, last_mutation_id: int, *, user_id: str) -> BeaconOutcome:
        """The client says it is gone for good, having created ``last_mutation_id``; the
        beacon comes from ``user_id``, and only the client's own user may send it."""
        record = self.state.clients.get(client_id)
        if record is None:
            return BeaconOutcome(404, "client record not found")
        if record.user_id and record.user_id != user_id:
            return BeaconOutcome(403, "client belongs to another user")
        if client_id in self.state.connected_clients or client_id in self.connections:
            self.state.put_client(
                client_id,
                msgspec.structs.replace(record, last_mutation_id_at_close=last_mutation_id),
            )
            return BeaconOutcome(200, "Client is still connected")
        if last_mutation_id < record.last_mutation_id:
            return BeaconOutcome(500, "Client mutationID is less than existing")
        if last_mutation_id > record.last_mutation_id:
            return BeaconOutcome(200, "Client has pending mutations")
        version = (self.state.version or 0) + 1
        if self.delete_client(client_id, version=version):
            self.state.set_version(version)
        return BeaconOutcome(200, "ok")

    # ----------------------------------------------------------------------- shared helpers

    def transaction(
        self,
        *,
        version: int,
        client_id: str,
        mutation_id: int = NO_MUTATION_ID,
        auth: Mapping[str, Any] | None = None,
    ) -> WriteTransaction:
        return WriteTransaction(
            self.state.entries,
            version=version,
            client_id=client_id,
            mutation_id=mutation_id,
            auth=auth,
            env=self.handlers.env,
            max_key_bytes=self.settings.max_key_bytes,
            max_value_bytes=self.settings.max_value_bytes,
        )

    def prepare(self, calls: list[AppCall], results: list[CallResult]) -> None:
        """Results of calls the app runtime ran ahead (see ``turn.planned_calls``): the next
        ``run_calls`` with exactly these calls takes them instead of running them."""
        self._prepared = (calls, results)

    def run_calls(self, calls: Sequence[AppCall]) -> list[CallResult]:
        """Run app code, in order; apply the writes of each call that succeeds, log each
        failure. An unknown mutator fails (it is the caller's to skip it quietly)."""
        runtime = self.handlers.runtime
        if runtime is None:
            return [self._run_python(call) for call in calls]
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[0] == list(calls):
            results = prepared[1]
        else:
            if prepared is not None:
                runtime.reset(self)  # it ran calls whose writes will not be kept
            results = runtime.run(self, calls)
        for call, result in zip(calls, results, strict=True):
            if isinstance(result, CallFailed):
                logger.error(
                    "%s failed in room %s: %s",
                    _describe(call),
                    self.room_id,
                    result.message,
                    extra=self.client_log_fields(call.client_id),
                )
            else:
                self.state.put_entries(result, journal=False)
        return results

    def run_call(self, call: AppCall) -> CallResult:
        return self.run_calls([call])[0]

    def _run_python(self, call: AppCall) -> CallResult:
        tx = self.transaction(
            version=call.version,
            client_id=call.client_id,
            mutation_id=call.mutation_id,
            auth=call.auth,
        )
        handlers = self.handlers
        try:
            if call.kind == "mutator":
                handlers.mutators[call.name](tx, call.args)
            elif call.kind == "roomStart" and handlers.room_start_handler is not None:
                handlers.room_start_handler(tx, self.room_id)
            elif call.kind == "clientDisconnect" and handlers.on_client_disconnect is not None:
                handlers.on_client_disconnect(tx)
            elif call.kind == "clientDelete" and handlers.on_client_delete is not None:
                handlers.on_client_delete(tx)
        except Exception as e:
            logger.exception(
                "%s failed in room %s",
                _describe(call),
                self.room_id,
                extra=self.client_log_fields(call.client_id),
            )
            return CallFailed(f"{type(e).__name__}: {e}")
        self.state.put_entries(tx.writes)
        return tx.writes

    def delete_client(self, client_id: str, *, version: int) -> dict[str, Entry]:
        """Delete a client: run the delete handler, tombstone its ``-/p/<clientID>`` keys, drop
        its record.

        Returns the user entries written, all at ``version``; the caller sets the version.
        """
        written: dict[str, Entry] = {}
        if self.handlers.has_handler("clientDelete"):
            result = self.run_call(AppCall("clientDelete", client_id=client_id, version=version))
            if not isinstance(result, CallFailed):
                written.update(result)
        prefix = PER_CLIENT_PREFIX + client_id
        tombstones: dict[str, Entry] = {}
        for key in self.state.entries.irange(minimum=prefix):
            if not key.startswith(prefix):
                break
            entry: Entry = self.state.entries[key]
            if not entry.deleted:
                tombstones[key] = Entry(version=version, deleted=True, value=entry.value)
        self.state.put_entries(tombstones)
        written.update(tombstones)
        self.state.delete_client(client_id)
        return written


def _describe(call: AppCall) -> str:
    if call.kind == "mutator":
        return f"mutator {call.name!r}"
    return {
        "roomStart": "roomStartHandler",
        "clientDisconnect": "onClientDisconnect",
        "clientDelete": "onClientDelete",
    }[call.kind]

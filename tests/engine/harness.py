"""Test harness for the room engine: drive a ``Room`` the way the server does, and receive
every frame the way the real client (``@rocicorp/reflect`` 0.39) does.

- ``RoomDriver`` wraps a ``Room`` with a fake clock, connection ids, a durable copy of the
  room (fed by ``take_writes``, checked against ``room.state`` after every call) and one
  ``ClientModel`` per clientID. ``turn()`` runs a turn and returns the frames each client got.
- ``ClientModel`` applies pokes as the client does and fails the test wherever the real client
  would disconnect or drop data: a base cookie that is not its cookie, a cookie or a
  lastMutationID going back, a frame its strict schemas refuse.
- ``assert_frames_valid`` checks a downstream frame against the client's strict (valita)
  schemas of ``reflect-protocol/src`` (an extra field makes it drop the frame).
- ``RoomDriver.assert_rejected`` checks that a call raises a protocol error and changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

import msgspec
import pytest

from reflectd.engine.handlers import (
    ClientHandler,
    EngineSettings,
    Mutator,
    RoomHandlers,
    RoomStartHandler,
)
from reflectd.engine.records import ClientRecord, RoomSnapshot, RoomWrites
from reflectd.engine.room import BeaconOutcome, Close, ConnectRequest, Room, Send, SendStream
from reflectd.engine.streamed import PokeStream
from reflectd.engine.transaction import WriteTransaction
from reflectd.engine.turn import has_work, run_turn
from reflectd.errors import ErrorKind, ProtocolError
from reflectd.protocol.codec import parse_upstream

#: the fake clock's start: 2023-11-14T22:13:20Z
START_MS = 1_700_000_000_000
DAY_MS = 24 * 3600 * 1000
MAX_SAFE_INTEGER = 2**53 - 1

# ============================================================ the client's strict schemas


class InvalidFrame(AssertionError):
    """A downstream frame the client would drop as "Invalid message received from server"."""


ERROR_KINDS: frozenset[str] = frozenset(get_args(ErrorKind))

Check = Callable[[Any, str], None]


def assert_frames_valid(frame: bytes | str) -> Any:
    """Check one downstream frame against the client's strict schemas; return it decoded.

    Strict means valita's default mode: unknown keys are refused, an optional field may be
    absent but never ``null``, tuples have their exact length. On top of the schemas, numbers
    that the client uses as versions or mutation ids must be integers JavaScript reads exactly.
    """
    try:
        message = json.loads(frame, parse_constant=_refuse_constant)
    except ValueError as e:
        raise InvalidFrame(f"frame is not JSON: {e}: {frame!r}") from None
    if type(message) is not list or not message or type(message[0]) is not str:
        raise InvalidFrame(f"frame is not [type, ...]: {frame!r}")
    check = _MESSAGE_CHECKS.get(message[0])
    if check is None:
        raise InvalidFrame(f"unknown downstream message type {message[0]!r}")
    check(message, "$")
    return message


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _invalid(path: str, what: str) -> None:
    raise InvalidFrame(f"at {path}: {what}")


def _tuple(*checks: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if len(value) != len(checks):
            _invalid(path, f"expected a tuple of length {len(checks)}, got {len(value)}")
        for index, (item, item_check) in enumerate(zip(value, checks, strict=True)):
            item_check(item, f"{path}[{index}]")

    return check


def _object(required: Mapping[str, Check], optional: Mapping[str, Check] | None = None) -> Check:
    optional = optional or {}

    def check(value: Any, path: str) -> None:
        if type(value) is not dict:
            _invalid(path, f"expected an object, got {value!r}")
        unknown = value.keys() - required.keys() - optional.keys()
        if unknown:
            _invalid(path, f"unknown field(s) {sorted(unknown)}")
        missing = required.keys() - value.keys()
        if missing:
            _invalid(path, f"missing field(s) {sorted(missing)}")
        for name, field_check in required.items():
            field_check(value[name], f"{path}.{name}")
        for name, field_check in optional.items():
            if name in value:
                if value[name] is None:
                    _invalid(f"{path}.{name}", "null for an optional field (omit it instead)")
                field_check(value[name], f"{path}.{name}")

    return check


def _literal(expected: str) -> Check:
    def check(value: Any, path: str) -> None:
        if value != expected or type(value) is not str:
            _invalid(path, f"expected {expected!r}, got {value!r}")

    return check


def _string(value: Any, path: str) -> None:
    if type(value) is not str:
        _invalid(path, f"expected a string, got {value!r}")


def _number(value: Any, path: str) -> None:
    if type(value) not in (int, float):
        _invalid(path, f"expected a number, got {value!r}")


def _integer(value: Any, path: str) -> None:
    """A number the client uses as a version or id: an integer JavaScript reads exactly."""
    if type(value) is not int:
        _invalid(path, f"expected an integer, got {value!r}")
    if abs(value) > MAX_SAFE_INTEGER:
        _invalid(path, f"{value} is beyond JavaScript's safe integers")


def _nullable_integer(value: Any, path: str) -> None:
    if value is not None:
        _integer(value, path)


def _record_of_integers(value: Any, path: str) -> None:
    if type(value) is not dict:
        _invalid(path, f"expected an object, got {value!r}")
    for key, item in value.items():
        _integer(item, f"{path}[{key!r}]")


def _json(value: Any, path: str) -> None:
    if value is None or type(value) in (bool, int, str):
        return
    if type(value) is float:
        if not math.isfinite(value):
            _invalid(path, f"{value} is not JSON")
        return
    if type(value) is list:
        for index, item in enumerate(value):
            _json(item, f"{path}[{index}]")
        return
    if type(value) is dict:
        for key, item in value.items():
            _json(item, f"{path}[{key!r}]")
        return
    _invalid(path, f"{value!r} is not JSON")


def _array(item_check: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if type(value) is not list:
            _invalid(path, f"expected an array, got {value!r}")
        for index, item in enumerate(value):
            item_check(item, f"{path}[{index}]")

    return check


_PATCH_OPS: dict[str, Check] = {
    "put": _object({"op": _literal("put"), "key": _string, "value": _json}),
    "del": _object({"op": _literal("del"), "key": _string}),
    "clear": _object({"op": _literal("clear")}),
}


def _patch_op(value: Any, path: str) -> None:
    op = value.get("op") if type(value) is dict else None
    check = _PATCH_OPS.get(op) if type(op) is str else None
    if check is None:
        _invalid(path, f"not a patch op: {value!r}")
    else:
        check(value, path)


_patch = _array(_patch_op)

_poke = _object(
    {
        "baseCookie": _nullable_integer,
        "cookie": _integer,
        "lastMutationIDChanges": _record_of_integers,
        "patch": _patch,
    },
    {
        "presence": _patch,
        "timestamp": _number,
        "debugOriginTimestamp": _number,
        "debugServerReceivedTimestamp": _number,
        "debugServerSentTimestamp": _number,
    },
)


def _error_kind(value: Any, path: str) -> None:
    if value not in ERROR_KINDS:
        _invalid(path, f"unknown error kind {value!r}")


_MESSAGE_CHECKS: dict[str, Check] = {
    "connected": _tuple(_literal("connected"), _object({"wsid": _string}, {"timestamp": _number})),
    "poke": _tuple(
        _literal("poke"),
        _object({"pokes": _array(_poke), "requestID": _string}, {"debugServerBufferMs": _number}),
    ),
    "pull": _tuple(
        _literal("pull"),
        _object(
            {
                "cookie": _integer,
                "requestID": _string,
                "lastMutationIDChanges": _record_of_integers,
            }
        ),
    ),
    "error": _tuple(_literal("error"), _error_kind, _string),
    "pong": _tuple(_literal("pong"), _object({})),
}


# ============================================================ what the client does with them


def compare_cookies(a: int | None, b: int | None) -> int:
    """Replicache's order of cookies: ``None`` below every number."""
    if a == b:
        return 0
    if a is None:
        return -1
    if b is None:
        return 1
    return -1 if a < b else 1


class ClientModel:
    """One client (one clientID, one Replicache instance) as the server's frames leave it.

    It survives reconnects, like a page that keeps its IndexedDB: ``cookie``, ``data`` and
    ``last_mutation_ids`` persist; ``presence`` resets to itself when its socket closes.
    """

    def __init__(self, client_id: str, client_group_id: str, user_id: str) -> None:
        self.client_id = client_id
        self.client_group_id = client_group_id
        self.user_id = user_id
        self.cookie: int | None = None
        self.data: dict[str, Any] = {}
        #: whether ``data`` holds the room's data at ``cookie`` (False after a made-up cookie)
        self.data_known = True
        self.last_mutation_ids: dict[str, int] = {}
        self.presence: set[str] = {client_id}
        #: the id of the open socket, if any
        self.connection_id: int | None = None
        #: whether ``connected`` arrived on the open socket
        self.connected = False
        #: every frame received, decoded, in order, and as sent
        self.frames: list[Any] = []
        self.raw_frames: list[bytes] = []
        #: the highest mutation id this client created (and pushed)
        self.pushed_id = 0

    def __repr__(self) -> str:
        return f"ClientModel({self.client_id!r}, cookie={self.cookie}, lmid={self.lmid})"

    @property
    def lmid(self) -> int:
        """The last of its own mutation ids the server confirmed (the connect ``lmid``)."""
        return self.last_mutation_ids.get(self.client_id, 0)

    @property
    def is_open(self) -> bool:
        return self.connection_id is not None

    def receive(self, frame: bytes) -> Any:
        """Receive one frame on the open socket; return it decoded."""
        message = assert_frames_valid(frame)
        self.frames.append(message)
        self.raw_frames.append(frame)
        kind = message[0]
        if kind == "connected":
            assert not self.connected, f"{self.client_id}: a second connected frame"
            self.connected = True
        elif kind == "poke":
            assert self.connected, f"{self.client_id}: a poke before connected"
            for poke in message[1]["pokes"]:
                self.apply_poke(poke)
        return message

    def apply_poke(self, poke: dict[str, Any]) -> None:
        """Apply one poke as Replicache and the presence manager do.

        The client merges the pokes of a frame and checks the merged base cookie only; this
        model checks every poke, which is the gap-free chain the server must keep.
        """
        who = self.client_id
        base_cookie, cookie = poke["baseCookie"], poke["cookie"]
        if type(base_cookie) is not type(self.cookie) or base_cookie != self.cookie:
            raise AssertionError(
                f"{who}: unexpected base cookie for poke: {base_cookie!r}, the client has "
                f"{self.cookie!r} (the client disconnects: UnexpectedBaseCookie): {poke}"
            )
        if compare_cookies(cookie, base_cookie) <= 0:
            raise AssertionError(f"{who}: poke cookie {cookie} is not after {base_cookie}")
        for client_id, last_mutation_id in poke["lastMutationIDChanges"].items():
            known = self.last_mutation_ids.get(client_id)
            if known is not None and last_mutation_id < known:
                raise AssertionError(
                    f"{who}: lastMutationID of {client_id} goes back from {known} to "
                    f"{last_mutation_id} (the client drops the poke)"
                )
        assert "presence" in poke, f"{who}: the server always sends presence: {poke}"
        for op in poke["patch"]:
            if op["op"] == "put":
                self.data[op["key"]] = op["value"]
            elif op["op"] == "del":
                self.data.pop(op["key"], None)
            else:
                raise AssertionError(f"{who}: a data patch from the server has {op}")
        self.apply_presence(poke["presence"])
        self.last_mutation_ids.update(poke["lastMutationIDChanges"])
        self.cookie = cookie

    def apply_presence(self, patch: list[dict[str, Any]]) -> None:
        for op in patch:
            if op["op"] == "clear":
                self.presence.clear()
            elif op["op"] == "put":
                assert op["value"] == 1, f"{self.client_id}: presence value {op}"
                self.presence.add(op["key"])
            else:
                self.presence.discard(op["key"])
        self.presence.add(self.client_id)

    def socket_closed(self) -> None:
        """The client saw its socket close (its own close, or the server's)."""
        self.connection_id = None
        self.connected = False
        self.presence = {self.client_id}


# ============================================================ mutations and mutators


@dataclass(frozen=True)
class Mut:
    """A mutation to push; ``client_id`` defaults to the pusher's, ``timestamp`` to the
    push's own (a "live" mutation)."""

    id: int
    name: str = "noop"
    args: Any = None
    client_id: str | None = None
    timestamp: float | None = None


def mutation(
    id: int,
    name: str = "noop",
    args: Any = None,
    *,
    client_id: str | None = None,
    timestamp: float | None = None,
) -> Mut:
    return Mut(id, name, args, client_id, timestamp)


def set_key(id: int, key: str, value: Any, **kwargs: Any) -> Mut:
    return mutation(id, "set", {"key": key, "value": value}, **kwargs)


def del_key(id: int, key: str, **kwargs: Any) -> Mut:
    return mutation(id, "del", {"key": key}, **kwargs)


class MutatorFailed(Exception):
    """Raised by the ``fail`` mutator."""


def _noop(tx: WriteTransaction, args: Any) -> None:
    pass


def _set(tx: WriteTransaction, args: Any) -> None:
    tx.set(args["key"], args["value"])


def _del(tx: WriteTransaction, args: Any) -> None:
    tx.delete(args["key"])


def _increment(tx: WriteTransaction, args: Any) -> None:
    args = args or {}
    key = args.get("key", "count")
    tx.set(key, (tx.get(key) or 0) + args.get("delta", 1))


def _always_fail(tx: WriteTransaction, args: Any) -> None:
    tx.set((args or {}).get("key", "failed"), "written before the failure")
    raise MutatorFailed("this mutator always fails")


def _set_many(tx: WriteTransaction, args: Any) -> None:
    for key, value in args.items():
        tx.set(key, value)


#: the mutators a ``RoomDriver`` has unless told otherwise
STANDARD_MUTATORS: dict[str, Mutator] = {
    "noop": _noop,
    "set": _set,
    "del": _del,
    "increment": _increment,
    "fail": _always_fail,
    "setMany": _set_many,
}


# ============================================================ the driver


def _without_cookies(clients: Mapping[str, ClientRecord]) -> dict[str, ClientRecord]:
    return {k: msgspec.structs.replace(r, base_cookie=None) for k, r in clients.items()}


@dataclass
class Observation:
    """Everything a rejected call must leave as it was."""

    version: int | None
    connected_clients: frozenset[str]
    clients: dict[str, Any]
    entries: dict[str, Any]
    queue: list[tuple[Any, ...]]
    connections: dict[str, tuple[Any, ...]]


@dataclass
class MutationOutcome:
    """What ``RoomDriver.mutate`` saw: the body's result or error, and the resulting patch."""

    result: Any = None
    error: Exception | None = None
    patch: list[dict[str, Any]] = field(default_factory=list)


class TurnFrames(dict[str, list[Any]]):
    """The decoded frames each client received, by clientID."""

    def pokes(self, client_id: str) -> list[dict[str, Any]]:
        """The pokes ``client_id`` received, in order, across its poke frames."""
        return [
            poke
            for frame in self.get(client_id, [])
            if frame[0] == "poke"
            for poke in frame[1]["pokes"]
        ]

    def poke_frames(self, client_id: str) -> list[Any]:
        return [frame for frame in self.get(client_id, []) if frame[0] == "poke"]


@dataclass
class RoomDriver:
    """A ``Room`` driven as the server drives it, with a client model per clientID."""

    mutators: dict[str, Mutator] = field(default_factory=lambda: dict(STANDARD_MUTATORS))
    room_start_handler: RoomStartHandler | None = None
    on_client_disconnect: ClientHandler | None = None
    on_client_delete: ClientHandler | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    smooth_playback: bool = True
    settings: EngineSettings = field(default_factory=EngineSettings)
    snapshot: RoomSnapshot = field(default_factory=RoomSnapshot)
    room_id: str = "r1"
    now_ms: int = START_MS
    #: run the room-start handler at once (as the server does before the first request)
    start: bool = True

    def __post_init__(self) -> None:
        self.durable = _copy_snapshot(self.snapshot)
        self.clients: dict[str, ClientModel] = {}
        #: open sockets: connection id -> the client on it
        self.sockets: dict[int, ClientModel] = {}
        self.closed_connections: list[int] = []
        #: every streamed poke message delivered (a big fast-forward), kept alive as a socket
        #: keeps one while it sends it: later joiners may share its patch
        self.streams: list[PokeStream] = []
        #: every clientID the room ever deleted
        self.deleted_client_ids: set[str] = set()
        self.turns = 0
        self._next_connection_id = 1
        self.room = self._new_room()
        if self.start:
            self.start_room()

    def _new_room(self) -> Room:
        handlers = RoomHandlers(
            mutators=self.mutators,
            room_start_handler=self.room_start_handler,
            on_client_disconnect=self.on_client_disconnect,
            on_client_delete=self.on_client_delete,
            env=self.env,
            smooth_playback=self.smooth_playback,
        )
        return Room(
            self.room_id, _copy_snapshot(self.durable), handlers=handlers, settings=self.settings
        )

    # ------------------------------------------------------------------------ time

    def advance(self, ms: int) -> None:
        self.now_ms += ms

    # ------------------------------------------------------------------------ lifecycle

    def start_room(self) -> None:
        self.room.start()
        self.commit()
        assert not self.room.take_effects(), "the room-start handler never pokes"

    def restart(self) -> None:
        """The server restarts: every socket drops, the room reloads from durable state."""
        for model in list(self.sockets.values()):
            model.socket_closed()
        self.sockets.clear()
        self.room = self._new_room()
        self.start_room()

    # ------------------------------------------------------------------------ connections

    def connect(
        self,
        client_id: str,
        *,
        group: str | None = None,
        user: str | None = None,
        base_cookie: int | str | None = "client's",
        lmid: int | None = None,
        wsid: str | None = None,
        auth: Mapping[str, Any] | None = None,
        debug_perf: bool = False,
    ) -> ClientModel:
        """Connect ``client_id`` on a new socket, as the client would: with its cookie and
        confirmed lmid, unless told otherwise. Returns its model."""
        model = self.clients.get(client_id)
        if model is None:
            # like a page load with the client's default in-memory store: a group of its own;
            # the clients of one group have one user (the client names groups after it)
            model = ClientModel(
                client_id, group or f"g-{client_id}", user or f"u-{group or client_id}"
            )
        group = group or model.client_group_id
        user = user or model.user_id
        sent_cookie = model.cookie if base_cookie == "client's" else base_cookie
        assert not isinstance(sent_cookie, str)
        connection_id = self._next_connection_id
        self._next_connection_id += 1
        request = ConnectRequest(
            connection_id=connection_id,
            client_id=client_id,
            client_group_id=group,
            auth=auth if auth is not None else {"userID": user},
            base_cookie=sent_cookie,
            lmid=model.lmid if lmid is None else lmid,
            wsid=wsid if wsid is not None else f"ws-{connection_id}",
            debug_perf=debug_perf,
        )
        self.room.connect(request, now_ms=self.now_ms)
        if model.is_open:
            model.socket_closed()  # the client gave up on its old socket before reconnecting
        if sent_cookie != model.cookie:
            model.cookie = sent_cookie
            model.data_known = False
        model.client_group_id, model.user_id = group, user
        model.connection_id = connection_id
        self.clients[client_id] = model
        self.sockets[connection_id] = model
        self.commit()
        self.deliver()
        assert model.connected, f"{client_id}: no connected frame"
        return model

    def disconnect(self, client_id: str) -> None:
        """The client closes its socket; the server forgets it."""
        model = self.clients[client_id]
        connection_id = model.connection_id
        assert connection_id is not None, f"{client_id} has no open socket"
        model.socket_closed()
        del self.sockets[connection_id]
        self.room.disconnect(client_id, connection_id)
        self.commit()
        self.deliver()

    # ------------------------------------------------------------------------ messages

    def push(
        self,
        client_id: str,
        *mutations: Mut | int,
        group: str | None = None,
        timestamp: float | None = None,
        connection_id: int | None = None,
    ) -> None:
        """Push ``mutations`` (a bare int ``n`` is ``mutation(n)``) in one push frame, encoded
        and parsed as the server would."""
        model = self.clients[client_id]
        push_timestamp = self.now_ms if timestamp is None else timestamp
        muts = [m if isinstance(m, Mut) else mutation(m) for m in mutations]
        body = {
            "clientGroupID": group or model.client_group_id,
            "mutations": [
                {
                    "id": m.id,
                    "clientID": m.client_id or client_id,
                    "name": m.name,
                    "args": m.args,
                    "timestamp": push_timestamp if m.timestamp is None else m.timestamp,
                }
                for m in muts
            ],
            "pushVersion": 1,
            "schemaVersion": "",
            "timestamp": push_timestamp,
            "requestID": f"push-{self.now_ms}",
        }
        self.push_frame(
            client_id, json.dumps(["push", body], allow_nan=False), connection_id=connection_id
        )
        for m in muts:
            if (m.client_id or client_id) == client_id:
                model.pushed_id = max(model.pushed_id, m.id)

    def push_frame(
        self, client_id: str, frame: str | bytes, *, connection_id: int | None = None
    ) -> None:
        """Give a raw upstream push frame to the room, as the server would."""
        model = self.clients[client_id]
        connection = model.connection_id if connection_id is None else connection_id
        assert connection is not None, f"{client_id} has no open socket"
        body = parse_upstream(frame)
        self.room.push(client_id, connection, body, now_ms=self.now_ms)  # type: ignore[arg-type]
        self.commit()
        self.deliver()

    def pull(
        self, client_id: str, *, group: str, cookie: int | None, request_id: str = "pull-1"
    ) -> dict[str, Any]:
        """Send a pull; return the body of the pull response."""
        model = self.clients[client_id]
        assert model.connection_id is not None
        frame = json.dumps(
            ["pull", {"clientGroupID": group, "cookie": cookie, "requestID": request_id}]
        )
        self.room.pull(client_id, model.connection_id, parse_upstream(frame))  # type: ignore[arg-type]
        self.commit()
        frames = self.deliver()
        [response] = frames[client_id]
        assert response[0] == "pull"
        body: dict[str, Any] = response[1]
        return body

    def close_beacon(
        self, client_id: str, last_mutation_id: int, *, user_id: str | None = None
    ) -> BeaconOutcome:
        """The beacon, sent by ``user_id`` (by default the client's own user)."""
        if user_id is None:
            record = self.room.state.clients.get(client_id)
            user_id = "" if record is None else record.user_id
        outcome = self.room.close_beacon(client_id, last_mutation_id, user_id=user_id)
        self.commit()
        assert not self.room.take_effects(), "the close beacon never pokes"
        return outcome

    def mutate(
        self, body: Callable[[WriteTransaction], Any], *, client_id: str = "writer"
    ) -> MutationOutcome:
        """Run ``body(tx)`` as the next mutation of ``client_id`` (connected if need be), in
        a turn of its own; return its result or error and the patch its client received."""
        outcome = MutationOutcome()

        def mutator(tx: WriteTransaction, args: Any) -> None:
            try:
                outcome.result = body(tx)
            except Exception as e:
                outcome.error = e
                raise

        name = f"mutate-{len(self.mutators)}"
        self.mutators[name] = mutator
        model = self.clients.get(client_id)
        if model is None or not model.is_open:
            model = self.connect(client_id)
            self.turn()
        self.push(client_id, mutation(model.pushed_id + 1, name))
        [confirmation] = self.turn().pokes(client_id)
        assert confirmation["lastMutationIDChanges"] == {client_id: model.pushed_id}
        outcome.patch = confirmation["patch"]
        return outcome

    # ------------------------------------------------------------------------ turns

    def turn(self) -> TurnFrames:
        """Run one turn; return the frames each client received. After the turn, every client
        that was connected at its start must be in sync with the room."""
        recipients = [m for m in self.sockets.values() if m.connected]
        self.turns += 1
        ran = run_turn(self.room, now_ms=self.now_ms, request_id=f"turn-{self.turns}")
        self.commit()
        frames = self.deliver()
        if ran:
            self.assert_in_sync(recipients)
        if not self.room.queue:
            assert not has_work(self.room), "a turn that emptied the queue leaves no work"
        return frames

    def settle(self, max_turns: int = 1000) -> list[TurnFrames]:
        """Run turns until there is no work left."""
        results = []
        while has_work(self.room):
            assert len(results) < max_turns, "the room never settles"
            results.append(self.turn())
        return results

    # ------------------------------------------------------------------------ plumbing

    def commit(self) -> RoomWrites:
        """Take the room's writes and apply them to the durable copy, which must then hold
        exactly the room's state: nothing changed in memory is missing from the writes."""
        writes = self.room.take_writes()
        durable = self.durable
        if writes.version is not None:
            durable.version = writes.version
        if writes.connected_clients is not None:
            durable.connected_clients = writes.connected_clients
        for client_id in writes.deleted_clients:
            durable.clients.pop(client_id, None)
        durable.clients.update(writes.clients)
        self.deleted_client_ids.update(writes.deleted_clients)
        durable.entries.update(writes.entries)
        state = self.room.state
        assert durable.version == state.version
        assert durable.connected_clients == state.connected_clients
        # a connected client's base cookie is kept in memory only (``set_base_cookie``)
        assert _without_cookies(durable.clients) == _without_cookies(state.clients)
        assert durable.entries == dict(state.entries)
        return writes

    def deliver(self) -> TurnFrames:
        """Hand the room's effects to the sockets, as the server does."""
        frames = TurnFrames()
        for effect in self.room.take_effects():
            if isinstance(effect, Send | SendStream):
                model = self.sockets.get(effect.connection_id)
                assert model is not None, f"a frame for closed socket {effect.connection_id}"
                if isinstance(effect, Send):
                    frame = effect.frame
                else:
                    self.streams.append(effect.stream)  # kept, as a socket keeps it while sending
                    frame = effect.stream.join()
                frames.setdefault(model.client_id, []).append(model.receive(frame))
            else:
                assert isinstance(effect, Close)
                model = self.sockets.pop(effect.connection_id, None)
                assert model is not None, f"closing closed socket {effect.connection_id}"
                self.closed_connections.append(effect.connection_id)
                if model.connection_id == effect.connection_id:
                    model.socket_closed()
                # the server's close handler for that socket
                self.room.disconnect(model.client_id, effect.connection_id)
        return frames

    def assert_in_sync(self, recipients: Iterable[ClientModel]) -> None:
        """Every client that received the turn is at the room's version and sees its data,
        its presence and its group's last mutation ids."""
        state = self.room.state
        live = self.live_data()
        for model in recipients:
            if not model.is_open:
                continue
            who = model.client_id
            assert model.cookie == state.version, f"{who} is at {model.cookie}, not the version"
            assert state.clients[who].base_cookie == state.version, f"{who}'s record is behind"
            assert model.presence == set(state.connected_clients) | {who}, f"{who}'s presence"
            if model.data_known:
                assert model.data == live, f"{who}'s data differs from the room's"
                for client_id, record in state.clients.items():
                    if record.client_group_id == model.client_group_id:
                        seen = model.last_mutation_ids.get(client_id, 0)
                        if client_id in self.deleted_client_ids:
                            # deleted and created again: others may remember its old ids
                            assert seen >= record.last_mutation_id, f"{who}: {client_id}"
                        else:
                            assert seen == record.last_mutation_id, f"{who}: lmid of {client_id}"

    def live_data(self) -> dict[str, Any]:
        """The room's live user values, decoded."""
        return {
            key: json.loads(entry.value)
            for key, entry in self.room.state.entries.items()
            if not entry.deleted
        }

    def observe(self) -> Observation:
        state = self.room.state
        return Observation(
            version=state.version,
            connected_clients=state.connected_clients,
            clients=dict(state.clients),
            entries=dict(state.entries),
            queue=[
                (
                    m.client_id,
                    m.id,
                    m.name,
                    json.dumps(m.args),
                    m.client_group_id,
                    frozenset(m.pusher_client_ids),
                    m.timestamps,
                    dict(m.auth),
                )
                for m in self.room.queue
            ],
            connections={
                client_id: (c.connection_id, c.clock_offset_ms, c.sent_initial_presence)
                for client_id, c in self.room.connections.items()
            },
        )

    def assert_rejected(
        self, error: type[ProtocolError], call: Callable[[], object], *, match: str | None = None
    ) -> ProtocolError:
        """``call`` raises ``error`` (with a message matching ``match``) and changes nothing:
        no state, no queued mutation, no connection, no write, no frame."""
        before = self.observe()
        with pytest.raises(error, match=match) as raised:
            call()
        assert raised.value.message, "a protocol error says what is wrong"
        assert self.observe() == before, "a rejected call changed the room"
        assert self.room.take_writes().is_empty(), "a rejected call wrote something"
        assert self.room.take_effects() == [], "a rejected call sent something"
        return raised.value


def _copy_snapshot(snapshot: RoomSnapshot) -> RoomSnapshot:
    return RoomSnapshot(
        version=snapshot.version,
        connected_clients=snapshot.connected_clients,
        clients=dict(snapshot.clients),
        entries=dict(snapshot.entries),
    )


# ============================================================ expected pokes


def poke(
    base_cookie: int | None,
    cookie: int,
    *,
    lmids: Mapping[str, int] | None = None,
    patch: list[dict[str, Any]] | None = None,
    presence: list[dict[str, Any]] | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A poke as the client receives it (decoded), for comparison with ``==``."""
    expected: dict[str, Any] = {
        "baseCookie": base_cookie,
        "cookie": cookie,
        "lastMutationIDChanges": dict(lmids or {}),
        "patch": patch or [],
        "presence": presence or [],
    }
    if timestamp is not None:
        expected["timestamp"] = timestamp
    return expected


def put(key: str, value: Any) -> dict[str, Any]:
    return {"op": "put", "key": key, "value": value}


def delete(key: str) -> dict[str, Any]:
    return {"op": "del", "key": key}


CLEAR = {"op": "clear"}


def present(*client_ids: str) -> list[dict[str, Any]]:
    """Presence puts for ``client_ids``."""
    return [{"op": "put", "key": client_id, "value": 1} for client_id in client_ids]


def initial_presence(*client_ids: str) -> list[dict[str, Any]]:
    return [CLEAR, *present(*client_ids)]

"""The JS runtime: a Reflect app's server module, run by Node.js beside the server.

``JsRuntime`` is an ``AppRuntime``: a turn's calls cross to Node.js once, as one batch, and
run there against the runtime's copy of the room. The copy is kept coherent by a sequence
number per room: each batch carries the number the copy must have and the writes made since
the last batch by anything else (Python handlers, client deletes, the REST API); a copy with
another number (a restarted runtime, a reloaded room) is sent whole instead.

If the Node.js process dies, it is started again and the calls of the batch are run again one
at a time, so that one that kills it fails alone; nothing is committed before the batch's
answer, so nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from reflectd.engine.handlers import AppCall, CallFailed, CallKind, CallResult
from reflectd.engine.records import Entry
from reflectd.errors import JsLoadError as JsLoadError  # in the exception tree
from reflectd.errors import JsRuntimeError
from reflectd.js.channel import Channel
from reflectd.js.wire import AppShape, AuthAnswer, BatchAnswer, LoadAnswer, Logs, Result
from reflectd.setting import Panel, setting

if TYPE_CHECKING:
    from reflectd.engine.room import Room
    from reflectd.engine.state import RoomState

logger = logging.getLogger(__name__)
app_logger = logging.getLogger("reflectd.app")

NODE_DIR = Path(__file__).parent / "node"
#: the Node.js flags: vm modules (the app is an ES module), no warning about them
NODE_FLAGS = ("--experimental-vm-modules", "--no-warnings")

Mode = Literal["production", "development"]

#: the marker of the runtime's error for a call stopped at the time limit (host.mjs)
_TIME_LIMIT = "the time limit of "


@dataclass(slots=True)
class JsRuntimeCounts:
    """What the JS runtimes of this process went through (``/metrics`` reads them)."""

    #: batches during which the runtime stopped (crashed, a call passed a limit)
    errors: int = 0
    #: starts after the runtime stopped
    restarts: int = 0
    #: calls stopped at the time limit
    timeouts: int = 0


JS_RUNTIME_COUNTS = JsRuntimeCounts()


@dataclass(frozen=True, slots=True)
class JsLimits:
    """Limits of the JS runtime."""

    cpu_limit_ms: int = setting(
        1000,
        "How long one mutator or handler may run before it is stopped (ms).",
        panel=Panel.JS,
        minimum=1,
        doc="See [reflect-apps.md](reflect-apps.md).",
    )
    heap_limit_mb: int = setting(512, "The JS heap's size limit (MiB).", panel=Panel.JS, minimum=16)


class JsError(Exception):
    """An error thrown by the app's JS code; ``js_name`` is its JS class (e.g. ``Error``)."""

    def __init__(self, js_name: str, message: str) -> None:
        super().__init__(message)
        self.js_name = js_name


@dataclass(slots=True)
class _RoomCopy:
    """What the runtime's copy of a room is: its key there, its sequence number, the
    runtime process it is in, and the room state it copies."""

    key: str
    seq: int
    generation: int
    state: RoomState | None = None


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING}
_encoder = msgspec.json.Encoder()
_batch_decoder = msgspec.json.Decoder(BatchAnswer)
_room_keys = itertools.count(1)


class JsRuntime:
    """The Node.js process that runs one app's server module."""

    def __init__(
        self,
        entry: Path,
        *,
        mode: Mode,
        env: Mapping[str, str],
        max_key_bytes: int,
        max_value_bytes: int,
        limits: JsLimits | None = None,
    ) -> None:
        self.entry = entry.resolve()
        self.mode = mode
        self.env = dict(env)
        self.limits = limits or JsLimits()
        self._value_limits = {"maxKeyBytes": max_key_bytes, "maxValueBytes": max_value_bytes}
        self._channel: Channel | None = None
        self._generation = 0
        self._copies: weakref.WeakKeyDictionary[Room, _RoomCopy] = weakref.WeakKeyDictionary()
        self._forgotten: list[str] = []
        #: rooms waiting for the next ``batches`` request
        self._queued: list[tuple[Room, list[AppCall], asyncio.Future[list[CallResult]]]] = []
        self.shape = self._start()
        self.mutator_names = frozenset(self.shape.mutators)
        kinds: list[CallKind] = []
        if self.shape.room_start_handler:
            kinds.append("roomStart")
        if self.shape.on_client_disconnect:
            kinds.append("clientDisconnect")
        if self.shape.on_client_delete:
            kinds.append("clientDelete")
        self.handler_kinds: frozenset[CallKind] = frozenset(kinds)

    # ------------------------------------------------------------------ the process

    def _start(self) -> AppShape:
        node = shutil.which("node")
        if node is None:
            raise JsLoadError("node is not on PATH: a Reflect server module needs Node.js >= 20")
        argv = [
            node,
            *NODE_FLAGS,
            f"--max-old-space-size={self.limits.heap_limit_mb}",
            str(NODE_DIR / "host.mjs"),
        ]
        channel = Channel(argv, on_logs=self._log_frame, cwd=str(self.entry.parent))
        load = {
            "entry": str(self.entry),
            "mode": self.mode,
            "env": self.env,
            "limits": self._value_limits,
            "cpuLimitMs": self.limits.cpu_limit_ms,
            "heapLimitMb": self.limits.heap_limit_mb,
        }
        try:
            answer = channel.request("load", _encoder.encode(load), timeout_s=120)
        except JsRuntimeError as e:
            channel.close()
            raise JsLoadError(f"{self.entry}: the JS runtime failed while loading: {e}") from None
        if answer.startswith(b'{"error"'):
            channel.close()
            failure = msgspec.json.decode(answer, type=LoadAnswer).error
            raise JsLoadError(failure.message)
        shape = msgspec.json.decode(answer, type=AppShape)
        for warning in shape.warnings:
            logger.warning("bundling %s: %s", self.entry, warning)
        self._channel = channel
        self._generation += 1
        return shape

    def _restart(self) -> Channel:
        if self._channel is not None:
            self._channel.kill()
            self._channel.close()
            self._channel = None
        logger.error("the JS runtime stopped; starting it again")
        JS_RUNTIME_COUNTS.restarts += 1
        self._start()
        assert self._channel is not None
        return self._channel

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # ------------------------------------------------------------------ batches

    def run(self, room: Room, calls: Sequence[AppCall]) -> list[CallResult]:
        if not calls:
            return []
        try:
            return self._run_batch(room, calls)
        except JsRuntimeError as e:
            JS_RUNTIME_COUNTS.errors += 1
            logger.error(
                "room %s: the JS runtime stopped during a batch (%s): a call ran past the time "
                "limit of %d ms, passed the heap limit, or crashed it; running the batch's "
                "calls again one at a time",
                room.room_id,
                e,
                self.limits.cpu_limit_ms,
            )
        self._restart()
        results: list[CallResult] = []
        for call in calls:
            try:
                results += self._run_batch(room, [call], guarded=True)
            except JsRuntimeError as e:
                results.append(CallFailed(f"the JS runtime stopped while running it ({e})"))
                self._restart()
        return results

    def reset(self, room: Room) -> None:
        copy = self._copies.get(room)
        if copy is not None:
            copy.generation = 0  # sent whole next time

    async def run_async(self, room: Room, calls: Sequence[AppCall]) -> list[CallResult]:
        """Run ``calls`` while the event loop goes on; the calls of every room that asks in
        the same iteration of the loop cross together, in one request."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[CallResult]] = loop.create_future()
        self._queued.append((room, list(calls), future))
        if len(self._queued) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        """Send the queued rooms' calls as one request; settle each room's future when the
        answer comes."""
        queued, self._queued = self._queued, []
        try:
            channel = self._channel if self._channel is not None else self._restart()
            self._send_forgotten(channel)
            requests = [
                self._request(room, [_call_json(c) for c in calls]) for room, calls, _ in queued
            ]
            answer = channel.request_future("batches", b"\n".join(requests))
        except JsRuntimeError as e:
            JS_RUNTIME_COUNTS.errors += 1
            logger.error("the JS runtime stopped before a batch (%s)", e)
            self._settle(queued, [])
            return
        answer.add_done_callback(lambda done: self._settle(queued, self._answers(done)))

    @staticmethod
    def _answers(done: asyncio.Future[bytes]) -> list[BatchAnswer]:
        error = done.exception() if not done.cancelled() else None
        if done.cancelled() or error is not None:
            JS_RUNTIME_COUNTS.errors += 1
            logger.error("the JS runtime stopped during a batch (%s)", error)
            return []
        return msgspec.json.decode(done.result(), type=list[BatchAnswer])

    def _settle(
        self,
        queued: list[tuple[Room, list[AppCall], asyncio.Future[list[CallResult]]]],
        answers: list[BatchAnswer],
    ) -> None:
        """Hand each room its results; a room without an answer runs its calls again."""
        for i, (room, calls, future) in enumerate(queued):
            answer = answers[i] if i < len(answers) else None
            try:
                if answer is not None and not answer.resync and answer.error is None:
                    result = self._results(room, calls, answer)
                else:
                    self.reset(room)
                    result = self.run(room, calls)
            except Exception as e:  # handed to the turn that waits for it
                if not future.done():
                    future.set_exception(e)
                continue
            if not future.done():
                future.set_result(result)

    def _send_forgotten(self, channel: Channel) -> None:
        if self._forgotten:
            forgotten, self._forgotten = self._forgotten, []
            channel.send("forget", _encoder.encode(forgotten))

    def _results(
        self, room: Room, calls: Sequence[AppCall], answer: BatchAnswer
    ) -> list[CallResult]:
        self._log(answer.logs)
        if len(answer.results) != len(calls):
            self._copies.pop(room, None)
            raise JsRuntimeError("the JS runtime answered a batch with the wrong number of results")
        return [_result(room, call, r) for call, r in zip(calls, answer.results, strict=True)]

    def _run_batch(
        self, room: Room, calls: Sequence[AppCall], *, guarded: bool = False
    ) -> list[CallResult]:
        """One crossing. Unguarded, a call that runs away ends the process (the runtime's
        watchdog); guarded, it fails alone, at the cost of a timer per evaluation."""
        channel = self._channel if self._channel is not None else self._restart()
        self._send_forgotten(channel)
        op = "batch-guarded" if guarded else "batch"
        calls_json = [_call_json(call) for call in calls]
        request = self._request(room, calls_json)
        # a backstop only: the runtime stops a call that runs past the limit by itself
        timeout_s = 10 + 3 * self.limits.cpu_limit_ms / 1000 + len(request) / 1e6
        answer = _batch_decoder.decode(channel.request(op, request, timeout_s=timeout_s))
        if answer.resync:
            request = self._request(room, calls_json, full=True)
            answer = _batch_decoder.decode(channel.request(op, request, timeout_s=timeout_s))
        if answer.error is not None:
            self._copies.pop(room, None)
            raise JsRuntimeError(answer.error.message)
        return self._results(room, calls, answer)

    def _request(self, room: Room, calls: list[dict[str, Any]], *, full: bool = False) -> bytes:
        """The batch request; it also moves the room's copy on to its next sequence number."""
        state = room.state
        copy = self._copies.get(room)
        if copy is None:
            copy = _RoomCopy(key=f"{room.room_id}\x00{next(_room_keys)}", seq=0, generation=0)
            self._copies[room] = copy
            weakref.finalize(room, self._forgotten.append, copy.key)
        if copy.generation != self._generation or copy.state is not state:
            full = True  # another process, or the room's state was reloaded
        if full:
            copy.generation = self._generation
            copy.state = state
            delta: list[tuple[str, msgspec.Raw | None]] = [
                (key, msgspec.Raw(entry.value))
                for key, entry in state.entries.items()
                if not entry.deleted
            ]
        else:
            changed = state.journal or {}
            delta = [
                (key, None if entry.deleted else msgspec.Raw(entry.value))
                for key, entry in changed.items()
            ]
        state.journal = {}
        since, copy.seq = copy.seq, copy.seq + 1
        return _encoder.encode(
            {
                "room": copy.key,
                "roomID": room.room_id,
                "full": full,
                "since": since,
                "seq": copy.seq,
                "delta": delta,
                "calls": calls,
            }
        )

    # ------------------------------------------------------------------ the auth handler

    async def authenticate(
        self, token: str, room_id: str, env: Mapping[str, str]
    ) -> Mapping[str, Any] | None:
        """Run the module's authHandler; raises ``JsError`` with what it threw."""
        channel = self._channel if self._channel is not None else self._restart()
        body = _encoder.encode({"token": token, "roomID": room_id})
        answer = msgspec.json.decode(await channel.request_async("auth", body), type=AuthAnswer)
        if answer.error is not None:
            raise JsError(answer.error.name, answer.error.message)
        result = msgspec.json.decode(answer.result)
        return result if isinstance(result, Mapping) else None

    # ------------------------------------------------------------------ logs

    def _log_frame(self, payload: bytes) -> None:
        self._log(msgspec.json.decode(payload, type=Logs).logs)

    @staticmethod
    def _log(lines: list[tuple[str, str, str, str]]) -> None:
        for level, room_id, client_id, message in lines:
            app_logger.log(
                _LEVELS.get(level, logging.ERROR),
                "%s%s",
                f"room {room_id} client {client_id}: " if room_id else "",
                message,
                extra={"room_id": room_id, "client_id": client_id},
            )


def _call_json(call: AppCall) -> dict[str, Any]:
    json: dict[str, Any] = {"kind": call.kind, "clientID": call.client_id}
    if call.kind == "mutator":
        json.update(name=call.name, args=call.args, mutationID=call.mutation_id, auth=call.auth)
    else:
        json["mutationID"] = call.mutation_id
    return json


def _result(room: Room, call: AppCall, result: Result) -> CallResult:
    if result.error is not None or result.writes is None:
        if result.error is not None and _TIME_LIMIT in result.error:
            JS_RUNTIME_COUNTS.timeouts += 1
        return CallFailed(result.error or "no result")
    written: dict[str, Entry] = {}
    entries = room.state.entries
    for write in result.writes:
        if len(write.value):
            written[write.key] = Entry(
                version=call.version, deleted=False, value=bytes(write.value)
            )
        else:
            previous: Entry | None = written.get(write.key) or entries.get(write.key)
            value = previous.value if previous is not None else b"null"
            written[write.key] = Entry(version=call.version, deleted=True, value=value)
    return written


def is_server_module(spec: str) -> bool:
    """Whether the APP argument names a Reflect server module (not a Python app)."""
    return os.path.splitext(spec)[1] in (".ts", ".tsx", ".js", ".mjs", ".mts", ".jsx")

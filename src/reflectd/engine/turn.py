"""One turn of a room: everything pending, applied at once.

In order: fast-forward of clients behind the room version, one version and one poke per
applied mutation, client GC, disconnects, then presence. Each connected client gets one poke
message holding its pokes in order; its cookie chain has no gap. A poke that several clients
receive unchanged is encoded once per turn, not once per client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec
from msgspec import UNSET, Raw, UnsetType

from reflectd.engine.handlers import AppCall, CallFailed
from reflectd.engine.pending import PendingMutation, Timestamps
from reflectd.engine.records import ClientRecord, Entry
from reflectd.engine.room import Connection, Room, Send, SendStream, compare_cookies
from reflectd.engine.streamed import (
    STREAM_MIN_ENTRIES,
    STREAMED_PATCH,
    PatchPieces,
    should_stream,
    split_frame,
)
from reflectd.protocol.codec import PokeFrames, encode_patch, encode_poke
from reflectd.protocol.messages import (
    EMPTY_PATCH,
    ClearOp,
    DelOp,
    Poke,
    PokeBody,
    PresenceOp,
    PresencePutOp,
    PutOp,
)

logger = logging.getLogger(__name__)

_replace = msgspec.structs.replace


def has_work(room: Room) -> bool:
    """Whether a turn would do anything: mutations queued, clients joined or left, a client
    still without its initial presence, or a change made outside a turn to poke."""
    return (
        room.unpoked
        or bool(room.queue)
        or room.state.connected_clients != room.connections.keys()
        or any(not c.sent_initial_presence for c in room.connections.values())
    )


def run_turn(room: Room, *, now_ms: int, request_id: str) -> bool:
    """Run one turn if there is work; queue its poke messages. Returns whether it ran."""
    if not has_work(room):
        return False
    turn = _Turn(room, now_ms)
    room.unpoked = False
    turn.fast_forward()
    turn.apply_mutations()
    turn.collect_garbage()
    turn.process_disconnects()
    turn.add_presence()
    turn.send_pokes(request_id)
    return True


def planned_calls(room: Room) -> list[AppCall]:
    """The mutator calls the next turn will make, so that an app runtime can run them ahead
    (``Room.prepare``); the turn's own fast-forward and GC come after and do not change them."""
    batch = room.queue[: room.settings.max_mutations_per_turn]
    calls = _mutation_calls(_in_order(room, batch, log=False), room.state.version or 0)
    return [call for call in calls if room.handlers.has_mutator(call.name)]


def _in_order(room: Room, batch: list[PendingMutation], *, log: bool) -> list[PendingMutation]:
    """The mutations that apply: each the next of its client (duplicates are dropped)."""
    last_ids: dict[str, int] = {}
    applied = []
    for m in batch:
        record = room.state.clients.get(m.client_id)
        if record is None:
            if log:
                logger.error(
                    "room %s: no client record for %s, mutation dropped",
                    room.room_id,
                    m,
                    extra=room.client_log_fields(m.client_id),
                )
            continue
        expected = last_ids.get(m.client_id, record.last_mutation_id) + 1
        if m.id < expected:
            continue
        if m.id > expected:
            if log:
                logger.error(
                    "room %s: mutation %d of client %s skipped: expected %d",
                    room.room_id,
                    m.id,
                    m.client_id,
                    expected,
                    extra=room.client_log_fields(m.client_id),
                )
            continue
        last_ids[m.client_id] = m.id
        applied.append(m)
    return applied


def _mutation_calls(applied: list[PendingMutation], version: int) -> list[AppCall]:
    """A call per mutation, each at its own version after ``version``."""
    return [
        AppCall(
            "mutator",
            client_id=m.client_id,
            version=version + 1 + i,
            name=m.name,
            args=m.args,
            mutation_id=m.id,
            auth=m.auth,
        )
        for i, m in enumerate(applied)
    ]


def _streamed_poke(pieces: PatchPieces) -> Poke:
    """The poke whose patch is ``pieces``, encoded with a placeholder (``split_frame``)."""
    return Poke(
        base_cookie=pieces.base_cookie,
        cookie=pieces.cookie,
        last_mutation_id_changes={},
        patch=STREAMED_PATCH,
        presence=[],
    )


def patch_of(entries: Mapping[str, Entry]) -> Raw:
    """The encoded patch for ``entries``: ``put`` for live values, ``del`` for tombstones."""
    return encode_patch(
        [
            DelOp(key=key) if entry.deleted else PutOp(key=key, value=Raw(entry.value))
            for key, entry in entries.items()
        ]
    )


class _Turn:
    def __init__(self, room: Room, now_ms: int) -> None:
        self.room = room
        self.state = room.state
        self.now_ms = now_ms
        #: only clients connected at the start of the turn receive its pokes
        self.recipients: list[Connection] = list(room.connections.values())
        self.pokes: dict[str, list[Poke]] = {c.client_id: [] for c in self.recipients}
        #: every poke of the turn's mutations, encoded ahead of the frames
        self.all_mutation_pokes: list[Poke] = []
        #: client -> the streamed patch of its first poke (a big fast-forward)
        self.streamed: dict[str, PatchPieces] = {}
        #: cookie of a mutation's poke -> the mutation's timestamps (a poke is replaced, not
        #: changed, when presence is attached, so it cannot be keyed by identity)
        self.timestamps: dict[int, Timestamps] = {}
        self.previous_connected = self.state.connected_clients
        self.next_connected = self.previous_connected
        if self.state.version is None:
            self.state.set_version(0)
        self.version: int = self.state.version or 0

    # --------------------------------------------------------------------- fast-forward

    def fast_forward(self) -> None:
        """Bring every client whose base cookie is not the room version up to it.

        A big fast-forward is streamed (``reflectd.engine.streamed``): its patch is shared
        with the streams still running from the same base cookie, when little changed since."""
        patches: dict[int | None, list[Poke] | PatchPieces] = {}
        for c in self.recipients:
            base_cookie = self.state.clients[c.client_id].base_cookie
            if base_cookie == self.version:
                continue
            if base_cookie not in patches:
                patches[base_cookie] = self._fast_forward_from(base_cookie)
            changes = {
                client_id: record.last_mutation_id
                for client_id, record in self._group(c.client_group_id).items()
                if record.last_mutation_id_version is not None
                and compare_cookies(base_cookie, record.last_mutation_id_version) < 0
            }
            planned = patches[base_cookie]
            if isinstance(planned, PatchPieces):
                self.streamed[c.client_id] = planned
                pokes = [_streamed_poke(planned)]
                if planned.cookie != self.version:
                    pokes.append(self._catch_up(planned.cookie))
            else:
                pokes = list(planned)
            # the client group's mutation ids go on the last poke, at the room version
            pokes[-1] = _replace(pokes[-1], last_mutation_id_changes=changes)
            self.pokes[c.client_id].extend(pokes)

    def _fast_forward_from(self, base_cookie: int | None) -> list[Poke] | PatchPieces:
        """The pokes (or the pieces of the one poke) from ``base_cookie`` to the version."""
        shared = self.room.streamed_patches.get(base_cookie)
        if shared is not None and not should_stream(self._changed_since(shared.cookie)):
            return shared
        pieces = None
        entries = self.state.entries
        if base_cookie is None and len(entries) > STREAM_MIN_ENTRIES:
            # the whole room: a snapshot of references, in the dict's order (a patch's order
            # does not matter), its tombstones skipped as it is encoded
            keys, values = list(dict.keys(entries)), list(dict.values(entries))
            pieces = PatchPieces(
                keys, values, base_cookie=None, cookie=self.version, live_only=True
            )
        else:
            items = self._changes_since(base_cookie)
            if should_stream(items):
                pieces = PatchPieces.of(items, base_cookie=base_cookie, cookie=self.version)
        if pieces is not None:
            self.room.streamed_patches[base_cookie] = pieces
            return pieces
        poke = Poke(
            base_cookie=base_cookie,
            cookie=self.version,
            last_mutation_id_changes={},
            patch=patch_of(dict(items)),
            presence=[],
        )
        return [poke]

    def _catch_up(self, cookie: int) -> Poke:
        """The poke from ``cookie`` (that of a shared stream) to the room version."""
        patch = patch_of(dict(self._changed_since(cookie)))
        return Poke(
            base_cookie=cookie,
            cookie=self.version,
            last_mutation_id_changes={},
            patch=patch,
            presence=[],
        )

    def _changes_since(self, base_cookie: int | None) -> list[tuple[str, Entry]]:
        if base_cookie is None:
            return [(key, entry) for key, entry in self.state.entries.items() if not entry.deleted]
        return self._changed_since(base_cookie)

    def _changed_since(self, cookie: int) -> list[tuple[str, Entry]]:
        entries = self.state.entries  # in key order: a small patch reads best so
        return [(key, entry) for key, entry in entries.items() if entry.version > cookie]

    def _group(self, client_group_id: str) -> dict[str, ClientRecord]:
        return {
            client_id: record
            for client_id, record in self.state.clients.items()
            if record.client_group_id == client_group_id
        }

    # --------------------------------------------------------------------- mutations

    def apply_mutations(self) -> None:
        """Run each pending mutation at its own version, with its own poke.

        The app's code runs for the whole batch at once (one crossing for an app runtime);
        each mutation sees the writes of those before it."""
        limit = self.room.settings.max_mutations_per_turn
        batch = self.room.queue[:limit]
        del self.room.queue[:limit]
        applied = _in_order(self.room, batch, log=True)
        calls = _mutation_calls(applied, self.version)
        known = [call for call in calls if self.room.handlers.has_mutator(call.name)]
        results = iter(self.room.run_calls(known))
        for m, call in zip(applied, calls, strict=True):
            written: Mapping[str, Entry] = {}
            outcome = "unknown_mutator"
            if not self.room.handlers.has_mutator(m.name):
                logger.error(
                    "room %s: unknown mutator %r, mutation skipped",
                    self.room.room_id,
                    m.name,
                    extra=self.room.client_log_fields(m.client_id),
                )
            else:
                result = next(results)
                outcome = "error" if isinstance(result, CallFailed) else "applied"
                if not isinstance(result, CallFailed):
                    written = result
            self.room.mutation_outcomes[m.name, outcome] += 1
            self._confirm(m, call.version, written)

    def _confirm(self, m: PendingMutation, version: int, written: Mapping[str, Entry]) -> None:
        """Record the mutation as applied at ``version`` and queue its pokes."""
        record = self.state.clients[m.client_id]
        self.state.put_client(
            m.client_id,
            _replace(record, last_mutation_id=m.id, last_mutation_id_version=version),
        )
        patch = patch_of(written)
        timestamp: int | UnsetType = UNSET
        if m.timestamps is not None and self.room.handlers.smooth_playback:
            timestamp = m.timestamps.normalized_ms
        own = Poke(
            base_cookie=self.version,
            cookie=version,
            last_mutation_id_changes={m.client_id: m.id},
            patch=patch,
            presence=[],
            timestamp=timestamp,
        )
        other = _replace(own, last_mutation_id_changes={})
        if m.timestamps is not None:
            self.timestamps[version] = m.timestamps
        for c in self.recipients:
            self.pokes[c.client_id].append(own if c.client_group_id == m.client_group_id else other)
        self.all_mutation_pokes += (own, other)
        self._set_version(version)

    # --------------------------------------------------------------------- client GC

    def collect_garbage(self) -> None:
        """Delete clients gone longer than the GC age, at most once per interval."""
        settings = self.room.settings
        last = self.room.last_gc_ms
        if last is not None and self.now_ms - last < settings.client_gc_interval_ms:
            return
        self.room.last_gc_ms = self.now_ms
        busy = self.room.connections.keys() | self.previous_connected | self._queued_clients()
        collected: list[str] = []
        for client_id, record in list(self.state.clients.items()):
            if record.last_seen_ms is None:
                self.state.put_client(client_id, _replace(record, last_seen_ms=self.now_ms))
            elif (
                client_id not in busy
                and record.last_seen_ms + settings.client_gc_max_age_ms <= self.now_ms
            ):
                collected.append(client_id)
        if not collected:
            return
        version = self.version + 1
        written: dict[str, Entry] = {}
        for client_id in collected:
            written.update(self.room.delete_client(client_id, version=version))
        self._poke_everyone(version, patch_of(written))

    # --------------------------------------------------------------------- disconnects

    def process_disconnects(self) -> None:
        """Run the disconnect handler for clients that left; update the connected set."""
        queued = self._queued_clients()
        self.next_connected = frozenset(
            self.room.connections.keys() | (self.previous_connected & queued)
        )
        departed = sorted(self.previous_connected - self.next_connected)
        if departed:
            self._disconnect(departed)
        if self.next_connected != self.previous_connected:
            self.state.set_connected_clients(self.next_connected)

    def _disconnect(self, departed: list[str]) -> None:
        version = self.version + 1
        bumped = False
        written: dict[str, Entry] = {}
        has_handler = self.room.handlers.has_handler("clientDisconnect")
        for client_id in departed:
            if not has_handler:
                bumped = True
            else:
                call = AppCall("clientDisconnect", client_id=client_id, version=version)
                result = self.room.run_call(call)
                if not isinstance(result, CallFailed):
                    bumped = True
                    written.update(result)
            record = self.state.clients.get(client_id)
            if record is None:
                continue
            at_close = record.last_mutation_id_at_close
            if at_close is not None and record.last_mutation_id >= at_close:
                written.update(self.room.delete_client(client_id, version=version))
                bumped = True
            else:
                self.state.put_client(client_id, _replace(record, last_seen_ms=self.now_ms))
        if bumped:
            self._poke_everyone(version, patch_of(written))

    # --------------------------------------------------------------------- presence

    def add_presence(self) -> None:
        """Attach presence patches to each client's first poke: the whole set for a client
        that has not had it yet, the changes for the others."""
        added = sorted(self.next_connected - self.previous_connected)
        removed = sorted(self.previous_connected - self.next_connected)
        incremental: list[PresenceOp] = []
        if any(c.sent_initial_presence for c in self.recipients):
            incremental += [PresencePutOp(key=k) for k in added]
            incremental += [DelOp(key=k) for k in removed]
        needs_initial = [c for c in self.recipients if not c.sent_initial_presence]
        if any(not self.pokes[c.client_id] for c in needs_initial) or (
            incremental and any(not self.pokes[c.client_id] for c in self.recipients)
        ):
            self._poke_everyone(self.version + 1, EMPTY_PATCH)
        initial: list[PresenceOp] = [ClearOp()]
        initial += [PresencePutOp(key=k) for k in sorted(self.next_connected)]
        for c in self.recipients:
            presence = incremental if c.sent_initial_presence else initial
            pokes = self.pokes[c.client_id]
            if presence and pokes:
                pokes[0] = _replace(pokes[0], presence=presence)

    # --------------------------------------------------------------------- sending

    def send_pokes(self, request_id: str) -> None:
        """Queue one poke message per client that has pokes; record the cookies sent."""
        frames = PokeFrames(request_id)
        frames.encode_ahead(self.all_mutation_pokes)
        for c in self.recipients:
            c.sent_initial_presence = True
            pokes = self.pokes[c.client_id]
            if not pokes:
                continue
            record = self.state.clients[c.client_id]
            if record.base_cookie != self.version:
                self.state.set_base_cookie(c.client_id, self.version)
            frame = self._debug_frame(request_id, pokes) if c.debug_perf else frames.frame(pokes)
            pieces = self.streamed.get(c.client_id)
            if pieces is None:
                self.room.emit(Send(c.connection_id, frame))
            else:
                self.room.emit(SendStream(c.connection_id, split_frame(frame, pieces)))

    def _debug_frame(self, request_id: str, pokes: list[Poke]) -> bytes:
        debug_pokes = []
        for poke in pokes:
            timestamps = self.timestamps.get(poke.cookie)
            if timestamps is not None:
                poke = _replace(
                    poke,
                    debug_origin_timestamp=timestamps.origin_ms,
                    debug_server_received_timestamp=timestamps.server_received_ms,
                    debug_server_sent_timestamp=self.now_ms,
                )
            debug_pokes.append(poke)
        return encode_poke(
            PokeBody(request_id=request_id, pokes=debug_pokes, debug_server_buffer_ms=0)
        )

    # --------------------------------------------------------------------- helpers

    def _poke_everyone(self, version: int, patch: Raw) -> None:
        poke = Poke(
            base_cookie=self.version,
            cookie=version,
            last_mutation_id_changes={},
            patch=patch,
            presence=[],
        )
        for c in self.recipients:
            self.pokes[c.client_id].append(poke)
        self._set_version(version)

    def _set_version(self, version: int) -> None:
        self.version = version
        self.state.set_version(version)

    def _queued_clients(self) -> set[str]:
        return {m.client_id for m in self.room.queue}

"""Big fast-forwards, sent in pieces.

A client far behind (a new client of a big room) needs the whole room in one poke: the client
applies a poke atomically, and its cookie chain allows no partial state, so the poke cannot be
split into several. Instead its message is sent as one WebSocket message in several frames
(a text frame and its continuations), written one piece at a time as the socket drains, so
that a room's size is never mistaken for a slow reader.

``PatchPieces`` is the patch of such a poke for one base cookie and room version: a snapshot of
the entries (references, not copies), encoded piece by piece when a socket first asks for a
piece, and shared by every client fast-forwarded from the same base cookie. A client that
comes a few versions later shares it too: it gets the pieces, then a small poke with what
changed since (``Turn.fast_forward``). ``PokeStream`` is one client's message: its own head
(request id, cookies, presence) and tail (the turn's later pokes) around the shared pieces.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Self

import msgspec
from msgspec import Raw

from reflectd.engine.records import Entry
from reflectd.protocol.messages import DelOp, PutOp

#: a fast-forward of more entries than this is streamed (fewer are, if over ``PIECE_BYTES``)
STREAM_MIN_ENTRIES = 1024
#: about how many bytes of patch one piece (one WebSocket frame) holds
PIECE_BYTES = 256 * 1024
#: what an encoded op costs besides its key and value (``{"op":"put","key":"","value":}``)
_OP_OVERHEAD_BYTES = 32

_encoder = msgspec.json.Encoder()


def should_stream(items: Sequence[tuple[str, Entry]]) -> bool:
    """Whether the patch of ``items`` is too big for one frame."""
    if len(items) > STREAM_MIN_ENTRIES:
        return True
    size = sum(len(key) + len(entry.value) + _OP_OVERHEAD_BYTES for key, entry in items)
    return size > PIECE_BYTES


class PatchPieces:
    """The patch ops of ``entries`` under ``keys`` (``put`` for live entries, ``del`` for
    tombstones, or nothing for them when ``live_only``), as pieces of about ``PIECE_BYTES``,
    from ``base_cookie`` to ``cookie``.

    Pieces are encoded in order when first asked for, and kept while any stream holds this
    object, so that clients reading at different speeds share one encoded copy.
    """

    __slots__ = (
        "__weakref__",
        "_entries",
        "_keys",
        "_live_only",
        "_next",
        "_pieces",
        "base_cookie",
        "cookie",
    )

    def __init__(
        self,
        keys: list[str],
        entries: list[Entry],
        *,
        base_cookie: int | None,
        cookie: int,
        live_only: bool = False,
    ) -> None:
        self.base_cookie = base_cookie
        self.cookie = cookie
        self._keys = keys
        self._entries = entries
        self._live_only = live_only
        self._next = 0
        self._pieces: list[bytes] = []

    @classmethod
    def of(
        cls, items: Sequence[tuple[str, Entry]], *, base_cookie: int | None, cookie: int
    ) -> Self:
        """The pieces of ``items``."""
        keys = [key for key, _ in items]
        entries = [entry for _, entry in items]
        return cls(keys, entries, base_cookie=base_cookie, cookie=cookie)

    def piece(self, index: int) -> bytes | None:
        """Piece ``index``: ops separated by commas, the first piece without a leading comma,
        each later one with it. None past the last."""
        while len(self._pieces) <= index and self._next < len(self._keys):
            encoded = self._encode_next()
            if encoded:
                self._pieces.append(encoded if not self._pieces else b"," + encoded)
        return self._pieces[index] if index < len(self._pieces) else None

    def _encode_next(self) -> bytes:
        """The next ops, comma-separated (empty if all were skipped tombstones)."""
        ops: list[PutOp | DelOp] = []
        size = 0
        keys, entries, end = self._keys, self._entries, self._next
        while end < len(keys) and size < PIECE_BYTES:
            entry = entries[end]
            if not entry.deleted:
                ops.append(PutOp(key=keys[end], value=Raw(entry.value)))
                size += len(keys[end]) + len(entry.value) + _OP_OVERHEAD_BYTES
            elif not self._live_only:
                ops.append(DelOp(key=keys[end]))
                size += len(keys[end]) + _OP_OVERHEAD_BYTES
            end += 1
        self._next = end
        if end == len(keys):
            self._keys, self._entries = [], []  # all encoded: the snapshot is not needed
        return _encoder.encode(ops)[1:-1] if ops else b""


@dataclass(frozen=True, slots=True)
class PokeStream:
    """A poke message whose first poke's patch is ``pieces``: ``head``, the pieces, ``tail``."""

    head: bytes
    pieces: PatchPieces
    tail: bytes

    def chunks(self) -> Iterator[bytes]:
        """The message in order: the head, each piece (encoded as it is reached), the tail."""
        yield self.head
        index = 0
        while (piece := self.pieces.piece(index)) is not None:
            yield piece
            index += 1
        yield self.tail

    def join(self) -> bytes:
        """The whole message at once (for a socket that cannot send it in frames)."""
        return b"".join(self.chunks())


@dataclass(frozen=True, slots=True)
class WholeMessage:
    """A message already whole (one a proxy received from the room's owner), sent in pieces
    of ``PIECE_BYTES`` as a ``PokeStream`` is."""

    data: bytes

    @property
    def head(self) -> bytes:
        return self.data[:PIECE_BYTES]

    def chunks(self) -> Iterator[bytes]:
        for start in range(0, len(self.data), PIECE_BYTES):
            yield self.data[start : start + PIECE_BYTES]

    def join(self) -> bytes:
        return self.data


#: the patch a streamed poke is encoded with, before its frame is cut around it
STREAMED_PATCH = Raw(b"[]")
_PATCH_KEY = b'"patch":['


def split_frame(frame: bytes, pieces: PatchPieces) -> PokeStream:
    """Cut ``frame``, a poke message whose first poke has the patch ``STREAMED_PATCH``, into
    a stream with ``pieces`` as that patch.

    The first ``"patch":[`` of the frame is that poke's patch: inside a JSON string every
    ``"`` is escaped, so those bytes occur only as the key itself."""
    at = frame.index(_PATCH_KEY) + len(_PATCH_KEY)
    return PokeStream(head=frame[:at], pieces=pieces, tail=frame[at:])

"""Parse upstream frames strictly and encode downstream frames exactly.

Frames are JSON arrays: ``[type, body]`` (and ``["error", kind, message]`` downstream).
Untrusted input is parsed here, once; everything after this module works with typed values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
from msgspec import Raw

from reflectd.errors import ErrorKind, InvalidJSONValue, InvalidMessage
from reflectd.protocol.messages import (
    EMPTY_PATCH,
    ConnectedBody,
    PatchOp,
    PingBody,
    Poke,
    PokeBody,
    PongBody,
    PullBody,
    PullResponseBody,
    PushBody,
    Upstream,
)

_frame_decoder = msgspec.json.Decoder(tuple[str, msgspec.Raw])
_body_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    "ping": msgspec.json.Decoder(PingBody),
    "push": msgspec.json.Decoder(PushBody),
    "pull": msgspec.json.Decoder(PullBody),
}
_encoder = msgspec.json.Encoder()


#: what decoding untrusted input raises: besides msgspec's errors, invalid UTF-8 inside a
#: string, a ``str`` frame holding lone surrogates, and nesting deeper than the stack allows
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeError, RecursionError)


def parse_upstream(frame: str | bytes) -> Upstream:
    """Parse one upstream frame; raise ``InvalidMessage`` saying what is wrong."""
    try:
        kind, raw_body = _frame_decoder.decode(frame)
    except _DECODE_ERRORS as e:
        raise InvalidMessage(f"invalid frame: {_reason(e)}") from None
    decoder = _body_decoders.get(kind)
    if decoder is None:
        raise InvalidMessage(f"unknown message type {kind!r}")
    try:
        body: Upstream = decoder.decode(raw_body)
    except _DECODE_ERRORS as e:
        raise InvalidMessage(f"invalid {kind} message: {_reason(e)}") from None
    return body


def _reason(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "JSON is nested too deeply"
    return str(error)


# ------------------------------------------------------------------------------ downstream


def encode_connected(body: ConnectedBody) -> bytes:
    return _encoder.encode(("connected", body))


PONG_FRAME: bytes = _encoder.encode(("pong", PongBody()))


def encode_poke(body: PokeBody) -> bytes:
    return _encoder.encode(("poke", body))


class PokeFrames:
    """The poke frames of one turn, each exactly ``encode_poke(PokeBody(request_id, pokes))``
    without ``debugServerBufferMs``.

    A turn sends most of its pokes to many clients: each ``Poke`` (by identity) is encoded
    once, and clients with the same list of pokes (most of a room) share one frame.
    """

    __slots__ = ("_frames", "_kept", "_parts", "_prefix")

    def __init__(self, request_id: str) -> None:
        self._prefix = b'["poke",{"requestID":' + _encoder.encode(request_id) + b',"pokes":['
        #: id(poke) -> its JSON
        self._parts: dict[int, bytes] = {}
        #: tuple of id(poke) -> the frame of those pokes
        self._frames: dict[tuple[int, ...], bytes] = {}
        #: the lists encoded, kept alive so that their pokes' ids stay theirs
        self._kept: list[list[Poke]] = []

    def frame(self, pokes: list[Poke]) -> bytes:
        """The frame of a poke message holding ``pokes``, in order."""
        key = tuple(map(id, pokes))
        frame = self._frames.get(key)
        if frame is None:
            self._kept.append(pokes)
            parts = self._parts
            # (``map``, no loop of our own: this runs for each client and each of its pokes)
            try:
                body = b",".join(map(parts.__getitem__, key))
            except KeyError:
                self.encode_ahead(pokes)
                body = b",".join(map(parts.__getitem__, key))
            frame = self._frames[key] = self._prefix + body + b"]}]"
        return frame

    def encode_ahead(self, pokes: list[Poke]) -> None:
        """Encode those of ``pokes`` not encoded yet (the turn's own, before its frames)."""
        self._kept.append(pokes)
        parts = self._parts
        for poke in [poke for poke in pokes if id(poke) not in parts]:
            parts[id(poke)] = _encoder.encode(poke)


def encode_patch(ops: Sequence[PatchOp]) -> Raw:
    """A poke's patch, encoded once and shared by every poke (and client) that carries it."""
    return Raw(_encoder.encode(ops)) if ops else EMPTY_PATCH


def encode_pull_response(body: PullResponseBody) -> bytes:
    return _encoder.encode(("pull", body))


def encode_error(kind: ErrorKind, message: str) -> bytes:
    return _encoder.encode(("error", kind, message))


# ----------------------------------------------------------------------------- JSON values


def encode_json_value(value: Any) -> bytes:
    """Encode a user value as JSON, refusing what JavaScript could not read back.

    NaN and infinities have no JSON form (msgspec would silently write ``null``), nor has an
    integer that JavaScript reads as ``Infinity`` (beyond ±1.797...e308, the largest double:
    a client may send one as a mutator's argument); keys must be strings, strings must be
    valid Unicode, and only JSON types are allowed. Integers within that range are kept
    exactly, though JavaScript reads those beyond 2^53 rounded, as it reads any JSON.
    """
    try:
        _check_json_value(value, depth=0)
        return _encoder.encode(value)
    except RecursionError:  # Python's recursion limit may come before _MAX_DEPTH
        raise InvalidJSONValue("value is nested too deeply") from None
    except UnicodeEncodeError as e:
        raise InvalidJSONValue(f"string is not valid Unicode: {e.reason}") from None


def decode_json_value(data: bytes) -> Any:
    return msgspec.json.decode(data)


_MAX_DEPTH = 1000
#: integers of at most this many bits are finite doubles; longer ones may round to infinity
_FINITE_DOUBLE_BITS = 1023


def _check_finite_in_javascript(value: int) -> None:
    """Refuse an integer that JavaScript's ``JSON.parse`` reads as ``Infinity``: one that
    rounds (to nearest, as Python's ``float`` does too) beyond the largest double."""
    try:
        float(value)
    except OverflowError:
        digits = len(str(abs(value))) if value.bit_length() < 14_000 else "over 4,000"
        raise InvalidJSONValue(
            f"an integer of {digits} digits is not a JSON number JavaScript can read (it"
            " reads it as Infinity)"
        ) from None


def _check_json_value(value: Any, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidJSONValue("value is nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if value.bit_length() > _FINITE_DOUBLE_BITS:
            _check_finite_in_javascript(value)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidJSONValue(f"{value!r} is not a JSON number")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_json_value(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidJSONValue(f"object key {key!r} is not a string")
            _check_json_value(item, depth + 1)
        return
    raise InvalidJSONValue(f"{type(value).__name__} is not a JSON type")

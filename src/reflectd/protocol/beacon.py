"""The close beacon's request (``POST /api/sync/v1/close``): its query, its Authorization
header and its body, checked as the original server checks them, with its messages.

A client sends the beacon when it is gone for good (its page unloads); the room then deletes
the client once its last mutation is applied (``Room.close_beacon``).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from reflectd.protocol.jsparse import decode_uri_component
from reflectd.protocol.messages import Count

_PARAMS = frozenset({"roomID", "userID", "clientID"})


class BeaconBody(msgspec.Struct, forbid_unknown_fields=True):
    last_mutation_id: Count = msgspec.field(name="lastMutationID")


_body_decoder = msgspec.json.Decoder(BeaconBody)


def beacon_query_problem(items: Sequence[tuple[str, str]]) -> str | None:
    """What is wrong with a beacon query (repeats included), in the words of the original's
    schema check; None if it is exactly roomID, userID and clientID, without a NUL (which
    no room, user or client ID can hold, and PostgreSQL text cannot store)."""
    names = [name for name, _ in items]
    missing = sorted(_PARAMS - set(names))
    if missing:
        return f"Missing property {missing[0]}"
    extra = [name for name in names if name not in _PARAMS]
    if extra:
        return f"Unexpected property {extra[0]}"
    repeated = [name for name in names if names.count(name) > 1]
    if repeated:
        return f"Expected string at {repeated[0]}. Got array"
    for name, value in items:
        if "\x00" in value:
            return f"Invalid character (NUL) at {name}"
    return None


def bearer_token(header: str) -> str:
    """The token of an ``Authorization: Bearer <URI-encoded token>`` header; raises
    ``ValueError`` with the message the client gets (with a 401)."""
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise ValueError("Invalid Authorization header")
    try:
        return decode_uri_component(parts[1])
    except ValueError:
        raise ValueError("Malformed Authorization header") from None


def decode_beacon_body(body: bytes) -> BeaconBody:
    """The body; raises ``ValueError`` with the message the client gets (with a 400)."""
    try:
        return _body_decoder.decode(body)
    except msgspec.DecodeError as e:
        raise ValueError(f"Body schema error. {e}") from None

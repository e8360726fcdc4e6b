"""Wire types of the Reflect 0.39 sync protocol: every upstream and downstream message.

Upstream types are strict: unknown fields are rejected. Downstream types carry exactly the
fields the client's strict (valita) schemas accept; optional fields default to ``UNSET`` and
are then omitted from the JSON, never sent as ``null``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Raw, UnsetType

from reflectd.protocol.jsparse import MAX_SAFE_INTEGER

# ---------------------------------------------------------------- upstream (client -> server)

#: a mutation id, a cookie, a version: an integer JavaScript reads exactly, never negative
#: (so it also fits the storage's int64 columns)
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INTEGER)]
#: a client's timestamp (ms): a finite number within the safe-integer range
Timestamp = Annotated[float, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]


class _Upstream(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    pass


class PingBody(_Upstream):
    pass


class Mutation(_Upstream):
    id: Count
    client_id: str = msgspec.field(name="clientID")
    name: str
    args: Any
    timestamp: Timestamp


class PushBody(_Upstream):
    client_group_id: str = msgspec.field(name="clientGroupID")
    mutations: list[Mutation]
    push_version: Count
    schema_version: str
    timestamp: Timestamp
    request_id: str = msgspec.field(name="requestID")


class PullBody(_Upstream):
    client_group_id: str = msgspec.field(name="clientGroupID")
    cookie: Count | None
    request_id: str = msgspec.field(name="requestID")


Upstream = PingBody | PushBody | PullBody

# -------------------------------------------------------------- downstream (server -> client)


class _Downstream(msgspec.Struct, omit_defaults=True, rename="camel"):
    pass


class ConnectedBody(_Downstream):
    wsid: str
    timestamp: int | UnsetType = UNSET


class PongBody(_Downstream):
    pass


class PullResponseBody(_Downstream):
    cookie: int
    request_id: str = msgspec.field(name="requestID")
    last_mutation_id_changes: dict[str, int] = msgspec.field(name="lastMutationIDChanges")


class PutOp(msgspec.Struct, tag_field="op", tag="put"):
    key: str
    value: Raw


class DelOp(msgspec.Struct, tag_field="op", tag="del"):
    key: str


class ClearOp(msgspec.Struct, tag_field="op", tag="clear"):
    pass


PatchOp = PutOp | DelOp | ClearOp


class PresencePutOp(msgspec.Struct, tag_field="op", tag="put"):
    key: str
    value: Literal[1] = 1


PresenceOp = PresencePutOp | DelOp | ClearOp


class Poke(_Downstream):
    """One poke: moves a client from ``base_cookie`` to ``cookie``.

    ``patch`` is pre-encoded JSON (a list of patch ops) shared by every recipient of the turn,
    so the patch of a mutation is encoded once per turn, not once per client.
    """

    base_cookie: int | None
    cookie: int
    last_mutation_id_changes: dict[str, int] = msgspec.field(name="lastMutationIDChanges")
    patch: Raw
    presence: list[PresenceOp]
    timestamp: int | UnsetType = UNSET
    debug_origin_timestamp: int | UnsetType = UNSET
    debug_server_received_timestamp: int | UnsetType = UNSET
    debug_server_sent_timestamp: int | UnsetType = UNSET


class PokeBody(_Downstream):
    request_id: str = msgspec.field(name="requestID")
    pokes: list[Poke]
    debug_server_buffer_ms: int | UnsetType = UNSET


EMPTY_PATCH = Raw(b"[]")

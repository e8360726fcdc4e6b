"""What the REST API reads and answers, as msgspec Structs: each route's query, body and result.

These types are the API's one description of its data. The routes parse requests into them
(``parsing.py``), the commands answer with them (``commands.py``), and the OpenAPI document
takes their JSON Schema from them (``openapi.py``): a field's ``Meta`` description and
examples are what the documentation says about it.

A query field is a string, a list of strings (a parameter that may repeat) or an integer
(read as JavaScript's ``parseInt`` reads it); an absent optional one is ``UNSET``. A body
field is a one-value literal checked with the original's messages (``Literal["eu"]``) or any
type msgspec checks. A header is an optional string. ``parsing.py`` refuses, at import, a
route whose query has another kind of field.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, Raw, UnsetType

from reflectd.engine.records import RoomRecord, RoomStatus
from reflectd.protocol.connect import ROOM_ID_PATTERN
from reflectd.protocol.jsparse import MAX_SAFE_INTEGER
from reflectd.storage.base import Permission

#: the most rooms one list call returns, whatever ``maxResults`` says
MAX_LIST_RESULTS = 1000

ROOM_EXAMPLE = "my-room"
USER_EXAMPLE = "user-42"
#: an example time, in ms since the Unix epoch (2025-12-06)
TIME_EXAMPLE = 1_765_000_000_000

RoomId = Annotated[str, Meta(description="The room's ID.", examples=[ROOM_EXAMPLE])]


# ------------------------------------------------------------------------------ queries


class NoQuery(msgspec.Struct, forbid_unknown_fields=True):
    """No query parameters at all."""


class RoomQuery(msgspec.Struct, forbid_unknown_fields=True):
    room_id: RoomId = msgspec.field(name="roomID")


class NewRoomQuery(msgspec.Struct, forbid_unknown_fields=True):
    room_id: Annotated[
        str,
        Meta(
            description=f"The new room's ID; must match `^{ROOM_ID_PATTERN.pattern}$`.",
            examples=[ROOM_EXAMPLE],
        ),
    ] = msgspec.field(name="roomID")


class UserQuery(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Annotated[str, Meta(description="The user's ID.", examples=[USER_EXAMPLE])] = (
        msgspec.field(name="userID")
    )


class ListRoomsQuery(msgspec.Struct, forbid_unknown_fields=True):
    #: at most one of these may be given
    exclusive: ClassVar[tuple[str, ...]] = ("startKey", "startAfterKey", "roomID")

    start_key: (
        Annotated[str, Meta(description="The earliest roomID to list (inclusive).", examples=["a"])]
        | UnsetType
    ) = msgspec.field(default=UNSET, name="startKey")
    start_after_key: (
        Annotated[
            str,
            Meta(
                description="The roomID after which to list (exclusive).",
                examples=[ROOM_EXAMPLE],
            ),
        ]
        | UnsetType
    ) = msgspec.field(default=UNSET, name="startAfterKey")
    room_ids: (
        Annotated[
            list[str],
            Meta(description="A room to list; repeat for several.", examples=[[ROOM_EXAMPLE]]),
        ]
        | UnsetType
    ) = msgspec.field(default=UNSET, name="roomID")
    max_results: (
        Annotated[
            int,
            Meta(
                ge=-MAX_SAFE_INTEGER,
                le=MAX_SAFE_INTEGER,
                description="The most rooms to return (read as JavaScript's `parseInt`; "
                f"capped at {MAX_LIST_RESULTS}; 0 or less returns none).",
                examples=[100],
            ),
        ]
        | UnsetType
    ) = msgspec.field(default=UNSET, name="maxResults")


# ------------------------------------------------------------------------------ bodies


class CreateRoomRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Required JSON: `{}` or `{"jurisdiction":"eu"}`."""

    #: what the documentation shows, by summary
    examples: ClassVar[dict[str, CreateRoomRequest]]

    jurisdiction: Literal["eu"] | UnsetType = UNSET


CreateRoomRequest.examples = {
    "no jurisdiction": CreateRoomRequest(),
    "EU jurisdiction": CreateRoomRequest(jurisdiction="eu"),
}


class MutateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Required JSON: the mutator's name and its argument (any JSON; `null` when left out)."""

    examples: ClassVar[dict[str, MutateRequest]]

    name: Annotated[
        str,
        Meta(
            min_length=1, max_length=256, description="The mutator's name.", examples=["addOrder"]
        ),
    ]
    args: Annotated[Any, Meta(description="The mutator's argument.")] = None


MutateRequest.examples = {
    "a mutator with an argument": MutateRequest("markPaid", {"orderID": "o-17"}),
    "a mutator without": MutateRequest("resetBoard"),
}

ImportMode = Literal["merge", "replace"]


class ImportRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Required JSON: the contents to write and how."""

    examples: ClassVar[dict[str, ImportRequest]]

    contents: Annotated[
        dict[str, Raw],
        Meta(description="Keys and their JSON values, as `rooms/contents` returns them."),
    ]
    mode: Annotated[
        ImportMode,
        Meta(
            description="`merge` writes the keys given and keeps the others; `replace` also "
            "deletes every key not given."
        ),
    ] = "merge"


ImportRequest.examples = {
    "merge": ImportRequest({"title": Raw(b'"Board"'), "count": Raw(b"3")}),
    "replace": ImportRequest({"title": Raw(b'"Board"')}, "replace"),
}


# ------------------------------------------------------------------------------ headers


class IdempotencyHeaders(msgspec.Struct, forbid_unknown_fields=True):
    idempotency_key: (
        Annotated[
            str,
            Meta(
                description="Makes a retried call apply once: a call with a key the room has seen "
                "in the last 24 hours answers the first call's result and runs nothing.",
                examples=["order-17-paid"],
            ),
        ]
        | UnsetType
    ) = msgspec.field(default=UNSET, name="Idempotency-Key")


# ------------------------------------------------------------------------------ results


class Empty(msgspec.Struct, forbid_unknown_fields=True):
    """The result of a command that returns nothing."""


class Room(msgspec.Struct, forbid_unknown_fields=True):
    """A room's record."""

    room_id: str = msgspec.field(name="roomID")
    jurisdiction: Literal["", "eu"]
    status: RoomStatus
    created_ms: Annotated[
        int | None,
        Meta(
            description="When the room was created, in ms since the Unix epoch; null for a "
            "room created before reflectd recorded it (a reflectd addition).",
            examples=[TIME_EXAMPLE],
        ),
    ] = msgspec.field(name="createdMs")

    @classmethod
    def of(cls, record: RoomRecord) -> Room:
        return cls(record.room_id, record.jurisdiction, record.status, record.created_ms)


class ListRoomsResult(msgspec.Struct, forbid_unknown_fields=True):
    """A page of rooms."""

    results: list[Room]
    num_results: Annotated[int, Meta(ge=0, le=MAX_LIST_RESULTS)] = msgspec.field(name="numResults")
    more: Annotated[
        bool,
        Meta(
            description="Whether rooms follow the last result (fetch them with "
            "`?startAfterKey=<its roomID>`)."
        ),
    ]


class GetRoomContentsResult(msgspec.Struct, forbid_unknown_fields=True):
    """A room's contents."""

    contents: Annotated[
        dict[str, Raw], Meta(description="Every live key of the room and its JSON value.")
    ]


class MutateResult(msgspec.Struct, forbid_unknown_fields=True):
    """The mutation is committed."""

    version: Annotated[int, Meta(description="The room version the mutation was applied at.")]
    replayed: Annotated[
        bool,
        Meta(
            description="The idempotency key was seen before: this is the first call's "
            "result and nothing ran now."
        ),
    ] = False


class ImportResult(msgspec.Struct, forbid_unknown_fields=True):
    """The import is committed."""

    version: Annotated[int, Meta(description="The room version after the import.")]
    written: Annotated[int, Meta(ge=0, description="Keys written (new or changed values).")]
    deleted: Annotated[int, Meta(ge=0, description="Keys deleted (`replace` only).")]
    skipped: Annotated[
        int,
        Meta(ge=0, description="Keys under `-/p/` left out: they belong to a room's clients."),
    ]


class RoomClient(msgspec.Struct, forbid_unknown_fields=True):
    """A client connected to the room."""

    client_id: str = msgspec.field(name="clientID")
    client_group_id: str = msgspec.field(name="clientGroupID")
    user_id: Annotated[
        str, Meta(description='The userID the client connected with ("" if none).')
    ] = msgspec.field(name="userID")
    connected_ms: Annotated[
        int | None,
        Meta(
            description="Since when its connection is open, in ms since the Unix epoch; null "
            "when read from storage (`live` false).",
            examples=[TIME_EXAMPLE],
        ),
    ] = msgspec.field(name="connectedMs")
    last_mutation_id: Annotated[
        int, Meta(ge=0, description="The last of its mutations the room applied (0: none).")
    ] = msgspec.field(name="lastMutationID")


class RoomClientsResult(msgspec.Struct, forbid_unknown_fields=True):
    """The clients connected to a room now, and its presence."""

    clients: Annotated[list[RoomClient], Meta(description="In clientID order.")]
    presence: Annotated[
        list[str],
        Meta(
            description="The clientIDs present in the room, as its clients' `presence` sees "
            "them (set at the room's last turn), in order."
        ),
    ]
    live: Annotated[
        bool,
        Meta(
            description="true: the node that runs the room answers from memory; false: no "
            "node runs the room and the answer is read from storage."
        ),
    ]


class ApiKey(msgspec.Struct, forbid_unknown_fields=True):
    """The key that made the request."""

    name: Annotated[
        str,
        Meta(
            description="Its name (`REFLECTD_API_KEY` for the key of the server's environment).",
            examples=["ops"],
        ),
    ]
    permissions: Annotated[
        list[Permission],
        Meta(description="Its permissions.", examples=[["rooms:read", "logs:read"]]),
    ]


# ------------------------------------------------------------------------------ errors


class ErrorDetail(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[int, Meta(description="The HTTP status.")]
    resource: Literal["request", "rooms", "connections"]
    message: str


class Error(msgspec.Struct, forbid_unknown_fields=True):
    """The error envelope."""

    error: ErrorDetail

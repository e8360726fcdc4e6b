"""The one exception tree of reflectd.

Every error that reaches a client knows how it is reported::

    ReflectdError
    ├── ProtocolError              reported on the sync socket as ["error", kind, message]
    │   ├── InvalidMessage         the socket stays open
    │   ├── InvalidConnectionRequest
    │   │   ├── InvalidConnectionRequestBaseCookie
    │   │   └── InvalidConnectionRequestLastMutationID
    │   ├── InvalidPush
    │   ├── ClientNotFound
    │   ├── RoomClosed
    │   ├── RoomNotFound
    │   ├── Unauthorized
    │   ├── VersionNotSupported
    │   └── LimitExceeded          a configured limit was passed (reported as InvalidMessage
    │                              or InvalidPush, see ``kind``)
    ├── StorageError               the backend failed; nothing of the round is sent
    │   └── DatabaseNotFound       no database (file, schema) where told, and none was to be made
    ├── AppCodeFailed              the app's room-start handler failed (the room is not used)
    ├── JsRuntimeError             the JS runtime running the app's server module failed
    └── ApiError                   a REST API error, reported as the JSON envelope

The WebSocket layer turns a ``ProtocolError`` into wire output in exactly one place
(``reflectd.server.sync``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorKind = Literal[
    "AuthInvalidated",
    "ClientNotFound",
    "InvalidConnectionRequest",
    "InvalidConnectionRequestBaseCookie",
    "InvalidConnectionRequestLastMutationID",
    "InvalidMessage",
    "InvalidPush",
    "RoomClosed",
    "RoomNotFound",
    "Unauthorized",
    "VersionNotSupported",
]


class ReflectdError(Exception):
    """Base of every error raised on purpose by reflectd."""


class ProtocolError(ReflectdError):
    """An error the client sees as an error frame ``["error", kind, message]``."""

    kind: ClassVar[ErrorKind]
    #: whether the socket is closed after the error frame (only InvalidMessage keeps it open)
    closes_socket: ClassVar[bool] = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidMessage(ProtocolError):
    kind: ClassVar[ErrorKind] = "InvalidMessage"
    closes_socket = False


class InvalidConnectionRequest(ProtocolError):
    kind: ClassVar[ErrorKind] = "InvalidConnectionRequest"


class InvalidConnectionRequestBaseCookie(InvalidConnectionRequest):
    kind: ClassVar[ErrorKind] = "InvalidConnectionRequestBaseCookie"


class InvalidConnectionRequestLastMutationID(InvalidConnectionRequest):
    kind: ClassVar[ErrorKind] = "InvalidConnectionRequestLastMutationID"


class InvalidPush(ProtocolError):
    kind: ClassVar[ErrorKind] = "InvalidPush"


class ClientNotFound(ProtocolError):
    kind: ClassVar[ErrorKind] = "ClientNotFound"


class RoomClosed(ProtocolError):
    kind: ClassVar[ErrorKind] = "RoomClosed"


class RoomNotFound(ProtocolError):
    kind: ClassVar[ErrorKind] = "RoomNotFound"


class Unauthorized(ProtocolError):
    kind: ClassVar[ErrorKind] = "Unauthorized"


class VersionNotSupported(ProtocolError):
    kind: ClassVar[ErrorKind] = "VersionNotSupported"


class LimitExceeded(InvalidPush):
    """A push passed a configured limit (mutations per push, key or value size).

    Reported as ``InvalidPush`` so the client closes and retries; nothing is queued.
    """


class StorageError(ReflectdError):
    """The storage backend failed (disk full, I/O error, lost lease...)."""


class AppCodeFailed(ReflectdError):
    """App code that must succeed failed: the room-start handler (the room is not used)."""


class JsRuntimeError(ReflectdError):
    """The JS runtime that runs a Reflect server module stopped, or did not answer."""


class DatabaseNotFound(StorageError):
    """The database named (a SQLite file, a PostgreSQL schema) does not exist, and the caller
    asked not to create it (the admin commands, without ``--create``)."""


class ApiError(ReflectdError):
    """A REST API error: reported as ``{"error": {"code", "resource", "message"}}`` with
    ``status`` as the HTTP status (spec 5.2)."""

    def __init__(
        self,
        status: int,
        message: str,
        resource: Literal["request", "rooms", "connections"] = "request",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.resource = resource

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
    └── StorageError               the backend failed; the turn is not poked and is retried

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
    kind = "InvalidMessage"
    closes_socket = False


class InvalidConnectionRequest(ProtocolError):
    kind = "InvalidConnectionRequest"


class InvalidConnectionRequestBaseCookie(InvalidConnectionRequest):
    kind = "InvalidConnectionRequestBaseCookie"


class InvalidConnectionRequestLastMutationID(InvalidConnectionRequest):
    kind = "InvalidConnectionRequestLastMutationID"


class InvalidPush(ProtocolError):
    kind = "InvalidPush"


class ClientNotFound(ProtocolError):
    kind = "ClientNotFound"


class RoomClosed(ProtocolError):
    kind = "RoomClosed"


class RoomNotFound(ProtocolError):
    kind = "RoomNotFound"


class Unauthorized(ProtocolError):
    kind = "Unauthorized"


class VersionNotSupported(ProtocolError):
    kind = "VersionNotSupported"


class LimitExceeded(InvalidPush):
    """A push passed a configured limit (mutations per push, key or value size).

    Reported as ``InvalidPush`` so the client closes and retries; nothing is queued.
    """


class StorageError(ReflectdError):
    """The storage backend failed (disk full, I/O error, lost lease...)."""

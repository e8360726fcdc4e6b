"""The one exception tree of reflectd.

Every error reflectd raises on purpose is here, and each knows how it is reported::

    ReflectdError
    ├── ProtocolError              an error frame ["error", kind, message] on the sync socket,
    │   │                          then the socket closes (unless InvalidMessage)
    │   ├── InvalidMessage         a frame that does not parse; the socket stays open
    │   ├── InvalidConnectionRequest
    │   │   ├── InvalidConnectionRequestBaseCookie
    │   │   └── InvalidConnectionRequestLastMutationID
    │   ├── InvalidPush
    │   │   └── LimitExceeded      a push with more mutations than max_mutations_per_push
    │   ├── AuthInvalidated        the client's kind; reflectd invalidates with a plain close
    │   ├── ClientNotFound
    │   ├── RoomClosed
    │   ├── RoomNotFound
    │   ├── Unauthorized
    │   └── VersionNotSupported
    ├── RoomUnavailable            the room's actor stopped: sockets close (the client
    │                              reconnects), HTTP answers 503
    ├── NotOwner                   another node holds the room's lease: the socket is proxied,
    │                              the request forwarded to it
    ├── HandlerThreadsFull         every auth-handler thread is held: the connect is Unauthorized
    ├── StorageError               the backend failed; nothing of the round is sent
    │   ├── LeaseLost              another node took the room: it is dropped, its clients reconnect
    │   └── DatabaseNotFound       no database (file, schema) where told, and none was to be made
    ├── InvalidValue (ValueError)  a mutator's write that cannot be stored: the mutator fails,
    │   ├── InvalidJSONValue       its writes are dropped
    │   └── ValueTooLarge
    ├── AppLoadError               the APP argument names no app: the CLI exits with the message
    │   └── ServerModuleError      a Reflect server module that is missing, does not bundle or load
    ├── AppCodeFailed              the app's room-start handler failed (the room is not used)
    ├── JsRuntimeError             the JS runtime running the app's server module failed
    │   └── JsLoadError            the server module could not be bundled or evaluated
    └── ApiError                   a REST API error, reported as the JSON envelope

Exceptions of the app's own code (what a Python handler raises, or ``JsError`` for what JS
code threw) are the app's, not reflectd's: reflectd reports them (a skipped mutation, a
refused connect) without adding them to this tree.

The WebSocket layer turns a ``ProtocolError`` into wire output in exactly one function
(``reflectd.server.errors.send_error_frame``); the REST layer turns an ``ApiError`` into its
envelope in one place too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from reflectd.storage.leases import Lease

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


# --------------------------------------------------------------------- the sync protocol


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


class LimitExceeded(InvalidPush):
    """A push has more mutations than ``max_mutations_per_push``.

    Reported as ``InvalidPush`` (the socket closes; the client reconnects); nothing of the
    push is queued. The other limits have their own reports: a message over
    ``max_message_bytes`` is an ``InvalidMessage``, a key or value over its limit a
    ``ValueTooLarge`` that fails the mutator.
    """


class AuthInvalidated(ProtocolError):
    """The client's kind for a connection whose auth was invalidated. reflectd does not send
    it: invalidating connections closes them without an error frame, and the client
    reconnects at once (its auth handler runs again)."""

    kind: ClassVar[ErrorKind] = "AuthInvalidated"


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


# --------------------------------------------------------------------- rooms and nodes


class RoomUnavailable(ReflectdError):
    """The room actor stopped (storage failure, shutdown, or the room was deleted)."""


class NotOwner(ReflectdError):
    """Another node holds the room's lease: sockets go to ``owner.address``."""

    def __init__(self, owner: Lease) -> None:
        super().__init__(f"room {owner.room_id} is owned by node {owner.node_id}")
        self.owner = owner


class HandlerThreadsFull(ReflectdError):
    """Every thread is held by a call that already passed its timeout."""


# --------------------------------------------------------------------- storage


class StorageError(ReflectdError):
    """The storage backend failed (disk full, I/O error, lost lease...)."""


class LeaseLost(StorageError):
    """The room's lease is no longer the caller's: it changed hands or was released. The node
    must drop the room (close its sockets so that its clients reconnect to the new owner)."""


class DatabaseNotFound(StorageError):
    """The database named (a SQLite file, a PostgreSQL schema) does not exist, and the caller
    asked not to create it (the admin commands, without ``--create``)."""


# --------------------------------------------------------------------- values a mutator writes


class InvalidValue(ReflectdError, ValueError):
    """A value a mutator tried to store cannot be stored (a ``ValueError``, as app code
    expects); the mutator fails and its writes are dropped."""


class InvalidJSONValue(InvalidValue):
    """A value a mutator tried to store cannot be represented in JSON as JavaScript reads it."""


class ValueTooLarge(InvalidValue):
    """A key or value is larger than the configured limit."""


# --------------------------------------------------------------------- the app


class AppLoadError(ReflectdError):
    """The APP argument does not name an ``App``."""


class ServerModuleError(AppLoadError):
    """The server module cannot be served (missing, does not bundle, or does not load)."""


class AppCodeFailed(ReflectdError):
    """App code that must succeed failed: the room-start handler (the room is not used)."""


class JsRuntimeError(ReflectdError):
    """The JS runtime that runs a Reflect server module stopped, or did not answer."""


class JsLoadError(JsRuntimeError):
    """The server module could not be bundled or evaluated."""


# --------------------------------------------------------------------- the REST API


class ApiError(ReflectdError):
    """A REST API error: reported as ``{"error": {"code", "resource", "message"}}`` with
    ``status`` as the HTTP status."""

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

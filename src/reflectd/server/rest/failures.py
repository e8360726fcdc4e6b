"""Every way a REST request fails, written once: the code raises these and the OpenAPI document
lists them.

A ``Failure`` holds its status, when it happens (for the documentation) and its message as a
``str.format`` template. The code raises ``FAILURE.error(key=value, ...)``; the documentation
shows the message with the failure's ``example`` values (``FAILURE.at(...)`` sets more of
them). This module holds the failures every route shares; ``parsing.py`` those of queries and
bodies, ``commands.py`` those of the commands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reflectd.errors import ApiError
from reflectd.server.errors import INTERNAL_ERROR_BODY, RETRY_AFTER_S, Resource

#: the largest REST request body accepted
MAX_BODY_BYTES = 64 * 1024
#: the largest body of ``rooms:import`` (a whole room's contents)
IMPORT_MAX_BODY_BYTES = 64 * 1024 * 1024

#: in the original server's ``/api/v1`` API, these statuses answer with the room's own plain
#: text instead of the JSON envelope, as the original forwards it
ORIGINAL_PLAIN_TEXT = {410: "deleted"}


@dataclass(frozen=True, slots=True)
class Failure:
    status: int
    #: when it happens, for the documentation (a template like ``message``)
    when: str
    #: the message: the JSON envelope's ``message``, or the whole body if ``plain``
    message: str
    resource: Resource = "request"
    #: the values of the placeholders that the documentation shows
    example: Mapping[str, Any] = field(default_factory=dict)
    #: answered as plain text, not the JSON envelope
    plain: bool = False
    #: answered as plain text in the original server's ``/api/v1`` API
    plain_in_original: bool = False

    def error(self, **values: Any) -> ApiError:
        return ApiError(self.status, self.message.format(**values), self.resource)

    def text(self, **values: Any) -> str:
        return self.message.format(**values)

    def at(self, **values: Any) -> Failure:
        """The failure as documented with these placeholder values."""
        return dataclasses.replace(self, example={**self.example, **values})

    def because(self, when: str) -> Failure:
        """The failure as documented for a route where it happens for this reason."""
        return dataclasses.replace(self, when=when)

    @property
    def example_when(self) -> str:
        return self.when.format(**self.example)

    @property
    def example_message(self) -> str:
        return self.message.format(**self.example)


# ------------------------------------------------------------------------------ before routing

_THROTTLED_WHEN = (
    "this address failed to authenticate too often in the last minute (see "
    "`--max-failed-auth-per-minute`; checked first, with `Retry-After`)"
)
THROTTLED = Failure(
    429,
    _THROTTLED_WHEN,
    "Too many failed authentications from {source}; retry in {wait} s",
    example={"source": "203.0.113.7", "wait": 42},
)
THROTTLED_ORIGINAL = Failure(429, _THROTTLED_WHEN, "Too Many Requests", plain=True)
NO_KEY = Failure(
    401,
    "the `Authorization: Basic <api-key>` header is missing or names no key (checked before "
    "anything else)",
    "Missing or unknown API key: send Authorization: Basic <api-key>",
)
NO_KEY_ORIGINAL = Failure(
    401,
    "the `x-reflect-api-key` header is missing or names no key (checked before anything else)",
    "Unauthorized",
    plain=True,
)
UNKNOWN_URL = Failure(404, "the path is not a route", "Unknown or invalid URL")
OTHER_APP = UNKNOWN_URL.because("the app-id is not this server's")
UNENCODED_SEGMENT = UNKNOWN_URL.because(
    "the path segment holds one of `:/@$^&=[];|,` unencoded (not matched)"
)
WRONG_METHOD = Failure(405, "the path exists, but not with this method", "unsupported method")
MALFORMED_SEGMENT = Failure(
    400, "the path segment is not percent-encoded UTF-8", "Malformed path segment"
)
NUL_IN_SEGMENT = Failure(
    400, "the path segment holds a NUL (`%00`)", "Invalid character (NUL) in path segment"
)
FORBIDDEN = Failure(
    403,
    "the key lacks the permission `{permission}`",
    'API key "{key_name}" lacks the permission {permission}',
    example={"key_name": "ops"},
)
TOO_LARGE = Failure(
    413,
    "the body is larger than {max_bytes} bytes",
    "Request body larger than {max_bytes} bytes",
    example={"max_bytes": MAX_BODY_BYTES},
)

# ------------------------------------------------------------------------------ any time

#: the body of ``server.errors.internal_error``: it names the error id under which the server
#: logged the error, nothing more
INTERNAL = Failure(
    500,
    "an unexpected server error (e.g. storage failed); the server's log has the error under "
    "the id named",
    INTERNAL_ERROR_BODY,
    example={"error_id": "3f9a1c2b7d4e"},
    plain=True,
)
SHUTTING_DOWN = Failure(
    503,
    "the server is shutting down (answered with `Retry-After: {retry_after}`; another node, or "
    "this one restarted, will answer)",
    "the server is shutting down",
    example={"retry_after": RETRY_AFTER_S},
    plain_in_original=True,
)
ROOM_UNAVAILABLE = Failure(
    503,
    "the room stopped while the request ran (answered with `Retry-After: {retry_after}`)",
    "the room is not available",
    example={"retry_after": RETRY_AFTER_S},
    plain_in_original=True,
)

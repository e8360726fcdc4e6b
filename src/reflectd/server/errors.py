"""Errors as the wire carries them: the sync socket's error frame, and the HTTP responses (the
Reflect envelope, 503 while unavailable, and the 500 that names an error id instead of
carrying an exception's text)."""

from __future__ import annotations

import logging
import os
from typing import Literal

from starlette.responses import JSONResponse, PlainTextResponse, Response

from reflectd.errors import ProtocolError
from reflectd.protocol.codec import encode_error
from reflectd.server.sockets import ClientSocket

Resource = Literal["request", "rooms", "connections"]

#: what ``Retry-After`` says on a 503: about the time a restarted node takes to serve again
RETRY_AFTER_S = 5


def send_error_frame(socket: ClientSocket, error: ProtocolError) -> None:
    """The one place a ``ProtocolError`` becomes wire output: the frame ``["error", kind,
    message]``, then the socket closes (after the frame) unless the error keeps it open."""
    socket.send(encode_error(error.kind, error.message))
    if error.closes_socket:
        socket.close()


def api_error(status: int, message: str, resource: Resource = "request") -> JSONResponse:
    """``{"error": {"code", "resource", "message"}}`` with ``status`` as the HTTP status."""
    body = {"error": {"code": status, "resource": resource, "message": message}}
    return JSONResponse(body, status_code=status)


def unavailable(message: str, *, envelope: bool = False) -> Response:
    """503 with ``Retry-After``: shutting down, or the room is not available right now."""
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if envelope:
        response: Response = api_error(503, message)
        response.headers.update(headers)
        return response
    return PlainTextResponse(message, 503, headers=headers)


def new_error_id() -> str:
    return os.urandom(6).hex()


#: the body of a 500: the error's id only (its exception and traceback are in the log)
INTERNAL_ERROR_BODY = "Internal Server Error (error id {error_id})"


def internal_error(logger: logging.Logger, what: str) -> Response:
    """The 500 for an unexpected exception (call it in an ``except`` block): the exception
    and its traceback go to ``logger`` with a fresh error id; the body names only the id."""
    error_id = new_error_id()
    logger.exception("%s failed (error id %s)", what, error_id)
    return PlainTextResponse(INTERNAL_ERROR_BODY.format(error_id=error_id), 500)

"""Logging: the fields a line carries, and their output (configured only by the CLI) as text
lines or one JSON object per line.

A line about a room, client, user, REST request or key carries them as fields, never only in
its message: given with ``extra={"room_id": ...}`` at the call, or bound for a whole task with
``bind_log_fields`` (a sync socket binds its request id, room, client and user; a REST call its
request id and key name; a room's actor its room). ``ContextFields``, a filter on each handler,
copies the bound fields onto every record that passes. Tokens and key values are never fields.
"""

from __future__ import annotations

import contextvars
import logging
import os
import secrets
import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

import msgspec

LogFormat = Literal["text", "json"]
LOG_LEVELS = ("debug", "info", "warning", "error")

#: the fields a log line may carry, in the order printed
FIELDS = (
    "request_id",
    "room_id",
    "client_id",
    "user_id",
    "key_name",
    "method",
    "route",
    "status",
    "duration_ms",
    "dropped",
)

_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
_bound: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "reflectd_log_fields", default=_NO_FIELDS
)


def new_request_id() -> str:
    """An id for one REST call or one sync socket: 16 hex digits."""
    return secrets.token_hex(8)


def bind_log_fields(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add ``fields`` (those not None) to every line logged from now on in this task (and the
    tasks it starts), until ``unbind_log_fields`` with the token returned."""
    given = {name: value for name, value in fields.items() if value is not None}
    unknown = set(given) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log fields: {', '.join(sorted(unknown))}")
    return _bound.set({**_bound.get(), **given})


def unbind_log_fields(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """The fields bound before the ``bind_log_fields`` that returned ``token``."""
    _bound.reset(token)


def log_context(**fields: Any) -> contextvars.Context:
    """A fresh context with only ``fields`` bound: for a task that must not inherit the fields
    of the one that starts it (a room's actor, started by a client's connect)."""
    context = contextvars.Context()
    context.run(bind_log_fields, **fields)
    return context


class ContextFields(logging.Filter):
    """Copies the fields bound in the current context onto each record (a field given with
    ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _bound.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record carries, in ``FIELDS`` order."""
    return {name: value for name in FIELDS if (value := getattr(record, name, None)) is not None}


def record_entry(record: logging.LogRecord, time: str) -> dict[str, Any]:
    """A record as the JSON object that ``--log-format json`` and ``reflectd tail`` show."""
    return {
        "time": time,
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
        **record_fields(record),
    }


def text_line(entry: Mapping[str, Any]) -> str:
    """An entry as one readable line: time, level, logger, message, then ``name=value``."""
    fields = " ".join(
        f"{name}={_shown(entry[name])}" for name in FIELDS if entry.get(name) is not None
    )
    line = f"{entry['time']} {entry['level'].upper():<7} {entry['logger']}: {entry['message']}"
    return f"{line} {fields}" if fields else line


def _shown(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in "\"'=" for c in text):
        return msgspec.json.encode(text).decode()
    return text


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = record_entry(record, self.formatTime(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry, enc_hook=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = text_line(record_entry(record, self.formatTime(record)))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str, log_format: LogFormat) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFields())
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access and per-WebSocket lines repeat what our connection lines say
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").addFilter(_drop_websocket_lines)


def _drop_websocket_lines(record: logging.LogRecord) -> bool:
    if record.levelno > logging.INFO:
        return True
    if record.levelno < logging.INFO and f"{os.sep}websockets{os.sep}" in record.pathname:
        return False  # the websockets library's wire trace: headers (auth tokens!) and frames
    message = record.getMessage()
    return not (message.startswith("connection ") or '"WebSocket ' in message)

"""Log configuration, done only by the CLI: text lines or one JSON object per line."""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

import msgspec

LogFormat = Literal["text", "json"]
LOG_LEVELS = ("debug", "info", "warning", "error")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


def configure_logging(level: str, log_format: LogFormat) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
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

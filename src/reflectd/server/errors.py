"""HTTP error responses in the Reflect envelope (spec 5.2)."""

from __future__ import annotations

from typing import Literal

from starlette.responses import JSONResponse

Resource = Literal["request", "rooms", "connections"]


def api_error(status: int, message: str, resource: Resource = "request") -> JSONResponse:
    """``{"error": {"code", "resource", "message"}}`` with ``status`` as the HTTP status."""
    body = {"error": {"code": status, "resource": resource, "message": message}}
    return JSONResponse(body, status_code=status)

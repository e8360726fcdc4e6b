"""How a REST route is declared: one decorated function per command, in ``routes.py``.

``@table.route(...)`` takes what the function's signature does not say: the method, the path
below the API's prefix, the permission, a summary, an example result, the failures the
command itself raises and the largest body it takes. The function's docstring is the route's
description; its parameters' types are the query (``query: SomeQuery``), the body
(``body: SomeBody``, absent when the route takes none) and the headers it reads
(``headers: SomeHeaders``, optional strings named as the headers are); a ``key: Principal``
parameter, if present, receives the key that made the request. Its return type is the result.
A route whose ``permission`` is None is open to every valid key. The server parses, checks and
answers from these, and the OpenAPI document (``openapi.py``) describes them: nothing else
lists the routes.

A ``path`` is served in both API shapes, ``/v1/apps/{app-id}`` and the original server's
``/api/v1``; a ``legacy`` path only in the latter, with one ``{name}`` path segment that
stands for the query field of that name.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from reflectd.server.rest.failures import MAX_BODY_BYTES, Failure
from reflectd.server.rest.keys import Principal
from reflectd.server.rest.parsing import (
    body_literals,
    header_fields,
    parse_headers,
    parse_request,
    query_fields,
)
from reflectd.server.rest.wire import NoQuery
from reflectd.storage.base import Permission

if TYPE_CHECKING:
    from reflectd.server.rest.commands import RoomCommands

Handler = Callable[..., Awaitable[msgspec.Struct]]
H = TypeVar("H", bound=Handler)

#: a legacy path segment (roomID or userID), percent-encoded: none of ``:/@$^&=[];|,``
SEGMENT_PATTERN = r"[^:/@$^&=\[\];|,]+"
_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Command:
    """One command, whichever of its paths reached it."""

    #: the function's name, dashed: part of the OpenAPI operation ids
    key: str
    summary: str
    description: str
    #: None: any valid key may call it
    permission: Permission | None
    query: type[msgspec.Struct]
    body: type[msgspec.Struct] | None
    headers: type[msgspec.Struct] | None
    result: type[msgspec.Struct]
    example: msgspec.Struct
    #: what the command itself raises; parsing, keys and paths add theirs (``openapi.py``)
    failures: tuple[Failure, ...]
    max_body_bytes: int
    handler: Handler
    #: the handler takes the request's key (its ``key`` parameter)
    takes_key: bool = False

    async def run(
        self,
        commands: RoomCommands,
        items: Iterable[tuple[str, str]],
        body: bytes,
        segment: tuple[str, str] | None,
        headers: Mapping[str, str],
        key: Principal,
    ) -> msgspec.Struct:
        query, parsed = parse_request(self.query, self.body, items, body, segment=segment)
        arguments: dict[str, Any] = {"query": query}
        if self.body is not None:
            arguments["body"] = parsed
        if self.headers is not None:
            arguments["headers"] = parse_headers(self.headers, headers)
        if self.takes_key:
            arguments["key"] = key
        return await self.handler(commands, **arguments)


@dataclass(frozen=True, slots=True)
class RestRoute:
    """One path of a command."""

    method: str
    #: the path below the API's prefix; a legacy one holds its segment as ``{name}``
    template: str
    path: re.Pattern[str]
    command: Command
    #: only in the original server's ``/api/v1`` API, its segment standing for the query
    legacy: bool = False
    #: the query field that a legacy path's segment fills
    segment: str | None = None

    @property
    def permission(self) -> Permission | None:
        return self.command.permission


class RouteTable:
    """The routes, in the order declared (which is the order matched)."""

    def __init__(self) -> None:
        self.routes: tuple[RestRoute, ...] = ()

    def route(
        self,
        method: str,
        path: str | None = None,
        *,
        legacy: str | None = None,
        permission: Permission | None,
        summary: str,
        example: msgspec.Struct | None = None,
        failures: Iterable[Failure] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> Callable[[H], H]:
        def declare(handler: H) -> H:
            command = _command(
                handler, permission, summary, example, tuple(failures), max_body_bytes
            )
            if path is not None:
                self.routes += (RestRoute(method, path, re.compile(re.escape(path)), command),)
            if legacy is not None:
                self.routes += (_legacy_route(method, legacy, command),)
            return handler

        return declare


def _command(
    handler: Handler,
    permission: Permission | None,
    summary: str,
    example: msgspec.Struct | None,
    failures: tuple[Failure, ...],
    max_body_bytes: int,
) -> Command:
    hints = typing.get_type_hints(handler)
    query: type[msgspec.Struct] = hints.get("query", NoQuery)
    body: type[msgspec.Struct] | None = hints.get("body")
    headers: type[msgspec.Struct] | None = hints.get("headers")
    result: type[msgspec.Struct] = hints["return"]
    query_fields(query)  # a query, body or header field of an unknown kind fails here
    if body is not None:
        body_literals(body)
    if headers is not None:
        header_fields(headers)
    if example is None:
        example = result()
    if not isinstance(example, result):
        raise TypeError(f"{handler.__name__}: the example is not a {result.__name__}")
    return Command(
        key=handler.__name__.replace("_", "-"),
        summary=summary,
        description=_paragraphs(inspect.getdoc(handler) or ""),
        permission=permission,
        query=query,
        body=body,
        headers=headers,
        result=result,
        example=example,
        failures=failures,
        max_body_bytes=max_body_bytes,
        handler=handler,
        takes_key=hints.get("key") is Principal,
    )


def _legacy_route(method: str, template: str, command: Command) -> RestRoute:
    names = _PARAMETER.findall(template)
    if len(names) != 1 or names[0] not in {f.name for f in query_fields(command.query)}:
        raise ValueError(f"{template}: a legacy path names one field of {command.query.__name__}")
    before, _, after = template.partition("{" + names[0] + "}")
    pattern = re.compile(f"{re.escape(before)}(?P<segment>{SEGMENT_PATTERN}){re.escape(after)}")
    return RestRoute(method, template, pattern, command, legacy=True, segment=names[0])


def _paragraphs(text: str) -> str:
    """A docstring's paragraphs, each on one line (as the documentation prints them)."""
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


def example_of(command: Command) -> Any:
    """The command's example result as JSON."""
    return msgspec.json.decode(msgspec.json.encode(command.example))

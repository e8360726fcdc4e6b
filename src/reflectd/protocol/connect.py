"""The connect request: its URL's version, the gate's checks and its query string, with the
original server's checks, in its order, with its error messages.

A connect passes, in this order: the gate (``check_gate``: an auth token when the app has an
auth handler, the protocol version, the clientID / roomID / userID / jurisdiction
parameters, a readable token), the auth handler (the server's), the room (open, not
closed), then the rest of the query (``parse_connect_query``) and the room's own checks
(``Room.connect``). Each failure is an error frame the client reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from reflectd.errors import InvalidConnectionRequest, VersionNotSupported
from reflectd.protocol.jsparse import decode_uri_component, is_safe_integer, parse_int

#: the sync protocol version this server speaks (``/api/sync/v<version>/connect``)
SUPPORTED_VERSION = 1
_VERSION_SEGMENT = re.compile(r"v(\d+)")

ROOM_ID_PATTERN = re.compile(r"[A-Za-z0-9_/-]+")
ROOM_ID_RULE = "/^[A-Za-z0-9_/-]+$/"

#: the ``tx.clientID`` of a mutation that the app's backend runs (``rooms:mutate``); no client
#: may connect with it, so a mutator can trust it
SERVER_CLIENT_ID = "$server"


def check_room_id(room_id: str) -> None:
    if not ROOM_ID_PATTERN.fullmatch(room_id):
        raise InvalidConnectionRequest(f'Invalid roomID "{room_id}" (must match {ROOM_ID_RULE})')


def parse_version(segment: str) -> int | None:
    """The version of a URL's ``v<digits>`` segment; None if it is not one."""
    match = _VERSION_SEGMENT.fullmatch(segment)
    return None if match is None else int(match.group(1))


@dataclass(frozen=True, slots=True)
class Gate:
    """What passed the gate: who connects to which room, and the auth token to check."""

    room_id: str
    user_id: str
    jurisdiction: Literal["", "eu"]
    #: the token the client sent (decoded), None if it sent none
    token: str | None


def check_gate(
    query: Mapping[str, str], *, version: int, protocol: str | None, auth_required: bool
) -> Gate:
    """The gate's checks, in order. ``protocol`` is the ``Sec-WebSocket-Protocol`` header,
    which carries the client's auth token (URI-encoded); ``auth_required`` when the app has an
    auth handler. Raises ``InvalidConnectionRequest`` or ``VersionNotSupported``."""
    if auth_required and protocol is None:
        raise InvalidConnectionRequest("auth required")
    if version != SUPPORTED_VERSION:
        raise VersionNotSupported("unsupported version")
    _, room_id, user_id, jurisdiction = parse_gate_params(query)
    token = None
    if protocol is not None:
        try:
            token = decode_uri_component(protocol)
        except ValueError:
            raise InvalidConnectionRequest("malformed auth") from None
    return Gate(room_id=room_id, user_id=user_id, jurisdiction=jurisdiction, token=token)


@dataclass(frozen=True, slots=True)
class ConnectQuery:
    client_id: str
    client_group_id: str
    room_id: str
    user_id: str
    jurisdiction: Literal["", "eu"]
    base_cookie: int | None
    lmid: int
    wsid: str
    debug_perf: bool


def single_valued(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The query as a dict; a name given twice is refused (unlike the original, which reads
    the first, while some proxies read the last: the edge and the server could disagree on
    the room)."""
    query: dict[str, str] = {}
    for name, value in items:
        if name in query:
            raise InvalidConnectionRequest(f"query parameter {name} is repeated")
        query[name] = value
    return query


def parse_gate_params(query: Mapping[str, str]) -> tuple[str, str, str, Literal["", "eu"]]:
    """The gate's checks of the query: clientID, roomID, userID, jurisdiction."""
    for name in ("clientID", "roomID", "userID"):
        if not query.get(name):
            raise InvalidConnectionRequest(f"{name} parameter required")
    check_room_id(query["roomID"])
    if query["clientID"] == SERVER_CLIENT_ID:
        raise InvalidConnectionRequest(
            f"clientID {SERVER_CLIENT_ID} is reserved for the server's own mutations"
        )
    jurisdiction = query.get("jurisdiction", "")
    if jurisdiction not in ("", "eu"):
        raise InvalidConnectionRequest("invalid jurisdiction parameter")
    return query["clientID"], query["roomID"], query["userID"], jurisdiction  # type: ignore[return-value]


def parse_connect_query(query: Mapping[str, str], url: str) -> ConnectQuery:
    """All checks of a connect request's query: the gate's, then clientGroupID, baseCookie,
    ts and lmid."""
    client_id, room_id, user_id, jurisdiction = parse_gate_params(query)

    def required(name: str) -> str:
        value = query.get(name)
        if not value:
            raise InvalidConnectionRequest(f"invalid querystring - missing {name}")
        return value

    def integer(name: str, text: str, *, non_negative: bool = True) -> int:
        value = parse_int(text)
        if value is None or not is_safe_integer(value, non_negative=non_negative):
            raise InvalidConnectionRequest(
                f"invalid querystring parameter {name}, got: {text}, url: {url}"
            )
        return value

    client_group_id = required("clientGroupID")
    base_cookie_text = query.get("baseCookie", "")
    base_cookie = integer("baseCookie", base_cookie_text) if base_cookie_text else None
    integer("ts", required("ts"), non_negative=False)
    lmid = integer("lmid", required("lmid"))
    return ConnectQuery(
        client_id=client_id,
        client_group_id=client_group_id,
        room_id=room_id,
        user_id=user_id,
        jurisdiction=jurisdiction,
        base_cookie=base_cookie,
        lmid=lmid,
        wsid=query.get("wsid", ""),
        debug_perf=query.get("debugPerf") == "true",
    )

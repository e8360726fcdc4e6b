"""``reflectd tail``: a running server's log lines, live, from its log stream
(``GET /v1/apps/{app-id}/logs:tail``, server-sent events; see ``server/log_tail.py``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import typer

from reflectd.cli_admin import Shared, rest_key
from reflectd.logs import LOG_LEVELS, text_line

#: how long to wait before connecting again to a server that is gone (s)
RECONNECT_S = 1.0
#: the server sends a comment every 15 s: silence for this long means the connection is dead
READ_TIMEOUT_S = 45.0
#: answers that connecting again will not change
_FINAL = frozenset({400, 401, 403, 404, 405})


def tail(
    options: Shared,
    room: Annotated[str | None, typer.Option(help="Only the lines of this roomID.")] = None,
    user: Annotated[
        str | None,
        typer.Option(help="Only the lines of this userID (its connections and mutations)."),
    ] = None,
    level: Annotated[
        str | None, typer.Option(help=f"The lowest level shown: {', '.join(LOG_LEVELS)}.")
    ] = None,
) -> None:
    """Print a running server's log lines as it writes them (needs a key with `logs:read`);
    connects again when the server restarts; Ctrl-C stops."""
    if level is not None and level not in LOG_LEVELS:
        raise typer.BadParameter(f"one of {', '.join(LOG_LEVELS)}", param_hint="--level")
    api_key = rest_key(options)
    params = [
        (name, value)
        for name, value in (("level", level), ("roomID", room), ("userID", user))
        if value is not None
    ]
    url = f"{options.url.rstrip('/')}/v1/apps/{options.app_id}/logs:tail"
    try:
        _follow(url, params, api_key, as_json=options.as_json)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _follow(url: str, params: list[tuple[str, str]], api_key: str, *, as_json: bool) -> None:
    """Print the stream's lines; when it ends or cannot be reached, say so once and connect
    again every ``RECONNECT_S`` until it answers."""
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
    headers = {"Authorization": f"Basic {api_key}", "Accept": "text/event-stream"}
    lost = False
    while True:
        try:
            with httpx.stream(
                "GET", url, params=tuple(params), headers=headers, timeout=timeout
            ) as r:
                if r.status_code == 200:
                    if lost:
                        typer.echo("(connected again)", err=True)
                    lost = False
                    for event, data in _events(r.iter_lines()):
                        _show(event, data, as_json=as_json)
                else:
                    r.read()
                    if r.status_code in _FINAL:
                        _refused(r)
                    if not lost:  # 503: shutting down, or too many streams open
                        typer.echo(f"(HTTP {r.status_code}: {_message(r)})", err=True)
        except (httpx.TransportError, httpx.RemoteProtocolError):
            pass
        except httpx.InvalidURL as e:
            typer.echo(f"error: cannot reach {url}: {e}", err=True)
            raise typer.Exit(1) from None
        if not lost:
            typer.echo("(the server is gone; connecting again until it is back)", err=True)
            lost = True
        time.sleep(RECONNECT_S)


def _events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """Server-sent events as (event type, data)."""
    event, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", list[str]()
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def _show(event: str, data: str, *, as_json: bool) -> None:
    if event == "dropped":
        dropped = json.loads(data).get("dropped", 0)
        typer.echo(f"({dropped} lines dropped: this reader fell behind)", err=True)
        return
    if as_json:
        print(data, flush=True)
        return
    entry: dict[str, Any] = json.loads(data)
    print(text_line(entry), flush=True)
    if "exception" in entry:
        print(entry["exception"], flush=True)


def _message(response: httpx.Response) -> str:
    try:
        message = response.json().get("error", {}).get("message")
    except ValueError:
        message = None
    return str(message or response.text)


def _refused(response: httpx.Response) -> None:
    typer.echo(f"error: HTTP {response.status_code}: {_message(response)}", err=True)
    raise typer.Exit(1)

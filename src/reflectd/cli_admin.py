"""``reflectd keys`` (API keys, on the database) and ``reflectd rooms|connections`` (the REST
API of a running server)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reflectd.errors import DatabaseNotFound, StorageError
from reflectd.server.rest.keys import ENV_KEY_NAME, new_key_record, parse_permissions
from reflectd.storage import Backend, open_store
from reflectd.storage.base import PERMISSIONS

stderr = Console(stderr=True)

DbOpt = Annotated[
    str, typer.Option(envvar="REFLECTD_DB", help="The server's storage (as for `serve --db`).")
]
PermissionOpt = Annotated[
    list[str],
    typer.Option(
        "--permission", "-p", help=f"A permission (repeat for several): {', '.join(PERMISSIONS)}."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
CreateOpt = Annotated[
    bool,
    typer.Option(
        "--create",
        help="Make the database if there is none at --db (else it must exist: the server's).",
    ),
]
DEFAULT_DB = ".reflectd/reflectd.sqlite3"

keys = typer.Typer(help="Manage REST API keys (stored as hashes in the server's database).")


def _fail(message: str, code: int = 1) -> NoReturn:
    """One line on standard error (no markup, no wrapping), then exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _tell(message: str) -> None:
    typer.echo(message, err=True)


def _run_on_store(db: str, work: Any, *, create: bool | None = None) -> Any:
    """``work(store)`` on the database at ``db``, which must exist unless ``create`` (None:
    the command has no ``--create``); a database that cannot be opened is one line of error,
    not a traceback."""

    async def main() -> Any:
        store = await open_store(db, create=bool(create))
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except DatabaseNotFound as e:
        also = "" if create is None else " (or --create to make a new database)"
        _fail(f"{e}; give the server's --db{also}")
    except (StorageError, ValueError, OSError) as e:
        _fail(str(e))


def _shown(name: str) -> str:
    """A key name as printed: control and format characters escaped, so that a name made
    before they were refused cannot drive the terminal."""
    return "".join(
        c if unicodedata.category(c) not in _UNPRINTED else c.encode("unicode_escape").decode()
        for c in name
    )


_UNPRINTED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _permissions(names: list[str]) -> Any:
    try:
        return parse_permissions(names)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--permission") from None


@keys.command("create")
def keys_create(
    name: str, permission: PermissionOpt, db: DbOpt = DEFAULT_DB, create: CreateOpt = False
) -> None:
    """Create a key; its value is printed once, alone on the last line of standard output."""
    permissions = _permissions(permission)
    try:
        value, record = new_key_record(name, permissions, int(time.time() * 1000))
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="NAME") from None

    async def work(store: Backend) -> bool:
        return await store.create_api_key(record)

    if not _run_on_store(db, work, create=create):
        _fail(f"a key named {name!r} exists already")
    _tell(
        f"Created API key {name!r} with {', '.join(record.permissions)}. "
        "Store its value now: it cannot be shown again."
    )
    print(value)


@keys.command("list")
def keys_list(db: DbOpt = DEFAULT_DB, as_json: JsonOpt = False) -> None:
    """List keys: names, permissions, when created and last used (never their values)."""

    async def work(store: Backend) -> Any:
        return await store.list_api_keys()

    records = _run_on_store(db, work)
    rows = [
        {
            "name": r.name,
            "permissions": list(r.permissions),
            "created": _time(r.created_ms),
            "lastUsed": None if r.last_used_ms is None else _time(r.last_used_ms),
        }
        for r in records
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "permissions", "created", "last used")
    for row in rows:
        table.add_row(
            Text(_shown(row["name"])),
            " ".join(row["permissions"]),
            row["created"],
            row["lastUsed"] or "never",
        )
    Console().print(table)


@keys.command("edit")
def keys_edit(name: str, permission: PermissionOpt, db: DbOpt = DEFAULT_DB) -> None:
    """Replace a key's permissions."""
    permissions = _permissions(permission)

    async def work(store: Backend) -> bool:
        return await store.set_api_key_permissions(name, permissions)

    if not _run_on_store(db, work):
        _fail(f"no key named {_shown(name)!r}")
    _tell(f"API key {_shown(name)!r} now has {', '.join(permissions)}.")


@keys.command("delete")
def keys_delete(name: str, db: DbOpt = DEFAULT_DB) -> None:
    """Delete a key; requests with it are refused from now on."""

    async def work(store: Backend) -> bool:
        return await store.delete_api_key(name)

    if not _run_on_store(db, work):
        _fail(f"no key named {_shown(name)!r}")
    _tell(f"API key {_shown(name)!r} deleted.")


def _time(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------------- REST client commands

UrlOpt = Annotated[str, typer.Option(envvar="REFLECTD_URL", help="The server's URL.")]
ApiKeyOpt = Annotated[
    str | None, typer.Option(envvar=ENV_KEY_NAME, help="An API key (better: set REFLECTD_API_KEY).")
]
AppIdOpt = Annotated[str, typer.Option(envvar="REFLECTD_APP_ID", help="The server's app-id.")]
DEFAULT_URL = "http://127.0.0.1:8080"

rooms = typer.Typer(help="List, inspect, create, close and delete rooms of a running server.")
connections = typer.Typer(help="Close connections of a running server (clients reconnect).")


def _call(
    url: str,
    api_key: str | None,
    app_id: str,
    method: str,
    command: str,
    params: list[tuple[str, str]] | None = None,
    body: Any = None,
) -> Any:
    if not api_key:
        _fail(f"give an API key with --api-key or {ENV_KEY_NAME}", 2)
    if not (api_key.isascii() and api_key.isprintable()):
        _fail("the API key must be printable ASCII (as every key reflectd makes is)", 2)
    try:
        response = httpx.request(
            method,
            f"{url.rstrip('/')}/v1/apps/{app_id}/{command}",
            params=tuple(params or ()),
            headers={"Authorization": f"Basic {api_key}"},
            content=None if body is None else json.dumps(body),
            timeout=30,
        )
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        _fail(f"cannot reach {url}: {e}")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200 or not isinstance(payload, dict) or "result" not in payload:
        message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
        _fail(f"HTTP {response.status_code}: {message or response.text}")
    return payload["result"]


def _done(result: Any, as_json: bool, message: str) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        stderr.print(message)


@rooms.command("list")
def rooms_list(
    start_key: Annotated[
        str | None, typer.Option(help="List from this roomID (inclusive).")
    ] = None,
    start_after_key: Annotated[str | None, typer.Option(help="List after this roomID.")] = None,
    room_id: Annotated[list[str] | None, typer.Option(help="Only these rooms (repeat).")] = None,
    max_results: Annotated[int | None, typer.Option(help="At most this many rooms.")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = None,
    app_id: AppIdOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """List rooms in roomID order."""
    params: list[tuple[str, str]] = []
    if start_key is not None:
        params.append(("startKey", start_key))
    if start_after_key is not None:
        params.append(("startAfterKey", start_after_key))
    params += [("roomID", r) for r in room_id or []]
    if max_results is not None:
        params.append(("maxResults", str(max_results)))
    result = _call(url, api_key, app_id, "GET", "rooms", params)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("roomID", "jurisdiction", "status")
    for room in result["results"]:
        table.add_row(room["roomID"], room["jurisdiction"], room["status"])
    Console().print(table)
    if result["more"]:
        last = result["results"][-1]["roomID"] if result["results"] else ""
        stderr.print(f"more rooms follow: --start-after-key {last}")


@rooms.command("contents")
def rooms_contents(
    room: str, url: UrlOpt = DEFAULT_URL, api_key: ApiKeyOpt = None, app_id: AppIdOpt = "default"
) -> None:
    """Print a room's contents as one JSON object."""
    result = _call(url, api_key, app_id, "GET", "rooms/contents", [("roomID", room)])
    json.dump(result["contents"], sys.stdout, indent=2, ensure_ascii=False)
    print()


@rooms.command("create")
def rooms_create(
    room: str,
    jurisdiction: Annotated[str | None, typer.Option(help="Only 'eu' is defined.")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = None,
    app_id: AppIdOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Create a room (rooms are also created when a client first connects)."""
    body = {} if jurisdiction is None else {"jurisdiction": jurisdiction}
    result = _call(url, api_key, app_id, "POST", "rooms:create", [("roomID", room)], body)
    _done(result, as_json, f"room {room} created")


@rooms.command("close")
def rooms_close(
    room: str,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = None,
    app_id: AppIdOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Close a room: no new connections; connected clients stay until invalidated."""
    result = _call(url, api_key, app_id, "POST", "rooms:close", [("roomID", room)])
    _done(result, as_json, f"room {room} closed")


@rooms.command("delete")
def rooms_delete(
    room: str,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = None,
    app_id: AppIdOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Delete a closed room: disconnects its clients and deletes its data, for good."""
    result = _call(url, api_key, app_id, "POST", "rooms:delete", [("roomID", room)])
    _done(result, as_json, f"room {room} deleted")


@connections.command("invalidate")
def connections_invalidate(
    all_: Annotated[bool, typer.Option("--all", help="Every connection.")] = False,
    room: Annotated[str | None, typer.Option(help="The connections of this room.")] = None,
    user: Annotated[str | None, typer.Option(help="The connections of this userID.")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = None,
    app_id: AppIdOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Close connections; the clients reconnect at once and are authenticated again."""
    if sum((all_, room is not None, user is not None)) != 1:
        raise typer.BadParameter("give exactly one of --all, --room ID, --user ID")
    if all_:
        command, params = "connections/all:invalidate", []
    elif room is not None:
        command, params = "connections/rooms:invalidate", [("roomID", room)]
    else:
        command, params = "connections/users:invalidate", [("userID", user or "")]
    result = _call(url, api_key, app_id, "POST", command, params)
    _done(result, as_json, "connections invalidated")

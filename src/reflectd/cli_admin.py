"""``reflectd keys`` (API keys, on the database) and ``reflectd rooms|connections`` (the REST
API of a running server)."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reflectd.cli_settings import BY_NAME
from reflectd.errors import DatabaseNotFound, StorageError
from reflectd.server.rest.keys import new_key_record, parse_permissions
from reflectd.storage import Backend, open_store
from reflectd.storage.base import PERMISSIONS

stderr = Console(stderr=True)

PermissionOpt = Annotated[
    list[str],
    typer.Option(
        "--permission", "-p", help=f"A permission (repeat for several): {', '.join(PERMISSIONS)}."
    ),
]
CreateOpt = Annotated[
    bool,
    typer.Option(
        "--create",
        help="Make the database if there is none at --db (else it must exist: the server's).",
    ),
]

# ---------------------------------------------------------------------- the shared options

_DB, _APP_ID, _API_KEY = BY_NAME["db"], BY_NAME["app_id"], BY_NAME["api_key"]
ENV_KEY_NAME = _API_KEY.env
DEFAULT_URL = f"http://{BY_NAME['host'].default}:{BY_NAME['port'].default}"


@dataclass(frozen=True, slots=True)
class Shared:
    """The options the admin commands share, as one command was given them."""

    #: the server's database (``keys``)
    db: str = _DB.default
    #: the running server's URL, API key and app-id (``rooms``, ``connections``)
    url: str = DEFAULT_URL
    api_key: str | None = None
    app_id: str = _APP_ID.default
    #: print JSON rather than a table or a message
    as_json: bool = False


#: each shared option's type and flag; its default is ``Shared``'s, and ``db``, ``app_id`` and
#: the key are the server's settings (``reflectd.cli_settings``)
_SHARED_OPTIONS: dict[str, Any] = {
    "db": Annotated[
        str, typer.Option(envvar=_DB.env, help="The server's storage (as for `serve --db`).")
    ],
    "url": Annotated[str, typer.Option(envvar="REFLECTD_URL", help="The server's URL.")],
    "api_key": Annotated[
        str | None,
        typer.Option(envvar=ENV_KEY_NAME, help=f"An API key (better: set {ENV_KEY_NAME})."),
    ],
    "app_id": Annotated[str, typer.Option(envvar=_APP_ID.env, help="The server's app-id.")],
    "as_json": Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")],
}
#: the options of the commands that call a running server's REST API
REST = ("url", "api_key", "app_id")

F = TypeVar("F", bound=Callable[..., None])


def admin_command(group: typer.Typer, name: str, *shared: str) -> Callable[[F], F]:
    """Register ``function(options: Shared, ...)`` as the command ``name`` of ``group``: its
    own parameters, then the ``shared`` options (names of ``Shared``'s fields), whose values
    it gets in ``options``."""

    def register(function: F) -> F:
        own = list(inspect.signature(function, eval_str=True).parameters.values())[1:]

        def run(**values: Any) -> None:
            options = Shared(**{option: values.pop(option) for option in shared})
            function(options, **values)

        defaults = {f.name: f.default for f in fields(Shared)}
        parameters = [
            *own,
            *(
                inspect.Parameter(
                    option,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=defaults[option],
                    annotation=_SHARED_OPTIONS[option],
                )
                for option in shared
            ),
        ]
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__name__ = run.__qualname__ = function.__name__
        run.__doc__ = function.__doc__
        group.command(name)(run)
        return function

    return register


keys = typer.Typer(help="Manage REST API keys (stored as hashes in the server's database).")


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on standard error (no markup, no wrapping), then exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def tell(message: str) -> None:
    typer.echo(message, err=True)


def run_on_store(db: str, work: Any, *, create: bool | None = None) -> Any:
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
        fail(f"{e}; give the server's --db{also}")
    except (StorageError, ValueError, OSError) as e:
        fail(str(e))


def shown(name: str) -> str:
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


@admin_command(keys, "create", "db")
def keys_create(
    options: Shared, name: str, permission: PermissionOpt, create: CreateOpt = False
) -> None:
    """Create a key; its value is printed once, alone on the last line of standard output."""
    permissions = _permissions(permission)
    try:
        value, record = new_key_record(name, permissions, int(time.time() * 1000))
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="NAME") from None

    async def work(store: Backend) -> bool:
        return await store.create_api_key(record)

    if not run_on_store(options.db, work, create=create):
        fail(f"a key named {name!r} exists already")
    tell(
        f"Created API key {name!r} with {', '.join(record.permissions)}. "
        "Store its value now: it cannot be shown again."
    )
    print(value)


@admin_command(keys, "list", "db", "as_json")
def keys_list(options: Shared) -> None:
    """List keys: names, permissions, when created and last used (never their values)."""

    async def work(store: Backend) -> Any:
        return await store.list_api_keys()

    records = run_on_store(options.db, work)
    rows = [
        {
            "name": r.name,
            "permissions": list(r.permissions),
            "created": utc_time(r.created_ms),
            "lastUsed": None if r.last_used_ms is None else utc_time(r.last_used_ms),
        }
        for r in records
    ]
    if options.as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "permissions", "created", "last used")
    for row in rows:
        table.add_row(
            Text(shown(row["name"])),
            " ".join(row["permissions"]),
            row["created"],
            row["lastUsed"] or "never",
        )
    Console().print(table)


@admin_command(keys, "edit", "db")
def keys_edit(options: Shared, name: str, permission: PermissionOpt) -> None:
    """Replace a key's permissions."""
    permissions = _permissions(permission)

    async def work(store: Backend) -> bool:
        return await store.set_api_key_permissions(name, permissions)

    if not run_on_store(options.db, work):
        fail(f"no key named {shown(name)!r}")
    tell(f"API key {shown(name)!r} now has {', '.join(permissions)}.")


@admin_command(keys, "delete", "db")
def keys_delete(options: Shared, name: str) -> None:
    """Delete a key; requests with it are refused from now on."""

    async def work(store: Backend) -> bool:
        return await store.delete_api_key(name)

    if not run_on_store(options.db, work):
        fail(f"no key named {shown(name)!r}")
    tell(f"API key {shown(name)!r} deleted.")


def utc_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------------- REST client commands

rooms = typer.Typer(help="List, inspect, create, close and delete rooms of a running server.")
connections = typer.Typer(help="Close connections of a running server (clients reconnect).")


def rest_key(options: Shared) -> str:
    """The API key given, or exit naming how to give one."""
    api_key = options.api_key
    if not api_key:
        fail(f"give an API key with --api-key or {ENV_KEY_NAME}", 2)
    if not (api_key.isascii() and api_key.isprintable()):
        fail("the API key must be printable ASCII (as every key reflectd makes is)", 2)
    return api_key


def call_rest(
    options: Shared,
    method: str,
    command: str,
    params: list[tuple[str, str]] | None = None,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Any:
    url, api_key = options.url, rest_key(options)
    try:
        response = httpx.request(
            method,
            f"{url.rstrip('/')}/v1/apps/{options.app_id}/{command}",
            params=tuple(params or ()),
            headers={"Authorization": f"Basic {api_key}", **(headers or {})},
            content=None if body is None else json.dumps(body),
            timeout=timeout,
        )
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        fail(f"cannot reach {url}: {e}")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200 or not isinstance(payload, dict) or "result" not in payload:
        message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
        fail(f"HTTP {response.status_code}: {message or response.text}")
    return payload["result"]


def done(options: Shared, result: Any, message: str) -> None:
    if options.as_json:
        print(json.dumps(result))
    else:
        stderr.print(message)


@admin_command(rooms, "list", *REST, "as_json")
def rooms_list(
    options: Shared,
    start_key: Annotated[
        str | None, typer.Option(help="List from this roomID (inclusive).")
    ] = None,
    start_after_key: Annotated[str | None, typer.Option(help="List after this roomID.")] = None,
    room_id: Annotated[list[str] | None, typer.Option(help="Only these rooms (repeat).")] = None,
    max_results: Annotated[int | None, typer.Option(help="At most this many rooms.")] = None,
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
    result = call_rest(options, "GET", "rooms", params)
    if options.as_json:
        print(json.dumps(result))
        return
    table = Table("roomID", "jurisdiction", "status", "created")
    for room in result["results"]:
        created = utc_time(room.get("createdMs"))
        table.add_row(room["roomID"], room["jurisdiction"], room["status"], created)
    Console().print(table)
    if result["more"]:
        last = result["results"][-1]["roomID"] if result["results"] else ""
        stderr.print(f"more rooms follow: --start-after-key {last}")


@admin_command(rooms, "contents", *REST)
def rooms_contents(options: Shared, room: str) -> None:
    """Print a room's contents as one JSON object."""
    result = call_rest(options, "GET", "rooms/contents", [("roomID", room)])
    json.dump(result["contents"], sys.stdout, indent=2, ensure_ascii=False)
    print()


@admin_command(rooms, "clients", *REST, "as_json")
def rooms_clients(options: Shared, room: str) -> None:
    """List the clients connected to a room now, and its presence."""
    result = call_rest(options, "GET", "rooms/clients", [("roomID", room)])
    if options.as_json:
        print(json.dumps(result))
        return
    table = Table("clientID", "userID", "connected since", "last mutation ID")
    for client in result["clients"]:
        table.add_row(
            client["clientID"],
            client["userID"],
            utc_time(client["connectedMs"]),
            str(client["lastMutationID"]),
        )
    Console().print(table)
    source = "" if result["live"] else " (read from storage: the room is not loaded here)"
    stderr.print(f"present: {', '.join(result['presence']) or 'nobody'}{source}")


@admin_command(rooms, "create", *REST, "as_json")
def rooms_create(
    options: Shared,
    room: str,
    jurisdiction: Annotated[str | None, typer.Option(help="Only 'eu' is defined.")] = None,
) -> None:
    """Create a room (rooms are also created when a client first connects)."""
    body = {} if jurisdiction is None else {"jurisdiction": jurisdiction}
    result = call_rest(options, "POST", "rooms:create", [("roomID", room)], body)
    done(options, result, f"room {room} created")


@admin_command(rooms, "close", *REST, "as_json")
def rooms_close(options: Shared, room: str) -> None:
    """Close a room: no new connections; connected clients stay until invalidated."""
    result = call_rest(options, "POST", "rooms:close", [("roomID", room)])
    done(options, result, f"room {room} closed")


@admin_command(rooms, "delete", *REST, "as_json")
def rooms_delete(options: Shared, room: str) -> None:
    """Delete a closed room: disconnects its clients and deletes its data, for good."""
    result = call_rest(options, "POST", "rooms:delete", [("roomID", room)])
    done(options, result, f"room {room} deleted")


@admin_command(connections, "invalidate", *REST, "as_json")
def connections_invalidate(
    options: Shared,
    all_: Annotated[bool, typer.Option("--all", help="Every connection.")] = False,
    room: Annotated[str | None, typer.Option(help="The connections of this room.")] = None,
    user: Annotated[str | None, typer.Option(help="The connections of this userID.")] = None,
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
    result = call_rest(options, "POST", command, params)
    done(options, result, "connections invalidated")

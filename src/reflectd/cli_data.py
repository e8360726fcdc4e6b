"""Moving an app's data in and out of reflectd: ``reflectd rooms mutate|export|import`` (the
REST API of a running server) and ``reflectd backup`` (a copy of a live SQLite database).

An export is what the ``rooms/contents`` route answers: one JSON object of keys and values.
Several rooms go into a directory (one ``<roomID>.json`` each, the roomID percent-encoded, as
``/`` may be part of it) or a JSON Lines file (``*.jsonl``: one ``{"roomID", "contents"}``
object per line); an import reads either back.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

import typer

from reflectd.cli_admin import (
    REST,
    Shared,
    admin_command,
    call_rest,
    done,
    fail,
    rooms,
    stderr,
)
from reflectd.cli_settings import BY_NAME
from reflectd.storage import sqlite_file

ModeOpt = Annotated[
    str,
    typer.Option(
        help="merge: write the keys given, keep the others; replace: also delete the others."
    ),
]
_DB = BY_NAME["db"]
#: a whole room's import may take a while to send and commit (s)
IMPORT_TIMEOUT_S = 300


@admin_command(rooms, "mutate", *REST, "as_json")
def rooms_mutate(
    options: Shared,
    room: str,
    name: Annotated[str, typer.Argument(help="The mutator's name.")],
    args: Annotated[str, typer.Argument(help="Its argument, as JSON.")] = "null",
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Apply once, however often this command is retried with the key."),
    ] = None,
) -> None:
    """Run one of the app's mutators in a room, as the server (clients see it at once)."""
    try:
        parsed = json.loads(args)
    except ValueError as e:
        raise typer.BadParameter(f"not JSON: {e}", param_hint="ARGS") from None
    headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
    result = call_rest(
        options,
        "POST",
        "rooms:mutate",
        [("roomID", room)],
        {"name": name, "args": parsed},
        headers=headers,
    )
    replayed = " (a retry: it had been applied already)" if result["replayed"] else ""
    done(options, result, f"{name} applied to room {room} at version {result['version']}{replayed}")


@admin_command(rooms, "export", *REST)
def rooms_export(
    options: Shared,
    room: Annotated[str | None, typer.Argument(help="The room (leave out with --all).")] = None,
    all_to: Annotated[
        Path | None,
        typer.Option(
            "--all",
            help="Export every room (but the deleted ones) into this directory, or into this "
            "JSON Lines file if it ends with .jsonl.",
        ),
    ] = None,
) -> None:
    """Print a room's contents as JSON (`> room.json`), or write every room's with --all."""
    if (room is None) == (all_to is None):
        raise typer.BadParameter("give a ROOM or --all DIRECTORY|FILE.jsonl")
    if room is not None:
        json.dump(_contents(options, room), sys.stdout, ensure_ascii=False)
        print()
        return
    assert all_to is not None
    started = time.monotonic()
    count = 0
    if all_to.suffix == ".jsonl":
        with all_to.open("w", encoding="utf-8") as out:
            for room_id in _room_ids(options):
                line = {"roomID": room_id, "contents": _contents(options, room_id)}
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                count += 1
    else:
        all_to.mkdir(parents=True, exist_ok=True)
        for room_id in _room_ids(options):
            path = all_to / (quote(room_id, safe="") + ".json")
            path.write_text(json.dumps(_contents(options, room_id), ensure_ascii=False))
            count += 1
    stderr.print(f"exported {count} rooms to {all_to} in {time.monotonic() - started:.1f} s")


@admin_command(rooms, "import", *REST, "as_json")
def rooms_import(
    options: Shared,
    room: Annotated[str | None, typer.Argument(help="The room (leave out with --all).")] = None,
    file: Annotated[
        Path | None, typer.Argument(help="Its contents, as `rooms export` writes them.")
    ] = None,
    all_from: Annotated[
        Path | None,
        typer.Option(
            "--all",
            help="Import every room of this directory or JSON Lines file (as `export --all` "
            "writes them).",
        ),
    ] = None,
    mode: ModeOpt = "merge",
) -> None:
    """Write contents into a room as one change (made if missing); clients get it at once."""
    if mode not in ("merge", "replace"):
        raise typer.BadParameter("merge or replace", param_hint="--mode")
    if all_from is None and (room is None or file is None):
        raise typer.BadParameter("give ROOM FILE, or --all DIRECTORY|FILE.jsonl")
    if all_from is not None and room is not None:
        raise typer.BadParameter("give ROOM FILE or --all, not both")
    sources = _exports(all_from) if all_from is not None else iter([(room or "", _read_json(file))])
    results = []
    for room_id, contents in sources:
        if not isinstance(contents, dict):
            fail(f"room {room_id}: the contents are not a JSON object")
        result = call_rest(
            options,
            "POST",
            "rooms:import",
            [("roomID", room_id)],
            {"contents": contents, "mode": mode},
            timeout=IMPORT_TIMEOUT_S,
        )
        results.append({"roomID": room_id, **result})
        if not options.as_json:
            stderr.print(
                f"room {room_id}: {result['written']} keys written, {result['deleted']} "
                f"deleted, {result['skipped']} skipped (version {result['version']})"
            )
    if options.as_json:
        print(json.dumps(results if all_from is not None else results[0]))


def _contents(options: Shared, room_id: str) -> dict[str, Any]:
    contents: dict[str, Any] = call_rest(options, "GET", "rooms/contents", [("roomID", room_id)])[
        "contents"
    ]
    return contents


def _room_ids(options: Shared) -> Iterator[str]:
    """Every room that has contents (all but the deleted ones), page by page."""
    after: str | None = None
    while True:
        params = [] if after is None else [("startAfterKey", after)]
        page = call_rest(options, "GET", "rooms", params)
        for record in page["results"]:
            if record["status"] != "deleted":
                yield record["roomID"]
        if not page["more"] or not page["results"]:
            return
        after = page["results"][-1]["roomID"]


def _read_json(path: Path | None) -> Any:
    assert path is not None
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")


def _exports(source: Path) -> Iterator[tuple[str, Any]]:
    """(roomID, contents) of each room of an ``export --all``."""
    if source.is_dir():
        for path in sorted(source.glob("*.json")):
            yield unquote(path.stem), _read_json(path)
        return
    try:
        lines = source.open(encoding="utf-8")
    except OSError as e:
        fail(f"cannot read {source}: {e}")
    with lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                room_id, contents = item["roomID"], item["contents"]
            except (ValueError, KeyError, TypeError):
                fail(f'{source}:{number}: expected {{"roomID": ..., "contents": {{...}}}}')
            yield room_id, contents


# ---------------------------------------------------------------------- backup


def backup(
    out: Annotated[Path, typer.Argument(help="The copy to make (a new file).")],
    db: Annotated[
        str, typer.Option(envvar=_DB.env, help="The server's SQLite database (its --db).")
    ] = _DB.default,
) -> None:
    """Copy a live SQLite database consistently (SQLite's online backup), without stopping the
    server; restore by serving the copy (docs/storage.md)."""
    try:
        path = sqlite_file(db)
    except ValueError as e:
        fail(str(e))
    if path is None:
        fail("only a SQLite database is copied this way; for PostgreSQL see docs/storage.md")
    source_path = Path(path)
    if not source_path.is_file():
        fail(f"no SQLite database at {source_path}")
    if out.exists():
        fail(f"{out} exists: name a new file")
    started = time.monotonic()
    try:
        source = sqlite3.connect(source_path)
        target = sqlite3.connect(out)
        with source, target:
            # a few pages at a time, so the server's writes go on meanwhile
            source.backup(target, pages=1024, sleep=0.001)
            check = target.execute("PRAGMA integrity_check").fetchone()[0]
            rooms = target.execute("SELECT count(*) FROM rooms").fetchone()[0]
        source.close()
        target.close()
    except sqlite3.Error as e:
        out.unlink(missing_ok=True)
        fail(f"backup of {source_path} failed: {e}")
    if check != "ok":
        out.unlink(missing_ok=True)
        fail(f"the copy failed SQLite's integrity check: {check}")
    size = out.stat().st_size
    stderr.print(
        f"backed up {source_path} to {out}: {rooms} rooms, {size / 1e6:.1f} MB, "
        f"in {time.monotonic() - started:.1f} s"
    )

"""``reflectd rooms mutate|export|import`` against a running ``reflectd serve``, and
``reflectd backup`` of its database while it writes."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx

from .conftest import APP_ID, ENV_KEY, Server, plain, run


def rooms(server: Server, *args: str) -> Any:
    result = run("rooms", *args, env=server.env())
    assert result.exit_code == 0, result.stderr
    return result


def contents(server: Server, room: str) -> Any:
    return json.loads(rooms(server, "export", room).stdout)


def test_mutate_runs_a_mutator_once_per_idempotency_key(server: Server) -> None:
    rooms(server, "create", "r")
    result = rooms(server, "mutate", "r", "put", '{"key": "paid", "value": [1, "a"]}')
    assert "put applied to room r at version" in plain(result.stderr)
    assert contents(server, "r") == {"paid": [1, "a"]}
    first = json.loads(
        rooms(
            server,
            "mutate",
            "r",
            "put",
            '{"key": "n", "value": 1}',
            "--idempotency-key",
            "k1",
            "--json",
        ).stdout
    )
    again = json.loads(
        rooms(
            server,
            "mutate",
            "r",
            "put",
            '{"key": "n", "value": 2}',
            "--idempotency-key",
            "k1",
            "--json",
        ).stdout
    )
    assert again == {"version": first["version"], "replayed": True}
    assert contents(server, "r") == {"paid": [1, "a"], "n": 1}

    bad = run("rooms", "mutate", "r", "put", "{not json", env=server.env())
    assert bad.exit_code == 2 and "not JSON" in bad.stderr
    unknown = run("rooms", "mutate", "r", "nope", env=server.env())
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == 'error: HTTP 400: Unknown mutator "nope"'


def test_export_and_import_one_room_round_trip(server: Server, tmp_path: Path) -> None:
    values = {"title": "Board \u00e9\u4e2d", "shapes": [{"id": i} for i in range(100)]}
    source = tmp_path / "in.json"
    source.write_text(json.dumps(values))
    result = rooms(server, "import", "a/b", str(source))
    assert "room a/b: 2 keys written, 0 deleted, 0 skipped" in plain(result.stderr)
    exported = tmp_path / "a.json"
    exported.write_text(rooms(server, "export", "a/b").stdout)
    assert json.loads(exported.read_text()) == values

    rooms(server, "import", "copy", str(source))
    replaced = tmp_path / "only.json"
    replaced.write_text('{"title": "new"}')
    rooms(server, "import", "copy", str(replaced), "--mode", "replace")
    assert contents(server, "copy") == {"title": "new"}
    merged = json.loads(rooms(server, "import", "copy", str(source), "--json").stdout)
    assert (merged["written"], merged["deleted"]) == (2, 0)


def test_export_all_and_import_all_move_every_room(server: Server, tmp_path: Path) -> None:
    for i in range(3):
        rooms(server, "import", f"room/{i}", _file(tmp_path, f"{i}.json", {"i": i, "x": [i]}))
    rooms(server, "create", "deleted")
    rooms(server, "close", "deleted")
    rooms(server, "delete", "deleted")
    for target in (tmp_path / "export-dir", tmp_path / "export.jsonl"):
        result = rooms(server, "export", "--all", str(target))
        assert f"exported 3 rooms to {target}" in plain(result.stderr)
    assert sorted(p.name for p in (tmp_path / "export-dir").iterdir()) == [
        "room%2F0.json",
        "room%2F1.json",
        "room%2F2.json",
    ]
    lines = (tmp_path / "export.jsonl").read_text().splitlines()
    assert [json.loads(line)["roomID"] for line in lines] == ["room/0", "room/1", "room/2"]

    # into rooms of the same names, changed meanwhile: replace puts them back
    rooms(server, "import", "room/1", _file(tmp_path, "changed.json", {"extra": 1}))
    result = rooms(server, "import", "--all", str(tmp_path / "export.jsonl"), "--mode", "replace")
    assert "room room/1: 0 keys written, 1 deleted" in plain(result.stderr)
    assert contents(server, "room/1") == {"i": 1, "x": [1]}
    result = rooms(server, "import", "--all", str(tmp_path / "export-dir"), "--json")
    assert [r["roomID"] for r in json.loads(result.stdout)] == ["room/0", "room/1", "room/2"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"roomID": "x", "contents": {}}\n[1, 2]\n')
    refused = run("rooms", "import", "--all", str(bad), env=server.env())
    assert refused.exit_code == 1
    assert f'{bad}:2: expected {{"roomID": ..., "contents": {{...}}}}' in plain(refused.stderr)


def _file(folder: Path, name: str, value: Any) -> str:
    path = folder / name
    path.write_text(json.dumps(value))
    return str(path)


def test_backup_copies_the_live_database_while_the_server_writes(
    server: Server, tmp_path: Path
) -> None:
    base = f"{server.url}/v1/apps/{APP_ID}/rooms:mutate"
    headers = {"Authorization": f"Basic {ENV_KEY}"}
    rooms(server, "create", "busy")
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        with httpx.Client(headers=headers, timeout=10) as http:
            while not stop.is_set():
                n = len(written)
                body = {"name": "put", "args": {"key": f"k{n}", "value": "v" * 1000}}
                response = http.post(base, params={"roomID": "busy"}, json=body)
                assert response.status_code == 200, response.text
                written.append(response.json()["result"]["version"])

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 50:
            threading.Event().wait(0.01)
        copy = tmp_path / "copy.sqlite3"
        result = run("backup", str(copy), "--db", server.db)
        during = len(written)
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 0, result.stderr
    assert "backed up" in plain(result.stderr) and "1 rooms" in plain(result.stderr)
    assert during > 50, "the server kept writing during the backup"
    with sqlite3.connect(copy) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        version = db.execute("SELECT version FROM room_versions WHERE room_id = 'busy'").fetchone()[
            0
        ]
        keys = db.execute("SELECT count(*) FROM entries WHERE room_id = 'busy'").fetchone()[0]
    # consistent: the copy holds exactly the writes up to its version (one key per version)
    assert version in written and keys == written.index(version) + 1

    again = run("backup", str(copy), "--db", server.db)
    assert again.exit_code == 1 and "exists: name a new file" in again.stderr
    pg = run("backup", str(tmp_path / "x"), "--db", "postgresql://u@h/db")
    assert pg.exit_code == 1 and "for PostgreSQL see docs/storage.md" in pg.stderr

"""``reflectd keys create|list|edit|delete`` on a database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from reflectd.server.rest.keys import KEY_PREFIX, hash_key
from reflectd.storage.base import PERMISSIONS

from .conftest import plain, run, run_program


def _create(db: str, name: str, *permissions: str) -> str:
    args = [a for p in permissions for a in ("-p", p)]
    result = run("keys", "create", name, *args, "--db", db)
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_create_prints_the_key_alone_on_stdout_and_explains_on_stderr(db: str) -> None:
    result = run("keys", "create", "admin", "-p", "rooms:read", "-p", "rooms:create", "--db", db)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    key = lines[-1]
    assert key.startswith(KEY_PREFIX) and len(key) > 40 and " " not in key
    explained = plain(result.stderr)
    assert "Created API key 'admin' with rooms:read, rooms:create" in explained
    assert "cannot be shown again" in explained
    assert key not in result.stderr
    # only its hash is stored
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert key not in dump
    assert hash_key(key) in dump


def test_create_as_a_program_and_through_tail(db: str) -> None:
    result = run_program("keys", "create", "ops", "-p", "connections:invalidate", "--db", db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n")
    assert result.stdout.splitlines()[-1].startswith(KEY_PREFIX)
    assert "Created API key 'ops'" in plain(result.stderr)


def test_two_keys_differ_and_names_are_unique(db: str) -> None:
    a = _create(db, "a", "rooms:read")
    b = _create(db, "b", "rooms:read")
    assert a != b
    result = run("keys", "create", "a", "-p", "rooms:read", "--db", db)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "error: a key named 'a' exists already" in plain(result.stderr)


def test_bad_permission_is_a_clear_error(db: str) -> None:
    result = run("keys", "create", "x", "-p", "rooms:read", "-p", "rooms:admin", "--db", db)
    assert result.exit_code == 2
    assert result.stdout == ""
    message = plain(result.stderr)
    assert "unknown permission 'rooms:admin'" in message
    assert "the permissions are: " + ", ".join(PERMISSIONS) in message
    listed = run("keys", "list", "--json", "--db", db)
    assert json.loads(listed.stdout) == []


def test_list_shows_names_and_permissions_never_values(db: str) -> None:
    reader = _create(db, "reader", "rooms:read")
    admin = _create(db, "admin", *PERMISSIONS)
    table = run("keys", "list", "--db", db)
    assert table.exit_code == 0
    for text in ("reader", "admin", "rooms:read", "never"):
        assert text in table.stdout
    listed = run("keys", "list", "--json", "--db", db)
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["admin", "reader"]
    assert rows[0]["permissions"] == list(PERMISSIONS)
    assert rows[1]["permissions"] == ["rooms:read"]
    assert set(rows[0]) == {"name", "permissions", "created", "lastUsed"}
    assert rows[0]["lastUsed"] is None
    for output in (table.stdout + table.stderr, listed.stdout + listed.stderr):
        for key in (reader, admin):
            assert key not in output
            assert hash_key(key) not in output
            assert key[len(KEY_PREFIX) : len(KEY_PREFIX) + 8] not in output


def test_edit(db: str) -> None:
    _create(db, "k", "rooms:read")
    result = run("keys", "edit", "k", "-p", "rooms:close", "-p", "rooms:delete", "--db", db)
    assert result.exit_code == 0
    assert "API key 'k' now has rooms:close, rooms:delete" in plain(result.stderr)
    rows = json.loads(run("keys", "list", "--json", "--db", db).stdout)
    assert rows[0]["permissions"] == ["rooms:close", "rooms:delete"]
    result = run("keys", "edit", "nope", "-p", "rooms:read", "--db", db)
    assert result.exit_code == 1
    assert "error: no key named 'nope'" in plain(result.stderr)
    result = run("keys", "edit", "k", "-p", "admin", "--db", db)
    assert result.exit_code == 2
    assert "unknown permission 'admin'" in plain(result.stderr)
    rows = json.loads(run("keys", "list", "--json", "--db", db).stdout)
    assert rows[0]["permissions"] == ["rooms:close", "rooms:delete"]


def test_delete(db: str) -> None:
    _create(db, "k", "rooms:read")
    _create(db, "other", "rooms:read")
    result = run("keys", "delete", "k", "--db", db)
    assert result.exit_code == 0
    assert "API key 'k' deleted" in plain(result.stderr)
    rows = json.loads(run("keys", "list", "--json", "--db", db).stdout)
    assert [r["name"] for r in rows] == ["other"]
    result = run("keys", "delete", "k", "--db", db)
    assert result.exit_code == 1
    assert "error: no key named 'k'" in plain(result.stderr)


def test_db_from_the_environment(db: str) -> None:
    result = run("keys", "create", "env", "-p", "rooms:read", env={"REFLECTD_DB": db})
    assert result.exit_code == 0
    rows = json.loads(run("keys", "list", "--json", "--db", db).stdout)
    assert [r["name"] for r in rows] == ["env"]


# ------------------------------------------------------------------ names and databases


@pytest.mark.parametrize(
    "name", ["", "   ", "red\x1b[31m", "two\nlines", "bell\a", "\u202eevil", "nul\x00"]
)
def test_create_refuses_an_empty_name_or_one_with_control_characters(db: str, name: str) -> None:
    result = run("keys", "create", name, "-p", "rooms:read", "--db", db)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Invalid value for NAME: a key name cannot" in plain(result.stderr)
    assert json.loads(run("keys", "list", "--json", "--db", db).stdout) == []


def test_list_escapes_control_characters_of_a_name_stored_before_they_were_refused(
    db: str,
) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO api_keys (name, key_hash, permissions, created_ms) VALUES (?, ?, ?, 0)",
            ("evil\x1b[2J\u202e[bold]x", "hash", "rooms:read"),
        )
    table = run("keys", "list", "--db", db).stdout
    assert "\x1b" not in table and "\u202e" not in table
    assert "evil\\x1b[2J\\u202e[bold]x" in plain(table)
    assert json.loads(run("keys", "list", "--json", "--db", db).stdout)[0]["name"].startswith(
        "evil\x1b"
    )  # JSON escapes it itself


@pytest.mark.parametrize(
    "command",
    [
        ("keys", "create", "k", "-p", "rooms:read"),
        ("keys", "list"),
        ("keys", "edit", "k", "-p", "rooms:read"),
        ("keys", "delete", "k"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_admin_commands_refuse_a_db_where_there_is_none_and_make_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    result = run(*command, "--db", str(missing))
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"error: no SQLite database at {missing}; give the")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "no").exists()


def test_keys_create_with_create_makes_a_new_database(tmp_path: Path) -> None:
    new = tmp_path / "new" / "x.db"
    result = run("keys", "create", "first", "-p", "rooms:read", "--db", str(new), "--create")
    assert result.exit_code == 0, result.stderr
    assert new.is_file()
    listed = run("keys", "list", "--json", "--db", str(new))
    assert [row["name"] for row in json.loads(listed.stdout)] == ["first"]


def _garbage(tmp_path: Path) -> str:
    (tmp_path / "corrupt.db").write_bytes(b"\x00not a database\xff" * 500)
    return str(tmp_path / "corrupt.db")


DATABASES_THAT_CANNOT_BE_OPENED = {
    "folder": (lambda tmp: str(tmp), "is a folder, not a SQLite database file"),
    "corrupt file": (_garbage, "file is not a database"),
    "unknown scheme": (lambda tmp: "foo://bar", "unsupported --db 'foo://bar'"),
    "memory": (lambda tmp: "memory://", "a new, empty store that nothing is kept in"),
    "unreachable PostgreSQL": (
        lambda tmp: "postgresql://nobody@127.0.0.1:1/x",
        "open failed: ConnectionRefusedError",
    ),
}


@pytest.mark.parametrize("kind", DATABASES_THAT_CANNOT_BE_OPENED)
def test_a_database_that_cannot_be_opened_is_one_line_of_error(tmp_path: Path, kind: str) -> None:
    make, reason = DATABASES_THAT_CANNOT_BE_OPENED[kind]
    result = run_program("keys", "list", "--db", make(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and reason in line, line

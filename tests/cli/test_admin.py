"""``reflectd rooms ...`` and ``reflectd connections invalidate`` against a running
``reflectd serve``, and keys made with ``reflectd keys create`` used on it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .conftest import APP_ID, ENV_KEY, REFLECTD, Server, plain, run, run_program


def rooms(server: Server, *args: str, key: str | None = ENV_KEY) -> Any:
    return run("rooms", *args, env=server.env(key))


def json_of(server: Server, *args: str) -> Any:
    result = rooms(server, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_key_made_with_keys_create_works_on_the_running_server(server: Server) -> None:
    # the three lines at the top of docs/rest.md, with this server's URL, app-id and database
    base = f"{server.url}/v1/apps/{APP_ID}"
    script = f"""
        KEY=$("{REFLECTD}" keys create admin -p rooms:read -p rooms:create | tail -1)
        curl -s -X POST "{base}/rooms:create?roomID=my-room" \\
            -H "Authorization: Basic $KEY" -d '{{}}'
        echo
        curl -s "{base}/rooms" -H "Authorization: Basic $KEY"
        echo
        echo "$KEY"
    """
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    done = subprocess.run(
        ["bash", "-euc", script],
        capture_output=True,
        text=True,
        env={**os.environ, "REFLECTD_DB": server.db},
        check=True,
        timeout=60,
    )
    created, listed, key = done.stdout.splitlines()
    assert json.loads(created) == {"result": {}}
    (room,) = json.loads(listed)["result"]["results"]
    assert isinstance(room.pop("createdMs"), int)
    assert room == {"roomID": "my-room", "jurisdiction": "", "status": "open"}
    headers = {"Authorization": f"Basic {key}"}
    response = httpx.post(f"{base}/rooms:close?roomID=my-room", headers=headers)
    assert response.status_code == 403
    # and the CLI's own commands with that key
    assert json_of(server, "list")["numResults"] == 1
    listed = run("keys", "list", "--json", "--db", server.db)
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "admin" and row["lastUsed"]
    # a deleted key is refused at once
    assert run("keys", "delete", "admin", "--db", server.db).exit_code == 0
    assert httpx.get(f"{base}/rooms", headers=headers).status_code == 401


def test_rooms_commands(server: Server) -> None:
    for room in ("b", "a", "c/d"):
        result = rooms(server, "create", room)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == ""
        assert f"room {room} created" in result.stderr
    assert json_of(server, "create", "eu-room", "--jurisdiction", "eu") == {}
    table = rooms(server, "list")
    assert table.exit_code == 0
    for text in ("roomID", "jurisdiction", "status", "created", "a", "c/d", "eu-room", " UTC"):
        assert text in table.stdout
    listed = json_of(server, "list")
    assert [r["roomID"] for r in listed["results"]] == ["a", "b", "c/d", "eu-room"]
    assert listed["results"][3]["jurisdiction"] == "eu"
    assert listed["more"] is False
    page = rooms(server, "list", "--max-results", "2")
    assert "more rooms follow: --start-after-key b" in plain(page.stderr)
    page = json_of(server, "list", "--start-after-key", "b", "--max-results", "1")
    assert isinstance(page["results"][0].pop("createdMs"), int)
    assert page == {
        "results": [{"roomID": "c/d", "jurisdiction": "", "status": "open"}],
        "numResults": 1,
        "more": True,
    }
    assert [r["roomID"] for r in json_of(server, "list", "--start-key", "b")["results"]] == [
        "b",
        "c/d",
        "eu-room",
    ]
    chosen = json_of(server, "list", "--room-id", "b", "--room-id", "nope", "--room-id", "a")
    assert [r["roomID"] for r in chosen["results"]] == ["a", "b"]
    # contents: a JSON object on stdout
    result = rooms(server, "contents", "a")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {}
    # the lifecycle, and its errors on stderr with exit status 1
    result = rooms(server, "delete", "a")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert 'error: HTTP 409: Room "a" must first be closed' in plain(result.stderr)
    assert json_of(server, "close", "a") == {}
    assert "room a closed" in rooms(server, "close", "a").stderr
    assert "room a deleted" in rooms(server, "delete", "a").stderr
    assert json_of(server, "list", "--room-id", "a")["results"][0]["status"] == "deleted"
    result = rooms(server, "create", "a")
    assert result.exit_code == 1
    assert 'error: HTTP 409: Room "a" already exists' in plain(result.stderr)
    result = rooms(server, "contents", "a")
    assert result.exit_code == 1
    assert 'error: HTTP 410: Room "a" is deleted' in plain(result.stderr)
    result = rooms(server, "contents", "nope")
    assert 'error: HTTP 404: Room "nope" not found' in plain(result.stderr)
    result = rooms(server, "create", "bad id!")
    assert result.exit_code == 1
    assert "error: HTTP 400: Invalid roomID" in plain(result.stderr)
    result = rooms(server, "list", "--start-key", "a", "--room-id", "b")
    assert "mutually exclusive" in plain(result.stderr)


def test_keys_errors_of_the_rooms_commands(server: Server) -> None:
    reader = run("keys", "create", "reader", "-p", "rooms:read", "--db", server.db)
    key = reader.stdout.splitlines()[-1]
    assert rooms(server, "list", key=key).exit_code == 0
    result = rooms(server, "create", "x", key=key)
    assert result.exit_code == 1
    assert 'error: HTTP 403: API key "reader" lacks the permission rooms:create' in plain(
        result.stderr
    )
    result = rooms(server, "list", key="wrong")
    assert result.exit_code == 1
    assert "error: HTTP 401: Missing or unknown API key" in plain(result.stderr)
    result = rooms(server, "list", key=None)
    assert result.exit_code == 2
    assert "error: give an API key with --api-key or REFLECTD_API_KEY" in plain(result.stderr)
    result = run("rooms", "list", "--api-key", ENV_KEY, "--url", server.url, "--app-id", "other")
    assert result.exit_code == 1
    assert "error: HTTP 404: Unknown or invalid URL" in plain(result.stderr)
    result = run("rooms", "list", "--api-key", ENV_KEY, "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "error: cannot reach http://127.0.0.1:9" in plain(result.stderr)


def _connect(stack: contextlib.ExitStack, server: Server, room: str, client: str, user: str) -> Any:
    url = server.url.replace("http", "ws") + (
        f"/api/sync/v1/connect?clientID={client}&clientGroupID=g-{client}&roomID={room}"
        f"&userID={user}&baseCookie=&ts=1&lmid=0&wsid=w-{client}"
    )
    ws = stack.enter_context(connect(url, open_timeout=5))
    assert json.loads(ws.recv(timeout=5))[0] == "connected"
    return ws


def _closed(ws: Any) -> bool:
    try:
        while True:
            frame = json.loads(ws.recv(timeout=0.5))
            assert frame[0] != "error", frame
    except ConnectionClosed:
        return True
    except TimeoutError:
        return False


def test_connections_invalidate(server: Server) -> None:
    with contextlib.ExitStack() as stack:
        _invalidate(stack, server)


def test_rooms_clients_lists_who_is_connected(server: Server) -> None:
    with contextlib.ExitStack() as stack:
        _connect(stack, server, "r1", "a", "u1")
        _connect(stack, server, "r1", "b", "u2")
        listed = json_of(server, "clients", "r1")
        assert [(c["clientID"], c["userID"]) for c in listed["clients"]] == [
            ("a", "u1"),
            ("b", "u2"),
        ]
        assert listed["live"] is True
        table = rooms(server, "clients", "r1")
        assert table.exit_code == 0
        for text in ("clientID", "u1", "u2", " UTC"):
            assert text in table.stdout
        assert "present:" in table.stderr
    result = rooms(server, "clients", "nope")
    assert 'error: HTTP 404: Room "nope" not found' in plain(result.stderr)


def _invalidate(stack: contextlib.ExitStack, server: Server) -> None:
    a = _connect(stack, server, "r1", "a", "u1")
    b = _connect(stack, server, "r2", "b", "u2")
    c = _connect(stack, server, "r2", "c", "u3")
    env = server.env()
    result = run("connections", "invalidate", "--user", "u1", env=env)
    assert result.exit_code == 0
    assert "connections invalidated" in result.stderr
    assert _closed(a) and not _closed(b) and not _closed(c)
    result = run("connections", "invalidate", "--room", "r2", "--json", env=env)
    assert json.loads(result.stdout) == {}
    assert _closed(b) and _closed(c)
    d = _connect(stack, server, "r1", "d", "u4")
    assert run("connections", "invalidate", "--all", env=env).exit_code == 0
    assert _closed(d)
    for args in ([], ["--all", "--room", "r1"], ["--room", "r1", "--user", "u"]):
        result = run("connections", "invalidate", *args, env=env)
        assert result.exit_code == 2
        assert "give exactly one of --all, --room ID, --user ID" in plain(result.stderr)


def test_rooms_as_a_program(server: Server) -> None:
    done = run_program("rooms", "create", "prog", "--json", env=server.env())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {}
    done = run_program("rooms", "list", "--json", env=server.env())
    assert json.loads(done.stdout)["results"][0]["roomID"] == "prog"
    done = run_program("rooms", "delete", "prog", env=server.env())
    assert done.returncode == 1
    assert 'Room "prog" must first be closed' in plain(done.stderr)


@pytest.mark.parametrize(
    "key", ["ключ", "tab\tkey", "line\nbreak"], ids=["cyrillic", "tab", "newline"]
)
def test_a_key_that_is_not_printable_ascii_is_one_line_of_error(key: str) -> None:
    result = run_program("rooms", "list", "--api-key", key, "--url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: the API key must be printable ASCII (as every key reflectd makes is)"
    )

"""The example app: a shared counter, a todo list, and who is here.

Serve it with ``scripts/serve`` (or ``.venv/bin/reflectd dev examples/app.py:app
--static-dir examples/web``) and open http://127.0.0.1:8080/app/ in two tabs.

Every mutator here has a JavaScript twin of the same name in ``examples/web/mutators.js``:
the browser runs that one at once (optimistically), the server runs this one, and the
server's result is what every client ends up with. Keep the two doing the same thing.

The room's data, as keys and values:

``count/<name>``
    a number (the page uses ``count/main``)
``todo/<id>``
    ``{"id": str, "text": str, "done": bool}``
``-/p/<clientID>/<field>``
    per-client presence data (``name``, ``cursor``), written only by that client and
    removed by ``on_client_disconnect`` when the client goes away. Keys under ``-/p/`` are
    Reflect's convention for presence data; the client's ``subscribeToPresence`` tells you
    which clients are connected.
"""

from __future__ import annotations

from typing import Any, TypedDict

from reflectd import App, WriteTransaction

TODO_PREFIX = "todo/"
PRESENCE_PREFIX = "-/p/"
MAX_TODO_TEXT = 500
MAX_NAME = 40


class Todo(TypedDict):
    id: str
    text: str
    done: bool


# ---------------------------------------------------------------------------- counter


def increment(tx: WriteTransaction, args: dict[str, Any]) -> None:
    """Add ``args["delta"]`` (a number) to the counter at ``args["key"]`` (0 if unset)."""
    key = _text(args, "key")
    delta = args["delta"]
    if not isinstance(delta, int | float) or isinstance(delta, bool):
        raise ValueError("delta must be a number")
    value = tx.get(key) or 0
    tx.set(key, value + delta)


# ---------------------------------------------------------------------------- todo list


def add_todo(tx: WriteTransaction, args: dict[str, Any]) -> None:
    """Add the todo ``{"id", "text"}`` (not done). The client picks the id."""
    todo_id = _text(args, "id")
    text = _text(args, "text")[:MAX_TODO_TEXT]
    todo: Todo = {"id": todo_id, "text": text, "done": False}
    tx.set(TODO_PREFIX + todo_id, todo)


def toggle_todo(tx: WriteTransaction, args: dict[str, Any]) -> None:
    """Flip the ``done`` flag of the todo ``args["id"]``; nothing if it was deleted."""
    key = TODO_PREFIX + _text(args, "id")
    todo = tx.get(key)
    if todo is None:
        return  # someone deleted it meanwhile: nothing to toggle
    tx.set(key, {**todo, "done": not todo["done"]})


def delete_todo(tx: WriteTransaction, args: dict[str, Any]) -> None:
    """Delete the todo ``args["id"]`` (nothing if it is already gone)."""
    tx.delete(TODO_PREFIX + _text(args, "id"))


def clear_completed(tx: WriteTransaction, args: Any = None) -> None:
    """Delete every todo that is done."""
    for key, todo in tx.scan(prefix=TODO_PREFIX).entries():
        if todo["done"]:
            tx.delete(key)


# ---------------------------------------------------------------------------- presence


def set_name(tx: WriteTransaction, args: dict[str, Any]) -> None:
    """Set the calling client's display name (``args["name"]``)."""
    tx.set(_presence_key(tx.client_id, "name"), _text(args, "name")[:MAX_NAME])


def set_cursor(tx: WriteTransaction, args: dict[str, Any]) -> None:
    """Set the calling client's pointer position (``{"x", "y"}``, fractions of the page)."""
    x, y = args["x"], args["y"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)):
        raise ValueError("x and y must be numbers")
    tx.set(_presence_key(tx.client_id, "cursor"), {"x": x, "y": y})


def on_client_disconnect(tx: WriteTransaction) -> None:
    """When a client disconnects, remove its presence data (``-/p/<clientID>/...``)."""
    own_keys = tx.scan(prefix=_presence_key(tx.client_id, "")).keys()
    for key in own_keys:
        tx.delete(key)


# ---------------------------------------------------------------------------- helpers


def _presence_key(client_id: str, field: str) -> str:
    return f"{PRESENCE_PREFIX}{client_id}/{field}"


def _text(args: dict[str, Any], name: str) -> str:
    """``args[name]``, which must be a non-empty string.

    A mutator that raises is skipped (its writes are dropped and the client's optimistic
    change is rolled back), so checking the arguments here keeps bad data out of the room.
    """
    value = args[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


#: The names are the client's mutator names (the keys of ``mutators`` in main.js).
app = App(
    mutators={
        "increment": increment,
        "addTodo": add_todo,
        "toggleTodo": toggle_todo,
        "deleteTodo": delete_todo,
        "clearCompleted": clear_completed,
        "setName": set_name,
        "setCursor": set_cursor,
    },
    on_client_disconnect=on_client_disconnect,
)

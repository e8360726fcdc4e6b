"""The worked example of docs/backend.md: a room per order, and the shop's backend marking an
order paid in it.

Clients add items with ``addItem``; only the backend (``tx.client_id == "$server"``, which
no client can connect as) may run ``markPaid``. Serve it with::

    reflectd serve examples/backend/orders.py:app

The room's data: ``order`` is ``{"items": [str], "paid": bool, "payment": str | None}``.
"""

from __future__ import annotations

from typing import Any

from reflectd import SERVER_CLIENT_ID, App, WriteTransaction

EMPTY_ORDER: dict[str, Any] = {"items": [], "paid": False, "payment": None}


def add_item(tx: WriteTransaction, item: str) -> None:
    order = tx.get("order") or EMPTY_ORDER
    if order["paid"]:
        raise ValueError("the order is paid: nothing can be added")
    tx.set("order", {**order, "items": [*order["items"], item]})


def mark_paid(tx: WriteTransaction, args: dict[str, Any]) -> None:
    if tx.client_id != SERVER_CLIENT_ID:
        raise PermissionError("only the shop's backend marks an order paid")
    order = tx.get("order")
    if order is None:
        raise LookupError("there is no order in this room")
    tx.set("order", {**order, "paid": True, "payment": args["payment"]})


app = App(mutators={"addItem": add_item, "markPaid": mark_paid})

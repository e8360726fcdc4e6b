"""docs/backend.md's worked example, end to end: ``reflectd serve`` with the orders app, the
shop's backend of ``examples/backend/shop.py`` beside it, an API key and a webhook endpoint
made with the CLI; a payment marks the order paid (once, however often it is retried) and the
shop receives the signed ``room.changed`` of that change."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reflectd.storage import open_store

REPO = Path(__file__).parents[2]
REFLECTD = str(Path(sys.executable).with_name("reflectd"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _reflectd(*args: str) -> str:
    """``reflectd ARGS``; its standard output's last line."""
    done = subprocess.run([REFLECTD, *args], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip().splitlines()[-1]


def _started(argv: list[str], url: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        argv, cwd=REPO, env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text()
        try:
            httpx.get(url, timeout=1)
            return process
        except httpx.HTTPError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(10)


def test_a_paid_order_is_marked_in_its_room_and_the_shop_hears_of_it(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    db = str(tmp_path / "reflectd.sqlite3")
    asyncio.run(_make(db))
    reflectd_port, shop_port = _free_port(), _free_port()
    reflectd_url, shop_url = f"http://127.0.0.1:{reflectd_port}", f"http://127.0.0.1:{shop_port}"

    # the three set-up lines of the example
    key = _reflectd("keys", "create", "shop", "-p", "rooms:write", "-p", "rooms:read", "--db", db)
    secret = _reflectd(
        "webhooks",
        "add",
        f"{shop_url}/webhooks/reflectd",
        "--event",
        "room.changed",
        "--db",
        db,
    )
    assert secret.startswith("whsec_")
    processes.append(
        _started(
            [
                REFLECTD,
                "serve",
                "examples/backend/orders.py:app",
                "--port",
                str(reflectd_port),
                "--db",
                db,
            ],
            reflectd_url,
            {"REFLECTD_WEBHOOK_CHANGED_INTERVAL_MS": "200"},
            tmp_path / "reflectd.log",
        )
    )
    processes.append(
        _started(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.backend.shop:app",
                "--port",
                str(shop_port),
            ],
            shop_url + "/events",
            {
                "REFLECTD_URL": reflectd_url,
                "REFLECTD_API_KEY": key,
                "REFLECTD_WEBHOOK_SECRET": secret,
            },
            tmp_path / "shop.log",
        )
    )
    headers = {"Authorization": f"Basic {key}"}
    order = {"items": ["a book"], "paid": False, "payment": None}
    seeded = httpx.post(
        f"{reflectd_url}/v1/apps/default/rooms:import",
        params={"roomID": "order-17"},
        json={"contents": {"order": order}},
        headers=headers,
    )
    assert seeded.status_code == 200, seeded.text

    payment = {"orderID": "17", "payment": "pay_123"}
    paid = httpx.post(f"{shop_url}/payments", json=payment, timeout=30)
    assert paid.status_code == 200, paid.text
    version = paid.json()["result"]["version"]
    # the provider calls again: applied once
    again = httpx.post(f"{shop_url}/payments", json=payment, timeout=30)
    assert again.json() == {"result": {"version": version, "replayed": True}}
    contents = httpx.get(
        f"{reflectd_url}/v1/apps/default/rooms/contents",
        params={"roomID": "order-17"},
        headers=headers,
    ).json()["result"]["contents"]
    assert contents == {"order": {"items": ["a book"], "paid": True, "payment": "pay_123"}}

    # the shop hears of it: a signed room.changed carrying the payment's version
    deadline = time.monotonic() + 15
    while True:
        events: list[dict[str, Any]] = httpx.get(f"{shop_url}/events").json()
        changed = [e for e in events if e["type"] == "room.changed"]
        if any(e["data"] == {"roomID": "order-17", "version": version} for e in changed):
            break
        assert time.monotonic() < deadline, json.dumps(events)
        time.sleep(0.1)

    # a mutator only the backend may run: a client's call is refused by the mutator itself
    refused = httpx.post(
        f"{reflectd_url}/v1/apps/default/rooms:mutate",
        params={"roomID": "order-17"},
        json={"name": "addItem", "args": "a pen"},
        headers=headers,
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["message"] == (
        'Mutator "addItem" failed: ValueError: the order is paid: nothing can be added'
    )


async def _make(db: str) -> None:
    store = await open_store(db)
    await store.close()

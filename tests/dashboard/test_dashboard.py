"""The web dashboard at /dashboard/ in a real browser (chromium via Playwright): signing in,
the rooms list, a room's live contents, the server page; with a key that may and one that may
not. Each page's screenshot goes to docs/dashboard/ (docs/dashboard.md shows them)."""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.interop.harness import NodeClients

from .conftest import ADMIN_KEY, SCREENSHOTS, Server

pytestmark = pytest.mark.browser


def sign_in(page: Page, key: str) -> None:
    page.fill("#api-key", key)
    page.click("button[type=submit]")


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def room_status(server: Server, room_id: str) -> str:
    answer: Any = server.rest("GET", "/rooms", roomID=room_id).json()
    return str(answer["result"]["results"][0]["status"])


def test_the_dashboard_is_served_with_the_app_id(server: Server) -> None:
    redirect = httpx.get(f"{server.url}/dashboard")
    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/dashboard/")
    assert "reflectd dashboard" in httpx.get(f"{server.url}/dashboard/").text
    assert httpx.get(f"{server.url}/dashboard/config.json").json() == {"appId": "default"}


def test_a_wrong_key_is_refused_with_a_clear_error(page: Page) -> None:
    sign_in(page, "not-a-key")
    expect(page.locator("#sign-in-error")).to_have_text(
        "Wrong API key: this server knows no such key."
    )
    screenshot(page, "sign-in")
    expect(page.locator("nav")).to_be_hidden()


def test_a_key_deleted_during_the_session_signs_out_with_a_clear_error(
    page: Page, server: Server
) -> None:
    name = unique("revoked")
    sign_in(page, server.create_key(name, "rooms:read"))
    expect(page.locator("#rooms")).to_be_visible()
    server.delete_key(name)
    page.click("text=Search")
    expect(page.locator("#notice")).to_contain_text("Wrong or unknown API key")
    expect(page.locator("#api-key")).to_be_visible()


def test_every_screenshot_is_shown_in_the_docs() -> None:
    shown = (SCREENSHOTS.parent / "dashboard.md").read_text()
    for name in ("sign-in", "rooms", "room", "server"):
        assert f"(dashboard/{name}.png)" in shown


def test_sign_in_lists_searches_and_pages_rooms(page: Page, server: Server) -> None:
    prefix = unique("list")
    for n in range(55):
        assert server.rest("POST", "/rooms:create", roomID=f"{prefix}-{n:02d}").status_code == 200
    for name in ("lobby", "team-a", "team-b"):
        server.rest("POST", "/rooms:create", roomID=name)
    sign_in(page, ADMIN_KEY)
    expect(page.locator("#rooms tbody tr").first).to_be_visible()

    page.fill("#room-search", "team-")
    page.click("text=Search")
    expect(page.locator("#rooms tbody tr")).to_have_count(2)
    expect(page.locator("#rooms tbody")).to_contain_text("team-a")
    expect(page.locator("#rooms thead")).to_contain_text("Created")
    created = page.locator('#rooms tr[data-room="team-a"] td').nth(2)
    expect(created).to_have_text(re.compile(r"^20\d\d-\d\d-\d\d \d\d:\d\d:\d\d$"))
    screenshot(page, "rooms")

    page.fill("#room-search", prefix)
    page.click("text=Search")
    expect(page.locator("#rooms tbody tr")).to_have_count(50)
    page.click("#next-page")
    expect(page.locator("#rooms tbody tr")).to_have_count(5)
    expect(page.locator("#rooms tbody tr").first).to_contain_text(f"{prefix}-50")
    page.click("text=← Previous")
    expect(page.locator("#rooms tbody tr")).to_have_count(50)

    page.fill("#room-search", unique("none"))
    page.click("text=Search")
    expect(page.locator("#rooms tbody")).to_contain_text("No room starts with")


def test_a_key_that_may_creates_closes_and_deletes_with_confirmation(
    page: Page, server: Server
) -> None:
    room_id = unique("doomed")
    sign_in(page, ADMIN_KEY)
    page.fill("#new-room", room_id)
    page.click("text=Create room")
    row = page.locator(f'tr[data-room="{room_id}"]')
    expect(row).to_contain_text("open")

    row.locator("text=Close").click()
    expect(page.locator("#confirm-text")).to_contain_text(room_id)
    page.click("#confirm >> text=Cancel")
    expect(row).to_contain_text("open")

    row.locator("text=Close").click()
    page.click("#confirm-ok")
    expect(row).to_contain_text("closed")
    assert room_status(server, room_id) == "closed"

    row.locator("text=Delete").click()
    page.click("#confirm-ok")
    expect(row).to_contain_text("deleted")
    assert room_status(server, room_id) == "deleted"


def test_a_read_only_key_finds_the_buttons_it_may_not_use_disabled_from_the_start(
    page: Page, server: Server
) -> None:
    room_id = unique("kept")
    server.rest("POST", "/rooms:create", roomID=room_id)
    name = unique("reader")
    sign_in(page, server.create_key(name, "rooms:read"))
    expect(page.locator("#who")).to_contain_text(f"key {name}")
    page.fill("#room-search", room_id)
    page.click("text=Search")
    row = page.locator(f'tr[data-room="{room_id}"]')
    for button in (row.locator("text=Close"), row.locator("text=Delete")):
        expect(button).to_be_disabled()
    expect(row.locator("text=Close")).to_have_attribute(
        "title", "This key lacks the permission rooms:close"
    )
    expect(page.locator("text=Create room")).to_be_disabled()
    page.click(f"a >> text={room_id}")
    expect(page.locator("text=Invalidate the room's connections")).to_be_disabled()
    expect(page.locator("#clients")).to_contain_text("No client is connected.")
    assert room_status(server, room_id) == "open"


def test_a_permission_taken_away_during_the_session_is_told_and_disables_its_buttons(
    page: Page, server: Server
) -> None:
    room_id = unique("kept")
    server.rest("POST", "/rooms:create", roomID=room_id)
    name = unique("closer")
    sign_in(page, server.create_key(name, "rooms:read", "rooms:close"))
    page.fill("#room-search", room_id)
    page.click("text=Search")
    row = page.locator(f'tr[data-room="{room_id}"]')
    expect(row.locator("text=Close")).to_be_enabled()
    server.edit_key(name, "rooms:read")
    row.locator("text=Close").click()
    page.click("#confirm-ok")
    expect(page.locator("#notice")).to_contain_text("lacks the permission rooms:close")
    expect(row.locator("text=Close")).to_be_disabled()
    assert room_status(server, room_id) == "open"


def test_a_key_that_may_not_list_rooms_is_told_so(page: Page, server: Server) -> None:
    sign_in(page, server.create_key(unique("logs-only"), "logs:read"))
    expect(page.locator("#rooms")).to_contain_text("This key may not list rooms")


def test_a_room_shows_its_contents_live_while_a_reflect_client_writes(
    page: Page, server: Server, clients: NodeClients
) -> None:
    room_id = unique("live")
    alice = clients.open("c1", server=server.url, room_id=room_id, user_id="alice")["clientID"]
    bob = clients.open("c2", server=server.url, room_id=room_id, user_id="bob")["clientID"]
    clients.mutate("c1", "setKey", {"key": "todo/1", "value": {"title": "Ship it", "done": False}})
    clients.mutate("c1", "increment", {"key": "count", "delta": 1})
    sign_in(page, ADMIN_KEY)
    expect(page.locator("#rooms")).to_be_visible()
    page.fill("#room-search", room_id)
    page.click("text=Search")
    page.click(f"a >> text={room_id}")
    count = page.locator('[data-path="/count"]')
    expect(count).to_have_text('"count": 1')
    page.click('[data-path="/todo/1"] > summary')
    expect(page.locator('[data-path="/todo/1/title"]')).to_have_text('"title": "Ship it"')

    # the clients connected now, and the room's presence
    rows = page.locator("#clients tbody tr")
    expect(rows).to_have_count(2)
    alice_row = page.locator(f'#clients tr[data-client="{alice}"]')
    expect(alice_row).to_contain_text("alice")
    expect(alice_row.locator("td").nth(3)).to_have_text("2")
    expect(alice_row.locator("td").nth(2)).to_have_text(re.compile(r"^20\d\d-\d\d-\d\d "))
    expect(page.locator(f'#clients tr[data-client="{bob}"]')).to_contain_text("bob")
    expect(page.locator("#presence code")).to_have_count(2)
    expect(page.locator("#presence")).to_contain_text(alice)
    expect(page.locator("#room-created")).to_contain_text("created 20")

    clients.mutate("c1", "increment", {"key": "count", "delta": 41})
    expect(count).to_have_text('"count": 42')
    expect(count.locator(".changed")).to_be_visible()
    expect(alice_row.locator("td").nth(3)).to_have_text("3")  # live, like the contents
    # the opened branch stays open across refreshes
    expect(page.locator('[data-path="/todo/1/title"]')).to_be_visible()
    expect(page.locator("#room-status")).to_contain_text("open")
    screenshot(page, "room")

    clients.close("c2")
    expect(rows).to_have_count(1)
    expect(page.locator("#presence code")).to_have_count(1)
    alice_row.locator("text=Invalidate user").click()
    expect(page.locator("#notice")).to_contain_text('Closed the connections of user "alice"')
    clients.mutate("c1", "increment", {"key": "count", "delta": 1})  # it reconnected
    expect(count).to_have_text('"count": 43')

    page.click("text=Invalidate the room's connections")
    expect(page.locator("#notice")).to_contain_text("clients reconnect at once")
    clients.mutate("c1", "increment", {"key": "count", "delta": 1})  # it reconnected
    expect(count).to_have_text('"count": 44')


def test_the_server_page_charts_metrics_and_follows_the_log(
    page: Page, server: Server, clients: NodeClients
) -> None:
    clients.open("writer", server=server.url, room_id=unique("busy"), user_id="bob")
    sign_in(page, ADMIN_KEY)
    page.click("nav >> text=Server")
    expect(page.locator("#log-note")).to_contain_text("Following")
    server.rest("POST", "/rooms:create", roomID=unique("logged"))
    expect(page.locator("#log")).to_contain_text("REST call")
    expect(page.locator("#metrics-note")).to_contain_text("From /metrics")
    expect(page.locator("#metric-connections")).to_have_text(re.compile(r"^[1-9]"))
    for n in range(30):  # a few seconds of mutations on the charts
        clients.mutate("writer", "increment", {"key": "count", "delta": 1})
        page.wait_for_timeout(100 + 10 * n)
    expect(page.locator("#metric-mutations")).to_have_text(re.compile(r"^([1-9]|0\.\d*[1-9])"))
    screenshot(page, "server")


def test_the_server_page_without_logs_read_says_so(page: Page, server: Server) -> None:
    sign_in(page, server.create_key(unique("rooms-only"), "rooms:read"))
    page.click("nav >> text=Server")
    expect(page.locator("#log-note")).to_contain_text("lacks the permission logs:read")


#: rooms the last test adds to the server's database (it runs last: the others see none)
MANY_ROOMS = 100_000


def test_the_rooms_list_pages_and_searches_100000_rooms_quickly(page: Page, server: Server) -> None:
    with sqlite3.connect(server.db, timeout=10) as db:  # beside the running server (WAL)
        db.executemany(
            "INSERT INTO rooms (room_id, jurisdiction, status, created_ms)"
            " VALUES (?, '', 'open', ?)",
            ((f"many-{n:06d}", 1_765_000_000_000 + n) for n in range(MANY_ROOMS)),
        )
    sign_in(page, ADMIN_KEY)
    expect(page.locator("#rooms tbody tr")).to_have_count(50)
    started = time.monotonic()
    page.fill("#room-search", "many-0421")
    page.click("text=Search")
    expect(page.locator("#rooms tbody tr").first).to_contain_text("many-042100")
    expect(page.locator("#rooms tbody tr")).to_have_count(50)
    page.click("#next-page")
    expect(page.locator("#rooms tbody tr").first).to_contain_text("many-042150")
    expect(page.locator("#rooms tbody tr")).to_have_count(50)
    expect(page.locator("#rooms tbody tr").last).to_contain_text("many-042199")
    expect(page.locator("#next-page")).to_be_disabled()  # the prefix ends there
    page.fill("#room-search", "many-099999")
    page.click("text=Search")
    expect(page.locator("#rooms tbody tr")).to_have_count(1)
    assert time.monotonic() - started < 10, "searching and paging 100,000 rooms took long"

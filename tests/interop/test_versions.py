"""The basic scenarios against every published client from 0.36 to 0.39 (the version matrix).

Real apps pin older clients. Each version in tests/interop/versions/package.json gets its own
driver (``REFLECT_CLIENT=<alias>``) and runs sync, reconnect, presence and auth against the
shared server; then one room holds a client of every version at once through a server restart.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import VERSIONS_DIR, NodeClients, ServerProcess, client_versions

pytestmark = pytest.mark.interop

VERSIONS = client_versions()


@pytest.fixture(params=list(VERSIONS), ids=list(VERSIONS.values()))
def versioned(
    request: pytest.FixtureRequest, versions_ready: dict[str, str], tmp_path: Path
) -> Iterator[NodeClients]:
    """A driver holding clients of one published version."""
    alias = request.param
    driver = NodeClients(log_path=tmp_path / "driver.log", client=alias)
    try:
        loaded = driver.hello()["reflect"]
        assert loaded.split("+")[0] == VERSIONS[alias], f"{alias} loaded {loaded}"
        yield driver
    finally:
        driver.stop()


def _open(clients: NodeClients, server: ServerProcess, name: str, room: str, user: str) -> str:
    return str(
        clients.open(name, server=server.url, room_id=room, user_id=user, auth=user)["clientID"]
    )


def _wait_pushed(clients: NodeClients, name: str, pushes: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while clients.state(name, levels=())["wire"]["pushes"] < pushes:
        assert time.monotonic() < deadline, f"{name} did not push its mutations"
        time.sleep(0.005)


def test_client_syncs_values_and_concurrent_increments_both_ways(
    versioned: NodeClients, server: ServerProcess, room: str
) -> None:
    clients = versioned
    _open(clients, server, "a", room, "alice")
    _open(clients, server, "b", room, "bob")
    value = {"text": "héllo 🎉", "list": [1, 2.5, None, {"deep": [True]}], "empty": {}}

    clients.mutate("a", "setKey", {"key": "doc", "value": value})
    clients.wait_for("b", "doc", value)
    NodeClients.gather(
        clients.mutate_async(name, "increment", {"key": "n", "delta": 1})
        for _ in range(10)
        for name in ("a", "b")
    )
    for name in ("a", "b"):
        clients.wait_for(name, "n", 20)
    clients.mutate("b", "delKey", {"key": "doc"})
    clients.wait_for("a", "doc", absent=True)
    assert clients.scan("a") == clients.scan("b") == {"n": 20}

    first = clients.state("a", levels=())["wire"]["connects"][0]
    assert (first["baseCookie"], first["lmid"]) == ("", "0")
    clients.assert_healthy()


def test_client_reconnects_after_losing_its_connection_and_its_mutations_apply_once(
    versioned: NodeClients, server: ServerProcess, room: str
) -> None:
    clients = versioned
    _open(clients, server, "a", room, "alice")
    _open(clients, server, "b", room, "bob")
    clients.mutate("a", "setKey", {"key": "k", "value": "before"})
    clients.wait_for("b", "k", "before")

    # sent, perhaps not yet confirmed, when the connection goes
    pushes = clients.state("a", levels=())["wire"]["pushes"]
    in_flight = [clients.mutate_async("a", "increment", {"key": "n", "delta": 1}) for _ in range(5)]
    _wait_pushed(clients, "a", pushes + 5)
    clients.drop_connection("a")
    clients.mutate("b", "setKey", {"key": "k", "value": "while-away"})

    clients.wait_online("a", connected=2)
    # unconfirmed mutations go again with the next push, i.e. with the next mutation
    clients.mutate("a", "appendToList", {"key": "log", "item": "after"})
    NodeClients.gather(in_flight, timeout=40)
    expected = {"k": "while-away", "n": 5, "log": ["after"]}
    for name in ("a", "b"):
        clients.wait_for(name, "n", 5)
        clients.wait_for(name, "k", "while-away")
        clients.wait_for(name, "log", ["after"])
    assert clients.scan("a") == clients.scan("b") == expected

    wire = clients.state("a", levels=())["wire"]
    assert wire["connects"][-1]["baseCookie"] != "", "it reconnects with its cookie"
    assert wire["errors"] == []
    clients.assert_healthy()


def test_client_sees_others_arrive_and_leave_in_presence(
    versioned: NodeClients, server: ServerProcess, room: str
) -> None:
    clients = versioned
    a = _open(clients, server, "a", room, "alice")
    clients.wait_presence("a", [a])
    b = _open(clients, server, "b", room, "bob")
    c = _open(clients, server, "c", room, "carol")
    _open(clients, server, "elsewhere", f"{room}-other", "dave")
    for name in ("a", "b", "c"):
        clients.wait_presence(name, [a, b, c])

    clients.close("b")
    clients.wait_presence("a", [a, c])
    clients.wait_presence("c", [a, c])

    # a client that loses its connection comes back into presence
    clients.drop_connection("c")
    clients.wait_online("c", connected=2)
    clients.mutate("c", "setKey", {"key": "back", "value": True})
    clients.wait_for("a", "back", True)
    clients.wait_presence("a", [a, c])
    clients.wait_presence("c", [a, c])
    clients.assert_healthy()


def test_client_is_admitted_with_a_good_token_and_sees_why_bad_ones_are_refused(
    versioned: NodeClients, server: ServerProcess, room: str
) -> None:
    clients = versioned
    good = _open(clients, server, "good", room, "bob")
    assert clients.state("good", levels=())["wire"]["connects"][0]["withAuth"]

    refusals = {
        "refused": ("reject-me", "reject-me", "Unauthorized", "no authData"),
        "other-user": (
            "alice",
            "mallory",
            "Unauthorized",
            "userID returned by authHandler must match userID specified in Reflect constructor.",
        ),
        "no-token": ("alice", None, "InvalidConnectionRequest", "auth required"),
    }
    for name, (user, token, _, _) in refusals.items():
        clients.open(
            name, server=server.url, room_id=room, user_id=user, auth=token, wait_online=False
        )
    deadline = time.monotonic() + 15
    for name, (_, _, kind, message) in refusals.items():
        while not (errors := clients.state(name, levels=())["wire"]["errors"]):
            assert time.monotonic() < deadline, f"{name}: the refused client got no error frame"
            time.sleep(0.05)
        assert (errors[0]["kind"], errors[0]["message"]) == (kind, message), name
        state = clients.state(name, levels=("info", "error"))
        assert not state["online"] and state["pokesApplied"] == 0, name
        assert any(f"{kind}: {message}" in line["text"] for line in state["logs"]), state["logs"]

    clients.mutate("good", "setKey", {"key": "k", "value": "ok"})
    assert clients.presence("good") == [good]
    for name in refusals:
        clients.close(name)
    clients.assert_healthy()


def test_clients_of_every_version_share_a_room_and_resume_after_a_server_restart(
    versions_ready: dict[str, str], start_server, room: str, tmp_path: Path, record_timing
) -> None:
    server = start_server()
    with contextlib.ExitStack() as stack:
        drivers: dict[str, NodeClients] = {}
        for alias in versions_ready:
            drivers[alias] = NodeClients(log_path=tmp_path / f"driver-{alias}.log", client=alias)
            stack.callback(drivers[alias].stop)
        opened = NodeClients.gather(
            driver.submit(
                "open", name="c", server=server.url, roomID=room, userID=f"u{i}", auth=f"u{i}"
            )
            for i, driver in enumerate(drivers.values())
        )
        everyone = sorted(result["clientID"] for result in opened)
        NodeClients.gather(
            driver.mutate_async("c", "setKey", {"key": f"by/{alias}", "value": alias})
            for alias, driver in drivers.items()
        )
        written = {f"by/{alias}": alias for alias in drivers}
        for driver in drivers.values():
            driver.wait_presence("c", everyone)
            for key, value in written.items():
                driver.wait_for("c", key, value)

        # one increment each in flight when the server goes down
        pushes = {alias: d.state("c", levels=())["wire"]["pushes"] for alias, d in drivers.items()}
        in_flight = [
            driver.mutate_async("c", "increment", {"key": "n", "delta": 1}, timeout=60)
            for driver in drivers.values()
        ]
        for alias, driver in drivers.items():
            _wait_pushed(driver, "c", pushes[alias] + 1)
        started = time.monotonic()
        server.restart(signal.SIGTERM)
        NodeClients.gather(
            (
                driver.submit("waitOnline", name="c", online=True, connected=2, timeout=40_000)
                for driver in drivers.values()
            ),
            timeout=50,
        )
        reconnected = time.monotonic() - started

        NodeClients.gather(
            driver.mutate_async("c", "appendToList", {"key": "log", "item": alias})
            for alias, driver in drivers.items()
        )
        NodeClients.gather(in_flight, timeout=70)
        # every append is confirmed; the order is the server's, the same for everyone
        first = next(iter(drivers.values()))
        deadline = time.monotonic() + 15
        while len(log := first.get("c", "log") or []) < len(drivers):
            assert time.monotonic() < deadline, f"the log has only {log}"
            time.sleep(0.05)
        for driver in drivers.values():
            driver.wait_for("c", "log", log)
            driver.wait_for("c", "n", len(drivers), timeout=30)
            driver.wait_presence("c", everyone)
        scans = [driver.scan("c") for driver in drivers.values()]
        assert all(scan == scans[0] for scan in scans)
        assert sorted(scans[0].pop("log")) == sorted(drivers)
        assert scans[0] == {**written, "n": len(drivers)}
        for driver in drivers.values():
            assert driver.state("c", levels=())["wire"]["connects"][-1]["baseCookie"] != ""
            driver.assert_healthy()
    record_timing(
        f"{len(versions_ready)} client versions in one room: all reconnected "
        f"{reconnected:.1f} s after a SIGTERM restart"
    )


def test_matrix_lists_only_published_versions_installed_side_by_side() -> None:
    assert VERSIONS, "tests/interop/versions/package.json lists no client"
    for alias, version in VERSIONS.items():
        assert alias == f"reflect-{version}", f"alias {alias} should name its version"
    lock = (VERSIONS_DIR / "package-lock.json").read_text()
    for alias in VERSIONS:
        assert f'"node_modules/{alias}"' in lock, f"{alias} is missing from the lock file"

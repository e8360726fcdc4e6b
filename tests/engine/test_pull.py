"""Pull: mutation recovery of another client group."""

from __future__ import annotations

from .harness import RoomDriver, mutation


def _room_with_recovered_group() -> RoomDriver:
    """Client "now" (group "new") recovered clients "x" and "y" of group "old"."""
    driver = RoomDriver()
    driver.connect("now", group="new")
    driver.push("now", mutation(1, client_id="x"), group="old")  # version 1
    driver.push("now", mutation(1, client_id="y"), mutation(2, client_id="y"), group="old")
    driver.push("now", 1)  # version 4, group "new"
    driver.turn()
    return driver


def test_pull_answers_the_room_version_and_the_groups_last_mutation_ids() -> None:
    driver = _room_with_recovered_group()
    body = driver.pull("now", group="old", cookie=None, request_id="req-7")
    assert body == {"cookie": 4, "requestID": "req-7", "lastMutationIDChanges": {"x": 1, "y": 2}}


def test_pull_from_a_cookie_lists_only_ids_changed_after_it() -> None:
    driver = _room_with_recovered_group()
    assert driver.pull("now", group="old", cookie=1)["lastMutationIDChanges"] == {"y": 2}
    assert driver.pull("now", group="old", cookie=3)["lastMutationIDChanges"] == {}


def test_pull_for_an_unknown_group_lists_nothing() -> None:
    driver = _room_with_recovered_group()
    assert driver.pull("now", group="other", cookie=None)["lastMutationIDChanges"] == {}


def test_pull_skips_clients_with_no_applied_mutation() -> None:
    driver = RoomDriver()
    driver.connect("a", group="g")
    driver.connect("b", group="g")
    driver.push("a", 1)
    driver.turn()
    assert driver.pull("b", group="g", cookie=None)["lastMutationIDChanges"] == {"a": 1}


def test_pull_of_a_room_without_version_answers_cookie_zero() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    assert driver.pull("c1", group="g", cookie=None) == {
        "cookie": 0,
        "requestID": "pull-1",
        "lastMutationIDChanges": {},
    }


def test_pull_changes_nothing_and_sends_no_poke() -> None:
    driver = _room_with_recovered_group()
    before = driver.observe()
    driver.pull("now", group="old", cookie=None)
    assert driver.observe() == before
    assert driver.turn() == {}

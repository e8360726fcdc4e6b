"""Client GC: clients gone for 14 days are deleted inside a turn."""

from __future__ import annotations

from reflectd.engine.handlers import EngineSettings
from reflectd.engine.records import ClientRecord, RoomSnapshot
from reflectd.engine.transaction import WriteTransaction
from reflectd.errors import InvalidConnectionRequestLastMutationID

from .harness import DAY_MS, START_MS, RoomDriver, delete, poke, set_key

GC_AGE_MS = 14 * DAY_MS


def _room_with_departed_client(**kwargs: object) -> RoomDriver:
    """ "old" wrote per-client and shared keys, then left at START_MS; "c1" stays."""
    driver = RoomDriver(**kwargs)  # type: ignore[arg-type]
    driver.connect("c1")
    driver.connect("old")
    driver.push(
        "old",
        set_key(1, "-/p/old/cursor", 1),
        set_key(2, "-/p/old/deep/x", 2),
        set_key(3, "shared", 3),
    )
    driver.push("c1", set_key(1, "-/p/c1/cursor", 4))
    driver.turn()
    driver.disconnect("old")
    driver.turn()
    return driver


def test_gc_max_age_is_fourteen_days_and_interval_ten_seconds_by_default() -> None:
    assert EngineSettings().client_gc_max_age_ms == 1_209_600_000
    assert EngineSettings().client_gc_interval_ms == 10_000


def test_client_gone_for_fourteen_days_is_deleted_with_its_per_client_keys() -> None:
    deleted: list[tuple[str, int, object]] = []

    def on_delete(tx: WriteTransaction) -> None:
        deleted.append((tx.client_id, tx.mutation_id, tx.auth))
        tx.set(f"farewell/{tx.client_id}", 1)

    driver = _room_with_departed_client(on_client_delete=on_delete)
    version = driver.room.state.version
    assert version == 5
    driver.advance(GC_AGE_MS)
    driver.push("c1", 2)  # a turn runs only when there is work

    frames = driver.turn()

    assert deleted == [("old", -1, None)]
    assert "old" not in driver.room.state.clients
    assert "old" not in driver.durable.clients
    assert frames.pokes("c1")[-1] == poke(
        6,
        7,
        patch=[put_farewell("old"), delete("-/p/old/cursor"), delete("-/p/old/deep/x")],
    )
    assert driver.live_data() == {"shared": 3, "-/p/c1/cursor": 4, "farewell/old": 1}
    assert driver.room.state.entries["-/p/old/cursor"].version == 7


def put_farewell(client_id: str) -> dict[str, object]:
    return {"op": "put", "key": f"farewell/{client_id}", "value": 1}


def test_client_gone_for_a_millisecond_less_than_fourteen_days_is_kept() -> None:
    driver = _room_with_departed_client()
    driver.advance(GC_AGE_MS - 1)
    driver.push("c1", 2)
    driver.turn()
    assert "old" in driver.room.state.clients


def test_gc_without_delete_handler_or_per_client_keys_still_bumps_the_version() -> None:
    driver = RoomDriver()
    driver.connect("c1")
    driver.connect("old")
    driver.turn()
    driver.disconnect("old")
    driver.turn()  # version 1
    driver.advance(GC_AGE_MS)
    driver.connect("c2")

    frames = driver.turn()

    assert "old" not in driver.room.state.clients
    assert [(p["baseCookie"], p["cookie"]) for p in frames.pokes("c1")] == [(1, 2)]
    assert frames.pokes("c2")[0]["baseCookie"] is None


def test_gc_never_deletes_connected_clients_or_clients_with_queued_mutations() -> None:
    driver = RoomDriver(settings=EngineSettings(max_mutations_per_turn=1))
    driver.connect("idle")
    driver.connect("busy")
    driver.turn()
    driver.push("busy", 1, 2, 3)
    driver.disconnect("busy")
    driver.advance(GC_AGE_MS * 2)

    driver.turn()

    assert {"idle", "busy"} <= driver.room.state.clients.keys()


def test_gc_runs_at_most_once_per_interval() -> None:
    driver = RoomDriver(settings=EngineSettings(client_gc_interval_ms=10_000))
    driver.connect("c1")
    driver.connect("old")
    driver.turn()
    driver.disconnect("old")
    driver.turn()  # "old" left at START_MS
    driver.advance(GC_AGE_MS - 5_000)
    driver.push("c1", 1)
    driver.turn()  # GC ran: 5 s too early for "old"

    driver.advance(5_000)
    driver.push("c1", 2)
    driver.turn()
    assert "old" in driver.room.state.clients, "GC ran less than 10 s ago"

    driver.advance(5_000)
    driver.push("c1", 3)
    driver.turn()
    assert "old" not in driver.room.state.clients


def test_records_without_last_seen_are_fixed_up_to_now_and_kept() -> None:
    snapshot = RoomSnapshot(
        version=3,
        clients={
            "ancient": ClientRecord(
                client_group_id="g",
                base_cookie=3,
                last_mutation_id=2,
                last_mutation_id_version=3,
                last_seen_ms=None,
                user_id=None,
            )
        },
    )
    driver = RoomDriver(snapshot=snapshot)
    driver.connect("c1")
    driver.turn()

    assert driver.room.state.clients["ancient"].last_seen_ms == START_MS
    assert driver.durable.clients["ancient"].last_seen_ms == START_MS


def test_collected_client_reconnecting_with_its_lmid_gets_the_server_ahead_error() -> None:
    driver = _room_with_departed_client()
    driver.advance(GC_AGE_MS)
    driver.push("c1", 2)
    driver.turn()

    driver.assert_rejected(InvalidConnectionRequestLastMutationID, lambda: driver.connect("old"))

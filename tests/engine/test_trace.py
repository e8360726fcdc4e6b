"""A minimal end-to-end trace of the original server (connect, push, poke), frame by frame,
byte for byte."""

from __future__ import annotations

from typing import Any

from reflectd.engine.transaction import WriteTransaction

from .harness import START_MS, RoomDriver, mutation


def _set_x(tx: WriteTransaction, args: Any) -> None:
    tx.set("x", args["v"])


def test_appendix_a_trace_in_a_fresh_room() -> None:
    driver = RoomDriver(
        mutators={"setX": _set_x},
        on_client_disconnect=lambda tx: tx.set(f"left/{tx.client_id}", True),
    )
    t = START_MS

    # 3. the client record is written and "connected" is sent
    c1 = driver.connect("c1", group="g1", user="u1", wsid="w1")
    assert c1.raw_frames == [b'["connected",{"wsid":"w1","timestamp":%d}]' % t]

    # 4. the first turn: version 0, fast-forward from null with the initial presence
    driver.turn()
    assert c1.raw_frames[-1] == (
        b'["poke",{"requestID":"turn-1","pokes":[{"baseCookie":null,"cookie":0,'
        b'"lastMutationIDChanges":{},"patch":[],'
        b'"presence":[{"op":"clear"},{"op":"put","key":"c1","value":1}]}]}]'
    )
    assert driver.room.state.clients["c1"].base_cookie == 0

    # 5-6. a push: the mutation runs at version 1 and confirms itself
    driver.advance(100)
    driver.push("c1", mutation(1, "setX", {"v": 1}))
    driver.turn()
    assert c1.raw_frames[-1] == (
        b'["poke",{"requestID":"turn-2","pokes":[{"baseCookie":0,"cookie":1,'
        b'"lastMutationIDChanges":{"c1":1},"patch":[{"op":"put","key":"x","value":1}],'
        b'"presence":[],"timestamp":%d}]}]' % (t + 100)
    )
    entry = driver.room.state.entries["x"]
    assert (entry.version, entry.deleted, entry.value) == (1, False, b"1")
    record = driver.room.state.clients["c1"]
    assert (record.last_mutation_id, record.last_mutation_id_version) == (1, 1)

    # 7. a second client: fast-forward null -> 1, then a presence bump to 2 for both
    c2 = driver.connect("c2", group="g2", user="u2", wsid="w2")
    driver.turn()
    assert c2.raw_frames[-1] == (
        b'["poke",{"requestID":"turn-3","pokes":['
        b'{"baseCookie":null,"cookie":1,"lastMutationIDChanges":{},'
        b'"patch":[{"op":"put","key":"x","value":1}],"presence":[{"op":"clear"},'
        b'{"op":"put","key":"c1","value":1},{"op":"put","key":"c2","value":1}]},'
        b'{"baseCookie":1,"cookie":2,"lastMutationIDChanges":{},"patch":[],"presence":[]}]}]'
    )
    assert c1.raw_frames[-1] == (
        b'["poke",{"requestID":"turn-3","pokes":[{"baseCookie":1,"cookie":2,'
        b'"lastMutationIDChanges":{},"patch":[],'
        b'"presence":[{"op":"put","key":"c2","value":1}]}]}]'
    )

    # 8. c2 leaves: the disconnect handler runs at version 3
    driver.disconnect("c2")
    driver.turn()
    assert c1.raw_frames[-1] == (
        b'["poke",{"requestID":"turn-4","pokes":[{"baseCookie":2,"cookie":3,'
        b'"lastMutationIDChanges":{},"patch":[{"op":"put","key":"left/c2","value":true}],'
        b'"presence":[{"op":"del","key":"c2"}]}]}]'
    )
    assert c1.presence == {"c1"}
    assert c1.data == {"x": 1, "left/c2": True}

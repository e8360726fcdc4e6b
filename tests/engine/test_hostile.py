"""Random sequences of connects, pushes (valid, duplicate, with gaps, forged, on dead sockets,
malformed), disconnects, close beacons, restarts and turns against one room.

Every invalid call must raise its protocol error and change nothing (``assert_rejected``);
every client must stay consistent with the room through it all: the driver checks each frame
against the client's strict schemas, each poke's base cookie against the client's cookie, and
after each turn that every connected client holds the room's data, presence and ids.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from reflectd.engine.handlers import EngineSettings
from reflectd.engine.transaction import WriteTransaction
from reflectd.errors import (
    ClientNotFound,
    InvalidConnectionRequest,
    InvalidConnectionRequestBaseCookie,
    InvalidConnectionRequestLastMutationID,
    InvalidMessage,
    InvalidPush,
)
from reflectd.protocol.codec import parse_upstream

from .harness import DAY_MS, ClientModel, Mut, RoomDriver, compare_cookies, mutation

#: clientID -> client group: a1 and a2 are two tabs of one group
CLIENTS = {"a1": "gA", "a2": "gA", "b1": "gB", "c1": "gC"}
KEYS = ["x", "y", "-/p/a1/cursor", "-/p/b1/cursor", "-/p/c1/z"]

_clients = st.sampled_from(sorted(CLIENTS))
_operation = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(KEYS), st.integers(-5, 5) | st.text(max_size=3)),
    st.tuples(st.just("del"), st.sampled_from(KEYS)),
    st.tuples(st.just("increment"), st.sampled_from(KEYS[:2])),
    st.tuples(st.sampled_from(["fail", "noSuchMutator", "noop"])),
)


def _mutation(id: int, operation: tuple[Any, ...]) -> Mut:
    name, *rest = operation
    if name == "set":
        return mutation(id, "set", {"key": rest[0], "value": rest[1]})
    if name in ("del", "increment"):
        return mutation(id, name, {"key": rest[0]})
    return mutation(id, name)


def _on_disconnect(tx: WriteTransaction) -> None:
    if tx.client_id == "c1":
        raise RuntimeError("c1's disconnect handler always fails")
    tx.set(f"-/p/{tx.client_id}/left", True)


def _on_delete(tx: WriteTransaction) -> None:
    tx.set("deleted", (tx.get("deleted") or 0) + 1)


class HostileRoom(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.driver = RoomDriver(
            on_client_disconnect=_on_disconnect,
            on_client_delete=_on_delete,
            room_start_handler=lambda tx, room_id: tx.set("starts", (tx.get("starts") or 0) + 1),
            settings=EngineSettings(max_mutations_per_turn=4, client_gc_interval_ms=1_000),
        )
        #: the last socket of each client, to send on once it is dead
        self.last_connection: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers

    def model(self, client_id: str) -> ClientModel | None:
        return self.driver.clients.get(client_id)

    def is_open(self, client_id: str) -> bool:
        model = self.model(client_id)
        return model is not None and model.is_open

    # ------------------------------------------------------------------ connections

    @rule(client_id=_clients)
    def connect(self, client_id: str) -> None:
        driver, model = self.driver, self.model(client_id)
        record = driver.room.state.clients.get(client_id)
        if model is not None and model.lmid > (record.last_mutation_id if record else 0):
            # the room deleted the client (GC or close beacon): it says the client is ahead,
            # and the client drops its database and reloads as a new client
            driver.assert_rejected(
                InvalidConnectionRequestLastMutationID, lambda: driver.connect(client_id)
            )
            del driver.clients[client_id]
        model = driver.connect(client_id, group=CLIENTS[client_id])
        assert model.connection_id is not None
        self.last_connection[client_id] = model.connection_id
        pending = range(model.lmid + 1, model.pushed_id + 1)
        if pending:  # the client re-sends every pending mutation after connecting
            driver.push(client_id, *pending)

    @rule(client_id=_clients, kind=st.sampled_from(["lmid", "cookie", "group", "user"]))
    def connect_invalid(self, client_id: str, kind: str) -> None:
        driver, model = self.driver, self.model(client_id)
        record = driver.room.state.clients.get(client_id)
        if kind == "lmid":
            lmid = (record.last_mutation_id if record else 0) + 1
            driver.assert_rejected(
                InvalidConnectionRequestLastMutationID,
                lambda: driver.connect(client_id, group=CLIENTS[client_id], lmid=lmid),
            )
        elif kind == "cookie":
            version = driver.room.state.version
            cookie = 0 if version is None else version + 1
            lmid = min(model.lmid if model else 0, record.last_mutation_id if record else 0)
            driver.assert_rejected(
                InvalidConnectionRequestBaseCookie,
                lambda: driver.connect(
                    client_id, group=CLIENTS[client_id], base_cookie=cookie, lmid=lmid
                ),
            )
        elif record is not None:
            group, user = ("gX", None) if kind == "group" else (None, "mallory")
            driver.assert_rejected(
                InvalidConnectionRequest,
                lambda: driver.connect(client_id, group=group or CLIENTS[client_id], user=user),
            )

    @precondition(lambda self: any(m.is_open for m in self.driver.clients.values()))
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        open_clients = sorted(c for c, m in self.driver.clients.items() if m.is_open)
        self.driver.disconnect(data.draw(st.sampled_from(open_clients)))

    # ------------------------------------------------------------------ pushes

    @rule(client_id=_clients, operations=st.lists(_operation, min_size=1, max_size=3))
    def push_new(self, client_id: str, operations: list[tuple[Any, ...]]) -> None:
        model = self.model(client_id)
        if model is None or not model.is_open:
            return
        first = model.pushed_id + 1
        self.driver.push(client_id, *(_mutation(first + i, op) for i, op in enumerate(operations)))

    @rule(client_id=_clients)
    def push_duplicates(self, client_id: str) -> None:
        model = self.model(client_id)
        if model is None or not model.is_open or model.pushed_id == 0:
            return
        self.driver.push(client_id, *range(1, model.pushed_id + 1))

    @rule(client_id=_clients, valid_first=st.booleans())
    def push_with_gap(self, client_id: str, valid_first: bool) -> None:
        model = self.model(client_id)
        if model is None or not model.is_open:
            return
        next_id = model.pushed_id + 1
        mutations = [next_id, next_id + 2] if valid_first else [next_id + 1]
        self.driver.assert_rejected(
            InvalidPush,
            lambda: self.driver.push(client_id, *mutations),
            match="unexpected mutation id",
        )

    @rule(client_id=_clients, victim=_clients)
    def push_forged(self, client_id: str, victim: str) -> None:
        driver = self.driver
        if not self.is_open(client_id) or CLIENTS[victim] == CLIENTS[client_id]:
            return
        known = victim in driver.room.state.clients or any(
            m.client_id == victim for m in driver.room.queue
        )
        if not known:
            return
        driver.assert_rejected(
            InvalidPush,
            lambda: driver.push(
                client_id, mutation(1, "set", {"key": "x", "value": "forged"}, client_id=victim)
            ),
            match="belongs to clientGroupID",
        )

    @rule(client_id=_clients)
    def push_in_another_group(self, client_id: str) -> None:
        model = self.model(client_id)
        if model is None or not model.is_open:
            return
        self.driver.assert_rejected(
            InvalidPush, lambda: self.driver.push(client_id, model.pushed_id + 1, group="gX")
        )

    @rule(client_id=_clients)
    def push_on_a_dead_socket(self, client_id: str) -> None:
        model, connection_id = self.model(client_id), self.last_connection.get(client_id)
        if model is None or connection_id is None or model.connection_id == connection_id:
            return
        self.driver.assert_rejected(
            ClientNotFound,
            lambda: self.driver.push(client_id, model.pushed_id + 1, connection_id=connection_id),
        )

    @rule(client_id=_clients, frame=st.binary(max_size=40) | st.text(max_size=40))
    def push_garbage(self, client_id: str, frame: bytes | str) -> None:
        if not self.is_open(client_id):
            return
        try:
            parse_upstream(frame)
        except InvalidMessage:
            self.driver.assert_rejected(
                InvalidMessage, lambda: self.driver.push_frame(client_id, frame)
            )

    # ------------------------------------------------------------------ other messages

    @rule(
        client_id=_clients,
        group=st.sampled_from(sorted(set(CLIENTS.values()))),
        # a negative cookie never reaches the room: the codec refuses it (InvalidMessage)
        cookie=st.none() | st.integers(0, 30),
    )
    def pull(self, client_id: str, group: str, cookie: int | None) -> None:
        if self.is_open(client_id):
            body = self.driver.pull(client_id, group=group, cookie=cookie)
            assert body["cookie"] == (self.driver.room.state.version or 0)

    @rule(client_id=_clients, offset=st.sampled_from([0, 0, -1, 1]))
    def close_beacon(self, client_id: str, offset: int) -> None:
        """The client's beacon carries its last created id; hostile ones are off by one."""
        model = self.model(client_id)
        if model is None or model.pushed_id + offset < 0:
            return
        if offset < 0 and self.driver.room.state.clients.get(client_id) is not None:
            record = self.driver.room.state.clients[client_id]
            if model.pushed_id + offset == record.last_mutation_id:
                return  # would delete a client whose last mutation is still queued
        self.driver.close_beacon(client_id, model.pushed_id + offset)

    # ------------------------------------------------------------------ time and turns

    @rule()
    def turn(self) -> None:
        self.driver.turn()

    @rule(ms=st.integers(0, 30_000))
    def advance(self, ms: int) -> None:
        self.driver.advance(ms)

    @rule()
    def advance_two_weeks(self) -> None:
        self.driver.advance(15 * DAY_MS)

    @rule()
    def restart(self) -> None:
        self.driver.restart()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def clients_are_never_ahead_of_the_room(self) -> None:
        state = self.driver.room.state
        for model in self.driver.clients.values():
            assert compare_cookies(model.cookie, state.version) <= 0
            record = state.clients.get(model.client_id)
            if model.is_open:
                assert record is not None, f"{model.client_id} is connected without a record"
                assert model.lmid <= record.last_mutation_id

    def teardown(self) -> None:
        """Once the room settles, every connected client has all its mutations confirmed."""
        self.driver.settle()
        for model in self.driver.clients.values():
            if model.is_open:
                assert model.lmid == model.pushed_id, model


HostileRoom.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_hostile_sequences_leave_every_client_consistent = HostileRoom.TestCase


def test_cookie_chains_stay_gap_free_for_every_client_across_many_random_turns() -> None:
    """Long seeded runs of valid traffic: the driver fails on any gap in any client's chain."""
    for seed in range(8):
        rng = random.Random(seed)
        driver = RoomDriver(
            on_client_disconnect=_on_disconnect,
            settings=EngineSettings(max_mutations_per_turn=rng.choice([1, 3, 1000])),
        )
        for step in range(250):
            client_id = rng.choice(sorted(CLIENTS))
            model = driver.clients.get(client_id)
            action = rng.random()
            if model is None or not model.is_open:
                if action < 0.5:
                    model = driver.connect(client_id, group=CLIENTS[client_id])
                    pending = range(model.lmid + 1, model.pushed_id + 1)
                    if pending:
                        driver.push(client_id, *pending)
            elif action < 0.45:
                operations = [
                    rng.choice(
                        [
                            ("set", rng.choice(KEYS), step),
                            ("del", rng.choice(KEYS)),
                            ("increment", "x"),
                            ("fail",),
                        ]
                    )
                    for _ in range(rng.randint(1, 4))
                ]
                first = model.pushed_id + 1
                driver.push(
                    client_id, *(_mutation(first + i, op) for i, op in enumerate(operations))
                )
            elif action < 0.55:
                driver.disconnect(client_id)
            if rng.random() < 0.4:
                driver.turn()
            driver.advance(rng.randint(0, 100))
        driver.settle()
        for model in driver.clients.values():
            if model.is_open:
                assert model.lmid == model.pushed_id
                assert model.cookie == driver.room.state.version

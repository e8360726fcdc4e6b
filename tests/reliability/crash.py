"""The crash scenario: real clients under load, ``kill -9`` of ``reflectd serve`` at random
points, restart on the same port and database, repeat; then check that nothing the server
acknowledged was lost and that the data is exactly what the applied mutations make. The
server stores its data in a SQLite file (``SQLiteFile``) or in a fresh PostgreSQL schema
(``PostgresSchema``).

Used by ``tests/reliability/test_crash.py`` (CI, a few dozen kills) and ``scripts/crash-test``
(any number of kills; prints the figures).

The model. Each client makes, one after another (with up to ``in_flight`` unconfirmed at a
time), ``increment {key: "count", delta: 1..3}`` and ``appendToList {key: "log", item}``
with items unique to the run. The driver reports a mutation's id once the server confirmed it
(a poke with ``lastMutationIDChanges[clientID] >= id`` was applied). At every kill point,
once the process is dead (and, with PostgreSQL, once PostgreSQL has ended its sessions), the
database is read as the restarted server will read it: each client's ``last_mutation_id``
there says exactly which of its mutations are applied (ids 1..lmid). Each kill point is then
checked against the mutations made so far (a client's n-th mutation has id n, which the end
of the run verifies for every mutation):

- every mutation confirmed before the kill has ``id <= lmid`` (nothing acknowledged lost);
- ``count`` equals the sum of the deltas of the applied increments, and ``log`` holds the
  items of the applied appends, each exactly once, each client's in the order it made them;
- ``log`` at one kill point is a prefix of ``log`` at the next (nothing undone).

At the end every mutation is confirmed, the stored rooms (REST contents route, with
``REFLECTD_API_KEY``) and a fresh client's view equal the model, and no client saw a
server-ahead error or a refused poke (``NodeClients.assert_healthy``).
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop.harness import NodeClients, ServerProcess, free_port, server_command

from .crash_storage import PostgresSchema, SQLiteFile, Storage
from .proxy import HoldingProxy

API_KEY = "crash-test-api-key-" + uuid.uuid4().hex


@dataclass(eq=False)
class Op:
    client: str
    seq: int
    mutator: str  # "increment" or "appendToList"
    args: dict[str, Any]
    id: int | None = None  # the client's mutation id, known once confirmed
    failed: str | None = None


@dataclass
class KillPoint:
    index: int
    t: float  # seconds since the start of the run
    under_load: bool
    confirmed: int  # mutations confirmed before the kill
    made: int  # mutations made before the kill


@dataclass
class Stored:
    """What the database holds at a kill point."""

    lmids: dict[str, int]  # client name -> last_mutation_id stored
    count: dict[str, int]  # room -> stored count
    log: dict[str, list[str]]  # room -> stored log


@dataclass
class Report:
    storage: str = ""
    kills: int = 0
    kills_under_load: int = 0
    mutations: int = 0
    confirmed_at_kills: int = 0  # sum over kill points of the confirmed mutations checked
    checks: int = 0  # mutation-at-kill-point checks (applied or not, each one exact)
    clients: int = 0
    rooms: int = 0
    seconds: float = 0.0
    restart_s: list[float] = field(default_factory=list)
    settle_s: list[float] = field(default_factory=list)  # kill to the storage being final
    unconfirmed_at_kill: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        restarts = sorted(self.restart_s)
        median = restarts[len(restarts) // 2] if restarts else float("nan")
        worst = restarts[-1] if restarts else float("nan")
        in_flight = self.unconfirmed_at_kill
        settles = sorted(self.settle_s)
        settled = (
            [
                "the killed server's PostgreSQL sessions ended after: median "
                f"{settles[len(settles) // 2] * 1000:.0f} ms, max {settles[-1] * 1000:.0f} ms"
            ]
            if settles and settles[-1] > 0
            else []
        )
        return [
            f"storage: {self.storage}",
            f"kill -9 points survived: {self.kills} ({self.kills_under_load} with mutations "
            f"confirmed since the restart, the others during reconnects)",
            f"clients: {self.clients} in {self.rooms} rooms; mutations made and confirmed: "
            f"{self.mutations}",
            f"confirmed mutations checked present at kill points: {self.confirmed_at_kills}; "
            f"exact applied/not-applied checks: {self.checks}",
            "mutations unconfirmed at the kill (sent or queued, mean/max): "
            f"{sum(in_flight) / max(1, len(in_flight)):.1f}/{max(in_flight, default=0)}",
            *settled,
            f"restart to ready: median {median:.2f} s, max {worst:.2f} s; "
            f"whole run {self.seconds:.0f} s",
        ]


class CrashScenario:
    """``kills`` kill points against ``reflectd serve`` on a SQLite file in ``workdir``, or,
    with ``postgres``, in the PostgreSQL schema that URL names (``?schema=``; it must not
    exist yet: see ``schema_url``). The logs go to ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        *,
        kills: int,
        postgres: str | None = None,
        rooms: int = 3,
        clients_per_room: int = 2,
        in_flight: int = 4,
        max_delay_s: float = 0.6,
        seed: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.workdir = workdir
        self.kills = kills
        self.storage: Storage = (
            SQLiteFile(workdir / "data" / "data.sqlite3")
            if postgres is None
            else PostgresSchema(postgres)
        )
        self.in_flight = in_flight
        self.max_delay_s = max_delay_s
        self.seed = random.randrange(2**32) if seed is None else seed
        self.rng = random.Random(self.seed)
        self.progress = progress or (lambda line: None)
        run = uuid.uuid4().hex[:8]
        self.rooms = [f"crash-{run}-{i}" for i in range(rooms)]
        self.room_of = {
            f"c{r}{i}": room for r, room in enumerate(self.rooms) for i in range(clients_per_room)
        }
        self.client_ids: dict[str, str] = {}
        self.ops: dict[str, list[Op]] = {name: [] for name in self.room_of}
        # per client, over its first i mutations: the sum of the increments' deltas, and
        # how many appends (their items in order in _items)
        self._deltas: dict[str, list[int]] = {name: [0] for name in self.room_of}
        self._appends: dict[str, list[int]] = {name: [0] for name in self.room_of}
        self._items: dict[str, list[str]] = {name: [] for name in self.room_of}
        self._previous_log: dict[str, list[str]] = {room: [] for room in self.rooms}
        self.confirmed: list[Op] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.kill_points: list[KillPoint] = []
        self.report = Report(
            storage=self.storage.description, clients=len(self.room_of), rooms=rooms
        )

    # ----------------------------------------------------------------- the run

    def run(self) -> Report:
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        data_dir = self.workdir / "data"
        argv, cwd, hint = server_command("reflectd", port=port, data_dir=data_dir)
        argv[argv.index("--db") + 1] = self.storage.db
        argv += self.storage.serve_options
        self.storage.prepare()
        server = ServerProcess(
            "reflectd",
            argv,
            port=port,
            cwd=cwd,
            log_path=self.workdir / "server.log",
            env={"REFLECTD_API_KEY": API_KEY, "REFLECTD_LOG_LEVEL": "warning"},
            hint=hint,
            data_dir=data_dir,
        )
        proxy = HoldingProxy(port).start()
        clients = NodeClients(log_path=self.workdir / "driver.log")
        workers: list[threading.Thread] = []
        try:
            server.start()
            self.storage.check_serving()
            for name, room in self.room_of.items():
                opened = clients.open(name, server=proxy.url, room_id=room, user_id=name, auth=name)
                self.client_ids[name] = opened["clientID"]
            workers = [
                threading.Thread(target=self._load, args=(clients, name), daemon=True)
                for name in self.room_of
            ]
            for worker in workers:
                worker.start()
            for index in range(self.kills):
                self._kill_point(index, server, started)
                t0 = time.monotonic()
                server.start()
                self.report.restart_s.append(time.monotonic() - t0)
                if (index + 1) % 10 == 0 or index + 1 == self.kills:
                    self.progress(
                        f"{index + 1}/{self.kills} kills, {self._made()} mutations made, "
                        f"{len(self.confirmed)} confirmed, {time.monotonic() - started:.0f} s"
                    )
                assert not self.errors, self.errors[:5]
            self._stop.set()
            for worker in workers:
                worker.join(180)
                assert not worker.is_alive(), "a load worker did not finish"
            assert not self.errors, self.errors[:5]
            self._finish(clients, server, proxy)
            clients.assert_healthy()
        finally:
            self._stop.set()
            clients.stop()
            server.stop()
            proxy.stop()
        self._check_ids()
        self.report.kills = len(self.kill_points)
        self.report.kills_under_load = sum(k.under_load for k in self.kill_points)
        self.report.mutations = self._made()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _made(self) -> int:
        return sum(len(ops) for ops in self.ops.values())

    def _load(self, clients: NodeClients, name: str) -> None:
        """Mutations of one client, ``in_flight`` unconfirmed at most, until told to stop."""
        rng = random.Random(f"{self.seed}-{name}")
        pending: set[Future[Any]] = set()
        seq = 0
        try:
            stalled = False
            while not self._stop.is_set():
                # After a reconnect the client re-sends its unconfirmed mutations only with its
                # next push: when nothing was confirmed for a while, make one more (as an app
                # in use would), up to a hard limit.
                limit = self.in_flight + (10 * self.in_flight if stalled else 0)
                while len(pending) < limit and not self._stop.is_set():
                    seq += 1
                    if rng.random() < 0.5:
                        op = Op(
                            name, seq, "increment", {"key": "count", "delta": rng.randint(1, 3)}
                        )
                    else:
                        op = Op(name, seq, "appendToList", {"key": "log", "item": f"{name}-{seq}"})
                    self._add(op)
                    future = clients.mutate_async(name, op.mutator, op.args, timeout=120)
                    future.add_done_callback(lambda f, op=op: self._confirmed(op, f))
                    pending.add(future)
                    if stalled:
                        break
                done, pending = wait(pending, timeout=0.3, return_when=FIRST_COMPLETED)
                stalled = not done
            wait(pending, timeout=150)
        except Exception as exc:  # the driver died: report it, the main thread fails
            with self._lock:
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")

    def _add(self, op: Op) -> None:
        with self._lock:
            ops = self.ops[op.client]
            assert op.seq == len(ops) + 1
            ops.append(op)
            delta = op.args["delta"] if op.mutator == "increment" else 0
            self._deltas[op.client].append(self._deltas[op.client][-1] + delta)
            if op.mutator == "appendToList":
                self._items[op.client].append(op.args["item"])
            self._appends[op.client].append(len(self._items[op.client]))

    def _confirmed(self, op: Op, future: Future[Any]) -> None:
        with self._lock:
            try:
                op.id = int(future.result()["id"])
            except Exception as exc:
                op.failed = str(exc)
                self.errors.append(f"{op.client} #{op.seq} {op.mutator}: not confirmed: {exc}")
            else:
                self.confirmed.append(op)

    def _kill_point(self, index: int, server: ServerProcess, started: float) -> None:
        under_load = self.rng.random() >= 0.2
        if under_load:
            # wait for progress since the restart, then a random moment
            with self._lock:
                before = len(self.confirmed)
            deadline = time.monotonic() + 60
            while True:
                with self._lock:
                    if len(self.confirmed) > before or self.errors:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no mutation confirmed within 60 s of restart #{index}: "
                        "the clients did not resume"
                    )
                time.sleep(0.01)
            time.sleep(self.rng.uniform(0, self.max_delay_s))
        else:
            # while the clients reconnect and re-send
            time.sleep(self.rng.uniform(0, 0.3))
        with self._lock:
            confirmed = list(self.confirmed)
            made = self._made()
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)
        t = time.monotonic() - started
        server.stop(signal.SIGKILL)
        self.report.settle_s.append(self.storage.settle())
        self.report.unconfirmed_at_kill.append(made - len(confirmed))
        point = KillPoint(index, t, under_load, len(confirmed), made)
        self._check_point(f"kill point {index} ({t:.1f} s)", confirmed, self._read_db())
        self.kill_points.append(point)
        self.report.confirmed_at_kills += len(confirmed)
        self.report.checks += made

    def _read_db(self) -> Stored:
        """What the restarted server will find: the clients' lmids, each room's data."""
        lmids: dict[str, int] = {}
        count: dict[str, int] = {}
        log: dict[str, list[str]] = {}
        names = {cid: name for name, cid in self.client_ids.items()}
        for room, rows in self.storage.read(self.rooms).items():
            for client_id, lmid in rows.lmids.items():
                if client_id in names:
                    lmids[names[client_id]] = lmid
            unknown = set(rows.values) - {"count", "log"}
            assert not unknown, f"room {room}: unexpected keys {unknown}"
            count[room] = rows.values.get("count", 0)
            log[room] = rows.values.get("log", [])
        return Stored(lmids, count, log)

    # ----------------------------------------------------------------- the checks
    #
    # A client's mutation ids are 1, 2, 3... in the order it made them, so the n-th mutation
    # made (Op.seq) has id n; _check_ids verifies it once every id is known.

    def _expected(self, lmids: dict[str, int]) -> tuple[dict[str, int], dict[str, list[str]]]:
        """The model: each room's count and each client's applied items, given the lmids."""
        count = dict.fromkeys(self.rooms, 0)
        items: dict[str, list[str]] = {}
        with self._lock:
            for name in self.room_of:
                lmid = lmids.get(name, 0)
                assert lmid < len(self._deltas[name]), f"{name}: lmid {lmid} was never made"
                count[self.room_of[name]] += self._deltas[name][lmid]
                items[name] = self._items[name][: self._appends[name][lmid]]
        return count, items

    def _check_log(
        self, where: str, room: str, log: list[str], expected: dict[str, list[str]]
    ) -> None:
        """Each client's items in ``log`` are its applied appends, once each, in order."""
        assert len(log) == len(set(log)), f"{where}: room {room}: an item appears twice"
        mine: dict[str, list[str]] = {}
        for item in log:
            mine.setdefault(item.rpartition("-")[0], []).append(item)
        clients = [name for name in self.room_of if self.room_of[name] == room]
        strangers = set(mine) - set(clients)
        assert not strangers, f"{where}: room {room}: items of other clients: {strangers}"
        for name in clients:
            have, want = mine.get(name, []), expected[name]
            missing = sorted(set(want) - set(have))
            extra = sorted(set(have) - set(want))
            assert not missing, f"{where}: room {room}: applied appends missing: {missing}"
            assert not extra, f"{where}: room {room}: appends not applied are present: {extra}"
            assert have == want, f"{where}: room {room}: {name}'s items out of order: {have}"

    def _check_point(self, where: str, confirmed: list[Op], stored: Stored) -> None:
        for op in confirmed:
            assert op.id == op.seq, f"{op.client}: mutation #{op.seq} got id {op.id}"
            lmid = stored.lmids.get(op.client, 0)
            assert op.seq <= lmid, (
                f"{where}: LOST: {op.client} mutation {op.seq} ({op.mutator} {op.args}) was "
                f"confirmed before the kill but the stored lmid is {lmid}"
            )
        count, items = self._expected(stored.lmids)
        for room in self.rooms:
            assert stored.count[room] == count[room], (
                f"{where}: room {room}: count {stored.count[room]}, but the applied "
                f"increments sum to {count[room]}"
            )
            log = stored.log[room]
            self._check_log(where, room, log, items)
            previous = self._previous_log[room]
            assert log[: len(previous)] == previous, (
                f"{where}: room {room}: the log does not continue the last kill point's"
            )
            self._previous_log[room] = log

    def _check_ids(self) -> None:
        for name, ops in self.ops.items():
            ids = sorted(op.id for op in ops if op.id is not None)
            assert len(ids) == len(ops), f"{name}: {len(ops) - len(ids)} mutations unconfirmed"
            assert all(op.id == op.seq for op in ops), f"{name}: ids do not follow the order"

    def _finish(self, clients: NodeClients, server: ServerProcess, proxy: HoldingProxy) -> None:
        """Every mutation confirmed; the stored rooms and a fresh client equal the model."""
        # the client re-sends what is unconfirmed only with its next push: one more each
        finals = []
        for name in self.room_of:
            seq = len(self.ops[name]) + 1
            op = Op(name, seq, "appendToList", {"key": "log", "item": f"{name}-{seq}"})
            self._add(op)
            future = clients.mutate_async(name, op.mutator, op.args, timeout=120)
            future.add_done_callback(lambda f, op=op: self._confirmed(op, f))
            finals.append(future)
        NodeClients.gather(finals, timeout=150)
        for name in self.room_of:
            clients.settle(name, timeout=120)
        assert not self.errors, self.errors[:5]
        self._check_ids()
        lmids = {name: len(ops) for name, ops in self.ops.items()}
        count, items = self._expected(lmids)
        for room in self.rooms:
            stored = rest_contents(server.url, room)
            log = stored.get("log", [])
            self._check_log("final (REST contents)", room, log, items)
            expected: dict[str, Any] = {"count": count[room]} if count[room] else {}
            if log:
                expected["log"] = log
            assert stored == expected, f"room {room}: stored {stored}, expected {expected}"
            fresh = f"fresh-{room}"
            clients.open(fresh, server=proxy.url, room_id=room, user_id=fresh, auth=fresh)
            clients.wait_for(fresh, "log", log, timeout=60)
            assert clients.scan(fresh) == stored, f"a fresh client of {room} sees other data"
        assert self._read_db().lmids == lmids


def rest_contents(base_url: str, room_id: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/v1/apps/default/rooms/contents?roomID={room_id}",
        headers={"Authorization": f"Basic {API_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        contents: dict[str, Any] = json.loads(response.read())["result"]["contents"]
    return contents

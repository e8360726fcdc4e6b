"""The workloads the benchmark knows and the sizes they run at."""

from __future__ import annotations

from dataclasses import dataclass

#: the real-client workloads (bench/node/bench.mjs) and the protocol-level ones (bench/loadgen)
NODE_WORKLOADS = ("closed", "open", "rooms", "connect")
PROTO_WORKLOADS = ("proto-rooms", "fanout", "idle", "storm", "soak", "cold-join", "huge-room")
ALL_WORKLOADS = NODE_WORKLOADS + PROTO_WORKLOADS
#: what runs unless --workloads says otherwise (the soak takes 10 minutes per server)
DEFAULT_WORKLOADS = tuple(w for w in ALL_WORKLOADS if w != "soak")
#: run once per comparison by default (they are long and have a target of their own)
HEAVY_WORKLOADS = ("fanout", "idle", "storm", "soak", "huge-room")


@dataclass
class Sizes:
    closed_clients: int = 20
    closed_mutations: int = 50
    open_clients: int = 4
    open_mutations: int = 250
    rooms: int = 50
    rooms_clients: int = 2
    rooms_mutations: int = 20
    connect_clients: int = 20
    proto_rooms: int = 100
    proto_clients: int = 2
    proto_mutations: int = 50
    proto_window: int = 8
    fanout_clients: int = 500
    fanout_writers: int = 25
    fanout_rate: float = 5.0
    fanout_duration: float = 10.0
    #: >1: load-generator processes that share the fanout's listening clients (the writers
    #: then get one more of their own); 1: everything in the benchmark's process
    fanout_procs: int = 1
    idle_connections: int = 10_000
    storm_clients: int = 5000
    per_room: int = 10
    #: Node processes that share a real-client workload (one is the limit on 2 cores)
    driver_procs: int = 1
    #: mutations/s offered in the soak (100 rooms x 2 clients); 0: half of what a
    #: proto-rooms run on the same server confirms just before
    soak_rate: float = 0.0
    soak_seconds: float = 600.0
    soak_window: float = 30.0
    #: cold-join: one client joins a room of this many keys of this many bytes after a restart
    cold_keys: int = 5000
    cold_bytes: int = 1000
    #: huge-room: this many clients join at once a room of this many keys after a restart
    huge_keys: int = 100_000
    huge_bytes: int = 500
    huge_joiners: int = 10

    @classmethod
    def quick(cls) -> Sizes:
        """Small sizes: a smoke run of every workload in well under a minute per target."""
        return cls(
            closed_clients=3, closed_mutations=5, open_clients=2, open_mutations=20, rooms=3,
            rooms_mutations=5, connect_clients=3, proto_rooms=3, proto_mutations=5,
            fanout_clients=10, fanout_writers=2, fanout_duration=1.0, idle_connections=20,
            storm_clients=20, per_room=5, soak_rate=100.0, soak_seconds=2.0, soak_window=0.5,
            cold_keys=200, huge_keys=2000, huge_joiners=2,
        )  # fmt: skip

"""A protocol-level load generator for Reflect servers (reflectd or the original).

It speaks the sync protocol directly (the client's connect URL, push frames and pokes, as the
0.39 client sends and reads them) with asyncio and the ``websockets`` library, for loads the
real client cannot produce on one machine. One module per workload:

* ``rooms``: R rooms x C clients, each keeping a window of W mutations in flight:
  aggregate confirmed mutations/s and confirmation latency;
* ``fanout``: one room with many clients of which a few write at a fixed rate: how long until
  every client got the poke carrying a mutation (poke latency p50/p99);
* ``idle``: N idle connections: the server's RSS per connection;
* ``storm``: K connected clients, the server restarts, every client reconnects at once: time
  until all are connected again;
* ``soak``: a steady load for minutes: RSS growth and p99 drift;
* ``bigroom``: a room of many keys joined after a restart (``cold-join``, ``huge-room``):
  time until the joiners hold every key, the server's peak RSS, and a small room's latency
  meanwhile.

``client`` holds the protocol client, ``process`` the server-process figures (psutil).

Run one workload on its own (prints JSON)::

    python -m bench.loadgen rooms --url http://127.0.0.1:8080 --rooms 100 --clients 2
    python -m bench.loadgen idle --url http://127.0.0.1:8080 --connections 2000 --server-pid PID

``python -m bench.run`` runs these (and the real-client workloads) side by side against both
servers.
"""

from bench.loadgen.bigroom import big_room_workload
from bench.loadgen.client import ConnectError, ProtoClient
from bench.loadgen.fanout import fanout_processes, fanout_workload
from bench.loadgen.idle import idle_workload
from bench.loadgen.process import cpu_seconds, raise_fd_limit, rss_kib, run_async
from bench.loadgen.rooms import rooms_workload
from bench.loadgen.soak import (
    SOAK_MAX_P99_DRIFT,
    SOAK_MAX_RSS_GROWTH_PCT,
    soak_verdict,
    soak_workload,
)
from bench.loadgen.storm import Restart, storm_workload

WORKLOADS = ("rooms", "fanout", "idle", "storm", "soak")

__all__ = [
    "SOAK_MAX_P99_DRIFT",
    "SOAK_MAX_RSS_GROWTH_PCT",
    "WORKLOADS",
    "ConnectError",
    "ProtoClient",
    "Restart",
    "big_room_workload",
    "cpu_seconds",
    "fanout_processes",
    "fanout_workload",
    "idle_workload",
    "raise_fd_limit",
    "rooms_workload",
    "rss_kib",
    "run_async",
    "soak_verdict",
    "soak_workload",
    "storm_workload",
]

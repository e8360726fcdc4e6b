"""Running workloads: one run of one workload against one target (with the machine's load
and the CPU each side used), and the repetitions of a comparison."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import loadgen
from bench.realclient import run_node
from bench.servers import Target
from bench.sizes import HEAVY_WORKLOADS, NODE_WORKLOADS, PROTO_WORKLOADS, Sizes


def _loadavg() -> float | None:
    """The 1-minute load average: other work on the machine shows up here."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run_proto(target: Target, workload: str, sizes: Sizes) -> dict[str, Any]:
    if workload == "proto-rooms":
        coro = loadgen.rooms_workload(
            target.url, rooms=sizes.proto_rooms, clients=sizes.proto_clients,
            mutations=sizes.proto_mutations, window=sizes.proto_window,
        )  # fmt: skip
    elif workload == "fanout" and sizes.fanout_procs > 1:
        coro = asyncio.to_thread(
            loadgen.fanout_processes, target.url, procs=sizes.fanout_procs,
            clients=sizes.fanout_clients, writers=sizes.fanout_writers, rate=sizes.fanout_rate,
            duration=sizes.fanout_duration,
        )  # fmt: skip
    elif workload == "fanout":
        coro = loadgen.fanout_workload(
            target.url, clients=sizes.fanout_clients, writers=sizes.fanout_writers,
            rate=sizes.fanout_rate, duration=sizes.fanout_duration,
        )  # fmt: skip
    elif workload == "idle":
        coro = loadgen.idle_workload(
            target.url, connections=sizes.idle_connections, clients_per_room=sizes.per_room,
            server_pid=target.pid,
        )  # fmt: skip
    elif workload == "storm":
        coro = loadgen.storm_workload(
            target.url, clients=sizes.storm_clients, clients_per_room=sizes.per_room,
            restart=target.restart_hooks(),
        )  # fmt: skip
    elif workload == "soak":
        coro = _soak(target, sizes)
    elif workload in ("cold-join", "huge-room"):
        huge = workload == "huge-room"
        coro = loadgen.big_room_workload(
            target.url, keys=sizes.huge_keys if huge else sizes.cold_keys,
            value_bytes=sizes.huge_bytes if huge else sizes.cold_bytes,
            joiners=sizes.huge_joiners if huge else 1, restart=target.restart_hooks(),
            server_pid=lambda: target.pid, workload=workload,
        )  # fmt: skip
    else:
        raise ValueError(workload)
    result: dict[str, Any] = loadgen.run_async(coro)
    if target.pid is not None:
        result["serverRssKiB"] = loadgen.rss_kib(target.pid)
    return result


async def _soak(target: Target, sizes: Sizes) -> dict[str, Any]:
    """The soak at ``sizes.soak_rate``, or at half of what proto-rooms confirms first."""
    rate, measured = sizes.soak_rate, None
    if rate <= 0:
        probe = await loadgen.rooms_workload(
            target.url, rooms=sizes.proto_rooms, clients=sizes.proto_clients, mutations=100
        )
        measured = probe["confirmedPerSec"]
        rate = measured / 2
    result = await loadgen.soak_workload(
        target.url, rooms=sizes.proto_rooms, clients=sizes.proto_clients, rate=rate,
        duration=sizes.soak_seconds, window_s=sizes.soak_window, server_pid=target.pid,
    )  # fmt: skip
    result["maximumPerSec"] = measured
    return result


def run_one(
    target: Target, workload: str, sizes: Sizes, timeout: float, log: Callable[[str], None]
) -> dict[str, Any]:
    t0 = time.monotonic()
    load_before = _loadavg()
    own_cpu0 = time.process_time()
    pid0 = target.pid  # storm restarts the server: a new process, so no CPU delta then
    server_cpu0 = loadgen.cpu_seconds(target.pid) if target.pid else None
    try:
        if workload in NODE_WORKLOADS:
            result = run_node(target, workload, sizes, timeout)
        else:
            result = run_proto(target, workload, sizes)
        result.setdefault("ok", True)
    except Exception as exc:  # one failed run is reported, the rest goes on
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["wallS"] = round(time.monotonic() - t0, 2)
    result["loadavg"] = {"before": load_before, "after": _loadavg()}
    # who was busy: the server, and (protocol workloads) this process's load generator
    if server_cpu0 is not None and target.pid and target.pid == pid0:
        result["serverCpuS"] = round(loadgen.cpu_seconds(target.pid) - server_cpu0, 2)
    if workload in PROTO_WORKLOADS:
        # plus the CPU of the load generator's other processes (fanout_procs)
        others = sum(result.get("loadgenProcCpuS", []))
        result["loadgenCpuS"] = round(time.process_time() - own_cpu0 + others, 2)
    status = "ok" if result.get("ok") else f"FAILED: {result.get('error', '')[:300]}"
    log(f"  {workload:<12} {target.name:<9} {result['wallS']:7.1f} s  {status}")
    return result


def run_all(
    targets: Sequence[Target],
    workloads: Sequence[str],
    *,
    sizes: Sizes,
    repetitions: int,
    heavy_repetitions: int,
    timeout: float,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for rep in range(1, repetitions + 1):
        order = list(targets) if rep % 2 == 1 else list(reversed(targets))
        log(f"repetition {rep}/{repetitions} (order: {', '.join(t.name for t in order)})")
        for workload in workloads:
            if workload in HEAVY_WORKLOADS and rep > heavy_repetitions:
                continue
            for target in order:
                result = run_one(target, workload, sizes, timeout, log)
                runs.append(
                    {"target": target.name, "workload": workload, "rep": rep, "result": result}
                )
    return runs

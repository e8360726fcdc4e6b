"""The protocol-level load generator against a real reflectd process, at tiny sizes."""

from __future__ import annotations

import os

from bench import loadgen
from bench.servers import Target


def test_rooms_counts_every_confirmation(reflectd: Target) -> None:
    result = loadgen.run_async(
        loadgen.rooms_workload(reflectd.url, rooms=2, clients=2, mutations=5, window=2)
    )
    assert result["mutations"] == 20
    assert result["confirmed"] == 20
    assert result["confirmLatencyMs"]["count"] == 20
    assert result["connectFailures"] == 0
    assert not result["timedOut"]
    assert result["errors"] == []
    assert result["confirmedPerSec"] > 0


def test_fanout_delivers_each_write_to_every_client(reflectd: Target) -> None:
    result = loadgen.run_async(
        loadgen.fanout_workload(
            reflectd.url, clients=6, writers=2, rate=10, duration=0.5, settle_s=0.3, tail_s=0.5
        )
    )
    assert result["mutations"] >= 8
    assert result["deliveries"] == result["expectedDeliveries"] == result["mutations"] * 6
    assert result["pokeLatencyMs"]["p99"] > 0


def test_idle_measures_rss_per_connection(reflectd: Target) -> None:
    assert reflectd.pid is not None
    result = loadgen.run_async(
        loadgen.idle_workload(
            reflectd.url, connections=30, clients_per_room=5, server_pid=reflectd.pid, settle_s=0.3
        )
    )
    assert result["connected"] == 30
    assert result["rssAfterKiB"] > 0
    assert result["rssPerConnectionKiB"] is not None


def test_soak_confirms_what_it_offers_window_by_window(reflectd: Target) -> None:
    assert reflectd.pid is not None
    result = loadgen.run_async(
        loadgen.soak_workload(
            reflectd.url,
            rooms=2,
            clients=2,
            rate=200,
            duration=1.0,
            window_s=0.25,
            server_pid=reflectd.pid,
        )
    )
    assert [w["endS"] for w in result["windows"]] == [0.25, 0.5, 0.75, 1.0]
    assert 190 <= result["confirmed"] <= 210  # 200/s for 1 s, each client's schedule rounded
    assert result["skippedSends"] == 0
    assert all(w["rssKiB"] > 0 and w["p99Ms"] > 0 for w in result["windows"])
    assert result["rssGrowthPct"] is not None and result["p99Drift"] is not None
    assert result["errors"] == []


def test_soak_verdict_flags_memory_growth_and_latency_drift() -> None:
    def windows(rss: list[int], p99: list[float]) -> list[dict[str, object]]:
        return [{"rssKiB": r, "p99Ms": p} for r, p in zip(rss, p99, strict=True)]

    steady = loadgen.soak_verdict(windows([100, 101, 102, 102, 103, 103], [50, 10, 10, 11, 9, 10]))
    assert steady == {"rssGrowthPct": 3.0, "p99Drift": 1.0, "stable": True}  # warm-up left out
    leaking = loadgen.soak_verdict(windows([100, 102, 104, 106, 108, 110], [9] * 6))
    assert leaking["rssGrowthPct"] == 10.0 and not leaking["stable"]
    drifting = loadgen.soak_verdict(windows([100] * 6, [50, 10, 10, 14, 16, 20]))
    assert drifting["p99Drift"] == 2.0 and not drifting["stable"]


def test_storm_after_a_restart_reconnects_everyone(reflectd: Target) -> None:
    result = loadgen.run_async(
        loadgen.storm_workload(
            reflectd.url,
            clients=12,
            clients_per_room=4,
            restart=reflectd.restart_hooks(),
            settle_s=0.3,
        )
    )
    assert result["serverRestarted"]
    assert result["reconnected"] == 12
    assert result["allConnectedAfterReadyMs"] is not None
    assert reflectd.proc is not None and reflectd.proc.poll() is None


def test_storm_without_restart_drops_sockets_client_side(reflectd: Target) -> None:
    result = loadgen.run_async(
        loadgen.storm_workload(reflectd.url, clients=6, clients_per_room=3, settle_s=0.3)
    )
    assert not result["serverRestarted"]
    assert result["reconnected"] == 6


def test_big_room_joiners_get_every_key_after_a_restart(reflectd: Target) -> None:
    result = loadgen.run_async(
        loadgen.big_room_workload(
            reflectd.url,
            keys=2500,
            value_bytes=200,
            joiners=2,
            restart=reflectd.restart_hooks(),
            server_pid=lambda: reflectd.pid,
        )
    )
    assert result["joined"] == 2 and result["allJoinedMs"] is not None
    assert result["errors"] == []
    assert result["rssPeakKiB"] >= result["rssBeforeKiB"] > 0
    assert result["probeDuringJoinMs"]["count"] >= 1


def test_rss_of_this_process() -> None:
    assert loadgen.rss_kib(os.getpid()) > 1000


def test_fanout_split_and_merge() -> None:
    from bench.loadgen.fanout import merge_shares, split

    assert split(5, 2) == [(0, 3), (3, 2)]
    assert [n for _, n in split(5000, 3)] == [1667, 1667, 1666]
    lead = {"sent": {("e/a", 1): 10.0, ("e/a", 2): 20.0}, "arrivals": {("e/a", 1): [15.0]},
            "live": 1, "connectFailures": 0, "connectAllMs": 5.0, "errors": []}  # fmt: skip
    other = {"sent": {}, "arrivals": {("e/a", 1): [12.0, 14.0], ("e/a", 2): [21.0, 22.0]},
             "live": 2, "connectFailures": 1, "connectAllMs": 7.0, "errors": []}  # fmt: skip
    merged = merge_shares([lead, other])
    assert merged["mutations"] == 2
    assert merged["deliveries"] == 5
    assert merged["expectedDeliveries"] == 6
    assert merged["connectFailures"] == 1
    assert merged["connectAllMs"] == 7.0
    assert merged["pokeLatencyMs"]["max"] == 5.0
    assert merged["pokeLatencyMs"]["min"] == 1.0


def test_fanout_over_two_processes(reflectd: Target) -> None:
    result = loadgen.fanout_processes(
        reflectd.url, procs=2, clients=6, writers=2, rate=10, duration=0.5, settle_s=0.3,
        tail_s=0.5,
    )  # fmt: skip
    assert result["mutations"] >= 8
    assert result["deliveries"] == result["expectedDeliveries"] == result["mutations"] * 6
    assert len(result["loadgenProcCpuS"]) == 3  # the writers, then two of listeners

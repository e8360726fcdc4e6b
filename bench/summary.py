"""From runs to figures: the metrics read from each run, their medians over the repetitions,
the ratios between targets, and the goals (docs/performance.md)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import loadgen
from bench.stats import median, ratio


@dataclass(frozen=True)
class Metric:
    workload: str
    name: str
    label: str
    unit: str
    better: str  # "lower" or "higher"
    get: Callable[[dict[str, Any]], float | None]


def _get(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def get(result: dict[str, Any]) -> float | None:
        value: Any = result
        for part in path:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return None if value is None else float(value)

    return get


def _per_confirmed(result: dict[str, Any], cpu_key: str) -> float | None:
    """CPU microseconds per confirmed mutation: the CPU seconds of the whole run (connecting
    and closing the clients included) over the mutations confirmed in it."""
    cpu_s, confirmed = result.get(cpu_key), result.get("confirmed")
    if cpu_s is None or not confirmed:
        return None
    return float(cpu_s) * 1e6 / confirmed


def _ms_to_s(get: Callable[[dict[str, Any]], float | None]) -> Callable[..., float | None]:
    return lambda r: None if (v := get(r)) is None else v / 1000


METRICS: tuple[Metric, ...] = (
    Metric("closed", "rtt_p50", "(a) closed loop: round trip p50", "ms", "lower",
           _get("roundTrip", "p50")),
    Metric("closed", "rtt_p99", "(a) closed loop: round trip p99", "ms", "lower",
           _get("roundTrip", "p99")),
    Metric("closed", "vis_p50", "(a) closed loop: seen by another client p50", "ms", "lower",
           _get("visibility", "p50")),
    Metric("closed", "vis_p99", "(a) closed loop: seen by another client p99", "ms", "lower",
           _get("visibility", "p99")),
    Metric("open", "throughput", "(b) one room, open loop: confirmed", "mut/s", "higher",
           _get("confirmedPerSec")),
    Metric("rooms", "throughput", "(c) many rooms, open loop: confirmed", "mut/s", "higher",
           _get("confirmedPerSec")),
    Metric("connect", "p50", "(d) connect time p50", "ms", "lower", _get("connect", "p50")),
    Metric("connect", "p99", "(d) connect time p99", "ms", "lower", _get("connect", "p99")),
    Metric("proto-rooms", "throughput", "protocol: many rooms, confirmed", "mut/s", "higher",
           _get("confirmedPerSec")),
    Metric("proto-rooms", "latency_p50", "protocol: many rooms, confirm p50", "ms", "lower",
           _get("confirmLatencyMs", "p50")),
    Metric("proto-rooms", "server_cpu", "protocol: many rooms, server CPU per confirmed", "us",
           "lower", lambda r: _per_confirmed(r, "serverCpuS")),
    Metric("proto-rooms", "loadgen_cpu", "protocol: many rooms, load generator CPU per confirmed",
           "us", "lower", lambda r: _per_confirmed(r, "loadgenCpuS")),
    Metric("fanout", "p50", "protocol: big room, poke latency p50", "ms", "lower",
           _get("pokeLatencyMs", "p50")),
    Metric("fanout", "p99", "protocol: big room, poke latency p99", "ms", "lower",
           _get("pokeLatencyMs", "p99")),
    Metric("idle", "rss", "protocol: idle connections, RSS each", "KiB", "lower",
           _get("rssPerConnectionKiB")),
    Metric("storm", "all", "protocol: reconnect storm, all connected", "s", "lower",
           _ms_to_s(_get("allConnectedAfterReadyMs"))),
    Metric("cold-join", "join", "protocol: cold join of a 5,000 x 1 KB room", "s", "lower",
           _ms_to_s(_get("allJoinedMs"))),
    Metric("cold-join", "probe_max", "protocol: cold join, small room's worst latency meanwhile",
           "ms", "lower", _get("probeMaxDuringJoinMs")),
    Metric("huge-room", "join", "protocol: 100,000 x 500 B room, 10 clients, all joined", "s",
           "lower", _ms_to_s(_get("allJoinedMs"))),
    Metric("huge-room", "rss_peak", "protocol: huge room, server peak RSS", "MB", "lower",
           lambda r: None if r.get("rssPeakKiB") is None else r["rssPeakKiB"] / 1024),
    Metric("huge-room", "probe_max", "protocol: huge room, small room's worst latency meanwhile",
           "ms", "lower", _get("probeMaxDuringJoinMs")),
    Metric("soak", "rss_growth", "protocol: soak, RSS growth", "%", "lower",
           _get("rssGrowthPct")),
    Metric("soak", "p99_drift", "protocol: soak, p99 last third / first third", "x", "lower",
           _get("p99Drift")),
)  # fmt: skip


#: the ratios of medians a row records, when both targets ran
RATIOS = {
    "ratio": ("reflectd", "original"),
    "ratio_ts_python": ("reflectd-ts", "reflectd"),
    "ratio_ts_original": ("reflectd-ts", "original"),
}


def summarize_runs(runs: Sequence[dict[str, Any]], targets: Sequence[str]) -> list[dict[str, Any]]:
    """One row per metric that was measured: values per repetition, median, ratio."""
    rows: list[dict[str, Any]] = []
    for metric in METRICS:
        per_target: dict[str, list[float]] = {}
        for run in runs:
            if run["workload"] != metric.workload or not run["result"].get("ok", False):
                continue
            value = metric.get(run["result"])
            if value is not None and not math.isnan(value):
                per_target.setdefault(run["target"], []).append(value)
        if not per_target:
            continue
        medians = {t: median(v) for t, v in per_target.items()}
        row: dict[str, Any] = {
            "workload": metric.workload,
            "metric": metric.name,
            "label": metric.label,
            "unit": metric.unit,
            "better": metric.better,
            "values": per_target,
            "median": medians,
        }
        for key, (a, b) in RATIOS.items():
            if a in medians and b in medians:
                r = ratio(medians[a], medians[b])
                row[key] = None if r is None else round(r, 3)
        rows.append(row)
    return rows


#: the performance goals (docs/performance.md, "Against the goals")
GOALS: tuple[dict[str, Any], ...] = (
    {"goal": "closed loop round trip p50 <= 0.3x the original", "workload": "closed",
     "metric": "rtt_p50", "kind": "ratio", "op": "<=", "bound": 0.3,
     "sizes": {"closed_clients": 20, "closed_mutations": 50}},
    {"goal": "one room open loop >= 3x the original's confirmed mutations/s", "workload": "open",
     "metric": "throughput", "kind": "ratio", "op": ">=", "bound": 3.0, "sizes": {}},
    {"goal": "50 rooms x 2 clients aggregate >= 2x the original", "workload": "rooms",
     "metric": "throughput", "kind": "ratio", "op": ">=", "bound": 2.0,
     "sizes": {"rooms": 50, "rooms_clients": 2}},
    {"goal": "protocol 100 rooms x 2 clients >= 10,000 confirmed mutations/s",
     "workload": "proto-rooms", "metric": "throughput", "kind": "value", "op": ">=",
     "bound": 10_000, "sizes": {"proto_rooms": 100, "proto_clients": 2}},
    {"goal": "protocol 100 rooms x 2 clients >= 3.5x the original's confirmed mutations/s",
     "workload": "proto-rooms", "metric": "throughput", "kind": "ratio", "op": ">=",
     "bound": 3.5, "sizes": {"proto_rooms": 100, "proto_clients": 2}},
    {"goal": "protocol 1 room x 50 clients >= 10x the original's confirmed mutations/s",
     "workload": "proto-rooms", "metric": "throughput", "kind": "ratio", "op": ">=",
     "bound": 10.0, "sizes": {"proto_rooms": 1, "proto_clients": 50}},
    {"goal": "500-client room poke p99 <= 150 ms", "workload": "fanout", "metric": "p99",
     "kind": "value", "op": "<=", "bound": 150,
     "sizes": {"fanout_clients": 500, "fanout_writers": 25, "fanout_rate": 5.0}},
    {"goal": "1,000-client room, 10 writers x 10/s: poke p99 <= 0.5x the original",
     "workload": "fanout", "metric": "p99", "kind": "ratio", "op": "<=", "bound": 0.5,
     "sizes": {"fanout_clients": 1000, "fanout_writers": 10, "fanout_rate": 10.0}},
    {"goal": "10,000 idle connections <= 30 KiB RSS each", "workload": "idle", "metric": "rss",
     "kind": "value", "op": "<=", "bound": 30, "sizes": {"idle_connections": 10_000}},
    {"goal": "5,000 clients reconnecting within 20 s", "workload": "storm", "metric": "all",
     "kind": "value", "op": "<=", "bound": 20, "sizes": {"storm_clients": 5000}},
    {"goal": "5,000 x 1 KB room: cold join <= 0.5x the original", "workload": "cold-join",
     "metric": "join", "kind": "ratio", "op": "<=", "bound": 0.5,
     "sizes": {"cold_keys": 5000, "cold_bytes": 1000}},
    {"goal": "100,000-key room (~55 MB) joined within 3 s", "workload": "huge-room",
     "metric": "join", "kind": "value", "op": "<=", "bound": 3.0,
     "sizes": {"huge_keys": 100_000, "huge_bytes": 500}},
    {"goal": "10-minute soak at half the maximum load: RSS growth < 5 %", "workload": "soak",
     "metric": "rss_growth", "kind": "value", "op": "<", "bound": loadgen.SOAK_MAX_RSS_GROWTH_PCT,
     "sizes": {"soak_seconds": 600.0, "soak_rate": 0.0}},
    {"goal": "10-minute soak: p99 stable (last third <= 1.5x the first third)",
     "workload": "soak", "metric": "p99_drift", "kind": "value", "op": "<=",
     "bound": loadgen.SOAK_MAX_P99_DRIFT, "sizes": {"soak_seconds": 600.0, "soak_rate": 0.0}},
)  # fmt: skip


def check_goals(
    rows: Sequence[dict[str, Any]], sizes: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Each goal's value and whether it is met; ``met`` is None (not judged) when the run's
    ``sizes`` differ from the goal's."""
    out: list[dict[str, Any]] = []
    by_key = {(r["workload"], r["metric"]): r for r in rows}
    for goal in GOALS:
        row = by_key.get((goal["workload"], goal["metric"]))
        if row is None:
            continue
        value = row.get("ratio") if goal["kind"] == "ratio" else row["median"].get("reflectd")
        met = None
        if value is not None:
            bound = goal["bound"]
            met = {"<=": value <= bound, "<": value < bound, ">=": value >= bound}[goal["op"]]
        entry = {"goal": goal["goal"], "value": value, "met": met}
        other = {
            k: sizes[k] for k, v in goal["sizes"].items() if sizes is not None and sizes[k] != v
        }
        if other:
            entry["met"] = None
            entry["note"] = "measured at other sizes: " + ", ".join(
                f"{k}={v}" for k, v in other.items()
            )
        out.append(entry)
    return out

"""Benchmark reflectd (and the original Reflect server) with the real client and at protocol
level; print a table, write JSON and draw a chart. See docs/performance.md.

    python -m bench.run --url http://127.0.0.1:8080            # any running server
    python -m bench.run --side-by-side --reference-dir ~/reflect-reference

Side by side, both servers run on this machine, fresh, and the runs alternate between them
(reflectd first in odd repetitions, the original first in even ones), so that both see the
same machine conditions. Reported: the median over the repetitions of each figure, and the
ratio reflectd/original.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: python bench/run.py
    sys.path.insert(0, str(REPO_ROOT))

from bench import loadgen  # noqa: E402
from bench.stats import median, quantile_sketch, ratio, summarize  # noqa: E402

NODE_DIR = BENCH_DIR / "node"
DRIVER = NODE_DIR / "bench.mjs"
SCHEMA = "reflectd-bench/1"

#: the real-client workloads (bench/node/bench.mjs) and the protocol-level ones (loadgen.py)
NODE_WORKLOADS = ("closed", "open", "rooms", "connect")
PROTO_WORKLOADS = ("proto-rooms", "fanout", "idle", "storm", "soak")
ALL_WORKLOADS = NODE_WORKLOADS + PROTO_WORKLOADS
#: what runs unless --workloads says otherwise (the soak takes 10 minutes per server)
DEFAULT_WORKLOADS = tuple(w for w in ALL_WORKLOADS if w != "soak")
#: run once per comparison by default (they are long and have a target of their own)
HEAVY_WORKLOADS = ("fanout", "idle", "storm", "soak")


# ----------------------------------------------------------------------------------- metrics


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
    Metric("fanout", "p50", "protocol: big room, poke latency p50", "ms", "lower",
           _get("pokeLatencyMs", "p50")),
    Metric("fanout", "p99", "protocol: big room, poke latency p99", "ms", "lower",
           _get("pokeLatencyMs", "p99")),
    Metric("idle", "rss", "protocol: idle connections, RSS each", "KiB", "lower",
           _get("rssPerConnectionKiB")),
    Metric("storm", "all", "protocol: reconnect storm, all connected", "s", "lower",
           _ms_to_s(_get("allConnectedAfterReadyMs"))),
    Metric("soak", "rss_growth", "protocol: soak, RSS growth", "%", "lower",
           _get("rssGrowthPct")),
    Metric("soak", "p99_drift", "protocol: soak, p99 last third / first third", "x", "lower",
           _get("p99Drift")),
)  # fmt: skip


# ----------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ServerError(RuntimeError):
    pass


@dataclass
class Target:
    """A server under test: an URL, and when we manage it, how to (re)start it."""

    name: str
    url: str
    argv: list[str] | None = None
    restart_argv: list[str] | None = None
    cwd: Path | None = None
    log_path: Path | None = None
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def managed(self) -> bool:
        return self.argv is not None

    def start(self, timeout: float = 60.0) -> None:
        assert self.argv is not None and self.log_path is not None
        argv = self.restart_argv if self.starts and self.restart_argv else self.argv
        self.starts += 1
        with self.log_path.open("a") as log:
            log.write(f"=== start #{self.starts}: {' '.join(argv)}\n")
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with code {self.proc.returncode} on start; "
                    f"see {self.log_path}:\n{_tail(self.log_path)}"
                )
            if _ready(self.url):
                return
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} did not answer GET / within {timeout} s: {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # helpers left behind (workerd, esbuild)
        self.proc = None

    def restart_hooks(self) -> loadgen.Restart | None:
        if not self.managed:
            return None
        import asyncio

        async def stop() -> None:
            await asyncio.to_thread(self.stop)

        async def start() -> None:
            await asyncio.to_thread(self.start)

        return loadgen.Restart(stop=stop, start=start)


def _loadavg() -> float | None:
    """The 1-minute load average: other work on the machine shows up here."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


#: reflectd's targets: the benchmark app in Python, and as a Reflect server module
REFLECTD_APPS = {"reflectd": "bench/app.py:app", "reflectd-ts": "bench/reflect/index.ts"}


def reflectd_target(work: Path, port: int, name: str = "reflectd") -> Target:
    exe = Path(sys.executable).parent / "reflectd"
    if not exe.exists():
        raise ServerError(f"{exe} not found: run scripts/bootstrap (reflectd in this venv)")
    argv = [
        str(exe), "serve", REFLECTD_APPS[name], "--host", "127.0.0.1", "--port", str(port),
        "--db", str(work / f"{name}.sqlite3"), "--log-level", "warning",
    ]  # fmt: skip
    return Target(
        name, f"http://127.0.0.1:{port}", argv=argv, cwd=REPO_ROOT,
        log_path=work / f"{name}.log",
    )  # fmt: skip


def reference_target(work: Path, port: int, reference_dir: Path) -> Target:
    script = reference_dir / "start-reference-server.mjs"
    if not script.exists() or not (reference_dir / "node_modules").is_dir():
        raise ServerError(
            f"--reference-dir {reference_dir}: expected an npm-installed copy of "
            "/work/shared/reference (start-reference-server.mjs and node_modules/); make one "
            "outside the repository:  cp -r /work/shared/reference DIR && cd DIR && npm install"
        )
    common = [
        "node", str(script), "--port", str(port), "--server-path", "reflect-server/noauth.ts",
        "--persist", str(work / "reference-data"), "--log-level", "error",
    ]  # fmt: skip
    return Target(
        "original", f"http://127.0.0.1:{port}", argv=[*common, "--fresh"], restart_argv=common,
        cwd=reference_dir, log_path=work / "original.log",
    )  # fmt: skip


# ----------------------------------------------------------------------------------- runs


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
    idle_connections: int = 10_000
    storm_clients: int = 5000
    per_room: int = 10
    #: mutations/s offered in the soak (100 rooms x 2 clients); 0: half of what a
    #: proto-rooms run on the same server confirms just before
    #: Node processes that share a real-client workload (one is the limit on 2 cores)
    driver_procs: int = 1
    soak_rate: float = 0.0
    soak_seconds: float = 600.0
    soak_window: float = 30.0

    @classmethod
    def quick(cls) -> Sizes:
        """Small sizes: a smoke run of every workload in well under a minute per target."""
        return cls(
            closed_clients=3, closed_mutations=5, open_clients=2, open_mutations=20, rooms=3,
            rooms_mutations=5, connect_clients=3, proto_rooms=3, proto_mutations=5,
            fanout_clients=10, fanout_writers=2, fanout_duration=1.0, idle_connections=20,
            storm_clients=20, per_room=5, soak_rate=100.0, soak_seconds=2.0, soak_window=0.5,
        )  # fmt: skip


def node_available() -> str | None:
    """Why the real-client workloads cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not (NODE_DIR / "node_modules" / "@rocicorp" / "reflect").is_dir():
        return "bench/node/node_modules is missing: run bench/bootstrap-node"
    return None


def run_node(target: Target, workload: str, sizes: Sizes, timeout: float) -> dict[str, Any]:
    """One workload with the real client, in ``sizes.driver_procs`` Node processes: the
    clients (or rooms) are split between them, in the same room(s), and they all start
    mutating at the same moment; their results are merged."""
    procs = max(1, sizes.driver_procs)
    total = {
        "closed": sizes.closed_clients, "open": sizes.open_clients, "rooms": sizes.rooms,
        "connect": sizes.connect_clients,
    }[workload]  # fmt: skip
    shares = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
    room = f"{workload}-{uuid.uuid4().hex[:10]}"
    start_at = int(time.time() * 1000) + 2000 + 20 * max(shares)  # after every connect
    running = []
    for i, share in enumerate(s for s in shares if s > 0):
        args = {
            "closed": ["--clients", share, "--mutations", sizes.closed_mutations],
            "open": ["--clients", share, "--mutations", sizes.open_mutations],
            "rooms": ["--rooms", share, "--clients", sizes.rooms_clients,
                      "--mutations", sizes.rooms_mutations],
            "connect": ["--clients", share],
        }[workload]  # fmt: skip
        argv = ["node", str(DRIVER), "--server", target.url, "--workload", workload]
        argv += [str(a) for a in args] + ["--timeout", str(int(timeout))]
        argv += [
            "--room",
            f"{room}-{i}" if workload == "rooms" else room,
            "--user-prefix",
            f"p{i}u",
        ]
        if procs > 1 and workload != "connect":
            argv += ["--start-at", str(start_at)]
        running.append(
            subprocess.Popen(
                argv, cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    raws = []
    for proc in running:
        out, err = proc.communicate(timeout=timeout + 30)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(
                f"node driver printed no result (exit {proc.returncode}): {err[-2000:]}"
            )
        raws.append(json.loads(lines[-1]))
    result = condense_node(merge_node(raws))
    result["driverProcs"] = len(raws)
    return result


def merge_node(raws: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The results of several drivers of one workload as one: samples and counts add up;
    throughput is what all confirmed over the span from the first start to the last
    confirmation."""
    if len(raws) == 1:
        return dict(raws[0])
    merged: dict[str, Any] = dict(raws[0])
    for key in ("roundTripMs", "visibilityMs", "confirmLatencyMs", "connectMs"):
        if key in merged:
            merged[key] = [v for raw in raws for v in raw.get(key, [])]
    for key in ("clients", "rooms", "mutations", "confirmed", "driverCpuMs", "clientErrors"):
        if key in merged:
            merged[key] = sum(raw.get(key, 0) for raw in raws)
    merged["ok"] = all(raw.get("ok") for raw in raws)
    merged["clientErrorSamples"] = [e for raw in raws for e in raw.get("clientErrorSamples", [])]
    if all("startedAtEpochMs" in raw for raw in raws):
        start = min(raw["startedAtEpochMs"] for raw in raws)
        end = max(raw["lastConfirmedAtEpochMs"] for raw in raws)
        merged["elapsedMs"] = end - start
        merged["confirmedPerSec"] = round(merged["confirmed"] * 1000 / max(1, end - start), 3)
    return merged


def condense_node(raw: dict[str, Any]) -> dict[str, Any]:
    """Summaries of the driver's raw samples (closed-loop samples are kept for the chart)."""
    out = {k: v for k, v in raw.items() if not isinstance(v, list)}
    out["clientErrorSamples"] = raw.get("clientErrorSamples", [])[:5]
    if "roundTripMs" in raw:
        out["roundTrip"] = summarize(raw["roundTripMs"])
        out["visibility"] = summarize(raw["visibilityMs"])
        out["samples"] = {"roundTripMs": raw["roundTripMs"], "visibilityMs": raw["visibilityMs"]}
    if "confirmLatencyMs" in raw:
        out["confirmLatency"] = summarize(raw["confirmLatencyMs"])
        out["confirmLatencySketch"] = quantile_sketch(raw["confirmLatencyMs"])
    connect = [v for v in raw.get("connectMs", []) if v is not None and not math.isnan(v)]
    out["connect"] = summarize(connect)
    if raw.get("workload") == "connect":
        out.setdefault("samples", {})["connectMs"] = connect
    return out


def run_proto(target: Target, workload: str, sizes: Sizes) -> dict[str, Any]:
    if workload == "proto-rooms":
        coro = loadgen.rooms_workload(
            target.url, rooms=sizes.proto_rooms, clients=sizes.proto_clients,
            mutations=sizes.proto_mutations, window=sizes.proto_window,
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
        result["loadgenCpuS"] = round(time.process_time() - own_cpu0, 2)
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


# ----------------------------------------------------------------------------------- summary


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


#: the goals of issue #6 part 1 (docs/performance.md)
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
    {"goal": "500-client room poke p99 <= 150 ms", "workload": "fanout", "metric": "p99",
     "kind": "value", "op": "<=", "bound": 150,
     "sizes": {"fanout_clients": 500, "fanout_writers": 25, "fanout_rate": 5.0}},
    {"goal": "10,000 idle connections <= 30 KiB RSS each", "workload": "idle", "metric": "rss",
     "kind": "value", "op": "<=", "bound": 30, "sizes": {"idle_connections": 10_000}},
    {"goal": "5,000 clients reconnecting within 20 s", "workload": "storm", "metric": "all",
     "kind": "value", "op": "<=", "bound": 20, "sizes": {"storm_clients": 5000}},
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


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table_rows(rows: Sequence[dict[str, Any]], targets: Sequence[str]) -> list[list[str]]:
    out = []
    for row in rows:
        cells = [row["label"], row["unit"]]
        for t in targets:
            values = row["values"].get(t, [])
            cells.append(_fmt(row["median"].get(t)) + (f" (n={len(values)})" if values else ""))
        if len(targets) > 1:
            r = row.get("ratio")
            cells.append("-" if r is None else f"{r:.2f}x")
        out.append(cells)
    return out


def print_table(
    rows: Sequence[dict[str, Any]],
    goals: Sequence[dict[str, Any]],
    targets: Sequence[str],
    *,
    plain: bool,
) -> None:
    header = ["measure", "unit", *[f"{t} (median)" for t in targets]]
    if len(targets) > 1:
        header.append("reflectd/original")
    body = table_rows(rows, targets)
    goal_rows = [
        [
            g["goal"],
            _fmt(g["value"]),
            {True: "met", False: "MISSED", None: g.get("note", "-")}[g["met"]],
        ]
        for g in goals
    ]
    if not plain:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            plain = True
    if plain:
        print(markdown_table(header, body))
        if goal_rows:
            print()
            print(markdown_table(["goal", "value", "status"], goal_rows))
        return
    console = Console()
    table = Table(title="reflectd benchmark (medians over repetitions)")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for cells in body:
        table.add_row(*cells)
    console.print(table)
    if goal_rows:
        goals_table = Table(title="goals")
        for h in ("goal", "value", "status"):
            goals_table.add_column(h)
        for cells in goal_rows:
            goals_table.add_row(*cells)
        console.print(goals_table)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- chart


def ensure_matplotlib(log: Callable[[str], None]) -> bool:
    """Whether the chart can be drawn (matplotlib is in reflectd's dev extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("no chart: matplotlib is missing (scripts/bootstrap installs it; or --no-chart)")
        return False
    return True


def _cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    ordered = sorted(values)
    n = len(ordered)
    return ordered, [100 * (i + 1) / n for i in range(n)]


def draw_chart(
    runs: Sequence[dict[str, Any]],
    targets: Sequence[str],
    path: Path,
    log: Callable[[str], None],
) -> bool:
    if not ensure_matplotlib(log):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    panels: list[tuple[str, str, Callable[[dict[str, Any]], list[float] | None]]] = [
        ("closed", "(a) round trip to server confirmation",
         lambda r: r.get("samples", {}).get("roundTripMs")),
        ("closed", "(a) time until another client sees it",
         lambda r: r.get("samples", {}).get("visibilityMs")),
        ("connect", "(d) connect time", lambda r: r.get("samples", {}).get("connectMs")),
        ("open", "(b) one room open loop: mutate to confirmation",
         lambda r: r.get("confirmLatencySketch")),
        ("proto-rooms", "protocol, many rooms: push to confirmation",
         lambda r: r.get("confirmLatencySketch")),
        ("fanout", "protocol, big room: push to each client's poke",
         lambda r: r.get("pokeLatencySketch")),
    ]  # fmt: skip
    present = [p for p in panels if any(r["workload"] == p[0] for r in runs)]
    if not present:
        return False
    cols = 2
    rows_n = (len(present) + 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(12, 3.6 * rows_n), squeeze=False)
    colors = {"reflectd": "tab:blue", "reflectd-ts": "tab:green", "original": "tab:orange"}
    for ax, (workload, title, pick) in zip(axes.flat, present, strict=False):
        for target in targets:
            values: list[float] = []
            for run in runs:
                if run["workload"] == workload and run["target"] == target:
                    values += pick(run["result"]) or []
            if not values:
                continue
            xs, ys = _cdf(values)
            p50 = summarize(values)["p50"]
            ax.plot(xs, ys, label=f"{target} (p50 {p50:.0f} ms)", color=colors.get(target))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ms")
        ax.set_ylabel("% of samples ≤ x")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    for ax in list(axes.flat)[len(present) :]:
        ax.axis("off")
    fig.suptitle("Latency distributions (CDF, all repetitions pooled)", fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log(f"chart: {path}")
    return True


# ----------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=(
            "Benchmark a Reflect server with the real @rocicorp/reflect client (Node) and a "
            "protocol-level load generator; or reflectd and the original side by side."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="benchmark the server at this origin (already running)")
    where.add_argument(
        "--side-by-side",
        action="store_true",
        help="start reflectd (bench/app.py) and the original (--reference-dir) and compare",
    )
    where.add_argument(
        "--replot",
        type=Path,
        metavar="JSON",
        help="print the table and draw the chart of an earlier results file (no runs)",
    )
    p.add_argument("--name", default="server", help="with --url: the name in the results")
    p.add_argument(
        "--server-pid",
        type=int,
        help="with --url: the server's process id (idle measures its RSS; else skipped)",
    )
    p.add_argument(
        "--reference-dir",
        default=os.environ.get("REFLECTD_REFERENCE_DIR"),
        help="an npm-installed copy of /work/shared/reference, outside the repository "
        "(default: $REFLECTD_REFERENCE_DIR)",
    )
    p.add_argument(
        "--targets",
        default="reflectd,original",
        help="with --side-by-side: which servers to run (reflectd: the benchmark app in "
        "Python, reflectd-ts: the same app as a Reflect server module, original)",
    )
    p.add_argument(
        "--workloads",
        default=",".join(DEFAULT_WORKLOADS),
        help=f"comma-separated, from: {', '.join(ALL_WORKLOADS)} (soak only when named)",
    )
    p.add_argument("-n", "--repetitions", type=int, default=5, help="repetitions")
    p.add_argument(
        "--heavy-repetitions",
        type=int,
        default=1,
        help=f"repetitions of the long protocol workloads ({', '.join(HEAVY_WORKLOADS)})",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    p.add_argument("--timeout", type=float, default=180, help="seconds per real-client run")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SIZE=VALUE",
        help="override a size, e.g. --set closed_clients=10 (names: "
        + ", ".join(Sizes.__dataclass_fields__)
        + ")",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="JSON results file (default: bench/results/bench-<time>.json)",
    )
    p.add_argument(
        "--chart",
        type=Path,
        help="PNG chart of the latency distributions (default: next to the JSON)",
    )
    p.add_argument("--no-chart", action="store_true", help="do not draw the chart")
    p.add_argument("--plain", action="store_true", help="plain (markdown) table, not rich")
    p.add_argument("--keep", action="store_true", help="keep the servers' data and logs")
    return p


def parse_sizes(args: argparse.Namespace) -> Sizes:
    sizes = Sizes.quick() if args.quick else Sizes()
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in Sizes.__dataclass_fields__ or not value:
            raise SystemExit(f"--set {item}: unknown size (see --help)")
        kind = type(getattr(sizes, name))
        setattr(sizes, name, kind(value))
    return sizes


@contextlib.contextmanager
def managed_targets(
    names: Sequence[str], reference_dir: str | None, work: Path, log: Callable[[str], None]
) -> Iterator[list[Target]]:
    targets: list[Target] = []
    try:
        for name in names:
            if name in REFLECTD_APPS:
                t = reflectd_target(work, free_port(), name)
            elif name == "original":
                if not reference_dir:
                    raise ServerError(
                        "the original needs --reference-dir or REFLECTD_REFERENCE_DIR: an "
                        "npm-installed copy of /work/shared/reference outside the repository "
                        "(or pass --targets reflectd)"
                    )
                t = reference_target(work, free_port(), Path(reference_dir).resolve())
            else:
                raise ServerError(f"unknown target {name!r} (reflectd, reflectd-ts, original)")
            log(f"starting {name} on {t.url} (log: {t.log_path})")
            t.start()
            targets.append(t)
        yield targets
    finally:
        for t in targets:
            t.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.replot:
        return replot(args)
    sizes = parse_sizes(args)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in ALL_WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(unknown)} (see --help)")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    why_not = node_available()
    if why_not and any(w in NODE_WORKLOADS for w in workloads):
        log(f"skipping the real-client workloads: {why_not}")
        workloads = [w for w in workloads if w not in NODE_WORKLOADS]
    loadgen.raise_fd_limit()  # the servers we start inherit it too
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or BENCH_DIR / "results" / f"bench-{stamp}.json"
    work = Path(tempfile.mkdtemp(prefix="reflectd-bench-"))
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    try:
        if args.url:
            targets_cm: contextlib.AbstractContextManager[list[Target]] = contextlib.nullcontext(
                [Target(args.name, args.url.rstrip("/"), pid=args.server_pid)]
            )
        else:
            names = [n.strip() for n in args.targets.split(",") if n.strip()]
            targets_cm = managed_targets(names, args.reference_dir, work, log)
        with targets_cm as targets:
            if not any(t.pid for t in targets) and "idle" in workloads:
                log("idle: no --server-pid, so the RSS per connection is not measured")
            runs = run_all(
                targets,
                workloads,
                sizes=sizes,
                repetitions=args.repetitions,
                heavy_repetitions=args.heavy_repetitions,
                timeout=args.timeout,
                log=log,
            )
            names = [t.name for t in targets]
    except ServerError as exc:
        log(f"error: {exc}")
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    rows = summarize_runs(runs, names)
    goals = check_goals(rows, vars(sizes)) if "reflectd" in names else []
    document = {
        "schema": SCHEMA,
        "started": started,
        "durationS": round(time.monotonic() - t0, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "node": _node_version(),
        },
        "config": {
            "mode": "url" if args.url else "side-by-side",
            "targets": names,
            "workloads": workloads,
            "repetitions": args.repetitions,
            "heavyRepetitions": args.heavy_repetitions,
            "sizes": vars(sizes),
        },
        "runs": runs,
        "summary": rows,
        "goals": goals,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    print_table(rows, goals, names, plain=args.plain)
    log(f"results: {out}")
    if not args.no_chart:
        draw_chart(runs, names, args.chart or out.with_suffix(".png"), log)
    failed = [r for r in runs if not r["result"].get("ok", False)]
    if failed:
        log(f"{len(failed)} run(s) failed; see 'error' in {out}")
    return 1 if failed else 0


def replot(args: argparse.Namespace) -> int:
    doc = json.loads(args.replot.read_text())
    names = doc["config"]["targets"]
    rows = summarize_runs(doc["runs"], names)
    goals = check_goals(rows, doc["config"]["sizes"]) if "reflectd" in names else []
    print_table(rows, goals, names, plain=args.plain)
    if not args.no_chart:
        log = lambda line: print(line, file=sys.stderr)  # noqa: E731
        draw_chart(doc["runs"], names, args.chart or args.replot.with_suffix(".png"), log)
    return 0


def _node_version() -> str | None:
    if shutil.which("node") is None:
        return None
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())

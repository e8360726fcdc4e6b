"""The real-client workloads: bench/node/bench.mjs (the unmodified @rocicorp/reflect client
under Node) in one or more Node processes, their results merged and summarized."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.servers import Target
from bench.sizes import Sizes
from bench.stats import quantile_sketch, summarize

NODE_DIR = Path(__file__).resolve().parent / "node"
DRIVER = NODE_DIR / "bench.mjs"


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

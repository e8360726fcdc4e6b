"""Benchmark reflectd (and the original Reflect server) with the real client and at protocol
level; print a table, write JSON and draw a chart. See docs/performance.md.

    python -m bench.run --url http://127.0.0.1:8080            # any running server
    python -m bench.run --side-by-side                          # reflectd and the original

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
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: python bench/run.py
    sys.path.insert(0, str(REPO_ROOT))

from bench import loadgen  # noqa: E402
from bench.realclient import node_available  # noqa: E402
from bench.report import draw_chart, print_table  # noqa: E402
from bench.runs import run_all  # noqa: E402
from bench.servers import ServerError, Target, managed_targets  # noqa: E402
from bench.sizes import (  # noqa: E402
    ALL_WORKLOADS,
    DEFAULT_WORKLOADS,
    HEAVY_WORKLOADS,
    NODE_WORKLOADS,
    Sizes,
)
from bench.summary import check_goals, summarize_runs  # noqa: E402

SCHEMA = "reflectd-bench/1"


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
        help="start reflectd (bench/app.py) and the original (bench/node/original.mjs) and compare",
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
        help="start the original from this folder instead of bench/node: its "
        "start-reference-server.mjs (taking the options of bench/node/original.mjs) serving "
        "reflect-server/noauth.ts, with node_modules installed (default: "
        "$REFLECTD_REFERENCE_DIR)",
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

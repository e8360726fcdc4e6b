"""Aggregate confirmed mutations/s of R rooms x C clients on one reflectd node versus two,
both on one PostgreSQL (the multi-node setup of docs/deployment.md).

    .venv/bin/python -m bench.cluster [--db postgresql://postgres@127.0.0.1:5432/test]
        [--rooms 100] [--clients 2] [--mutations 50] [--repetitions 3]

Each node gets its share of the rooms, driven by its own load-generator process (so the
generator is not one shared bottleneck); every room is created by its first connect on the
node that serves it, so no socket is proxied. Prints a table and one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench.servers import REPO_ROOT, Target, free_port
from bench.stats import median


def _node(work: Path, db: str, index: int) -> Target:
    port = free_port()
    exe = Path(sys.executable).parent / "reflectd"
    argv = [
        str(exe), "serve", "bench/app.py:app", "--host", "127.0.0.1", "--port", str(port),
        "--db", db, "--node-id", f"bench-{index}", "--log-level", "warning",
    ]  # fmt: skip
    return Target(
        f"node{index}", f"http://127.0.0.1:{port}", argv=argv, cwd=REPO_ROOT,
        log_path=work / f"node{index}.log",
    )  # fmt: skip


def run_once(args: argparse.Namespace, nodes: int, work: Path, db: str) -> dict[str, Any]:
    """One run with ``nodes`` nodes on the database ``db`` (a URL naming a fresh schema)."""
    targets = [_node(work, db, i) for i in range(nodes)]
    try:
        for target in targets:
            target.start()
        share = args.rooms // nodes
        generators = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.loadgen",
                    "rooms",
                    "--url",
                    target.url,
                    "--rooms",
                    str(share),
                    "--clients",
                    str(args.clients),
                    "--mutations",
                    str(args.mutations),
                ],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
            )
            for target in targets
        ]
        results = [json.loads(g.communicate()[0]) for g in generators]
    finally:
        for target in targets:
            target.stop()
    confirmed = sum(r["confirmed"] for r in results)
    elapsed_ms = max(r["elapsedMs"] for r in results)
    return {
        "nodes": nodes,
        "confirmed": confirmed,
        "expected": args.rooms // nodes * nodes * args.clients * args.mutations,
        "confirmedPerSec": round(confirmed * 1000 / elapsed_ms, 1),
    }


async def _drop_schema(db: str, schema: str) -> None:
    conn = await asyncpg.connect(db.partition("?")[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--clients", type=int, default=2, help="clients per room")
    parser.add_argument("--mutations", type=int, default=50, help="mutations per client")
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="reflectd-cluster-bench-") as tmp:
        for _ in range(args.repetitions):
            for nodes in (1, 2):  # alternate, so drift on the machine hits both alike
                schema = f"reflectd_bench_{secrets.token_hex(4)}"
                db = f"{args.db}{'&' if '?' in args.db else '?'}schema={schema}"
                try:
                    runs[nodes].append(run_once(args, nodes, Path(tmp), db))
                finally:
                    asyncio.run(_drop_schema(args.db, schema))
    summary = {
        f"{nodes}-node": {
            "confirmedPerSecMedian": median([r["confirmedPerSec"] for r in rs]),
            "runs": rs,
        }
        for nodes, rs in runs.items()
    }
    one, two = (summary[k]["confirmedPerSecMedian"] for k in ("1-node", "2-node"))
    summary["ratio2to1"] = round(two / one, 2) if one else None
    print(f"{'nodes':>5}  {'confirmed mutations/s (median)':>32}", file=sys.stderr)
    print(f"{1:>5}  {one:>32,.0f}\n{2:>5}  {two:>32,.0f}", file=sys.stderr)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m bench.loadgen WORKLOAD``: one protocol-level workload on its own; prints JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from bench.loadgen import (
    WORKLOADS,
    fanout_workload,
    idle_workload,
    raise_fd_limit,
    rooms_workload,
    run_async,
    soak_workload,
    storm_workload,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description="Protocol-level load against a Reflect server; prints one JSON object.",
    )
    p.add_argument("workload", choices=WORKLOADS)
    p.add_argument("--url", default="http://127.0.0.1:8080", help="the server's origin")
    p.add_argument("--rooms", type=int, default=100, help="rooms: number of rooms")
    p.add_argument("--clients", type=int, help="clients per room (rooms) or in all")
    p.add_argument("--mutations", type=int, default=50, help="rooms: mutations per client")
    p.add_argument("--window", type=int, default=8, help="rooms: unconfirmed mutations allowed")
    p.add_argument("--writers", type=int, default=25, help="fanout: clients that write")
    p.add_argument("--rate", type=float, default=5.0, help="fanout: mutations/s per writer")
    p.add_argument("--duration", type=float, default=10.0, help="fanout: seconds of writing")
    p.add_argument("--connections", type=int, default=10_000, help="idle: connections")
    p.add_argument("--per-room", type=int, default=10, help="idle, storm: clients per room")
    p.add_argument("--offered", type=float, default=5000.0, help="soak: mutations/s offered in all")
    p.add_argument("--seconds", type=float, default=600.0, help="soak: how long")
    p.add_argument("--window-seconds", type=float, default=30.0, help="soak: window length")
    p.add_argument("--server-pid", type=int, help="idle, soak: the server process, for its RSS")
    return p


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    if args.workload == "rooms":
        return await rooms_workload(
            args.url,
            rooms=args.rooms,
            clients=args.clients or 2,
            mutations=args.mutations,
            window=args.window,
        )
    if args.workload == "fanout":
        return await fanout_workload(
            args.url,
            clients=args.clients or 500,
            writers=args.writers,
            rate=args.rate,
            duration=args.duration,
        )
    if args.workload == "idle":
        return await idle_workload(
            args.url,
            connections=args.connections,
            clients_per_room=args.per_room,
            server_pid=args.server_pid,
        )
    if args.workload == "soak":
        return await soak_workload(
            args.url,
            rooms=args.rooms,
            clients=args.clients or 2,
            rate=args.offered,
            duration=args.seconds,
            window_s=args.window_seconds,
            server_pid=args.server_pid,
        )
    return await storm_workload(
        args.url, clients=args.clients or 5000, clients_per_room=args.per_room
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    raise_fd_limit()
    print(json.dumps(run_async(_main(args))))


if __name__ == "__main__":
    main()

"""The real-client load driver (bench/node/bench.mjs) against reflectd, at tiny sizes.

Skipped without Node or without bench/node/node_modules (bench/bootstrap-node installs it).
"""

from __future__ import annotations

import pytest

from bench.realclient import merge_node, node_available, run_node
from bench.servers import Target
from bench.sizes import Sizes

pytestmark = pytest.mark.skipif(
    node_available() is not None,
    reason=f"real-client benchmark driver unavailable: {node_available()}",
)


def test_closed_loop_confirms_every_mutation(reflectd: Target) -> None:
    sizes = Sizes(closed_clients=2, closed_mutations=3)
    result = run_node(reflectd, "closed", sizes, timeout=60)
    assert result["ok"], result
    assert result["confirmed"] == 6
    assert result["roundTrip"]["count"] == 6
    assert result["visibility"]["count"] == 6  # each client's writes seen by the other
    assert len(result["samples"]["roundTripMs"]) == 6
    assert result["connect"]["count"] == 2
    assert result["clientErrors"] == 0


def test_open_loop_and_connect(reflectd: Target) -> None:
    sizes = Sizes(rooms=2, rooms_clients=2, rooms_mutations=4, connect_clients=2)
    rooms = run_node(reflectd, "rooms", sizes, timeout=60)
    assert rooms["ok"], rooms
    assert rooms["confirmed"] == rooms["mutations"] == 16
    assert rooms["confirmedPerSec"] > 0
    assert rooms["confirmLatency"]["count"] == 16
    connect = run_node(reflectd, "connect", sizes, timeout=60)
    assert connect["ok"], connect
    assert connect["connect"]["count"] == 2


def test_several_drivers_share_one_room_and_their_results_add_up(reflectd: Target) -> None:
    sizes = Sizes(open_clients=3, open_mutations=4, closed_clients=2, closed_mutations=2)
    sizes.driver_procs = 2
    result = run_node(reflectd, "open", sizes, timeout=60)
    assert result["ok"], result
    assert result["driverProcs"] == 2
    assert result["clients"] == 3
    assert result["confirmed"] == result["mutations"] == 12
    assert result["confirmLatency"]["count"] == 12
    assert result["connect"]["count"] == 3
    assert 0 < result["confirmedPerSec"] < 12 * 1000 / result["elapsedMs"] + 1
    closed = run_node(reflectd, "closed", sizes, timeout=60)
    assert closed["ok"], closed
    assert closed["roundTrip"]["count"] == 4


def test_merged_throughput_spans_from_the_first_start_to_the_last_confirmation() -> None:
    one = {"ok": True, "confirmed": 100, "mutations": 100, "confirmLatencyMs": [1.0],
           "startedAtEpochMs": 1000, "lastConfirmedAtEpochMs": 1500}  # fmt: skip
    two = {"ok": True, "confirmed": 100, "mutations": 100, "confirmLatencyMs": [2.0],
           "startedAtEpochMs": 1100, "lastConfirmedAtEpochMs": 2000}  # fmt: skip
    merged = merge_node([one, two])
    assert merged["confirmed"] == 200
    assert merged["elapsedMs"] == 1000
    assert merged["confirmedPerSec"] == 200
    assert merged["confirmLatencyMs"] == [1.0, 2.0]

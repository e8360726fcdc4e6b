"""The real-client load driver (bench/node/bench.mjs) against reflectd, at tiny sizes.

Skipped without Node or without bench/node/node_modules (bench/bootstrap-node installs it).
"""

from __future__ import annotations

import pytest

from bench.run import Sizes, Target, node_available, run_node

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

"""The one-node-versus-two benchmark (bench/cluster.py), on small sizes."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cluster import run_once

from .conftest import POSTGRES_URL


def test_two_nodes_confirm_every_mutation_of_their_share_of_the_rooms(
    postgres_schema: str, tmp_path: Path
) -> None:
    args = argparse.Namespace(rooms=4, clients=2, mutations=3)

    result = run_once(args, 2, tmp_path, f"{POSTGRES_URL}?schema={postgres_schema}")

    assert result["nodes"] == 2
    assert result["confirmed"] == result["expected"] == 4 * 2 * 3
    assert result["confirmedPerSec"] > 0

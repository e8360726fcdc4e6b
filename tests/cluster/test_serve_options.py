"""The cluster options of ``reflectd serve``."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from reflectd.cli import cli, default_advertise_url


def test_the_default_advertise_url_is_the_listening_address() -> None:
    assert default_advertise_url("127.0.0.1", 8081) == "http://127.0.0.1:8081"
    assert default_advertise_url("::1", 8081) == "http://[::1]:8081"


def test_a_wildcard_host_advertises_the_machines_name() -> None:
    assert default_advertise_url("0.0.0.0", 80) == f"http://{socket.gethostname()}:80"


def test_serve_documents_the_cluster_options_and_their_environment_variables() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option, env in [
        ("--advertise-url", "REFLECTD_ADVERTISE_URL"),
        ("--node-id", "REFLECTD_NODE_ID"),
        ("--lease-ms", "REFLECTD_LEASE_MS"),
    ]:
        assert option in result.output and env in result.output

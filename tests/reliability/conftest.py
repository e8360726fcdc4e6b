"""Fixtures for the reliability tests: the interop tests' Node check and real-client driver
are reused."""

from __future__ import annotations

from interop.conftest import clients, node_ready

__all__ = ["clients", "node_ready"]

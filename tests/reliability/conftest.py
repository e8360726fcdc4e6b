"""Fixtures for the reliability tests: the interop tests' Node check is reused."""

from __future__ import annotations

from interop.conftest import node_ready

__all__ = ["node_ready"]

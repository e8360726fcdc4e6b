"""Test harness for the JS runtime: a Reflect server module from tests/js/apps, run by a
``JsRuntime``, and a room driven through the engine's seam (``Room.run_calls``) as the server
drives it, without a client.

``JsRoom.mutate("put", {...})`` runs one mutation and returns its ``CallResult``;
``JsRoom.batch(...)`` runs several as one turn's batch; ``JsRoom.values()`` is the room's live
user values, decoded. The apps write what they saw at ``out``: ``JsRoom.out(result)``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reflectd.engine.handlers import AppCall, CallFailed, CallResult, RoomHandlers
from reflectd.engine.records import ClientRecord, Entry, RoomSnapshot
from reflectd.engine.room import Room
from reflectd.js import JsLimits, JsRuntime

REPO_ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).parent / "apps"
JS_NODE_DIR = REPO_ROOT / "src" / "reflectd" / "js" / "node"

REQUIRE = os.environ.get("REFLECTD_REQUIRE_INTEROP", "") == "1"

JSON = Any


def unavailable(reason: str) -> None:
    """Skip: the JS runtime cannot run here; a failure when ``REFLECTD_REQUIRE_INTEROP=1``."""
    if REQUIRE:
        pytest.fail(f"{reason}\n(REFLECTD_REQUIRE_INTEROP=1: the JS runtime tests must run)", False)
    pytest.skip(reason)


def check_node() -> str:
    """Node >= 20 on PATH with the JS runtime's esbuild installed (scripts/bootstrap-node)."""
    node = shutil.which("node")
    if node is None:
        unavailable("the JS runtime tests need Node >= 20 on PATH (node not found)")
        raise AssertionError("unreachable")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    match = re.match(r"v(\d+)", version)
    if not match or int(match.group(1)) < 20:
        unavailable(f"the JS runtime tests need Node >= 20 (found {version or 'unknown'})")
    esbuild = JS_NODE_DIR / "node_modules" / "esbuild"
    if not esbuild.is_dir():
        subprocess.run([str(REPO_ROOT / "scripts" / "bootstrap-node")], capture_output=True)
    if not esbuild.is_dir():
        unavailable(f"{esbuild.relative_to(REPO_ROOT)} is missing: run scripts/bootstrap-node")
    return node


def start_runtime(
    app: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    limits: JsLimits | None = None,
    max_key_bytes: int = 2048,
    max_value_bytes: int = 128 * 1024,
) -> JsRuntime:
    """A runtime for ``app``: a file name under tests/js/apps, or a path."""
    return JsRuntime(
        APPS / app if isinstance(app, str) else app,
        mode="production",
        env=env or {},
        max_key_bytes=max_key_bytes,
        max_value_bytes=max_value_bytes,
        limits=limits,
    )


def mutation(
    name: str,
    args: JSON = None,
    *,
    client_id: str = "c1",
    mutation_id: int = 1,
    auth: Mapping[str, Any] | None = None,
) -> AppCall:
    """A mutation call (its version is set by ``JsRoom``)."""
    return AppCall(
        "mutator",
        client_id=client_id,
        version=0,
        name=name,
        args=args,
        mutation_id=mutation_id,
        auth=auth,
    )


@dataclass
class JsRoom:
    """A room whose app code is ``runtime``'s; each batch runs at the next version."""

    runtime: JsRuntime
    room_id: str = "r1"
    env: Mapping[str, str] = field(default_factory=dict)
    snapshot: RoomSnapshot = field(default_factory=RoomSnapshot)

    def __post_init__(self) -> None:
        handlers = RoomHandlers(runtime=self.runtime, env=self.env)
        self.room = Room(self.room_id, self.snapshot, handlers=handlers)
        self._mutation_ids: dict[str, int] = {}

    @property
    def version(self) -> int:
        return self.room.state.version or 0

    def batch(self, *calls: AppCall) -> list[CallResult]:
        """Run ``calls`` as one batch at the next version; mutation ids count up per client."""
        version = self.version + 1
        numbered = []
        for call in calls:
            mutation_id = call.mutation_id
            if call.kind == "mutator":
                mutation_id = self._mutation_ids.get(call.client_id, 0) + 1
                self._mutation_ids[call.client_id] = mutation_id
            numbered.append(_replace(call, version=version, mutation_id=mutation_id))
        results = self.room.run_calls(numbered)
        self.room.state.set_version(version)
        self.room.take_writes()
        return results

    def mutate(self, name: str, args: JSON = None, **kwargs: Any) -> CallResult:
        """Run one mutation (a batch of one)."""
        return self.batch(mutation(name, args, **kwargs))[0]

    def out(self, name: str, args: JSON = None, **kwargs: Any) -> JSON:
        """Run one mutation that reports at ``out``; what it wrote there."""
        result = self.mutate(name, args, **kwargs)
        assert not isinstance(result, CallFailed), result
        return json.loads(result["out"].value)

    def values(self) -> dict[str, JSON]:
        """The room's live user values."""
        return {
            key: json.loads(entry.value)
            for key, entry in self.room.state.entries.items()
            if not entry.deleted
        }

    def put_from_python(self, values: Mapping[str, JSON]) -> None:
        """Write entries as Python code does (a Python handler, the REST API)."""
        version = self.version + 1
        self.room.state.put_entries(
            {
                key: Entry(version=version, deleted=False, value=json.dumps(value).encode())
                for key, value in values.items()
            }
        )
        self.room.state.set_version(version)

    def add_client(self, client_id: str) -> None:
        """A client record (as a connect leaves it), for client deletes."""
        self.room.state.put_client(
            client_id,
            ClientRecord(
                client_group_id=f"g-{client_id}",
                base_cookie=None,
                last_mutation_id=0,
                last_mutation_id_version=None,
                last_seen_ms=0,
                user_id="u1",
            ),
        )


def _replace(call: AppCall, **changes: Any) -> AppCall:
    fields = {name: getattr(call, name) for name in AppCall.__dataclass_fields__}
    fields.update(changes)
    return AppCall(**fields)


def written(result: CallResult) -> dict[str, JSON]:
    """A call's writes: live values decoded, deletes as ``"<deleted>"``."""
    assert not isinstance(result, CallFailed), result
    return {
        key: "<deleted>" if entry.deleted else json.loads(entry.value)
        for key, entry in result.items()
    }


def failure(result: CallResult) -> str:
    """Why a call failed (the test fails if it did not)."""
    assert isinstance(result, CallFailed), f"expected a failure, got {result}"
    return result.message

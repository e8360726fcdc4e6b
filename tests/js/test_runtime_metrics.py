"""The JS runtime's counts reach ``/metrics``: a call stopped at the time limit, the batch
during which the runtime stopped, and its restart."""

from __future__ import annotations

from collections.abc import Callable

from reflectd.js import JsLimits, JsRuntime
from reflectd.server import metrics

from .harness import JsRoom, failure, mutation

Start = Callable[..., JsRuntime]

NAMES = (
    "reflectd_js_runtime_timeouts_total",
    "reflectd_js_runtime_errors_total",
    "reflectd_js_runtime_restarts_total",
)


def _values() -> dict[str, float]:
    return {name: metrics.REGISTRY.get_sample_value(name) or 0.0 for name in NAMES}


def test_a_runaway_mutator_counts_a_timeout_an_error_and_a_restart(runtime_of: Start) -> None:
    room = JsRoom(runtime_of("limits.ts", limits=JsLimits(cpu_limit_ms=200)))
    before = _values()

    results = room.batch(mutation("put", {"key": "a", "value": 1}), mutation("spin"))

    assert "time limit" in failure(results[1])
    after = _values()
    assert {name: after[name] - before[name] for name in NAMES} == {
        "reflectd_js_runtime_timeouts_total": 1,
        "reflectd_js_runtime_errors_total": 1,
        "reflectd_js_runtime_restarts_total": 1,
    }

"""Small statistics helpers for the benchmark, on the standard library's ``statistics``.

Quantiles are ``statistics.quantiles(..., method="inclusive")``: linear interpolation between
closest ranks, as numpy's default ("linear") computes them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence


def _cut_points(ordered: Sequence[float], n: int) -> list[float]:
    """The ``n + 1`` quantiles 0/n, 1/n, ..., n/n of sorted, non-empty ``ordered``."""
    if len(ordered) == 1:
        return [ordered[0]] * (n + 1)
    inner = statistics.quantiles(ordered, n=n, method="inclusive")
    return [ordered[0], *inner, ordered[-1]]


def percentile(values: Iterable[float], q: int) -> float:
    """The ``q``-th percentile (a whole number, 0..100); NaN for no values."""
    if not 0 <= q <= 100 or q != int(q):
        raise ValueError(f"percentile must be a whole number within 0..100, got {q}")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return _cut_points(ordered, 100)[int(q)]


def median(values: Iterable[float]) -> float:
    """The median (mean of the two middle values for an even count); NaN for no values."""
    data = list(values)
    return statistics.median(data) if data else math.nan


def summarize(values: Sequence[float], *, digits: int = 2) -> dict[str, float | int]:
    """count, min, p50, p90, p99, max and mean of ``values`` (rounded)."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    cuts = _cut_points(ordered, 100)
    return {
        "count": len(ordered),
        "min": round(ordered[0], digits),
        "p50": round(cuts[50], digits),
        "p90": round(cuts[90], digits),
        "p99": round(cuts[99], digits),
        "max": round(ordered[-1], digits),
        "mean": round(statistics.fmean(ordered), digits),
    }


def quantile_sketch(values: Sequence[float], points: int = 201) -> list[float]:
    """``points`` evenly spaced quantiles (0 %..100 %) of ``values``: a compact stand-in
    for a large sample, enough to draw its distribution."""
    if not values:
        return []
    ordered = sorted(values)
    if len(ordered) <= points:
        return [round(v, 3) for v in ordered]
    return [round(v, 3) for v in _cut_points(ordered, points - 1)]


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either is missing, NaN or theirs is 0."""
    if ours is None or theirs is None:
        return None
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return None
    return ours / theirs

"""Small statistics helpers for the benchmark (no numpy needed)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks
    (numpy's default, "linear"); NaN for no values."""
    return _sorted_percentile(sorted(values), q)


def _sorted_percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float:
    """The median (mean of the two middle values for an even count); NaN for no values."""
    return percentile(values, 50)


def summarize(values: Sequence[float], *, digits: int = 2) -> dict[str, float | int]:
    """count, min, p50, p90, p99, max and mean of ``values`` (rounded)."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "min": round(ordered[0], digits),
        "p50": round(_sorted_percentile(ordered, 50), digits),
        "p90": round(_sorted_percentile(ordered, 90), digits),
        "p99": round(_sorted_percentile(ordered, 99), digits),
        "max": round(ordered[-1], digits),
        "mean": round(sum(ordered) / len(ordered), digits),
    }


def quantile_sketch(values: Sequence[float], points: int = 201) -> list[float]:
    """``points`` evenly spaced quantiles (0 %..100 %) of ``values``: a compact stand-in
    for a large sample, enough to draw its distribution."""
    if not values:
        return []
    ordered = sorted(values)
    if len(ordered) <= points:
        return [round(v, 3) for v in ordered]
    return [round(_sorted_percentile(ordered, 100 * i / (points - 1)), 3) for i in range(points)]


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either is missing, NaN or theirs is 0."""
    if ours is None or theirs is None:
        return None
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return None
    return ours / theirs

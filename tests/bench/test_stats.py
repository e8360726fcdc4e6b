import math

import pytest

from bench.stats import median, percentile, quantile_sketch, ratio, summarize


def test_median_odd_and_even() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    assert math.isnan(median([]))


@pytest.mark.parametrize(
    ("q", "expected"), [(0, 1), (25, 1.75), (50, 2.5), (90, 3.7), (99, 3.97), (100, 4)]
)
def test_percentile_interpolates_like_numpy_linear(q: int, expected: float) -> None:
    assert percentile([4, 2, 3, 1], q) == pytest.approx(expected)


def test_percentile_single_value_and_bounds() -> None:
    assert percentile([7], 99) == 7
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


def test_summarize() -> None:
    s = summarize(list(range(1, 101)))
    assert s["count"] == 100
    assert (s["min"], s["max"]) == (1, 100)
    assert s["p50"] == 50.5
    assert s["p99"] == pytest.approx(99.01)
    assert s["mean"] == 50.5
    assert summarize([]) == {"count": 0}


def test_quantile_sketch_keeps_small_samples_and_spans_large_ones() -> None:
    assert quantile_sketch([3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0]
    sketch = quantile_sketch([float(i) for i in range(10_001)], points=11)
    assert sketch == [float(i) for i in range(0, 10_001, 1000)]
    assert quantile_sketch([]) == []


def test_ratio() -> None:
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(1.0, 0.0) is None
    assert ratio(None, 1.0) is None
    assert ratio(math.nan, 1.0) is None

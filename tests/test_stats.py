"""Latency statistics: nearest-rank percentiles and the summary every engine shares."""

from __future__ import annotations

import pytest

from edgec.stats import LatencyStats, percentile


def test_percentile_nearest_rank():
    ms = [float(i) for i in range(1, 101)]  # 1..100
    assert percentile(ms, 50) == 50 and percentile(ms, 90) == 90 and percentile(ms, 99) == 99
    assert percentile(ms, 100) == 100 and percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_stats_from_seconds():
    s = LatencyStats.from_seconds([0.003, 0.001, 0.002, 0.010])
    assert s.runs == 4 and s.min_ms == 1.0 and s.median_ms == 2.5
    assert s.p90_ms == 10.0 and s.p99_ms == 10.0 and s.mean_ms == 4.0
    assert s.stdev_ms == pytest.approx(4.0825, abs=1e-3)
    assert "median 2.500 ms" in s.line() and "over 4 runs" in s.line()
    assert s.to_json()["p99_ms"] == 10.0

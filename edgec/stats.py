"""Latency statistics shared by edgec's runtime, the baselines and the benchmarks.

One definition for every engine, so medians and percentiles are comparable.
Percentiles use the nearest-rank method on the sorted samples.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted samples."""
    if not sorted_ms:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100 * len(sorted_ms)))
    return sorted_ms[min(rank, len(sorted_ms)) - 1]


@dataclass(frozen=True)
class LatencyStats:
    """Per-run latency in milliseconds over ``runs`` timed runs (after warm-up).

    The same definition for edgec, onnxruntime and TFLite, so their numbers
    compare: p90 and p99 by nearest rank, stdev over the samples (0 for one).
    """

    runs: int
    median_ms: float
    mean_ms: float
    min_ms: float
    p90_ms: float
    p99_ms: float
    stdev_ms: float

    @classmethod
    def from_seconds(cls, samples: list[float]) -> LatencyStats:
        """Statistics of per-run ``samples`` in seconds (at least one)."""
        ms = sorted(s * 1e3 for s in samples)
        return cls(len(ms), statistics.median(ms), statistics.fmean(ms), ms[0],
                   percentile(ms, 90), percentile(ms, 99),
                   statistics.stdev(ms) if len(ms) > 1 else 0.0)

    def to_json(self) -> dict:
        """The fields as a dict, rounded to 4 decimals (bench's ``stats``)."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def line(self) -> str:
        """One human line: median first, then the spread."""
        return (f"median {self.median_ms:.3f} ms, min {self.min_ms:.3f}, p90 {self.p90_ms:.3f}, "
                f"p99 {self.p99_ms:.3f}, mean {self.mean_ms:.3f} ± {self.stdev_ms:.3f} ms over "
                f"{self.runs} runs")

"""One timing loop for every Python-driven engine: warm-up, then timed calls.

Runs stop at ``repeat`` or when the time budget is spent (but never fewer
than ``min_runs``), so a 3-second model and a 0.2-millisecond model can share
one command without either taking all day or giving a handful of samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..stats import LatencyStats


@dataclass
class EngineRun:
    """What one engine produced: its outputs (ONNX layout) and latency."""

    outputs: dict[str, np.ndarray]
    stats: LatencyStats
    threads: int


def time_calls(call: Callable[[], object], *, warmup: int, repeat: int, budget_s: float,
               min_runs: int = 5) -> LatencyStats:
    for _ in range(max(0, warmup)):
        call()
    samples: list[float] = []
    spent = 0.0
    while len(samples) < repeat and (len(samples) < min_runs or spent < budget_s):
        t0 = time.perf_counter()
        call()
        dt = time.perf_counter() - t0
        samples.append(dt)
        spent += dt
    return LatencyStats.from_seconds(samples)


def planned_runs(first_run_s: float, *, repeat: int, budget_s: float, min_runs: int = 5) -> int:
    """How many timed runs fit the budget, for engines timed in one native call."""
    if first_run_s <= 0:
        return repeat
    return max(min(min_runs, repeat), min(repeat, int(budget_s / first_run_s)))

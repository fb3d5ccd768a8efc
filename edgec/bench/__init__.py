"""edgec bench: edgec, onnxruntime and TFLite on one model, same inputs, same threads."""

from .runner import BenchOptions, BenchReport, EngineResult, run_bench

__all__ = ["BenchOptions", "BenchReport", "EngineResult", "run_bench"]

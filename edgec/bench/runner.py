"""Run edgec, onnxruntime and TFLite on the same model, inputs and thread count.

edgec compiles the model for a target this machine can run; onnxruntime runs
the user's original file and is the fp32 reference every engine's error is
measured against; TFLite runs onnx2tf's conversion of edgec's static-shape
model (bound and folded, nothing else) in LiteRT with XNNPACK. An engine that
cannot run (a failed conversion, say) becomes a row with its reason, never a
crash of the whole benchmark.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..compiler import Progress, compile_plan, plan_compile
from ..errors import ModelError, UnsupportedError, UsageError
from ..frontend import Bindings
from ..frontend.prepare import prepare
from ..passes import DEFAULT_PIPELINE, PIPELINES
from ..stats import LatencyStats
from ..tensors import random_inputs
from ..verification import compare_outputs
from .machine import machine_info, package_version

ENGINES = ("edgec", "onnxruntime", "tflite")
BASELINES = ("onnxruntime", "tflite")


@dataclass(frozen=True)
class BenchOptions:
    target: str = "host"
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    input_consts: dict[str, object] = field(default_factory=dict)
    pipeline: str = DEFAULT_PIPELINE
    threads: int | None = None  # default: every core
    baselines: tuple[str, ...] = BASELINES
    warmup: int = 2
    repeat: int = 100  # at most this many timed runs ...
    budget_s: float = 10.0  # ... or fewer when they would take longer (never below 5)
    seed: int = 0


@dataclass
class EngineResult:
    """One row of the benchmark: an engine's latency and its error against onnxruntime."""

    engine: str
    precision: str
    status: str  # "ok" or "failed"
    version: str
    threads: int
    reason: str = ""
    stats: LatencyStats | None = None
    gflops_per_s: float | None = None
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    within_tolerance: bool | None = None
    prepare_s: float | None = None  # compile (edgec) or conversion (tflite) time

    def to_json(self) -> dict:
        d = asdict(self)
        d["stats"] = self.stats.to_json() if self.stats else None
        return d


@dataclass
class BenchReport:
    model: str
    sha256: str
    target: str
    inputs: list[dict]
    flops: int | None
    flops_complete: bool
    threads: int
    machine: dict
    versions: dict
    engines: list[EngineResult]

    def result(self, engine: str) -> EngineResult | None:
        return next((e for e in self.engines if e.engine == engine), None)

    def to_json(self) -> dict:
        return {"format": "edgec-bench", "format_version": 1, "model": self.model,
                "sha256": self.sha256, "target": self.target, "inputs": self.inputs,
                "flops": self.flops, "flops_complete": self.flops_complete,
                "threads": self.threads, "machine": self.machine, "versions": self.versions,
                "engines": [e.to_json() for e in self.engines]}


def _errors(result: EngineResult, got: dict[str, np.ndarray],
            ref: dict[str, np.ndarray]) -> None:
    checks = compare_outputs(got, ref)
    result.max_abs_err = max(c.max_abs_err for c in checks)
    result.max_rel_err = max(c.max_rel_err for c in checks)
    result.within_tolerance = all(c.ok for c in checks)


def _gflops(flops: int | None, stats: LatencyStats | None) -> float | None:
    if not flops or stats is None or stats.median_ms <= 0:
        return None
    return round(flops / (stats.median_ms * 1e-3) / 1e9, 3)


def run_bench(model: str | Path, options: BenchOptions, *,
              progress: Progress | None = None) -> BenchReport:
    say = progress or (lambda _msg: None)
    model = Path(model)
    unknown = sorted(set(options.baselines) - set(BASELINES))
    if unknown:
        raise UsageError(f"--baseline {','.join(unknown)}: choose from {', '.join(BASELINES)}")
    threads = options.threads or os.cpu_count() or 1
    if threads < 1:
        raise UsageError(f"--threads {threads}: give 1 or more")
    bindings = Bindings({k: tuple(v) for k, v in options.input_shapes.items()},
                        {k: np.asarray(v) for k, v in options.input_consts.items()})
    with tempfile.TemporaryDirectory(prefix="edgec-bench-") as tmp:
        plan = plan_compile(model, target=options.target, output=Path(tmp) / "model.edgec",
                            input_shapes=bindings.shapes, input_consts=bindings.consts,
                            pipeline=options.pipeline)
        ok, why = plan.target.runs_on_host()
        if not ok:
            raise UnsupportedError(f"{model}: bench runs engines on this machine, but {why}")
        t0 = time.perf_counter()
        art = compile_plan(plan, progress=say)
        compile_s = time.perf_counter() - t0
        feeds = random_inputs(art.inputs, seed=options.seed, int_bounds=art.input_bounds)
        ref_feeds = {**feeds, **bindings.consts}

        # Everything below works on the same static model: FLOPs are counted on
        # it (If folded, shapes known) and TFLite converts it.
        from ..model_info import compute_info

        static = prepare(model, bindings, PIPELINES["static"])
        compute = compute_info(static.model)
        flops = compute.flops or None
        engines: list[EngineResult] = []

        from ..baselines import onnxruntime as ort_engine
        from .isolated import EngineFailed, run_isolated

        # Each engine is timed in a process of its own (isolated.py says why).
        say("onnxruntime (own process)")
        timed = "onnxruntime" in options.baselines
        try:
            ort = run_isolated("onnxruntime", model, ref_feeds, threads=threads,
                               warmup=options.warmup if timed else 0,
                               repeat=options.repeat if timed else 1,
                               budget_s=options.budget_s)
        except EngineFailed as exc:
            raise ModelError(str(exc) if exc.kind == "model" else
                             f"{model}: onnxruntime failed: {exc}") from None
        reference = ort.outputs
        say("edgec (own process)")
        try:
            run = run_isolated("edgec", model, feeds, threads=threads, warmup=options.warmup,
                               repeat=options.repeat, budget_s=options.budget_s,
                               artifact=art.path)
        except EngineFailed as exc:  # the artifact was just built here: an edgec bug
            raise RuntimeError(f"edgec's timing run failed: {exc}") from None
        edgec_row = EngineResult("edgec", "fp32", "ok", __version__, run.threads,
                                 stats=run.stats, gflops_per_s=_gflops(flops, run.stats),
                                 prepare_s=round(compile_s, 2))
        _errors(edgec_row, run.outputs, reference)
        engines.append(edgec_row)
        if timed:
            row = EngineResult("onnxruntime", "fp32", "ok", ort_engine.version(), threads,
                               stats=ort.stats, gflops_per_s=_gflops(flops, ort.stats),
                               max_abs_err=0.0, max_rel_err=0.0, within_tolerance=True)
            engines.append(row)
        if "tflite" in options.baselines:
            say("tflite (conversion is cached)")
            engines.append(_tflite_row(static.model, art, feeds, reference, flops, threads,
                                       options))
    return BenchReport(
        model=str(model), sha256=art.manifest["source_model"]["sha256"],
        target=art.target["name"], inputs=[s.to_json() for s in art.inputs], flops=flops,
        flops_complete=compute.complete, threads=threads,
        machine=machine_info(), versions=_versions(), engines=engines)


def _tflite_row(static, art, feeds, reference, flops, threads,
                options: BenchOptions) -> EngineResult:
    from ..baselines import tflite
    from .isolated import EngineFailed, run_isolated

    row = EngineResult("tflite", "fp32", "failed", tflite.versions(), threads)
    try:
        import onnx_ir as ir

        data = ir.serde.serialize_model(static).SerializeToString(deterministic=True)
        t0 = time.perf_counter()
        path = tflite.convert(data)
        row.prepare_s = round(time.perf_counter() - t0, 2)
        run = run_isolated("tflite", path, feeds, threads=threads, warmup=options.warmup,
                           repeat=options.repeat, budget_s=options.budget_s,
                           artifact=art.path)
    except tflite.TfliteUnavailable as exc:
        row.reason = str(exc)
        return row
    except EngineFailed as exc:  # LiteRT could not run the converted model
        row.reason = str(exc)
        return row
    row.status, row.stats = "ok", run.stats
    row.gflops_per_s = _gflops(flops, run.stats)
    _errors(row, run.outputs, reference)
    return row


def _versions() -> dict:
    from ..baselines import tflite

    return {"edgec": __version__, "apache-tvm": package_version("apache-tvm"),
            "onnxruntime": package_version("onnxruntime"), "tflite": tflite.versions(),
            "numpy": package_version("numpy")}

"""Run edgec, onnxruntime and TFLite on the same model, inputs and thread count.

edgec compiles the model for a target this machine can run; onnxruntime runs
the user's original file and is the fp32 reference every engine's error is
measured against; TFLite runs onnx2tf's conversion of edgec's static-shape
model (bound and folded, nothing else) in LiteRT with XNNPACK. An engine that
cannot run (a failed conversion, say) becomes a row with its reason, never a
crash of the whole benchmark.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..compiler import Progress, compile_plan, plan_compile
from ..errors import ModelError, UnsupportedError, UsageError, first_line
from ..frontend import Bindings
from ..frontend.prepare import prepare
from ..passes import DEFAULT_PIPELINE, PIPELINES
from ..stats import LatencyStats
from ..target_registry import host_core_count
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
    quantize: object | None = None  # QuantizeOptions (int8): adds the int8 rows


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
    sqnr_db: float | None = None  # int8 rows: worst output's SQNR vs onnxruntime fp32
    artifact_bytes: int | None = None  # edgec rows: the artifact's size
    device: str | None = None  # bench --device: "here" or the device it ran on

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
    feeds_from: str = "random"
    device: dict | None = None  # bench --device: what the device reported

    def result(self, engine: str, precision: str = "fp32") -> EngineResult | None:
        return next((e for e in self.engines
                     if e.engine == engine and e.precision == precision), None)

    def to_json(self) -> dict:
        return {"format": "edgec-bench", "format_version": 1, "model": self.model,
                "sha256": self.sha256, "target": self.target, "inputs": self.inputs,
                "flops": self.flops, "flops_complete": self.flops_complete,
                "threads": self.threads, "machine": self.machine, "versions": self.versions,
                "feeds_from": self.feeds_from,
                **({"device": self.device} if self.device else {}),
                "engines": [e.to_json() for e in self.engines]}


def _errors(result: EngineResult, got: dict[str, np.ndarray],
            ref: dict[str, np.ndarray]) -> None:
    checks = compare_outputs(got, ref)
    result.max_abs_err = max(c.max_abs_err for c in checks)
    result.max_rel_err = max(c.max_rel_err for c in checks)
    result.within_tolerance = all(c.ok for c in checks)


def _sqnr(result: EngineResult, got: dict[str, np.ndarray],
          ref: dict[str, np.ndarray]) -> None:
    """An int8 row's error: max abs error and the worst output's SQNR against fp32
    (judged as verify judges int8 artifacts: DEFAULT_MIN_SQNR)."""
    from ..verification import DEFAULT_MIN_SQNR, sqnr_db

    result.max_abs_err = max(float(np.abs(got[k].astype(np.float64) - v).max())
                             for k, v in ref.items())
    result.max_rel_err = None
    result.sqnr_db = round(min(sqnr_db(got[k], v) for k, v in ref.items()), 2)
    result.within_tolerance = bool(result.sqnr_db >= DEFAULT_MIN_SQNR["int8"])


def _int8_rows(plan_args: dict, options: BenchOptions, tmp: Path, feeds, reference,
               threads: int, stack, say, static=None) -> list:
    """(row, worker) for edgec int8, onnxruntime int8 (quantize_static's own default,
    every op quantised, which onnxruntime runs fastest: on the same static model with
    the same calibration, per-channel weights, uint8 activations) and TFLite int8
    (TensorFlow's converter calibrated on the same samples; a worker of None: the row
    failed, with its reason)."""
    from ..baselines import onnxruntime as ort_engine
    from .isolated import EngineFailed, EngineWorker

    plan = plan_compile(**plan_args, output=tmp / "model.int8.edgec", save_temps=tmp / "q",
                        quantize=options.quantize)
    t0 = time.perf_counter()
    art = compile_plan(plan, progress=say)
    row = EngineResult("edgec", "int8", "ok", __version__, threads,
                       prepare_s=round(time.perf_counter() - t0, 2),
                       artifact_bytes=art.path.stat().st_size)
    say("edgec int8 (own process)")
    worker = stack.enter_context(EngineWorker("edgec", plan.model, feeds, threads=threads,
                                              warmup=options.warmup, artifact=art.path))
    _sqnr(row, worker.outputs, reference)
    rows = [(row, worker)]
    if "onnxruntime" in options.baselines:
        say("onnxruntime int8 (own process)")
        ort_row = EngineResult("onnxruntime", "int8", "ok", ort_engine.version(), threads)
        try:
            ort_model = _onnxruntime_int8(static, art, options, tmp) if static is not None \
                else tmp / "q" / "quantized-qdq.onnx"
        except Exception as exc:  # onnxruntime's quantiser raises its own and onnx's types
            ort_row.status = "failed"
            ort_row.reason = f"quantize_static failed: {first_line(exc)}"
            ort_model = None
        if ort_model is not None:
            try:
                ort_worker = stack.enter_context(EngineWorker(
                    "onnxruntime", ort_model, feeds, threads=threads, warmup=options.warmup))
            except EngineFailed as exc:
                ort_row.status, ort_row.reason = "failed", str(exc)
        if ort_row.status == "failed":
            rows.append((ort_row, None))
        else:
            _sqnr(ort_row, ort_worker.outputs, reference)
            rows.append((ort_row, ort_worker))
    if "tflite" in options.baselines and static is not None:
        say("tflite int8 (conversion is cached)")
        rows.append(_tflite_int8(static, art, options, feeds, reference, threads, stack))
    return rows


def _onnxruntime_int8(static, art, options: BenchOptions, tmp: Path) -> Path:
    """The static model through onnxruntime's own int8 flow: quant_pre_process (its
    graph optimisations: BatchNorm into the convs, ...), then quantize_static's
    defaults. Without the pre-processing onnxruntime ran ResNet-50 in 38 ms instead
    of 14 (the BatchNorms kept its convs from fusing into QLinearConv)."""
    import onnx
    import onnx_ir as ir
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..quantize import load_calibration, quantize_int8
    from ..quantize.static import weights_as_constants

    src, pre = tmp / "onnxruntime-float.onnx", tmp / "onnxruntime-pre.onnx"
    onnx.save(weights_as_constants(ir.serde.serialize_model(static)), src)
    try:
        quant_pre_process(str(src), str(pre))
    except Exception:  # its symbolic shape inference trips on some graphs (PP-OCR cls)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    qdq, _ = quantize_int8(onnx.load(pre), options.quantize,
                           load_calibration(options.quantize, art.inputs),
                           source=str(art.path), scheme="onnxruntime")
    path = tmp / "onnxruntime-int8.onnx"
    onnx.save(qdq, path)
    return path


def _tflite_int8(static, art, options: BenchOptions, feeds, reference, threads: int, stack):
    from ..baselines import tflite
    from ..quantize import load_calibration
    from .isolated import EngineFailed, EngineWorker

    row = EngineResult("tflite", "int8", "failed", tflite.versions(), threads)
    try:
        import onnx_ir as ir

        samples = load_calibration(options.quantize, art.inputs).samples
        data = ir.serde.serialize_model(static).SerializeToString(deterministic=True)
        t0 = time.perf_counter()
        path = tflite.convert_int8(data, samples)
        row.prepare_s = round(time.perf_counter() - t0, 2)
        row.version = tflite.versions()
        worker = stack.enter_context(EngineWorker("tflite", path, feeds, threads=threads,
                                                  warmup=options.warmup, artifact=art.path))
    except (tflite.TfliteUnavailable, EngineFailed) as exc:
        row.reason = str(exc)
        return row, None
    row.status = "ok"
    _sqnr(row, worker.outputs, reference)
    return row, worker


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
    threads = options.threads or host_core_count()[0]  # as edgec run defaults TVM_NUM_THREADS
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
        feeds_from = f"random, seed {options.seed}"
        if options.quantize is not None and not options.quantize.is_random:
            # int8 error means something only on data like the calibration's
            from ..quantize import load_calibration

            cal = load_calibration(options.quantize, art.inputs)
            feeds, feeds_from = cal.samples[-1], f"calibration sample {cal.files[-1]}"
        ref_feeds = {**feeds, **bindings.consts}

        # Everything below works on the same static model: FLOPs are counted on
        # it (If folded, shapes known) and TFLite converts it.
        from ..model_info import compute_info

        static = prepare(model, bindings, PIPELINES["static"])
        compute = compute_info(static.model)
        flops = compute.flops or None
        engines: list[EngineResult] = []

        from ..baselines import onnxruntime as ort_engine
        from .isolated import EngineFailed, EngineWorker, time_interleaved

        # Every engine runs in a process of its own and the timed runs go
        # round-robin between them (isolated.py says why).
        with contextlib.ExitStack() as stack:
            say("onnxruntime (own process)")
            timed = "onnxruntime" in options.baselines
            ort = start_onnxruntime(stack, model, ref_feeds, threads, options.warmup)
            reference = ort.outputs
            say("edgec (own process)")
            try:
                ours = stack.enter_context(EngineWorker(
                    "edgec", model, feeds, threads=threads, warmup=options.warmup,
                    artifact=art.path))
            except EngineFailed as exc:  # the artifact was just built here: an edgec bug
                raise RuntimeError(f"edgec's timing process failed: {exc}") from None
            edgec_row = EngineResult("edgec", "fp32", "ok", __version__, threads,
                                     prepare_s=round(compile_s, 2),
                                     artifact_bytes=art.path.stat().st_size)
            _errors(edgec_row, ours.outputs, reference)
            rows, failed = [(edgec_row, ours)], []
            if timed:
                rows.append((EngineResult("onnxruntime", "fp32", "ok", ort_engine.version(),
                                          threads, max_abs_err=0.0, max_rel_err=0.0,
                                          within_tolerance=True), ort))
            if "tflite" in options.baselines:
                say("tflite (conversion is cached)")
                row, worker = _tflite_worker(static.model, art, feeds, reference, threads,
                                             options)
                if worker is not None:
                    stack.enter_context(worker)
                    rows.append((row, worker))
                else:
                    failed.append(row)
            if options.quantize is not None:
                plan_args = dict(model=model, target=options.target,
                                 input_shapes=bindings.shapes, input_consts=bindings.consts,
                                 pipeline=options.pipeline)
                for row, worker in _int8_rows(plan_args, options, Path(tmp), feeds, reference,
                                              threads, stack, say, static.model):
                    (rows.append((row, worker)) if worker is not None else failed.append(row))
            say("timing " + ", ".join(f"{r.engine} {r.precision}" for r, _ in rows)
                + " in turns")
            all_stats = time_interleaved([w for _, w in rows], repeat=options.repeat,
                                         budget_s=options.budget_s)
            for (row, _), stats in zip(rows, all_stats, strict=True):
                row.stats, row.gflops_per_s = stats, _gflops(flops, stats)
            engines += sorted([r for r, _ in rows] + failed,
                              key=lambda r: (r.precision != "fp32", ENGINES.index(r.engine)))
    return BenchReport(
        model=str(model), sha256=art.manifest["source_model"]["sha256"],
        target=art.target["name"], inputs=[s.to_json() for s in art.inputs], flops=flops,
        flops_complete=compute.complete, threads=threads,
        machine=machine_info(), versions=_versions(), engines=engines, feeds_from=feeds_from)


def start_onnxruntime(stack: contextlib.ExitStack, model: Path, feeds: dict[str, np.ndarray],
                      threads: int, warmup: int):
    """onnxruntime on ``model`` in a process of its own (closed with ``stack``): the
    reference outputs and an engine to time; a model it cannot run is a ModelError."""
    from .isolated import EngineFailed, EngineWorker

    try:
        return stack.enter_context(EngineWorker("onnxruntime", model, feeds, threads=threads,
                                                warmup=warmup))
    except EngineFailed as exc:
        raise ModelError(str(exc) if exc.kind == "model" else
                         f"{model}: onnxruntime failed: {exc}") from None


def _tflite_worker(static, art, feeds, reference, threads, options: BenchOptions):
    """(row, worker ready to time) or (failed row with its reason, None)."""
    from ..baselines import tflite
    from .isolated import EngineFailed, EngineWorker

    row = EngineResult("tflite", "fp32", "failed", tflite.versions(), threads)
    try:
        import onnx_ir as ir

        data = ir.serde.serialize_model(static).SerializeToString(deterministic=True)
        t0 = time.perf_counter()
        path = tflite.convert(data)  # may build the converter venv first
        row.prepare_s = round(time.perf_counter() - t0, 2)
        row.version = tflite.versions()  # known now, if convert just built the venv
        worker = EngineWorker("tflite", path, feeds, threads=threads, warmup=options.warmup,
                              artifact=art.path)
    except (tflite.TfliteUnavailable, EngineFailed) as exc:  # no conversion, or LiteRT
        row.reason = str(exc)                                 # cannot run it
        return row, None
    row.status = "ok"
    _errors(row, worker.outputs, reference)
    return row, worker


def _versions() -> dict:
    from ..baselines import tflite

    return {"edgec": __version__, "apache-tvm": package_version("apache-tvm"),
            "onnxruntime": package_version("onnxruntime"), "tflite": tflite.versions(),
            "numpy": package_version("numpy")}

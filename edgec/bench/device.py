"""``edgec bench --device``: edgec on a device next to onnxruntime here and LiteRT there.

edgec compiles the model for the device's target (``-t``, or the file that
best fits the CPU the device reports), runs it on the device and times it
with the device's own clock (TVM's time evaluator). onnxruntime runs here, as
the reference for the outputs and a yardstick from the build machine; where
the device has LiteRT, the same TFLite conversion as ``edgec bench`` is
uploaded and timed on the device. Rows say where they ran, and an emulated
device's rows say that they are emulated: the times are qemu's, not a board's.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..compiler import Progress, compile_plan, plan_compile
from ..errors import UsageError, first_line
from ..frontend import Bindings
from ..frontend.prepare import prepare
from ..passes import PIPELINES
from ..stats import LatencyStats
from ..target_registry import host_core_count
from ..tensors import random_inputs
from .machine import machine_info
from .runner import (
    BASELINES,
    BenchOptions,
    BenchReport,
    EngineResult,
    _errors,
    _gflops,
    _versions,
    start_onnxruntime,
)


def run_device_bench(model: str | Path, options: BenchOptions, device: str, *,
                     timeout: float, progress: Progress | None = None) -> BenchReport:
    from ..runtime.device.client import RemoteSession, connect, pick_device_target
    from ..runtime.device.functions import TFLITE
    from ..runtime.profiler import device_label

    say = progress or (lambda _msg: None)
    model = Path(model)
    if options.quantize is not None:
        raise UsageError("bench --device --quantize: the int8 rows are timed here only; "
                         "compile with --quantize int8 and use 'edgec run --device'")
    unknown = sorted(set(options.baselines) - set(BASELINES))
    if unknown:
        raise UsageError(f"--baseline {','.join(unknown)}: choose from {', '.join(BASELINES)}")
    say(f"connecting to {device}")
    dev = connect(device, timeout=timeout)
    where = device_label(dev.info)
    target = options.target or pick_device_target(dev).name
    threads_here = options.threads or host_core_count()[0]
    bindings = Bindings({k: tuple(v) for k, v in options.input_shapes.items()},
                        {k: np.asarray(v) for k, v in options.input_consts.items()})
    with tempfile.TemporaryDirectory(prefix="edgec-bench-") as tmp:
        plan = plan_compile(model, target=target, output=Path(tmp) / "model.edgec",
                            input_shapes=bindings.shapes, input_consts=bindings.consts,
                            pipeline=options.pipeline)
        t0 = time.perf_counter()
        art = compile_plan(plan, progress=say)
        compile_s = time.perf_counter() - t0
        feeds = random_inputs(art.inputs, seed=options.seed, int_bounds=art.input_bounds)
        ref_feeds = {**feeds, **bindings.consts}
        from ..model_info import compute_info

        static = prepare(model, bindings, PIPELINES["static"])
        compute = compute_info(static.model)
        flops = compute.flops or None

        from ..baselines import onnxruntime as ort_engine
        from .isolated import time_interleaved

        with contextlib.ExitStack() as stack:
            say("onnxruntime here (own process)")
            ort = start_onnxruntime(stack, model, ref_feeds, threads_here, options.warmup)
            reference = ort.outputs
            say(f"edgec on {dev.name}")
            remote = RemoteSession(art.path, dev)
            cores = int(dev.info.get("threads") or dev.info.get("cores") or 0)
            row = EngineResult("edgec", "fp32", "ok", __version__, cores,
                               prepare_s=round(compile_s, 2),
                               artifact_bytes=art.path.stat().st_size, device=where)
            _errors(row, remote.run(feeds), reference)
            row.stats = remote.time(feeds, repeat=max(5, options.repeat))
            rows = [row]
            if "onnxruntime" in options.baselines:
                say("timing onnxruntime here")
                stats = time_interleaved([ort], repeat=options.repeat,
                                         budget_s=options.budget_s)[0]
                rows.append(EngineResult("onnxruntime", "fp32", "ok", ort_engine.version(),
                                         threads_here, stats=stats, max_abs_err=0.0,
                                         max_rel_err=0.0, within_tolerance=True,
                                         device="here"))
            if "tflite" in options.baselines:
                say(f"tflite on {dev.name}")
                rows.append(_tflite_on_device(static.model, art, remote, feeds, reference,
                                              options, cores, where, TFLITE))
    for r in rows:
        r.gflops_per_s = _gflops(flops, r.stats)
    return BenchReport(
        model=str(model), sha256=art.manifest["source_model"]["sha256"],
        target=art.target["name"], inputs=[s.to_json() for s in art.inputs], flops=flops,
        flops_complete=compute.complete, threads=cores, machine=machine_info(),
        versions=_versions(), engines=rows, feeds_from=f"random, seed {options.seed}",
        device=dev.info)


def _tflite_on_device(static, art, remote, feeds, reference, options: BenchOptions,
                      cores: int, where: str, function: str) -> EngineResult:
    """The TFLite row timed by the device's LiteRT, or a failed row saying why not."""
    from ..baselines import tflite

    row = EngineResult("tflite", "fp32", "failed", "-", cores, device=where)
    dev = remote.device
    if not dev.info.get("litert"):
        row.reason = (f"{dev.name} is an emulated board: its worker is the TVM runtime "
                      "alone, without LiteRT" if dev.info.get("emulated") else
                      f"{dev.name} has no LiteRT (pip install ai-edge-litert there)")
        return row
    try:
        run_tflite = dev.session.get_function(function)
    except Exception:
        row.reason = f"{dev.name}: its edgec device server cannot run TFLite; update edgec there"
        return row
    try:
        import onnx_ir as ir

        data = ir.serde.serialize_model(static).SerializeToString(deterministic=True)
        t0 = time.perf_counter()
        path = tflite.convert(data)
        row.prepare_s = round(time.perf_counter() - t0, 2)
    except tflite.TfliteUnavailable as exc:
        row.reason = str(exc)
        return row
    spec = json.dumps({"inputs": [s.to_json() for s in art.inputs],
                       "outputs": [s.to_json() for s in art.outputs]})
    name = "model.tflite"
    with dev.call("running TFLite", timeout=dev.timeout + options.budget_s * 2):
        dev.session.upload(path, name)
        buf = io.BytesIO()
        np.savez(buf, **{s.name: feeds[s.name] for s in art.inputs})
        dev.session.upload(bytearray(buf.getvalue()), "inputs.npz")
        reply = json.loads(run_tflite(name, "inputs.npz", spec, cores, options.warmup,
                                      options.repeat, options.budget_s))
    if "error" in reply:
        row.reason = f"LiteRT on {dev.name}: {first_line(RuntimeError(reply['error']))}"
        return row
    with np.load(io.BytesIO(base64.b64decode(reply["outputs"]))) as z:
        got = {k: z[k] for k in z.files}
    row.status, row.version, row.threads = "ok", reply["version"], int(reply["threads"])
    row.stats = LatencyStats(**reply["stats"])
    _errors(row, got, reference)
    return row

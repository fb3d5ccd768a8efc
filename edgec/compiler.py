"""compile(): the one-direction flow from an ONNX file to a verified-loadable artifact.

plan (target, pipeline, bindings: data, printable, testable without TVM)
-> load and check the model -> bind inputs -> edgec passes -> TVM build
-> artifact written atomically. --save-temps keeps every intermediate.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import platform
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from . import __version__
from .artifact import LIBRARY, Artifact, TensorSpec, check_io, write_artifact
from .errors import ArtifactError, ToolchainError, UnsupportedError, UsageError
from .frontend import DEFAULT_MAX_MODEL_BYTES, Bindings
from .frontend.prepare import bind, run_passes
from .fsutil import check_output
from .passes import DEFAULT_PIPELINE, resolve_pipeline
from .quantize.options import QuantizeOptions
from .specs import DEFAULT_MAX_NODES
from .target_registry import Target, resolve_target

#: Called with a short description as each step starts (the CLI shows a spinner).
Progress = Callable[[str], None]


@dataclass(frozen=True)
class CompilePlan:
    """Everything decided before any work: printable, and testable without TVM."""

    model: Path
    output: Path
    target: Target
    pipeline: str
    passes: tuple[str, ...]
    bindings: Bindings = field(default_factory=Bindings)
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES
    max_nodes: int = DEFAULT_MAX_NODES
    save_temps: Path | None = None
    use_tuning_db: bool = True  # kernels with tuning records get the fastest one
    tuning_db: Path | None = None  # None: the target's default folder, if it exists
    quantize: QuantizeOptions | None = None  # int8 or fp16; None keeps float32

    def command(self, temps: Path | None = None) -> list[str]:
        """An ``edgec compile`` command line that reproduces this plan."""
        cmd = ["edgec", "compile", str(self.model.resolve()), "--target", self.target.name,
               "--pipeline", self.pipeline if self.pipeline != "custom" else ",".join(self.passes),
               "-o", str(self.output.resolve())]
        for name, dims in self.bindings.shapes.items():
            cmd += ["--input-shape", f"{name}={','.join(map(str, dims))}"]
        for name, value in self.bindings.consts.items():
            if value.ndim <= 1 and value.size <= 16:
                cmd += ["--input-const", f"{name}={','.join(map(str, value.reshape(-1).tolist()))}"]
            elif temps is not None:
                np.save(temps / f"const-{name}.npy", value)
                cmd += ["--input-const", f"{name}={temps.resolve() / f'const-{name}.npy'}"]
        if self.max_model_bytes != DEFAULT_MAX_MODEL_BYTES:
            cmd += ["--max-model-size", str(self.max_model_bytes)]
        if self.max_nodes != DEFAULT_MAX_NODES:
            cmd += ["--max-nodes", str(self.max_nodes)]
        if not self.use_tuning_db:
            cmd += ["--no-tuning-db"]
        elif self.tuning_db is not None:
            cmd += ["--tuning-db", str(self.tuning_db.resolve())]
        if self.quantize is not None:
            cmd += self.quantize.command()
        return cmd

    def to_json(self) -> dict:
        return {"model": str(self.model), "output": str(self.output), "target": self.target.name,
                "pipeline": self.pipeline, "passes": list(self.passes),
                **self.bindings.to_json(),
                **({"quantize": self.quantize.to_json()} if self.quantize else {})}


def plan_compile(model: str | Path, *, target: str | Target = "host",
                 output: str | Path | None = None,
                 input_shapes: dict[str, tuple[int, ...]] | None = None,
                 input_consts: dict[str, object] | None = None,
                 pipeline: str = DEFAULT_PIPELINE,
                 max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
                 max_nodes: int = DEFAULT_MAX_NODES,
                 save_temps: str | Path | None = None, use_tuning_db: bool = True,
                 tuning_db: str | Path | None = None,
                 quantize: QuantizeOptions | None = None) -> CompilePlan:
    model = Path(model)
    if tuning_db is not None and not use_tuning_db:
        raise UsageError("give either --tuning-db or --no-tuning-db, not both")
    label, passes = resolve_pipeline(pipeline)
    resolved = resolve_target(target)
    if resolved.accelerator is not None:
        from .accel.build import check_precision

        check_precision(resolved, quantize)
    elif quantize is not None and quantize.mode == "fp16":
        check_fp16(resolved)
    consts = {k: np.asarray(v) for k, v in (input_consts or {}).items()}
    both = sorted(set(input_shapes or {}) & set(consts))
    if both:
        raise UsageError(f"input(s) {', '.join(both)} given both --input-shape and "
                         "--input-const; a constant's shape comes from its value")
    output = check_output(output if output is not None else Path(model.stem + ".edgec"),
                          inputs=(model,))
    return CompilePlan(
        model=model,
        output=output,
        target=resolved,
        pipeline=label,
        passes=passes,
        bindings=Bindings(dict(input_shapes or {}), consts),
        max_model_bytes=max_model_bytes,
        max_nodes=max_nodes,
        save_temps=Path(save_temps) if save_temps is not None else None,
        use_tuning_db=use_tuning_db,
        tuning_db=Path(tuning_db) if tuning_db is not None else None,
        quantize=quantize,
    )


def fp16_gain(target: Target) -> str | None:
    """Why ``target`` computes faster in float16 (None: it does not): GPUs, and CPUs
    with float16 vector arithmetic (ARMv8.2 fullfp16, AVX512-FP16). Elsewhere fp16
    is converted to float32 for every operation, slower than float32 itself."""
    if target.is_gpu:
        return "a GPU target"
    flags = set(target.cpu_flags)
    if target.arch == "aarch64" and "asimdhp" in flags:
        return "ARMv8.2 fp16 vector arithmetic (asimdhp)"
    if target.arch == "x86_64" and "avx512_fp16" in flags:
        return "AVX512-FP16"
    return None


def check_fp16(target: Target) -> None:
    if fp16_gain(target) is None:
        raise UsageError(f"--quantize fp16: target '{target.name}' has no float16 arithmetic "
                         "(it would convert every value back to float32 and run slower); "
                         "use --quantize int8, or an fp16 target such as "
                         "arm/cortex-a76-dotprod or a GPU target")


def _spec(value: ir.Value, source: Path, what: str) -> TensorSpec:
    if value.shape is None or not all(isinstance(d, int) for d in value.shape):
        raise UnsupportedError(f"{source}: {what} '{value.name}' has no static shape after "
                               "shape inference; bind the inputs it depends on with "
                               "--input-shape")
    return TensorSpec(value.name, tuple(value.shape), value.dtype.numpy().name)


#: index inputs per op: (input position of the data, of the indices, kind); an "nd" op's
#: last index dim picks that many leading axes of the data (after batch_dims)
_INDEX_OPS = {"Gather": (0, 1, "axis"), "GatherElements": (0, 1, "axis"),
              "ScatterElements": (0, 1, "axis"), "GatherND": (0, 1, "nd"),
              "ScatterND": (0, 1, "nd")}


def _index_extents(model: ir.Model) -> dict[str, list[int]]:
    """Integer graph inputs used directly as gather / scatter indices -> the extent of
    the axis each indexes: one number, or one per last-dim slot for GatherND and
    ScatterND. ONNX allows [-extent, extent); the runtime refuses anything else
    before running (runtime/session.py)."""
    extents: dict[str, list[int]] = {}
    for node in model.graph:
        spec = _INDEX_OPS.get(node.op_type)
        if spec is None or len(node.inputs) <= spec[1]:
            continue
        data, idx = node.inputs[spec[0]], node.inputs[spec[1]]
        if data is None or idx is None or not idx.is_graph_input() or data.shape is None \
                or not all(isinstance(d, int) for d in data.shape):
            continue
        shape = list(data.shape)
        if spec[2] == "axis":
            found = [shape[node.attributes.get_int("axis", 0) % len(shape)]]
        else:
            if idx.shape is None or not isinstance(idx.shape[-1], int):
                continue
            batch = node.attributes.get_int("batch_dims", 0)
            found = shape[batch:batch + idx.shape[-1]]
        old = extents.get(idx.name)
        if old is None:
            extents[idx.name] = found
        elif len(old) == len(found):
            extents[idx.name] = [min(a, b) for a, b in zip(old, found, strict=True)]
        else:  # used both ways: the smallest extent bounds every element
            extents[idx.name] = [min(*old, *found)]
    return extents


def _input_entry(spec: TensorSpec, extents: dict[str, list[int]]) -> dict:
    """A manifest input: its spec, and for index inputs ``index_extents`` and
    ``valid_range`` ([0, smallest extent]: what random inputs are drawn from)."""
    entry = spec.to_json()
    if spec.name in extents:
        entry["index_extents"] = extents[spec.name]
        entry["valid_range"] = [0, min(extents[spec.name])]
    return entry


@contextlib.contextmanager
def _workdir(save_temps: Path | None) -> Iterator[tuple[Path, Path | None]]:
    with tempfile.TemporaryDirectory(prefix="edgec-build-") as tmp:
        if save_temps is not None:
            save_temps.mkdir(parents=True, exist_ok=True)
        yield Path(tmp), save_temps


def load_bound(plan: CompilePlan):
    """The plan's model, loaded and checked, with every input bound."""
    return bind(plan.model, plan.bindings, max_bytes=plan.max_model_bytes,
                max_nodes=plan.max_nodes)


#: run after the plan's passes before int8 calibration: weights generated in the
#: graph (ConstantOfShape, as in ONNX's light models) must be constants for
#: onnxruntime to quantise them as weights (per channel, int8); left computed,
#: it quantised them as activations (uint8 with a zero point, per tensor)
INT8_PREP = ("fold-constants-all", "remove-dead", "shape-inference")


def optimise(plan: CompilePlan, model: ir.Model, observe=None) -> list:
    """Run the plan's edgec passes on ``model`` in place (and, for int8, INT8_PREP);
    their reports."""
    passes = plan.passes
    if plan.quantize is not None and plan.quantize.mode == "int8":
        passes = (*passes, *INT8_PREP)
    return run_passes(plan.model, model, passes, observer=observe)


#: what a compile writes beyond the weights (object files, the library, the tar)
BUILD_FILES_BYTES = 64 << 20


def check_file_size_limit(model: Path, model_bytes: int) -> None:
    """Refuse to start under a file size limit (ulimit -f) the build would pass: LLVM
    dies on EFBIG with its own message and exit 1, leaving its temporary files."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    need = 2 * model_bytes + BUILD_FILES_BYTES
    if soft != resource.RLIM_INFINITY and soft < need:
        raise ToolchainError(f"{model}: the file size limit (ulimit -f) is {soft} bytes; "
                             f"compiling writes files of up to about {need >> 20} MiB "
                             "(object code, the library, the artifact): raise the limit")


def compile_plan(plan: CompilePlan, *, progress: Progress | None = None) -> Artifact:
    """Execute a plan; returns the written artifact."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    say(f"loading {plan.model.name}")
    t0 = time.perf_counter()
    loaded, model = load_bound(plan)
    timings["load"] = time.perf_counter() - t0
    check_file_size_limit(plan.model, loaded.size_bytes)
    with _workdir(plan.save_temps) as (work, temps):
        def observe(i: int, name: str, m: ir.Model) -> None:
            if temps is not None:
                ir.save(m, temps / f"{i + 1:02d}-{name}.onnx")

        if temps is not None:
            ir.save(model, temps / "00-bound.onnx")
            (temps / "target.json").write_text(json.dumps(plan.target.to_json(), indent=2))
            (temps / "reproduce.sh").write_text(
                "#!/bin/sh\n# edgec " + __version__ + ", " + _versions_line() + "\n"
                + shlex.join(plan.command(temps)) + "\n")
        say(f"running {len(plan.passes)} edgec passes ({plan.pipeline})")
        t0 = time.perf_counter()
        reports = optimise(plan, model, observe)
        timings["passes"] = time.perf_counter() - t0
        inputs = [_spec(v, plan.model, "input") for v in model.graph.inputs]
        outputs = [_spec(v, plan.model, "output") for v in model.graph.outputs]
        extents = _index_extents(model)
        declared = loaded.declared_inputs()
        proto = ir.serde.serialize_model(model)
        quant = None
        if plan.quantize is not None and plan.quantize.mode == "int8":
            proto, quant = _quantize(plan, proto, inputs, say, temps)
            timings["quantize"] = quant.seconds

        from .backend.tvm import build as tvm_build  # the only way into TVM

        say(f"building with TVM for {plan.target.name}")
        lib = work / LIBRARY
        fp16 = plan.quantize is not None and plan.quantize.mode == "fp16"

        def build_cpu(graph, lib_path: Path, step_temps: Path | None):
            return tvm_build.build_model(graph, plan.target, lib_path, source=str(plan.model),
                                         save_temps=step_temps,
                                         use_tuning_db=plan.use_tuning_db,
                                         tuning_db=plan.tuning_db, fp16=fp16)

        offload = None
        if plan.target.accelerator is not None:
            from .accel.build import build_offloaded

            t0 = time.perf_counter()
            offload = build_offloaded(proto, plan.target, work, temps, build_cpu, say)
            result = offload.cpu_results[0]
            result.kernels, result.kernels_error = None, (
                "an accelerator artifact: see the manifest's offload steps")
            result.integer_chains = sum(r.integer_chains for r in offload.cpu_results)
            timings["offload"] = time.perf_counter() - t0
        else:
            result = build_cpu(proto, lib, temps)
            timings.update(result.seconds)
        manifest = {
            "edgec_version": __version__,
            "tvm_version": tvm_build.tvm_version(),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "source_model": {"file": plan.model.name, "sha256": loaded.sha256,
                             "opset": loaded.opset, "bytes": loaded.size_bytes,
                             "inputs": {s.name: declared.get(s.name) for s in inputs}},
            "target": {**plan.target.to_json(), "tvm_resolved": result.tvm_target,
                       "device_modules": result.device_modules},
            "inputs": [_input_entry(s, extents) for s in inputs],
            "outputs": [s.to_json() for s in outputs],
            "bindings": plan.bindings.to_json(),
            "pipeline": plan.pipeline,
            "passes": [r.to_json() for r in reports],
            "compile_seconds": {**{k: round(v, 3) for k, v in timings.items()},
                                "total": round(time.perf_counter() - started, 3)},
            "build_host": f"{platform.system()} {platform.machine()}",
            # kernel -> ONNX nodes (of the graph after edgec's passes), for 'edgec profile'
            "kernels": result.kernels,
            **({"kernels_error": result.kernels_error} if result.kernels_error else {}),
            # the tuning database consulted and the kernels running a searched schedule
            "tuning": result.tuning,
            # int8: calibration, ranges digest, layers kept float; fp16: the mode
            **({"quantization": {**quant.to_json(),
                                 "integer_chains": result.integer_chains}}
               if quant is not None else
               {"quantization": {"mode": "fp16", "reason": fp16_gain(plan.target)}}
               if plan.quantize is not None else {}),
            **({"offload": offload.section} if offload is not None else {}),
        }
        if temps is not None:
            (temps / "compile-report.json").write_text(json.dumps(manifest, indent=2))
        try:
            check_io(manifest, plan.output)
        except ArtifactError as exc:  # what edgec would refuse to load: not written
            raise UnsupportedError(f"{plan.model}: {exc.message}; edgec could not load such "
                                   "an artifact, so it is not written") from exc
        say(f"writing {plan.output}")
        write_artifact(plan.output, manifest,
                       offload.members if offload is not None else {LIBRARY: lib})
    return Artifact(plan.output)


def _quantize(plan: CompilePlan, proto, inputs: list[TensorSpec], say: Progress,
              temps: Path | None):
    """The bound, optimised float model as a calibrated QDQ model, and its summary."""
    from .quantize import load_calibration, quantize_int8

    options = plan.quantize
    say(f"loading calibration data ({options.calibration})")
    calibration = load_calibration(options, inputs)
    full = plan.target.accelerator is not None  # an int8 accelerator: every tensor int8
    qdq, summary = quantize_int8(proto, options, calibration, source=str(plan.model), say=say,
                                 **({"scheme": "onnxruntime", "activations": "int8"}
                                    if full else {}))
    if temps is not None:
        onnx.save(qdq, temps / "quantized-qdq.onnx")
    return qdq, summary


def _versions_line() -> str:
    from importlib.metadata import version

    return (f"apache-tvm {version('apache-tvm')}, onnx {onnx.__version__}, onnxruntime "
            f"{version('onnxruntime')}, Python {sys.version.split()[0]}")


def offload_report(plan: CompilePlan, *, progress: Progress | None = None) -> dict:
    """How ``plan``'s model splits between the target's accelerator and its CPU, with
    the accelerator toolchain's estimates, without building the CPU side (no TVM):
    ``edgec inspect MODEL -t TARGET --offload``."""
    from .accel.build import describe_split, plugin_for
    from .accel.partition import split

    say = progress or (lambda _msg: None)
    if plan.target.accelerator is None:
        raise UsageError(f"--offload: target '{plan.target.name}' has no accelerator; give "
                         "an accelerator target (edgec targets lists them under npu/)")
    plugin, config = plugin_for(plan.target)
    _loaded, model = load_bound(plan)
    optimise(plan, model)
    proto = ir.serde.serialize_model(model)
    quant = None
    if plan.quantize is not None and plan.quantize.mode == "int8":
        inputs = [_spec(v, plan.model, "input") for v in model.graph.inputs]
        proto, quant = _quantize(plan, proto, inputs, say, None)
    with tempfile.TemporaryDirectory(prefix="edgec-offload-") as tmp:
        s = split(proto, plugin, config, Path(tmp), say=say)
        report = describe_split(s, plugin.config_json(config))
    report["model"] = str(plan.model)
    report["target"] = plan.target.name
    if quant is not None:
        report["quantization"] = quant.to_json()
    return report

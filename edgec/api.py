"""The Python API, mirroring the CLI: compile, load, verify, inspect, targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .artifact import Artifact
from .compiler import Progress, compile_plan, plan_compile
from .compiler import offload_report as offload_report_for
from .errors import UsageError
from .frontend import DEFAULT_MAX_MODEL_BYTES
from .passes import DEFAULT_PIPELINE
from .quantize.options import QuantizeOptions
from .specs import DEFAULT_MAX_NODES
from .target_registry import Target, load_targets, resolve_target


def _pipeline(opt_level: int | None, pipeline: str | None) -> str:
    if opt_level is not None and pipeline is not None:
        raise UsageError("give either an optimisation level (-O) or --pipeline, not both")
    if opt_level is not None:
        if opt_level not in (0, 1, 2, 3):
            raise UsageError(f"-O{opt_level}: the levels are 0, 1, 2 and 3")
        return f"O{opt_level}"
    return pipeline or DEFAULT_PIPELINE


def compile(model: str | Path, target: str | Target = "host", output: str | Path | None = None,
            *, input_shapes: dict[str, tuple[int, ...]] | None = None,
            input_consts: dict[str, object] | None = None, opt_level: int | None = None,
            pipeline: str | None = None, save_temps: str | Path | None = None,
            max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES, max_nodes: int = DEFAULT_MAX_NODES,
            use_tuning_db: bool = True, tuning_db: str | Path | None = None,
            quantize: QuantizeOptions | None = None,
            progress: Progress | None = None) -> Artifact:
    """Compile an ONNX model for ``target`` and write the artifact; ``edgec compile``.

    Args:
        model: the ``.onnx`` file (external data next to it is read too).
        target: a target file name (``"arm/raspberry-pi-4"``), its short name, an
            alias (``"x86"``, ``"arm"``), ``"host"`` (the CPU target that best fits
            this machine) or a `Target` from `resolve_target`.
        output: where the artifact goes; default ``<model stem>.edgec`` in the
            current directory. Written atomically: a failed compile leaves no file.
        input_shapes: ``{input name: shape}`` binding dynamic dims; every dynamic
            dim must be bound (a named dim bound on one input binds it everywhere).
        input_consts: ``{input name: value}`` turning inputs into constants (an
            array, a number or a list); branches and shapes that depend on them fold.
        opt_level: 0-3, which edgec passes run (``-O``); default 2.
        pipeline: a pipeline name or comma-separated pass names instead of
            ``opt_level`` (not both).
        save_temps: a folder to keep the model after every pass, the Relax
            modules, the resolved target and a ``reproduce.sh`` (for bug reports).
        max_model_bytes: bigger models are refused (default 2 GiB).
        max_nodes: models with more nodes, subgraphs counted, are refused (default
            50000: compile time grows with them).
        use_tuning_db: apply tuning records. Kernels with records in the target's
            tuning database (``tuning_db``, else the one ``edgec tune`` fills by
            default) get the fastest schedule on record; ``False`` keeps every
            template schedule.
        tuning_db: a tuning database folder other than the target's default.
        quantize: `QuantizeOptions`: ``mode="int8"`` calibrates on
            ``calibration`` (a folder of samples, or ``"random"`` for smoke
            tests) with onnxruntime and runs the quantised ops on integer
            kernels; ``mode="fp16"`` computes in float16 on targets with fp16
            arithmetic. The manifest's ``quantization`` records what was done.
        progress: called with a short message as each stage starts.

    Returns:
        The written `Artifact`.

    Raises:
        edgec.errors.UsageError: a missing file, unknown target, bad or
            contradicting binding, unbound dynamic dim, bad option combination (exit 2).
        edgec.errors.ModelError: not a valid ONNX model, unsafe external data, too big (exit 3).
        edgec.errors.UnsupportedError: an op TVM cannot import or edgec cannot lower (exit 4).
        edgec.errors.ToolchainError: the target's cross compiler is missing or
            linking failed (exit 5).
        edgec.errors.CompileError: TVM failed on a model edgec accepted, a bug (exit 6).
    """
    plan = plan_compile(model, target=target, output=output, input_shapes=input_shapes,
                        input_consts=input_consts, pipeline=_pipeline(opt_level, pipeline),
                        max_model_bytes=max_model_bytes, max_nodes=max_nodes,
                        save_temps=save_temps, use_tuning_db=use_tuning_db, tuning_db=tuning_db,
                        quantize=quantize)
    return compile_plan(plan, progress=progress)


def verify(model: str | Path, artifact: str | Path | Artifact | None = None, *,
           feeds: dict[str, np.ndarray] | None = None, seed: int = 0,
           rtol: float | None = None, atol: float | None = None, **compile_kwargs):
    """Run an artifact and onnxruntime on the same inputs and compare; ``edgec verify``.

    onnxruntime runs ``model``, the original file, never edgec's rewritten
    graph. Inputs bound to constants at compile time are fed to onnxruntime
    with the same values. An aarch64 artifact on an x86 machine runs under
    qemu-user through its C bundle (needs the cross toolchain).

    Args:
        model: the ONNX file the artifact was compiled from (its sha256 must
            match the manifest's).
        artifact: an `Artifact` or the path of one. When None, ``model`` is
            compiled now into a temporary file with ``compile_kwargs``.
        feeds: ``{input name: array}``; default random inputs drawn with ``seed``.
        seed: seed for the random inputs.
        rtol: relative tolerance for every float output, instead of the per-dtype
            default (``edgec.verification.DEFAULT_TOLERANCES``).
        atol: absolute tolerance, likewise.
        **compile_kwargs: `compile`'s keyword arguments (``target``,
            ``input_shapes``, ...), used only when ``artifact`` is None.

    Returns:
        An `edgec.verification.VerifyReport`: ``ok`` is True when every element
        of every output satisfies ``|edgec - ref| <= atol + rtol * |ref|``
        (integers and booleans exactly). A mismatch is reported, not raised.

    Raises:
        edgec.errors.UsageError: ``model`` is missing or not the artifact's
            source, or an input is missing or of the wrong shape (exit 2).
        edgec.errors.UnsupportedError: this machine can neither run nor emulate
            the artifact (a GPU target, missing CPU features) (exit 4).
        edgec.EdgecError: anything `compile` raises, when it compiles.
    """
    import tempfile

    from .verification import verify_artifact

    if artifact is not None:
        art = artifact if isinstance(artifact, Artifact) else Artifact(artifact)
        return verify_artifact(art, model, feeds=feeds, seed=seed, rtol=rtol, atol=atol)[0]
    with tempfile.TemporaryDirectory(prefix="edgec-verify-") as tmp:
        art = compile(model, output=Path(tmp) / "model.edgec", **compile_kwargs)
        return verify_artifact(art, model, feeds=feeds, seed=seed, rtol=rtol, atol=atol)[0]


def inspect(model: str | Path, *, input_shapes: dict[str, tuple[int, ...]] | None = None,
            input_consts: dict[str, object] | None = None,
            max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES, max_nodes: int = DEFAULT_MAX_NODES):
    """Describe a model without compiling it (and without loading TVM); ``edgec inspect``.

    The model goes through the same checks, bindings and shape inference as a
    compile, so what it says about dynamic dims and contradictions is what a
    compile would say.

    Args:
        model: the ``.onnx`` file.
        input_shapes: ``{input name: shape}`` to bind dynamic dims first (as `compile`).
        input_consts: ``{input name: value}`` to bind inputs to constants first.
        max_model_bytes: bigger models are refused (default 2 GiB).
        max_nodes: models with more nodes are refused (default 50000).

    Returns:
        An `edgec.model_info.ModelInfo`: inputs and outputs, op histogram,
        parameters, FLOPs (2 x MACs; nodes it could not count are listed, never
        counted as zero), ops TVM cannot import, and the dynamic dims with the
        ``--input-shape`` flags that would bind them. ``to_json()`` is
        ``edgec inspect --json``.

    Raises:
        edgec.errors.ModelError: not a valid ONNX model, unsafe external data,
            too big (exit 3).
        edgec.errors.UsageError: a missing file, or a binding that contradicts
            the model (exit 2).
    """
    from .frontend import Bindings
    from .model_info import inspect_model

    consts = {k: np.asarray(v) for k, v in (input_consts or {}).items()}
    return inspect_model(model, bindings=Bindings(dict(input_shapes or {}), consts),
                         max_bytes=max_model_bytes, max_nodes=max_nodes)


def offload_report(model: str | Path, target: str | Target, *,
                   quantize: QuantizeOptions | None = None,
                   input_shapes: dict[str, tuple[int, ...]] | None = None,
                   input_consts: dict[str, object] | None = None,
                   max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
                   max_nodes: int = DEFAULT_MAX_NODES,
                   progress: Progress | None = None) -> dict:
    """How ``model`` splits between an accelerator target's device and its CPU;
    ``edgec inspect MODEL -t TARGET --offload``.

    The model goes through the compile's passes and quantisation (an int8
    accelerator without ``quantize`` is quantised on random data: placement
    and the accelerator toolchain's estimates do not depend on the ranges,
    accuracy does), then through the partitioner and the accelerator's own
    compiler, exactly as `compile` would; the CPU side is not built.

    Returns:
        A dict (``--json``): ``summary`` (ops and MACs offloaded, partitions,
        the estimated accelerator latency and its label), ``steps`` (in order:
        device, nodes, op counts, MACs, estimate), ``placements`` (every compute
        node: where it runs, and on the CPU why), ``notes``.
    """
    from .accel.build import plugin_for

    resolved = resolve_target(target)
    if resolved.accelerator is not None and quantize is None:
        plugin, _ = plugin_for(resolved)
        if plugin.precision == "int8":
            quantize = QuantizeOptions(calibration="random")
    import tempfile

    never_written = Path(tempfile.gettempdir()) / "edgec-offload-report.edgec"
    plan = plan_compile(model, target=resolved, output=never_written,
                        input_shapes=input_shapes, input_consts=input_consts,
                        max_model_bytes=max_model_bytes, max_nodes=max_nodes,
                        quantize=quantize)
    return offload_report_for(plan, progress=progress)


def targets() -> dict[str, Target]:
    """Every target file, by name (``"arm/raspberry-pi-4"``), as `Target` values.

    Folders listed in ``$EDGEC_TARGET_PATH`` are searched before the bundled
    ``targets/``; the first file with a name wins.

    Raises:
        edgec.errors.UsageError: a target file is invalid or two files claim the
            same alias (the message names the file).
    """
    return load_targets()


__all__ = ["compile", "inspect", "resolve_target", "targets", "verify"]


def quant_report(model: str | Path, *, quantize: QuantizeOptions, eval_data: str | None = None,
                 max_drop: float | None = None,
                 input_shapes: dict[str, tuple[int, ...]] | None = None,
                 input_consts: dict[str, object] | None = None, opt_level: int | None = None,
                 pipeline: str | None = None, max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
                 progress: Progress | None = None):
    """Measure what int8 costs per layer and per output (``edgec quant-report``).

    The model is bound and optimised as `compile` would, quantised on
    ``quantize.calibration`` and measured in onnxruntime on ``eval_data``
    (a folder in the calibration formats), or on the last quarter of the
    calibration samples, held out. ``max_drop``: keep the noisiest layers
    float until every output's SQNR is at least that many dB.

    Returns:
        An `edgec.quantize.report.QuantReport` (``to_json()`` is ``--json``).
    """
    from .compiler import load_bound, optimise
    from .quantize import load_calibration
    from .quantize.report import quant_report as _report

    say = progress or (lambda _m: None)
    if quantize.mode != "int8":
        raise UsageError("quant-report measures int8 quantisation; fp16 needs no report")
    plan = plan_compile(model, input_shapes=input_shapes, input_consts=input_consts,
                        pipeline=_pipeline(opt_level, pipeline), max_model_bytes=max_model_bytes,
                        quantize=quantize)
    say(f"loading {plan.model.name}")
    _loaded, bound = load_bound(plan)
    optimise(plan, bound)
    import onnx_ir as ir

    from .compiler import _spec

    specs = [_spec(v, plan.model, "input") for v in bound.graph.inputs]
    proto = ir.serde.serialize_model(bound)
    calibration = load_calibration(quantize, specs)
    if eval_data is not None:
        from dataclasses import replace

        evaluation = load_calibration(replace(quantize, calibration=eval_data, samples=None),
                                      specs)
    else:
        calibration, evaluation = calibration.split()
    return _report(proto, quantize, calibration, evaluation, source=str(plan.model),
                   max_drop=max_drop, say=say)

"""The Python API, mirroring the CLI: compile, load, verify, inspect, targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .artifact import Artifact
from .compiler import Progress, compile_plan, plan_compile
from .errors import UsageError
from .frontend import DEFAULT_MAX_MODEL_BYTES
from .passes import DEFAULT_PIPELINE
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
            max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
            use_tuning_db: bool = True, tuning_db: str | Path | None = None,
            progress: Progress | None = None) -> Artifact:
    """Compile an ONNX model for ``target`` and write the artifact (default ``<stem>.edgec``).

    Kernels with records in the target's tuning database (``tuning_db``, else
    the one ``edgec tune`` fills by default) get the fastest schedule on record;
    ``use_tuning_db=False`` keeps every template schedule."""
    plan = plan_compile(model, target=target, output=output, input_shapes=input_shapes,
                        input_consts=input_consts, pipeline=_pipeline(opt_level, pipeline),
                        max_model_bytes=max_model_bytes, save_temps=save_temps,
                        use_tuning_db=use_tuning_db, tuning_db=tuning_db)
    return compile_plan(plan, progress=progress)


def verify(model: str | Path, artifact: str | Path | Artifact | None = None, *,
           feeds: dict[str, np.ndarray] | None = None, seed: int = 0,
           rtol: float | None = None, atol: float | None = None, **compile_kwargs):
    """Compare an artifact (compiled now into a temp file if not given) with onnxruntime."""
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
            max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES):
    """Describe a model without compiling it (and without loading TVM)."""
    from .frontend import Bindings
    from .model_info import inspect_model

    consts = {k: np.asarray(v) for k, v in (input_consts or {}).items()}
    return inspect_model(model, bindings=Bindings(dict(input_shapes or {}), consts),
                         max_bytes=max_model_bytes)


def targets() -> dict[str, Target]:
    """Every target file by name."""
    return load_targets()


__all__ = ["compile", "inspect", "resolve_target", "targets", "verify"]

"""onnxruntime (CPU execution provider) as a timed engine, on the user's original model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError, first_line
from .timing import EngineRun, time_calls

ORT_TYPES = {"float": "float32", "double": "float64", "float16": "float16", "int8": "int8",
             "uint8": "uint8", "int16": "int16", "uint16": "uint16", "int32": "int32",
             "uint32": "uint32", "int64": "int64", "uint64": "uint64", "bool": "bool"}


def session(model: Path, *, threads: int | None = None):
    """A CPU session; ``threads`` fixes intra-op threads (inter-op stays sequential)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{model}: onnxruntime cannot load it: {first_line(exc)}") from None


def typed_feeds(sess, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feeds the session takes, cast to its declared types (CLI constants are plain ints)."""
    typed = {}
    for i in sess.get_inputs():
        if i.name in feeds:
            dtype = ORT_TYPES.get(i.type.removeprefix("tensor(").rstrip(")"))
            value = np.asarray(feeds[i.name])
            typed[i.name] = value.astype(dtype) if dtype else value
    return typed


def prepare(model: Path, feeds: dict[str, np.ndarray], *, threads: int):
    """(one timed call, the outputs of a first run) for a timing loop."""
    sess = session(model, threads=threads)
    names = [o.name for o in sess.get_outputs()]
    typed = typed_feeds(sess, feeds)

    def call():
        try:
            return sess.run(names, typed)
        except Exception as exc:
            raise ModelError(f"{model}: onnxruntime failed to run it: "
                             f"{first_line(exc)}") from None

    return call, dict(zip(names, call(), strict=True))


def run(model: Path, feeds: dict[str, np.ndarray], *, threads: int, warmup: int, repeat: int,
        budget_s: float) -> EngineRun:
    call, outputs = prepare(model, feeds, threads=threads)
    stats = time_calls(call, warmup=warmup, repeat=repeat, budget_s=budget_s)
    return EngineRun(outputs, stats, threads)


def version() -> str:
    import onnxruntime

    return onnxruntime.__version__

"""onnxruntime as the numeric reference: the original model, the same inputs.

The reference always runs the user's original file (not edgec's rewritten
graph), so a wrong edgec pass shows up as a mismatch instead of hiding in
both sides. Inputs bound to constants at compile time are fed their values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ModelError, first_line

_ORT_TYPES = {"float": "float32", "double": "float64", "float16": "float16", "int8": "int8",
              "uint8": "uint8", "int16": "int16", "uint16": "uint16", "int32": "int32",
              "uint32": "uint32", "int64": "int64", "uint64": "uint64", "bool": "bool"}


def run_reference(model: Path, feeds: dict[str, np.ndarray], *,
                  threads: int | None = None) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        typed = {}
        for i in sess.get_inputs():  # constants bound from the CLI arrive as Python numbers
            if i.name in feeds:
                dtype = _ORT_TYPES.get(i.type.removeprefix("tensor(").rstrip(")"))
                value = np.asarray(feeds[i.name])
                typed[i.name] = value.astype(dtype) if dtype else value
        results = sess.run(names, typed)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{model}: onnxruntime cannot run the reference: "
                         f"{first_line(exc)}") from None
    return dict(zip(names, results, strict=True))

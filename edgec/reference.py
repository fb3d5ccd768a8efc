"""onnxruntime as the numeric reference: the original model, the same inputs.

The reference always runs the user's original file (not edgec's rewritten
graph), so a wrong edgec pass shows up as a mismatch instead of hiding in
both sides. Inputs bound to constants at compile time are fed their values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .baselines import onnxruntime as ort_engine
from .errors import ModelError, first_line


def run_reference(model: Path, feeds: dict[str, np.ndarray], *,
                  threads: int | None = None) -> dict[str, np.ndarray]:
    sess = ort_engine.session(model, threads=threads)
    try:
        names = [o.name for o in sess.get_outputs()]
        results = sess.run(names, ort_engine.typed_feeds(sess, feeds))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{model}: onnxruntime cannot run the reference: "
                         f"{first_line(exc)}") from None
    return dict(zip(names, results, strict=True))

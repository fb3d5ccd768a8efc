"""Checking an int8 artifact against onnxruntime running the very QDQ model it came from.

Where the only quantised tensor is the graph input, the two differ by float
rounding only (edgec sums integers exactly and multiplies by x_scale *
w_scale once; onnxruntime runs a float conv on dequantised values): rtol
1e-4. Where a kernel writes a quantised tensor that the next layer reads, a
value within float rounding of a rounding boundary may land one step apart:
then at most 2% of the outputs may differ, and none by more than one step
of that tensor in every input of the last layer (x_scale * sum |w| of its
worst output channel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def input_shape(model: Path) -> list[int]:
    return [d.dim_value for d in onnx.load(model).graph.input[0].type.tensor_type.shape.dim]


def _step_bound(qdq: Path) -> float:
    """One step of the last layer's quantised input in every input of its worst output
    channel: x_scale * max_o sum |w_dq[o]|."""
    m = onnx.load(qdq)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    by_out = {o: n for n in m.graph.node for o in n.output}
    last = [n for n in m.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")][-1]
    x_dq, w_dq = by_out[last.input[0]], by_out[last.input[1]]
    w = inits[w_dq.input[0]].astype(np.float64)
    ws = inits[w_dq.input[1]].astype(np.float64)
    trans_b = any(a.name == "transB" and a.i for a in last.attribute)
    out_axis = 0 if last.op_type == "Conv" or trans_b else w.ndim - 1
    if ws.size > 1:
        shape = [1] * w.ndim
        shape[out_axis] = ws.size
        ws = ws.reshape(shape)
    per_out = np.abs(np.moveaxis(w * ws, out_axis, 0)).reshape(w.shape[out_axis], -1).sum(1)
    return float(inits[x_dq.input[1]]) * float(per_out.max())


def check_against_qdq(art, model: Path, qdq: Path, *, exact: bool, emulate: bool = False,
                      seed: int = 9, runs: int = 1) -> None:
    """``art`` against onnxruntime on ``qdq`` (the tolerances in the module docstring),
    over ``runs`` seeded uniform inputs in [-1, 1) (the calibration data's range)."""
    session = ort.InferenceSession(str(qdq), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        x = rng.uniform(-1, 1, input_shape(model)).astype(np.float32)
        name = session.get_inputs()[0].name
        ref = session.run(None, {name: x})[0]
        got = next(iter(art.run({name: x}, emulate=emulate).values()))
        assert got.shape == ref.shape
        tol = 1e-4 * float(np.abs(ref).max()) + 1e-6
        if exact:
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=tol)
            continue
        close = np.abs(got - ref) <= tol + 1e-4 * np.abs(ref)
        assert close.mean() >= 0.98, f"{(~close).mean():.2%} of outputs differ"
        worst, bound = float(np.abs(got - ref).max()), _step_bound(qdq)
        assert worst <= bound * 1.001 + tol, f"{worst:.4g} > one step in every input, {bound:.4g}"
        assert np.std(ref) > 1e-3  # not degenerate: the layers were not all clamped flat

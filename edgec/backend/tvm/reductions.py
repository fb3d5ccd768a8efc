"""Float max / min reductions that start from -inf / +inf, as ONNX's ReduceMax / ReduceMin.

TVM's reductions start from the type's lowest or highest finite value, so the
max of a row that is all -inf came out as -3.4e38 instead of -inf: in the
node tests, attention's masking (a ReduceMax over fully masked rows, then
x - max and Exp) turned an expected 0 into NaN. This pass rewrites every
float ``max`` / ``min`` reduction into a TE kernel with the infinite start
value; on finite data the result is the same. A reduction over an empty axis
is its start value (TVM's kernel skipped the init and returned garbage).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, te, tirx

from .relax_util import _dtype, _op, _shape

_FLOATS = ("float16", "float32", "float64")


def _reduce_te(x: te.Tensor, axes: list[int], keepdims: bool, kind: str) -> te.Tensor:
    ndim = len(x.shape)
    start = float("-inf") if kind == "max" else float("inf")
    pick = tirx.max if kind == "max" else tirx.min
    reducer = te.comm_reducer(lambda a, b: pick(a, b),
                              lambda t: tirx.const(start, t), name=f"inf_{kind}")
    raxes = {a: te.reduce_axis((0, x.shape[a]), f"r{a}") for a in axes}
    out_shape = [1 if a in raxes else x.shape[a] for a in range(ndim)] if keepdims else \
        [x.shape[a] for a in range(ndim) if a not in raxes]

    def value(*idx):
        it = iter(idx)
        full = []
        for a in range(ndim):
            if a in raxes:
                if keepdims:
                    next(it)
                full.append(raxes[a].var)
            else:
                full.append(next(it))
        return reducer(x[tuple(full)], axis=list(raxes.values()))

    return te.compute(out_shape, value, name=f"reduce_{kind}")


@relax.expr_functor.mutator
class _Rewriter(relax.PyExprMutator):
    def __init__(self, mod):
        super().__init__(mod)
        self.rewritten = 0

    def visit_call_(self, call):
        call = super().visit_call_(call)
        op = _op(call)
        if op not in ("relax.max", "relax.min") or _dtype(call) not in _FLOATS:
            return call
        shape = _shape(call.args[0])
        if shape is None or not shape:
            return call
        ndim = len(shape)
        axes = list(range(ndim)) if call.attrs.axis is None else \
            sorted(int(a) % ndim for a in call.attrs.axis)
        self.rewritten += 1
        kind = "max" if op == "relax.max" else "min"
        if any(shape[a] == 0 for a in axes):  # over nothing: the start value itself (TVM's
            out = _shape(call)                 # kernel skips its init and returns garbage)
            start = float("-inf") if kind == "max" else float("inf")
            return relax.const(np.full(out, start, _dtype(call)))
        return self.builder_.emit_te(_reduce_te, call.args[0], axes,
                                     bool(call.attrs.keepdims), kind)


def reductions_from_infinity(mod: tvm.IRModule) -> tuple[tvm.IRModule, int]:
    """``mod`` with its float max / min reductions starting from -inf / +inf."""
    rewriter = _Rewriter(mod)
    func = rewriter.visit_expr(mod["main"])
    if not rewriter.rewritten:
        return mod, 0
    rewriter.builder_.update_func(mod.get_global_var("main"), func)
    return rewriter.builder_.get(), rewriter.rewritten

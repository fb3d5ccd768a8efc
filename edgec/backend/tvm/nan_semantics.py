"""Relu and Clip that pass NaN through, as onnxruntime's do.

TVM lowers ``relu`` and ``clip`` to max / min, which LLVM emits as maxnum /
minnum: a NaN input comes out as the bound, so an all-NaN input gave finite,
confident outputs where onnxruntime propagates NaN. edgec's own kernels
clamp with compares and blends (kernels/epilogue.clamp); this pass rewrites
the relu and clip ops left to TVM (after dispatch.py took its chains) into
the same compare-and-select form, which costs the same.
"""

from __future__ import annotations

import tvm
from tvm import relax

from .chains import _activation
from .relax_util import _dtype, _op


@relax.expr_functor.mutator
class _Rewriter(relax.PyExprMutator):
    def __init__(self, mod):
        super().__init__(mod)
        self.rewritten = 0

    def visit_call_(self, call):
        call = super().visit_call_(call)
        op = _op(call)
        if op not in ("relax.nn.relu", "relax.clip") or _dtype(call) not in (
                "float32", "float16", "float64"):
            return call
        x = call.args[0]
        dtype = _dtype(call)
        if op == "relax.nn.relu":
            lo, hi = 0.0, None
        else:
            bounds = _activation(None, call)
            if bounds is None:
                return call
            lo = bounds[1] if bounds[1] != float("-inf") else None
            hi = bounds[2] if bounds[2] != float("inf") else None
        self.rewritten += 1
        if lo is not None:
            bound = relax.const(lo, dtype)
            x = relax.op.where(relax.op.less(x, bound), bound, x)
        if hi is not None:
            bound = relax.const(hi, dtype)
            x = relax.op.where(relax.op.greater(x, bound), bound, x)
        return x


def propagate_nan(mod: tvm.IRModule) -> tuple[tvm.IRModule, int]:
    """``mod`` with its relu and clip ops NaN-propagating, and how many were rewritten."""
    rewriter = _Rewriter(mod)
    func = rewriter.visit_expr(mod["main"])
    if not rewriter.rewritten:
        return mod, 0
    rewriter.builder_.update_func(mod.get_global_var("main"), func)
    return rewriter.builder_.get(), rewriter.rewritten

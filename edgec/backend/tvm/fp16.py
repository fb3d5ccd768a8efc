"""``--quantize fp16``: TVM's mixed-precision pass, with the ops it cannot take rewritten.

ToMixedPrecision casts every op's tensor arguments and computes in float16
(inputs and outputs stay float32); it fails on an op with a non-tensor
argument, which Clip is (its bounds are PrimValues: "Expected TensorType,
but got T.int64"), so clips become minimum/maximum with scalar constants first.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from .chains import _activation, _dtype, _Finder, _op


@relax.expr_functor.mutator
class _ClipAsMinMax(relax.PyExprMutator):
    def __init__(self, mod, finder: _Finder):
        super().__init__(mod)
        self.finder = finder

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if _op(call) != "relax.clip":
            return call
        found = _activation(self.finder, call)
        dtype = _dtype(call)
        if found is None or dtype is None:
            return call
        _kind, lo, hi = found
        x = relax.op.maximum(call.args[0], relax.const(np.array(lo, dtype)))
        return relax.op.minimum(x, relax.const(np.array(hi, dtype)))


def to_fp16(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` computing in float16 where TVM's pass can (``main``'s ops)."""
    rewriter = _ClipAsMinMax(mod, _Finder(mod["main"]))
    new_main = rewriter.visit_expr(mod["main"])
    rewriter.builder_.update_func(mod.get_global_var("main"), new_main)
    return relax.transform.ToMixedPrecision(out_dtype="float16")(rewriter.builder_.get())

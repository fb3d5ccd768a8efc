"""A float16 model's sums accumulate in float32, as onnxruntime's do.

TVM computes a float16 MatMul, convolution or Softmax of a float16 model
entirely in float16: every partial sum is rounded to 11 bits, and ONNX's
float16 attention node tests came out 1-3 ulp off the reference (onnxruntime,
like the reference, accumulates in float32). These ops now take float32
copies of their float16 arguments and round their result back to float16
once; elementwise ops, exact to one rounding already, stay in float16.
``--quantize fp16`` models are left alone: TVM's mixed-precision pass gives
them float32 accumulators itself.
"""

from __future__ import annotations

import tvm
from tvm import relax

from .relax_util import _dtype, _op

#: ops that sum many float16 products or exponentials
ACCUMULATING = {
    "relax.matmul", "relax.nn.conv1d", "relax.nn.conv2d", "relax.nn.conv3d",
    "relax.nn.conv1d_transpose", "relax.nn.conv2d_transpose", "relax.nn.softmax",
    "relax.nn.log_softmax", "relax.sum", "relax.mean", "relax.variance", "relax.prod",
    "relax.nn.layer_norm", "relax.nn.group_norm", "relax.nn.instance_norm",
    "relax.nn.rms_norm", "relax.nn.batch_norm", "relax.nn.avg_pool2d",
    "relax.nn.adaptive_avg_pool2d", "relax.cumsum", "relax.nn.attention",
}


@relax.expr_functor.mutator
class _Widen(relax.PyExprMutator):
    def __init__(self, mod):
        super().__init__(mod)
        self.widened = 0

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if _op(call) not in ACCUMULATING or _dtype(call) != "float16":
            return call
        out_dtype = getattr(call.attrs, "out_dtype", None)
        if out_dtype is not None and str(out_dtype) not in ("", "void"):
            return call  # an explicit accumulator type is what the model asked for
        args = [relax.op.astype(a, "float32") if _dtype(a) == "float16" else a
                for a in call.args]
        attrs = call.attrs
        self.widened += 1
        wide = self.builder_.normalize(relax.Call(call.op, args, attrs))
        return relax.op.astype(wide, "float16")


def accumulate_fp32(mod: tvm.IRModule) -> tuple[tvm.IRModule, int]:
    """``mod`` with its float16 accumulating ops computed in float32; how many."""
    widen = _Widen(mod)
    func = widen.visit_expr(mod["main"])
    if not widen.widened:
        return mod, 0
    widen.builder_.update_func(mod.get_global_var("main"), func)
    return widen.builder_.get(), widen.widened

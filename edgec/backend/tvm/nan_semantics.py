"""Relu and Clip that pass NaN through, and left shifts past the width, as ONNX says.

TVM lowers ``relu`` and ``clip`` to max / min, which LLVM emits as maxnum /
minnum: a NaN input comes out as the bound, so an all-NaN input gave finite,
confident outputs where onnxruntime propagates NaN. edgec's own kernels
clamp with compares and blends (kernels/epilogue.clamp); this pass rewrites
the relu and clip ops left to TVM (after dispatch.py took its chains) into
the same compare-and-select form, which costs the same.

The same goes for BitShift by a negative amount or the type's width or
more: LLVM leaves such a shift undefined (a 32-bit 1 << 32 came out as 1
or -16 in the node tests) where ONNX gives the sign extension alone (0, or
-1 for a signed right shift of a negative x); the shift amount is clamped
into range and the result selected. And Mod (fmod=0) by an infinite
divisor, where TVM's ``a - floor(a / b) * b`` gives NaN and Python's mod
gives ``a`` or ``b``.
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
        if op in ("relax.left_shift", "relax.right_shift"):
            return self._shift(call, op)
        if op == "relax.floor_mod":
            return self._floor_mod(call)
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


    def _shift(self, call, op):
        dtype = _dtype(call)
        if dtype is None or not dtype.startswith(("int", "uint")):
            return call
        x, shift = call.args
        bits = int(dtype.lstrip("uint"))
        sdtype = _dtype(shift)
        in_range = relax.op.logical_and(
            relax.op.greater_equal(shift, relax.const(0, sdtype)),
            relax.op.less(shift, relax.const(bits, sdtype)))
        self.rewritten += 1
        if op == "relax.right_shift" and dtype.startswith("int"):
            # out of range is the sign extension alone: x >> (bits - 1)
            fill = relax.op.full_like(shift, relax.const(bits - 1, sdtype))
            return relax.op.right_shift(x, relax.op.where(in_range, shift, fill))
        safe = relax.op.where(in_range, shift, relax.op.zeros_like(shift))
        shifted = (relax.op.left_shift if op == "relax.left_shift"
                   else relax.op.right_shift)(x, safe)
        return relax.op.where(in_range, shifted, relax.op.zeros_like(shifted))


    def _floor_mod(self, call):
        """Python's mod by an infinite divisor: ``a`` when a is 0 or has b's sign, else b
        (TVM's a - floor(a / b) * b gives NaN)."""
        dtype = _dtype(call)
        if dtype not in ("float32", "float16", "float64"):
            return call
        a, b = call.args
        zero = relax.const(0, dtype)
        finite = relax.op.isfinite(a)
        same = relax.op.logical_or(relax.op.equal(a, zero), relax.op.logical_not(
            relax.op.logical_xor(relax.op.less(a, zero), relax.op.less(b, zero))))
        special = relax.op.where(same, a, b)
        self.rewritten += 1
        return relax.op.where(relax.op.logical_and(relax.op.isinf(b), finite), special, call)


def propagate_nan(mod: tvm.IRModule) -> tuple[tvm.IRModule, int]:
    """``mod`` with its relu and clip ops NaN-propagating, and how many were rewritten."""
    rewriter = _Rewriter(mod)
    func = rewriter.visit_expr(mod["main"])
    if not rewriter.rewritten:
        return mod, 0
    rewriter.builder_.update_func(mod.get_global_var("main"), func)
    return rewriter.builder_.get(), rewriter.rewritten

"""Indices from data can never reach memory outside a tensor.

ONNX calls an out-of-range index of Gather, GatherElements, GatherND,
ScatterElements or ScatterND an error; TVM's kernels for them do not check:
``take``'s default mode reads wherever the index points (an out-of-range
token id segfaulted the process, and in a C app it would be its host's
memory), and the scatters write there. The runtime refuses graph inputs
outside their valid range before running (runtime/session.py, the C
bundle's runner); this pass makes the kernels themselves memory-safe for
indices the model computes: ``take`` clamps (its "clip" mode), and the
others get their indices clamped to the axis they index, after negative
ones are counted from the end as ONNX says. In-range indices are unchanged,
so correct models compute the same values.
"""

from __future__ import annotations

import tvm
from tvm import relax

from .relax_util import _const, _op, _shape

_GUARDED = ("relax.take", "relax.gather_elements", "relax.scatter_elements",
            "relax.gather_nd", "relax.scatter_nd")


def _clamped(indices: relax.Expr, extent: list[int] | int, dtype: str) -> relax.Expr:
    """``indices`` with negatives counted from the end, then clamped to [0, extent - 1]
    (``extent`` per last-dim slot for the ND ops)."""
    if isinstance(extent, list):
        upper = relax.const([e - 1 for e in extent], dtype)
        size = relax.const(list(extent), dtype)
    else:
        upper, size = relax.const(extent - 1, dtype), relax.const(extent, dtype)
    zero = relax.const(0, dtype)
    wrapped = relax.op.where(relax.op.less(indices, zero), relax.op.add(indices, size), indices)
    return relax.op.minimum(relax.op.maximum(wrapped, zero), upper)


@relax.expr_functor.mutator
class _Guard(relax.PyExprMutator):
    def __init__(self, mod):
        super().__init__(mod)
        self.guarded = 0

    def visit_call_(self, call):
        call = super().visit_call_(call)
        op = _op(call)
        if op not in _GUARDED:
            return call
        data, indices = call.args[0], call.args[1]
        if _const(indices) is not None:  # checked by TVM at compile time, or folded
            return call
        shape, ishape = _shape(data), _shape(indices)
        dtype = indices.ty.dtype if isinstance(indices.ty, relax.TensorType) else None
        if shape is None or ishape is None or dtype is None:
            return call
        dtype = str(dtype)
        a = call.attrs
        if op == "relax.take":
            if str(a.mode) != "fast":
                return call
            self.guarded += 1
            axis = None if a.axis is None else int(a.axis)
            return relax.op.take(data, indices, axis, mode="clip")
        if op in ("relax.gather_elements", "relax.scatter_elements"):
            extent: list[int] | int = shape[int(a.axis) % len(shape)]
        else:  # gather_nd / scatter_nd: the last index dim picks that many leading axes
            batch = int(a.batch_dims) if op == "relax.gather_nd" else 0
            extent = shape[batch:batch + ishape[-1]]
        guarded = _clamped(indices, extent, dtype)
        self.guarded += 1
        return relax.Call(call.op, [data, guarded, *call.args[2:]], call.attrs)


def guard_indices(mod: tvm.IRModule) -> tuple[tvm.IRModule, int]:
    """``mod`` with every gather / scatter of computed indices memory-safe, and how
    many were guarded."""
    guard = _Guard(mod)
    func = guard.visit_expr(mod["main"])
    if not guard.guarded:
        return mod, 0
    guard.builder_.update_func(mod.get_global_var("main"), func)
    return guard.builder_.get(), guard.guarded

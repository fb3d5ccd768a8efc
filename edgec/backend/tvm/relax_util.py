"""Small readers of an imported Relax function: a binding's op, shape, dtype,
a constant's value, the vars an expression reads."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax


def _shape(expr) -> list[int] | None:
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return None
    try:
        return [int(v) for v in ty.shape.values]
    except (TypeError, AttributeError):
        return None


def _dtype(expr) -> str | None:
    ty = expr.ty
    return str(ty.dtype) if isinstance(ty, relax.TensorType) else None


def _const(expr) -> np.ndarray | None:
    return expr.value.numpy() if isinstance(expr, tvm.ir.Constant) else None


def _vars_in(expr, out: list) -> None:
    if isinstance(expr, relax.Var):
        out.append(expr)
    elif isinstance(expr, relax.Call):
        for a in expr.args:
            _vars_in(a, out)
    elif isinstance(expr, relax.Tuple):
        for f in expr.fields:
            _vars_in(f, out)
    elif isinstance(expr, relax.TupleGetItem):
        _vars_in(expr.tuple_value, out)
    elif isinstance(expr, relax.SeqExpr):
        for block in expr.blocks:
            for b in block.bindings:
                _vars_in(b.value, out)
        _vars_in(expr.body, out)


def _op(call) -> str | None:
    if isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.Op):
        return call.op.name
    return None

"""Quantisation parameters read from an imported QDQ graph: the scale and zero
point of a per-tensor DequantizeLinear, the integer values behind a
dequantised constant (weights, int32 biases), and those constants' float
values as TVM's legalisation would compute them.

``finder`` is a chains._Finder (anything with ``const(expr)`` and ``value``).
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from .relax_util import _dtype, _op

QRANGE = {"uint8": (0, 255), "int8": (-128, 127)}


def scalar(finder, expr) -> float | None:
    v = finder.const(expr)
    if v is None or v.size != 1:
        return None
    return v.reshape(()).item()


def dequantized_const(finder, expr, axis_len: int | None = None):
    """(q values, scale [k] or [1], zero point, axis) of ``dequantize(const)`` or of a
    transpose of one (a Gemm's transB), else None."""
    if not isinstance(expr, relax.Var) or expr not in finder.value:
        return None
    dq = finder.value[expr]
    if _op(dq) == "relax.permute_dims":
        inner = dequantized_const(finder, dq.args[0])
        if inner is None:
            return None
        q, scale, zp, axis = inner
        axes = list(range(q.ndim))[::-1] if dq.attrs.axes is None else \
            [int(i) for i in dq.attrs.axes]
        return np.ascontiguousarray(np.transpose(q, axes)), scale, zp, axes.index(axis % q.ndim)
    if _op(dq) != "relax.dequantize":
        return None
    q = finder.const(dq.args[0]) if finder.const(dq.args[0]) is not None else \
        quantized_const(finder, dq.args[0])
    scale, zp = finder.const(dq.args[1]), finder.const(dq.args[2])
    if q is None or scale is None or zp is None:
        return None
    return q, scale.reshape(-1).astype(np.float64), zp.reshape(-1).astype(np.int64), \
        int(dq.attrs.axis)


def quantized_const(finder, expr) -> np.ndarray | None:
    """The value of ``quantize(float const)`` (weights onnxruntime left float and
    quantises in the graph: a weight shared by several convs), folded now with
    the op's rounding (half to even) and saturation."""
    if not isinstance(expr, relax.Var) or _op(finder.value.get(expr)) != "relax.quantize":
        return None
    q = finder.value[expr]
    w, scale, zp = (finder.const(a) for a in q.args[:3])
    dtype = _dtype(expr)
    if w is None or scale is None or zp is None or dtype not in QRANGE:
        return None
    shape = [1] * w.ndim
    if scale.size > 1:
        if w.ndim == 0:
            return None
        shape[int(q.attrs.axis) % w.ndim] = scale.size
    lo, hi = QRANGE[dtype]
    v = np.round(w.astype(np.float32) / scale.astype(np.float32).reshape(shape))
    return np.clip(v + zp.reshape(shape if zp.size > 1 else [1] * w.ndim), lo, hi).astype(dtype)


def dequantized_var(finder, expr):
    """(quantised var, scale, zero point) of a per-tensor ``dequantize(x_q)``."""
    if not isinstance(expr, relax.Var) or expr not in finder.value:
        return None
    dq = finder.value[expr]
    if _op(dq) != "relax.dequantize" or _dtype(dq.args[0]) not in QRANGE:
        return None
    scale, zp = scalar(finder, dq.args[1]), scalar(finder, dq.args[2])
    if scale is None or zp is None or finder.const(dq.args[0]) is not None:
        return None
    return dq.args[0], float(scale), int(zp)


def integer_bias(finder, expr, o: int, x_scale: float, w_scale: np.ndarray):
    """int32 [o] for a conv's added bias: dequantize(int32 const) at scale
    x_scale * w_scale (what quantize_static writes), or a float const rounded
    to that scale (as onnxruntime quantises float biases)."""
    if isinstance(expr, relax.Var) and expr in finder.value and \
            _op(finder.value[expr]) == "relax.reshape":
        expr = finder.value[expr].args[0]
    step = x_scale * w_scale
    found = dequantized_const(finder, expr)
    if found is not None:
        q, scale, zp, _axis = found
        if q.dtype != np.int32 or q.size != o or np.any(zp != 0):
            return None
        if not np.allclose(np.broadcast_to(scale, (o,)), np.broadcast_to(step, (o,)),
                           rtol=1e-5):
            # another scale: requantise it to the accumulator's (exact when equal)
            return np.round(q.astype(np.float64) * scale / step).astype(np.int32)
        return q.reshape(o).astype(np.int32)
    value = finder.const(expr)
    if value is None or value.size != o or value.dtype.kind != "f":
        return None
    return np.round(value.reshape(o).astype(np.float64) / np.broadcast_to(step, (o,))) \
        .astype(np.int32)


def dequantize_value(finder, call: relax.Call) -> np.ndarray | None:
    """``dequantize(const)`` computed as TVM's legalisation does: (q - zp) in
    int32, times scale in float32 (exact integers, one rounding)."""
    if call.attrs.out_dtype != "float32":
        return None
    q = finder.const(call.args[0])
    if q is None:
        q = quantized_const(finder, call.args[0])
    scale, zp = finder.const(call.args[1]), finder.const(call.args[2])
    if q is None or scale is None or zp is None or q.dtype.kind not in "iu":
        return None
    shape = [1] * q.ndim
    if scale.size > 1 or zp.size > 1:
        if q.ndim == 0:
            return None
        shape[int(call.attrs.axis) % q.ndim] = max(scale.size, zp.size)
    sub = q.astype(np.int32) - zp.astype(np.int32).reshape(shape if zp.size > 1 else [])
    return sub.astype(np.float32) * scale.astype(np.float32).reshape(
        shape if scale.size > 1 else [])

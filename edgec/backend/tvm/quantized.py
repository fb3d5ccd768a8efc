"""What edgec's kernels leave of an int8 model, computed in integers by TVM's ops.

dispatch.py runs an int8 model's chains on edgec's integer templates
(qchains.py). What no template takes and float kernels must not compute is
matched here:

    dequantize(x_q) -> conv2d | matmul (., dequantize(const w_q))
        [-> + dequantize(const bias_q) | + const bias] [-> relu | clip]
        -> quantize | cast to int32

(a ConvInteger, written by lower-qlinear as dequantize(scale 1) -> conv ->
cast to int32, and MatMulInteger whose int32 sums must be exact), and
computed as onnxruntime's QLinearConv does: (x_q - x_zp) * (w_q - w_zp)
summed in int32, + bias_q, times x_scale * w_scale[o] / y_scale in float32,
rounded half to even, + y_zp, clamped, as integer Relax ops TVM lowers
itself (or exact integer-valued float32 where the sums stay below 2^24).
fold_weight_dequantize then turns the dequantised constants float ops still
read (ConvTranspose weights) into float constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from .chains import _activation, _dtype, _Finder, _op, _shape
from .qparams import (
    dequantize_value,
    dequantized_const,
    dequantized_var,
    integer_bias,
    scalar,
)

_QRANGE = {"uint8": (0, 255), "int8": (-128, 127)}


@dataclass
class QChain:
    """One matched chain, everything the integer computation needs."""

    kind: str  # "conv2d" or "matmul"
    call: relax.Call  # the float conv2d / matmul
    x: relax.Expr  # the quantised input (uint8 / int8)
    x_scale: float
    x_zp: int
    w: np.ndarray  # quantised weights (int8 / uint8) as the op takes them
    w_zp: np.ndarray  # per output channel (zeros for symmetric weights)
    mult: np.ndarray  # float32 [O]: x_scale * w_scale[o] / y_scale (or 1 for int32 output)
    bias: np.ndarray | None  # int32 [O]
    out_dtype: str  # "uint8", "int8" or "int32"
    y_zp: int
    lo: int
    hi: int
    members: list  # var names of the bindings replaced


def _clamp(finder: _Finder, act, y_scale: float, y_zp: int, lo: int, hi: int):
    """The quantised bounds after a Relu or a Clip(a, b) folded into the output."""
    op = _op(act)
    if op == "relax.nn.relu":
        return max(lo, y_zp), hi
    if op == "relax.clip":
        found = _activation(finder, act)
        if found is None:
            return None
        _kind, a, b = found
        return (max(lo, y_zp + int(np.round(a / y_scale))),
                min(hi, y_zp + int(np.round(b / y_scale))))
    return None


def match(finder: _Finder, binding: relax.VarBinding) -> QChain | None:
    """The integer chain ending at ``binding`` (a quantize, or a cast of a conv
    to int32), or None."""
    tail = binding.value
    members = [binding.var.name]
    if _op(tail) == "relax.quantize":
        if _dtype(binding.var) not in _QRANGE:
            return None
        y_scale, y_zp = scalar(finder, tail.args[1]), scalar(finder, tail.args[2])
        if y_scale is None or y_zp is None or y_scale <= 0:
            return None
        out_dtype = _dtype(binding.var)
        lo, hi = _QRANGE[out_dtype]
        y_zp = int(y_zp)
        t = tail.args[0]
    elif _op(tail) == "relax.astype" and _dtype(binding.var) == "int32":
        y_scale, y_zp, out_dtype = None, 0, "int32"
        lo, hi = -(2**31), 2**31 - 1
        t = tail.args[0]
    else:
        return None

    def producer(var):
        if not isinstance(var, relax.Var) or var not in finder.value or \
                finder.sole_user(var) is None:
            return None
        return finder.value[var]

    value = producer(t)
    if value is None:
        return None
    if y_scale is not None and _op(value) in ("relax.nn.relu", "relax.clip"):
        bounds = _clamp(finder, value, y_scale, y_zp, lo, hi)
        if bounds is None:
            return None
        lo, hi = bounds
        members.append(t.name)
        t = value.args[0]
        value = producer(t)
        if value is None:
            return None
    bias_expr = None
    if _op(value) == "relax.add" and y_scale is not None:
        a, b = value.args
        av = finder.value.get(a) if isinstance(a, relax.Var) else None
        if _op(av) in ("relax.nn.conv2d", "relax.matmul"):
            bias_expr, members = b, [*members, t.name]
            t = a
        else:
            bv = finder.value.get(b) if isinstance(b, relax.Var) else None
            if _op(bv) not in ("relax.nn.conv2d", "relax.matmul"):
                return None
            bias_expr, members = a, [*members, t.name]
            t = b
        value = producer(t)
        if value is None:
            return None
    op = _op(value)
    if op not in ("relax.nn.conv2d", "relax.matmul"):
        return None
    members.append(t.name)
    xd = dequantized_var(finder, value.args[0])
    wd = dequantized_const(finder, value.args[1])
    if xd is None or wd is None:
        return None
    x, x_scale, x_zp = xd
    w, w_scale, w_zp, axis = wd
    if w.dtype not in (np.int8, np.uint8) or _dtype(value) != "float32":
        return None
    if op == "relax.nn.conv2d":
        a = value.attrs
        if str(a.data_layout) != "NCHW" or str(a.kernel_layout) != "OIHW" or w.ndim != 4:
            return None
        o, chan_axis = w.shape[0], 0
    else:
        xs = _shape(value.args[0])
        if w.ndim != 2 or xs is None or len(xs) < 2:
            return None
        o, chan_axis = w.shape[1], 1
    if w_scale.size not in (1, o) or w_zp.size not in (1, o) or \
            (w_scale.size == o and o > 1 and axis != chan_axis):
        return None
    w_scale = np.broadcast_to(w_scale, (o,)).astype(np.float64)
    w_zp = np.broadcast_to(w_zp, (o,)).astype(np.int64)
    bias = None
    if bias_expr is not None:
        bias = integer_bias(finder, bias_expr, o, x_scale, w_scale)
        if bias is None:
            return None
        if _shape(bias_expr) is not None and op == "relax.nn.conv2d" and \
                _shape(bias_expr) not in ([o], [1, o, 1, 1]):
            return None
    if y_scale is None:  # an int32 result: only exact when the scales are 1
        if x_scale != 1.0 or np.any(w_scale != 1.0):
            return None
        mult = np.ones(o, np.float32)
    else:  # in float32, in onnxruntime's order: the same multiplier to the bit
        mult = (np.float32(x_scale) * w_scale.astype(np.float32)) / np.float32(y_scale)
    return QChain(kind="conv2d" if op == "relax.nn.conv2d" else "matmul", call=value, x=x,
                  x_scale=x_scale, x_zp=x_zp, w=w, w_zp=w_zp, mult=mult, bias=bias,
                  out_dtype=out_dtype, y_zp=y_zp, lo=lo, hi=hi, members=members[::-1])


#: float32 holds every integer up to 2^24 exactly
_F32_EXACT = 1 << 24


def exact_in_float32(chain: QChain, w: np.ndarray) -> bool:
    """Whether the chain's integer sums can run as float32 arithmetic on
    integer values, bit for bit: every partial sum (at most K * 255 * max|w|,
    plus the bias) below 2^24, in any order. Only for depthwise convs and
    MatMuls, whose float kernels edgec has fast (dispatch.py picks them up)
    and which never use Winograd (its transforms are not exact); measured on
    tiny-cnn's depthwise conv: the int16 Relax conv took most of the run."""
    if chain.kind == "conv2d":
        a = chain.call.attrs
        if int(a.groups) == 1 or int(a.groups) != w.shape[0] or w.shape[1] != 1:
            return False
        k = int(np.prod(w.shape[1:]))
    else:
        k = w.shape[0]
    bias = 0 if chain.bias is None else int(np.abs(chain.bias.astype(np.int64)).max())
    return k * 255 * int(np.abs(w.astype(np.int64)).max(initial=0)) + bias < _F32_EXACT


def integer_expr(bb: relax.BlockBuilder, chain: QChain, x: relax.Expr,
                 name: str) -> relax.Expr:
    """The chain as integer Relax ops: x and w widened to int16 with their zero
    points subtracted (so padding is a real zero), an int32 conv or matmul (TVM's
    own lowering), the bias, the requantisation; or the same integers in float32
    where that is exact (exact_in_float32: edgec's float kernels then run it).
    Each step is bound as ``name`` (the quantize's, for provenance)."""
    o = chain.w.shape[0] if chain.kind == "conv2d" else chain.w.shape[1]
    bshape = [1, o, 1, 1] if chain.kind == "conv2d" else [o]
    zp = chain.w_zp.reshape([o, 1, 1, 1] if chain.kind == "conv2d" else [1, o])
    w16 = (chain.w.astype(np.int16) - zp.astype(np.int16)).astype(np.int16)
    dtype = "float32" if exact_in_float32(chain, w16) else "int16"
    x16 = relax.op.astype(x, dtype)
    if chain.x_zp:
        x16 = relax.op.subtract(x16, relax.const(chain.x_zp, dtype))
    w16 = w16.astype(dtype)
    x16 = bb.emit(x16, name_hint=name)
    if chain.kind == "conv2d":
        a = chain.call.attrs
        acc = relax.op.nn.conv2d(x16, relax.const(w16), strides=a.strides, padding=a.padding,
                                 dilation=a.dilation, groups=int(a.groups),
                                 out_dtype="int32" if dtype == "int16" else "float32")
    else:
        acc = relax.op.matmul(x16, relax.const(w16),
                              out_dtype="int32" if dtype == "int16" else "float32")
    acc = bb.emit(acc, name_hint=name)
    if chain.bias is not None:
        acc = bb.emit(relax.op.add(acc, relax.const(chain.bias.reshape(bshape).astype(
            "int32" if dtype == "int16" else "float32"))), name_hint=name)
    if chain.out_dtype == "int32":
        return acc if dtype == "int16" else relax.op.astype(acc, "int32")
    v = relax.op.multiply(relax.op.astype(acc, "float32") if dtype == "int16" else acc,
                          relax.const(chain.mult.reshape(bshape)))
    v = relax.op.add(relax.op.round(v), relax.const(float(chain.y_zp), "float32"))
    v = relax.op.clip(v, float(chain.lo), float(chain.hi))
    return relax.op.astype(v, chain.out_dtype)


@relax.expr_functor.mutator
class _Rewriter(relax.PyExprMutator):
    def __init__(self, mod, finder: _Finder, chains: dict, make_kernel):
        super().__init__(mod)
        self.finder, self.chains = finder, chains
        self.make_kernel = make_kernel  # (builder, chain, x) -> expr or None (no template)

    def visit_var_binding_(self, binding):
        chain = self.chains.get(binding.var)
        if chain is None:
            return super().visit_var_binding_(binding)
        x = self.visit_expr(chain.x)
        expr = self.make_kernel(self.builder_, chain, x) if self.make_kernel else None
        if expr is None:
            expr = integer_expr(self.builder_, chain, x, binding.var.name)
        emit = self.builder_.emit if isinstance(binding.var, relax.DataflowVar) \
            else self.builder_.emit_output
        self.set_var_remap(binding.var, emit(expr, name_hint=binding.var.name))


def lower_quantized(mod: tvm.IRModule, make_kernel=None) -> tuple[tvm.IRModule, int]:
    """``mod`` with every matched chain computed in integers (on ``make_kernel``'s
    template where it gives one: an IntegerTemplates), and how many were matched."""
    func = mod["main"]
    finder = _Finder(func)
    chains = {}
    for block in func.body.blocks:
        for b in block.bindings:
            found = match(finder, b)
            if found is not None:
                chains[b.var] = found
    if not chains:
        return mod, 0
    rewriter = _Rewriter(mod, finder, chains, make_kernel)
    new_main = rewriter.visit_expr(func)
    rewriter.builder_.update_func(mod.get_global_var("main"), new_main)
    out = relax.transform.DeadCodeElimination(["main"])(rewriter.builder_.get())
    return out, len(chains)


@relax.expr_functor.mutator
class _WeightFolder(relax.PyExprMutator):
    def __init__(self, mod, folded: dict):
        super().__init__(mod)
        self.folded = folded

    def visit_var_binding_(self, binding):
        value = self.folded.get(binding.var)
        if value is None:
            return super().visit_var_binding_(binding)
        emit = self.builder_.emit if isinstance(binding.var, relax.DataflowVar) \
            else self.builder_.emit_output
        self.set_var_remap(binding.var, emit(relax.const(value), name_hint=binding.var.name))


def fold_weight_dequantize(mod: tvm.IRModule) -> tuple[tvm.IRModule, int]:
    """``mod`` with every ``dequantize`` of a constant left after lower_quantized
    (weights of ops with no integer kernel: ConvTranspose, a Gemm feeding no
    quantize) replaced by its float32 value, and how many. TVM would compute them
    at run time, on every call, fused into the op that reads them, which keeps
    that op off edgec's float kernels (they need constant weights): the det
    head's two ConvTransposes ran 142 of 165 ms that way."""
    func = mod["main"]
    finder = _Finder(func)
    folded = {}
    for block in func.body.blocks:
        for b in block.bindings:
            if _op(b.value) == "relax.dequantize":
                value = dequantize_value(finder, b.value)
                if value is not None:
                    folded[b.var] = value
    if not folded:
        return mod, 0
    folder = _WeightFolder(mod, folded)
    new_main = folder.visit_expr(func)
    folder.builder_.update_func(mod.get_global_var("main"), new_main)
    out = relax.transform.DeadCodeElimination(["main"])(folder.builder_.get())
    return out, len(folded)

"""Chains of an int8 model: the integer side of a chain whose input is dequantised.

edgec quantises only the inputs of convs and matmuls and leaves their
outputs float (quantize/static.py), so an int8 model's layers read

    dequantize(x_q) -> conv2d | matmul (dequantize(const w_q)) -> [the float
    epilogue chains.py finds: bias, BN, activation, affine, residual add of
    another dequantize(r_q) or a float tensor, second activation] -> quantize

and models that arrive quantised (quantize_static's QDQ graphs) read the same
with a quantize right after the op. chains.find_chain finds the float chain
(weights and biases dequantised); this module adds what an integer kernel
needs: the quantised input and its scale, the int8 weights, a quantised
residual, the quantize the chain ends with (made a member: the kernel
writes uint8 / int8), and the epilogue rewritten to start from the integer
sum: ``mult`` = x_scale * w_scale[o] (* a folded BatchNorm's scale) turns it
back into real units. A chain that is only bias, ReLU / Clip and the
quantize is computed as onnxruntime's QLinearConv does, bit for bit: the
int32 bias in the sum, one multiplier x_scale * w_scale / y_scale, the
activation as the clamp.

Depthwise convs have no dot product to speed up, but read and write one
byte per element instead of four: they run on the float depthwise template
reading x - zero point as float32 and integer weights, which is exact
(every sum of at most K * 255 * 128 stays below 2^24), then the same
epilogue.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from tvm import relax

from .chains import Chain, _Finder, conv_shape
from .kernels.conv2d_int8 import choose_int8_tile
from .kernels.depthwise import DepthwiseTile
from .kernels.epilogue import QRANGE, QParams, QuantOut
from .kernels.matmul import MatmulShape
from .kernels.matmul_int8 import choose_matmul_int8_tile
from .qparams import dequantized_const, dequantized_var, integer_bias, scalar
from .relax_util import _dtype, _op, _shape


@dataclass
class ChainQuant:
    """What an integer kernel reads instead of the float chain's inputs."""

    kind: str  # "conv2d" (int8 template), "depthwise" or "matmul" (int8 template)
    x: relax.Var  # the quantised input
    x_q: QParams
    w_int: np.ndarray  # integer weights (OIHW, or [K, N]), zero points subtracted
    int_bias: np.ndarray | None  # int32 [O] added to the sum (the exact requantisation)
    residual: relax.Var | None = None  # the quantised residual, when it is one

    @property
    def x_dtype(self) -> str:
        return self.x_q.dtype


def _out_quantize(finder: _Finder, var, claimed: set):
    """(binding, QuantOut) of the per-tensor quantize that is ``var``'s only user."""
    user = finder.sole_user(var)
    if user is None or user.var in claimed or _op(user.value) != "relax.quantize":
        return None
    dtype = _dtype(user.var)
    scale, zp = scalar(finder, user.value.args[1]), scalar(finder, user.value.args[2])
    if dtype not in QRANGE or scale is None or zp is None or scale <= 0:
        return None
    lo, hi = QRANGE[dtype]
    return user, QuantOut(float(np.float32(scale)), int(zp), dtype, lo, hi)


def _clamp(act, out: QuantOut) -> QuantOut | None:
    """``out`` with a ReLU or Clip(a, b) before the quantize folded into its bounds
    (quantize(relu(v)) == clamp(round(v / s) + zp, zp, qmax) exactly)."""
    if act is None:
        return out
    if act[0] == "relu":
        return replace(out, lo=max(out.lo, out.zero_point))
    if act[0] == "clip":
        a, b = act[1], act[2]
        return replace(out, lo=max(out.lo, out.zero_point + int(np.round(a / out.scale))),
                       hi=min(out.hi, out.zero_point + int(np.round(b / out.scale))))
    return None


def _weights(finder: _Finder, chain: Chain):
    """(integer weights as the op takes them, w_scale [O], int8 with zero point 0?)."""
    call = chain.head.value
    found = dequantized_const(finder, call.args[1])
    if found is None:
        return None
    q, scale, zp, axis = found
    if q.dtype.kind not in "iu":
        return None
    op = _op(call)
    if op == "relax.matmul":
        if q.ndim != 2:
            return None
        o, chan_axis = q.shape[1], 1
    elif op == "relax.nn.conv2d_transpose":  # [C, O, k, k]: output channels on axis 1
        if q.ndim != 4:
            return None
        o, chan_axis = q.shape[1], 1
    else:
        if op == "relax.nn.conv1d":
            q = q[:, :, None, :]
        if q.ndim != 4:
            return None
        o, chan_axis = q.shape[0], 0
    if scale.size not in (1, o) or zp.size not in (1, o) or \
            (o > 1 and max(scale.size, zp.size) == o and axis % q.ndim != chan_axis):
        return None
    shape = [1] * q.ndim
    shape[chan_axis] = o
    zp_b = np.broadcast_to(zp.reshape(shape if zp.size > 1 else [1] * q.ndim), q.shape)
    w_int = q.astype(np.int32) - zp_b.astype(np.int32)
    symmetric_int8 = q.dtype == np.int8 and not np.any(zp)
    w_scale = np.broadcast_to(scale, (o,)).astype(np.float64)
    if op == "relax.nn.conv2d_transpose":
        # as chains.find_chain lays the float weights out: the 1x1 conv whose channel
        # (o, i, j) is output pixel (i, j) of channel o
        c, _, kh, kw = w_int.shape
        w_int = np.ascontiguousarray(w_int.transpose(1, 2, 3, 0)).reshape(o * kh * kw, c, 1, 1)
        w_scale = np.repeat(w_scale, kh * kw)
    return w_int, w_scale, symmetric_int8


def quantise_chain(finder: _Finder, chain: Chain, claimed: set, isa: str | None,
                   half_width: bool = False) -> Chain:
    """``chain`` with its integer side (``quant``, the quantized epilogue, the
    output quantize as its tail) when an integer kernel can compute it, else
    ``chain`` unchanged (the float kernel then reads the dequantised input).
    ``half_width``: half-width vectors cost the target no throughput."""
    call = chain.head.value
    op = _op(call)
    if op not in ("relax.nn.conv2d", "relax.nn.conv1d", "relax.matmul",
                  "relax.nn.conv2d_transpose") or chain.epilogue.shuffle:
        return chain
    xd = dequantized_var(finder, call.args[0])
    w = _weights(finder, chain)
    if xd is None or w is None:
        return chain
    x, xs, xzp = xd
    w_int, ws, symmetric_int8 = w
    x_q = QParams(xs, xzp, _dtype(x))
    channel_scale = chain.channel_scale
    if op == "relax.nn.conv2d_transpose" and channel_scale is not None:
        channel_scale = np.repeat(channel_scale, w_int.shape[0] // channel_scale.size)
    if op == "relax.matmul":
        if isa is None or not symmetric_int8:
            return chain
        xshape = _shape(call.args[0])
        shape = MatmulShape(int(np.prod(xshape[:-1])), xshape[-1], w_int.shape[1])
        kind, tile = "matmul", choose_matmul_int8_tile(shape, isa)
    elif isinstance(chain.tile, DepthwiseTile):
        kind, tile = "depthwise", chain.tile
    else:
        tile = choose_int8_tile(conv_shape(call), isa, half_width=half_width) \
            if isa is not None and symmetric_int8 else None
        if tile is None:
            return chain
        kind = "conv2d"
    o = w_int.shape[1] if kind == "matmul" else w_int.shape[0]
    members = list(chain.members)
    epi = replace(chain.epilogue, ops=[*chain.epilogue.ops])
    out = _out_quantize(finder, chain.tail.var, claimed)
    if out is not None:
        members.append(out[0])
        epi.ops.append("q")
    out_q = out[1] if out is not None else None

    # exact: bias, then ReLU / Clip folded into the clamp, then the quantize
    int_bias = None
    simple = out_q is not None and chain.residual is None and epi.post is None and \
        channel_scale is None and (epi.act is None or epi.act[0] in ("relu", "clip")) \
        and len(chain.bias_exprs) <= 1 and None not in chain.bias_exprs
    if simple:
        int_bias = integer_bias(finder, chain.bias_exprs[0], o, xs, ws) \
            if chain.bias_exprs else np.zeros(o, np.int32)
        clamped = _clamp(epi.act, out_q)
        simple = int_bias is not None and clamped is not None
    if simple:
        # in float32, in onnxruntime's order: the same multiplier to the bit
        mult = (np.float32(xs) * ws.astype(np.float32)) / np.float32(out_q.scale)
        epi = replace(epi, bias=None, act=None, mult=mult.astype(np.float32),
                      out_q=replace(clamped, scale=None))
    else:
        int_bias = None
        mult = np.float32(xs) * ws.astype(np.float32)
        if channel_scale is not None:
            mult = mult * channel_scale.astype(np.float32)
        epi = replace(epi, mult=mult.astype(np.float32), out_q=out_q)
    residual = None
    if chain.residual is not None:
        rd = dequantized_var(finder, chain.residual)
        if rd is not None:
            residual = rd[0]
            epi.residual_q = QParams(rd[1], rd[2], _dtype(rd[0]))
    quant = ChainQuant(kind, x, x_q, w_int, int_bias, residual)
    return replace(chain, members=members, epilogue=epi, tile=tile, quant=quant)


def integer_result(finder: _Finder, chain: Chain) -> bool:
    """Whether a chain left to float kernels would produce an int32 result (a
    ConvInteger / MatMulInteger: dequantize at scale 1 -> op -> cast to int32),
    which float sums need not get exactly; quantized.lower_quantized keeps it
    in integers."""
    user = finder.sole_user(chain.tail.var)
    return dequantized_var(finder, chain.head.value.args[0]) is not None and \
        user is not None and _op(user.value) == "relax.astype" and _dtype(user.var) == "int32"

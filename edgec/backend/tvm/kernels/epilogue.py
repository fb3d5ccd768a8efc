"""Elementwise work done in a kernel's write-back instead of another pass over memory.

Applied in this order: + bias[channel], first activation, * scale[channel]
+ shift[channel] (an affine after the activation, PP-LCNet's), + residual
tensor, second activation. That covers Conv+BN(+ReLU), ResNet's
Conv+BN+Add+ReLU, the MobileNet family's Clip (ReLU6) and HardSwish, YOLO's
SiLU, a detection head's Sigmoid, and a transformer MLP's GELU.

Quantised chains (int8 models) add three steps around that: the
accumulator first gets its integer bias and is multiplied by ``mult``
(x_scale * w_scale[o]: the integer sum back to real units), a quantised
residual is dequantised as it is read, and the result is quantised as it is
written (QuantizeLinear: round half to even, + zero point, saturate), so
the activations between kernels are uint8 / int8 and everything between a
conv's sum and its quantised output stays in registers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tvm import te, tirx


@dataclass(frozen=True)
class QParams:
    """Per-tensor quantisation of a tensor: real = (q - zero_point) * scale."""

    scale: float
    zero_point: int
    dtype: str  # "uint8" or "int8"


#: the integer range of each quantised dtype
QRANGE = {"uint8": (0, 255), "int8": (-128, 127)}


@dataclass(frozen=True)
class QuantOut:
    """How a quantised output is written: q = clamp(nearbyint(v / scale) + zero_point,
    lo, hi) (QuantizeLinear's arithmetic; a ReLU or Clip folded into lo / hi).
    ``scale`` None: v is already in output steps (``mult`` divided by it, the
    one-multiplier requantisation onnxruntime's QLinearConv does)."""

    scale: float | None
    zero_point: int
    dtype: str
    lo: int
    hi: int


@dataclass
class Epilogue:
    bias: np.ndarray | None = None  # [channels] float32
    act: tuple | None = None  # ("relu",), ("clip", lo, hi), ("hardswish",), ("sigmoid",),
    # ("silu",), ("gelu",) or ("gelu_tanh",)
    post: np.ndarray | None = None  # [channels, 2]: scale, shift after the activation
    residual: bool = False  # a tensor of the output's shape is added
    shuffle: bool = False  # grouped conv: channels written group-interleaved
    act2: tuple | None = None  # after the residual add
    ops: list[str] = field(default_factory=list)  # what was fused, for names and reports
    # quantised chains: [channels] float32 added to the accumulator (an integer
    # bias, exact as a float32) and then the factor it is multiplied by
    pre_bias: np.ndarray | None = None
    mult: np.ndarray | None = None
    residual_q: QParams | None = None  # the residual is read quantised
    out_q: QuantOut | None = None  # the output is written quantised

    def describe(self) -> str:
        return "_".join(self.ops)

    def quant_key(self) -> tuple:
        """What of the quantisation is compiled into a kernel (kernels that differ
        in it are different kernels; the per-channel arrays are inputs)."""
        return (self.pre_bias is not None, self.mult is not None, self.residual_q, self.out_q)


def _f(v: float):
    return tirx.const(v, "float32")


def _poly(x, coefs):
    """coefs[0] * x^(n-1) + ... + coefs[-1], by Horner's rule."""
    acc = _f(coefs[0])
    for c in coefs[1:]:
        acc = acc * x + _f(c)
    return acc


def fast_exp(x):
    """exp(x) in float32 arithmetic LLVM vectorises (Cephes' expf: 2^n times a
    degree-6 polynomial on [-ln2/2, ln2/2], about 1 ulp). TVM lowers exp to
    libm's expf, one call per element: a Sigmoid epilogue cost 2.9 ms per
    million outputs on Zen 4, 34x a ReLU."""
    x = tirx.max(tirx.min(x, _f(88.0)), _f(-87.3))  # 2^n stays a normal float
    n = tirx.floor(x * _f(1.44269504088896341) + _f(0.5))
    r = x - n * _f(0.693359375) + n * _f(2.12194440e-4)  # x - n ln2, ln2 in two parts
    y = _poly(r, (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                  1.6666665459e-1, 5.0000001201e-1)) * r * r + r + _f(1.0)
    scale = tirx.reinterpret("float32", (tirx.Cast("int32", n) + 127) << 23)
    return y * scale


def fast_erf(x):
    """erf(x) as a rational function (the approximation Eigen and TVM's
    fast_erf use: odd degree-13 over even degree-8, x clamped to [-4, 4],
    a few ulp); libm's erff per element cost 17.6 ms per million."""
    x = tirx.max(tirx.min(x, _f(4.0)), _f(-4.0))
    x2 = x * x
    p = x * _poly(x2, (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                       -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                       -1.60960333262415e-02))
    q = _poly(x2, (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                   -7.37332916720468e-03, -1.42647390514189e-02))
    return p / q


def _sigmoid(x):
    return _f(1.0) / (_f(1.0) + fast_exp(_f(0.0) - x))


def clamp(value, lo: float | None, hi: float | None):
    """``value`` clamped to [lo, hi] (None: unbounded) with NaN passed through, as
    onnxruntime's Relu and Clip do (min / max, LLVM's minnum / maxnum, return the
    other operand for a NaN: a NaN input came out as a finite 0). A compare and a
    blend per bound, as cheap as min / max."""
    if lo is not None:
        bound = tirx.const(lo, "float32")
        value = tirx.Select(value < bound, bound, value)
    if hi is not None:
        bound = tirx.const(hi, "float32")
        value = tirx.Select(value > bound, bound, value)
    return value


def activate(value, act: tuple | None):
    if act is None:
        return value
    f32 = "float32"  # the kernels are float32 only so far
    if act[0] == "relu":
        return clamp(value, 0.0, None)
    if act[0] == "clip":
        return clamp(value, act[1], act[2])
    if act[0] == "hardswish":  # x * clip(x / 6 + 1/2, 0, 1)
        gate = clamp(value * tirx.const(1.0 / 6.0, f32) + tirx.const(0.5, f32), 0.0, 1.0)
        return value * gate
    if act[0] == "sigmoid":
        return _sigmoid(value)
    if act[0] == "silu":  # x * sigmoid(x) (Swish)
        return value * _sigmoid(value)
    if act[0] == "gelu":  # x * (1 + erf(x / sqrt 2)) / 2
        half = _f(0.5)
        return value * (half + half * fast_erf(value * _f(0.5 ** 0.5)))
    if act[0] == "gelu_tanh":  # x * (1 + tanh(u)) / 2 = x * sigmoid(2u)
        u = _f((2.0 / np.pi) ** 0.5) * (value + _f(0.044715) * value * value * value)
        return value * _sigmoid(u + u)
    raise ValueError(f"unknown activation {act[0]}")


def dequantize(q, params: QParams | None, *, integer: bool = False):
    """A quantised value as float32: (q - zero_point) * scale, or only
    q - zero_point with ``integer`` (exact: the scale is applied later)."""
    v = tirx.Cast("float32", q)
    if params is None:
        return v
    if params.zero_point:
        v = v - _f(float(params.zero_point))
    return v if integer else v * _f(params.scale)


def quantize(value, q: QuantOut):
    """float32 -> q.dtype as QuantizeLinear: nearbyint(v / scale) + zero point,
    saturated (clamped before the zero point is added: one min / max in float)."""
    f32 = "float32"
    if q.scale is not None:
        value = value / _f(q.scale)  # a division, as onnxruntime's QuantizeLinear
    # llvm.nearbyint directly: TVM's VectorizeLoop scalarises tirx.nearbyint
    r = tirx.call_llvm_pure_intrin(f32, "llvm.nearbyint", value)
    r = tirx.min(tirx.max(r, _f(float(q.lo - q.zero_point))), _f(float(q.hi - q.zero_point)))
    return tirx.Cast(q.dtype, tirx.Cast("int32", r) + q.zero_point)


class EpilogueTensors:
    """The kernel inputs an epilogue needs (pre-bias [C] and mult [C] of a
    quantised chain, bias [C], post-activation affine [C, 2], residual of the
    output's shape, in that order) and the write-back value computed from
    them; one place for every kernel template."""

    def __init__(self, epi: Epilogue, channels: int, out_shape: tuple[int, ...]) -> None:
        f32 = "float32"
        self.epi = epi

        def per_channel(array, name, *extra):
            return None if array is None else te.placeholder((channels, *extra), f32, name=name)

        self.pre_bias = per_channel(epi.pre_bias, "pre_bias")
        self.mult = per_channel(epi.mult, "mult")
        self.bias = per_channel(epi.bias, "bias")
        self.post = per_channel(epi.post, "post", 2)
        res_dtype = epi.residual_q.dtype if epi.residual_q is not None else f32
        self.residual = te.placeholder(out_shape, res_dtype, name="residual") \
            if epi.residual else None

    @property
    def inputs(self) -> list:
        return [t for t in (self.pre_bias, self.mult, self.bias, self.post, self.residual)
                if t is not None]

    @property
    def out_dtype(self) -> str:
        return self.epi.out_q.dtype if self.epi.out_q is not None else "float32"

    @property
    def quantize_per_channel(self) -> bool:
        """Whether apply_channel already quantises (nothing needs the output index)."""
        return self.epi.out_q is not None and self.residual is None

    def apply(self, value, channel, out_index):
        """``value`` (the accumulator) through the epilogue, for output ``out_index``
        of channel ``channel``."""
        return self.apply_tail(self.apply_channel(value, channel), out_index)

    def apply_channel(self, value, channel):
        """The per-channel part (a quantised chain's integer bias and mult, bias,
        activation, affine; the quantisation too when there is no residual): it
        needs no output index, so a kernel may apply it to padded tile positions."""
        if self.pre_bias is not None:
            value = value + self.pre_bias[channel]
        if self.mult is not None:
            value = value * self.mult[channel]
        if self.bias is not None:
            value = value + self.bias[channel]
        value = activate(value, self.epi.act)
        if self.post is not None:
            value = value * self.post[channel, 0] + self.post[channel, 1]
        if self.quantize_per_channel:
            return quantize(value, self.epi.out_q)
        return value

    def apply_tail(self, value, out_index):
        """The residual add and the second activation (and then the quantisation),
        at a real output position."""
        if self.residual is None:
            return value
        value = value + dequantize(self.residual[tuple(out_index)], self.epi.residual_q)
        value = activate(value, self.epi.act2)
        return value if self.epi.out_q is None else quantize(value, self.epi.out_q)

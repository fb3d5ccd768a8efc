"""tanh accurate to float32's precision near zero, for every kernel TVM lowers to LLVM.

TVM lowers ``tanh`` for LLVM targets as ``(1 - e) / (1 + e)`` with
``e = exp(-2|x|)``: for small |x| the subtraction cancels and the relative
error grows as 6e-8 / |x| (3e-4 at x = 1e-4; ONNX's Mish node test failed on
it, and LSTM gates and tanh-GELU see such inputs). Below |x| = 1/16 the odd
Taylor series to x^7 is used instead; the worst relative error over float32
is then 2.4e-7. NaN and infinities keep their IEEE results (the series is
never taken for them).
"""

from __future__ import annotations

import functools

import tvm
from tvm import tirx

#: below this |x| the series is exact to float32 (its x^9 term is 3e-11 relative)
SERIES_BELOW = 0.0625


def _precise_tanh(call):
    x = call.args[0]
    dtype = str(x.ty)

    def c(v):
        return tirx.const(v, dtype)

    one = c(1)
    e = tirx.exp(c(-2) * tirx.abs(x))
    big = (one - e) / (one + e)
    big = tirx.Select(x >= c(0), big, -big)
    x2 = x * x
    small = x * (one + x2 * (c(-1 / 3) + x2 * (c(2 / 15) + x2 * c(-17 / 315))))
    return tirx.Select(tirx.abs(x) < c(SERIES_BELOW), small, big)


@functools.cache
def install() -> None:
    """Register the precise tanh over TVM's (once per process; level 11 beats its 10)."""
    tvm.ir.register_op_attr("tirx.tanh", "llvm.FLowerIntrinsic", _precise_tanh, level=11)

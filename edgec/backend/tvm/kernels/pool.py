"""Max and average pooling as depthwise windows without weights.

A pool slides a window over each channel like a depthwise conv, so it runs
on the blocked depthwise template (depthwise.py): NCHW[b]c blocks
vectorised along the channels, padding read through a branch per tap, the
taps folded by max or sum instead of sum(x * w). TVM's own pools pad the
whole input into a copy first and then reduce: measured on Zen 4,
ResNet-50's 3x3 stride-2 max pool of 64x112x112 (blocked) took 157 us that
way and 55 us here. dispatch.py says where TVM's pools stay.

ONNX semantics: a max pool's padding never wins (it reads as the lowest
float); an average divides by the taps inside the map, or with
``count_include_pad`` by those inside the padded map (never the extra rows
``ceil_mode`` adds).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import te, tirx

from .conv2d import ConvShape


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" or "avg"
    #: avg: the rows / columns of the padded map whose taps count, [lo, hi)
    #: per axis in padded coordinates; None when every tap of every window
    #: counts (a constant divisor)
    counted: tuple[tuple[int, int], tuple[int, int]] | None = None

    @property
    def fill(self) -> float | None:
        """What the padding reads as (None: the lowest float, for max)."""
        return None if self.kind == "max" else 0.0

    def fold(self, tap, axes):
        return te.max(tap, axis=axes) if self.kind == "max" else te.sum(tap, axis=axes)

    def finish(self, acc, shape: ConvShape, y, x):
        """The folded taps as the pool's value at output pixel (y, x)."""
        if self.kind == "max":
            return acc
        if self.counted is None:
            return acc * tirx.const(1.0 / (shape.kh * shape.kw), "float32")
        count = _taps(self.counted[0], y, shape.stride[0], shape.dilation[0], shape.kh) * \
            _taps(self.counted[1], x, shape.stride[1], shape.dilation[1], shape.kw)
        return acc / tirx.Cast("float32", count)


def _taps(bounds: tuple[int, int], out, stride: int, dilation: int, k: int):
    """How many of the taps at start + r * dilation (r < k, start = out * stride)
    fall in [lo, hi), for an int or a TIR output index."""
    lo, hi = bounds
    if isinstance(out, int):
        start = out * stride
        return sum(lo <= start + r * dilation < hi for r in range(k))
    first = tirx.max(tirx.min(tirx.floordiv(lo - out * stride + dilation - 1, dilation), k), 0)
    end = tirx.max(tirx.min(tirx.floordiv(hi - out * stride + dilation - 1, dilation), k), 0)
    return end - first


def pool_of(kind: str, n: int, c: int, h: int, w: int, out_hw: tuple[int, int], *,
            kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
            pad: tuple[int, int, int, int], count_include_pad: bool):
    """(the pool's window as a ConvShape, its Pool), or None when the window
    reads no pixel of the map somewhere (left to TVM). ``out_hw`` is the op's
    output size; ``ceil_mode``'s extra rows and columns become bottom / right
    padding that never counts."""
    top, left, bottom, right = pad
    (oh, ow), (kh, kw), (sh, sw), (dh, dw) = out_hw, kernel, stride, dilation
    need_h, need_w = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    window = ConvShape(n, c, h, w, c, kh, kw, (sh, sw),
                       (top, left, max(bottom, need_h - h - top), max(right, need_w - w - left)),
                       (dh, dw), c)
    if window.out_hw != (oh, ow):
        return None
    axes = tuple(zip(out_hw, (sh, sw), (dh, dw), (kh, kw), strict=True))

    def counts(bounds) -> list[tuple[int, int]]:
        """(taps in ``bounds``, taps of the window) for every output row and column."""
        return [(_taps(b, o, s, d, k), k) for b, (size, s, d, k) in zip(bounds, axes, strict=True)
                for o in range(size)]

    real = ((top, top + h), (left, left + w))
    if any(inside == 0 for inside, _ in counts(real)):
        return None
    if kind == "max":
        return window, Pool("max")
    counted = ((0, top + h + bottom), (0, left + w + right)) if count_include_pad else real
    if all(inside == k for inside, k in counts(counted)):
        counted = None
    return window, Pool("avg", counted)

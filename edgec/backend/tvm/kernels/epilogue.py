"""Elementwise work done in a kernel's write-back instead of another pass over memory.

Applied in this order: + bias[channel], first activation, * scale[channel]
+ shift[channel] (an affine after the activation, PP-LCNet's), + residual
tensor, second activation. That covers Conv+BN(+ReLU), ResNet's
Conv+BN+Add+ReLU, the MobileNet family's Clip (ReLU6) and HardSwish, YOLO's
SiLU, a detection head's Sigmoid, and a transformer MLP's GELU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tvm import te, tirx


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

    def describe(self) -> str:
        return "_".join(self.ops)


def activate(value, act: tuple | None):
    if act is None:
        return value
    f32 = "float32"  # the kernels are float32 only so far
    if act[0] == "relu":
        return tirx.max(value, tirx.const(0.0, f32))
    if act[0] == "clip":
        return tirx.min(tirx.max(value, tirx.const(act[1], f32)), tirx.const(act[2], f32))
    if act[0] == "hardswish":  # x * clip(x / 6 + 1/2, 0, 1)
        gate = tirx.min(tirx.max(value * tirx.const(1.0 / 6.0, f32) + tirx.const(0.5, f32),
                                 tirx.const(0.0, f32)), tirx.const(1.0, f32))
        return value * gate
    if act[0] == "sigmoid":
        return tirx.sigmoid(value)
    if act[0] == "silu":  # x * sigmoid(x) (Swish)
        return value * tirx.sigmoid(value)
    if act[0] == "gelu":  # x * (1 + erf(x / sqrt 2)) / 2
        half = tirx.const(0.5, f32)
        return value * (half + half * tirx.erf(value * tirx.const(0.5 ** 0.5, f32)))
    if act[0] == "gelu_tanh":  # x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))) / 2
        inner = tirx.const((2.0 / np.pi) ** 0.5, f32) * (
            value + tirx.const(0.044715, f32) * value * value * value)
        return tirx.const(0.5, f32) * value * (tirx.const(1.0, f32) + tirx.tanh(inner))
    raise ValueError(f"unknown activation {act[0]}")


class EpilogueTensors:
    """The kernel inputs an epilogue needs (bias [C], post-activation affine
    [C, 2], residual of the output's shape, in that order) and the write-back
    value computed from them; one place for every kernel template."""

    def __init__(self, epi: Epilogue, channels: int, out_shape: tuple[int, ...]) -> None:
        f32 = "float32"
        self.epi = epi
        self.bias = None if epi.bias is None else te.placeholder((channels,), f32, name="bias")
        self.post = None if epi.post is None else \
            te.placeholder((channels, 2), f32, name="post")
        self.residual = te.placeholder(out_shape, f32, name="residual") if epi.residual \
            else None

    @property
    def inputs(self) -> list:
        return [t for t in (self.bias, self.post, self.residual) if t is not None]

    def apply(self, value, channel, out_index):
        """``value`` (the accumulator) through the epilogue, for output ``out_index``
        of channel ``channel``."""
        return self.apply_tail(self.apply_channel(value, channel), out_index)

    def apply_channel(self, value, channel):
        """The per-channel part (bias, activation, affine): it needs no output
        index, so a kernel may apply it to padded tile positions too."""
        if self.bias is not None:
            value = value + self.bias[channel]
        value = activate(value, self.epi.act)
        if self.post is not None:
            value = value * self.post[channel, 0] + self.post[channel, 1]
        return value

    def apply_tail(self, value, out_index):
        """The residual add and the second activation, at a real output position."""
        if self.residual is not None:
            value = value + self.residual[tuple(out_index)]
        return activate(value, self.epi.act2)

"""Elementwise work done in a kernel's write-back instead of another pass over memory.

Applied in this order: + bias[channel], first activation, * scale[channel]
+ shift[channel] (an affine after the activation, PP-LCNet's), + residual
tensor, second activation. That covers Conv+BN(+ReLU), ResNet's
Conv+BN+Add+ReLU, the MobileNet family's Clip (ReLU6) and HardSwish.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tvm import te, tirx

#: activation name -> how many float parameters it takes
ACTIVATIONS = {"relu": 0, "clip": 2, "hardswish": 0}


@dataclass
class Epilogue:
    bias: np.ndarray | None = None  # [channels] float32
    act: tuple | None = None  # ("relu",), ("clip", lo, hi) or ("hardswish",)
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
    raise ValueError(f"unknown activation {act[0]}")


def post_placeholder(epi: Epilogue, channels: int):
    """The kernel input holding the post-activation affine, or None."""
    return None if epi.post is None else te.placeholder((channels, 2), "float32", name="post")


def apply_post(value, post, channel):
    return value if post is None else value * post[channel, 0] + post[channel, 1]

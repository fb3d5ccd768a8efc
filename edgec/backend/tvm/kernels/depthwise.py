"""Depthwise 2-D convolution (one filter per channel), vectorised along the width.

Each output row of a channel is computed in tiles of ``vectors`` x lanes
pixels held in registers; every filter tap is one broadcast weight times a
(for stride 1 contiguous) vector of input pixels. Weights stay [C, KH, KW].
Width is padded to the tile inside the kernel only.

The blocked template also runs pools (pool.py): the same window without
weights, its taps folded by max or sum.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from tvm import te, tirx
from tvm.s_tir import Schedule, ScheduleError

from .conv2d import ConvShape, cdiv, read_clamped, read_padded
from .epilogue import Epilogue, EpilogueTensors, QParams
from .generic import MIN_PARALLEL_FLOPS, Kernel
from .pool import Pool
from .vector_unit import VectorUnit


@dataclass(frozen=True)
class DepthwiseTile:
    vectors: int  # vectors of output pixels per tile
    lanes: int

    @property
    def width(self) -> int:
        return self.vectors * self.lanes


def choose_depthwise_tile(shape: ConvShape, unit: VectorUnit) -> DepthwiseTile:
    """Fewest padded pixels, then the widest tile (up to 4 vectors: a tap's
    input vectors also need registers)."""
    _, ow = shape.out_hw
    best, best_key = None, None
    for vectors in (1, 2, 3, 4):
        width = vectors * unit.lanes
        key = (cdiv(ow, width) * width - ow > max(unit.lanes // 2, 1) * vectors, -vectors)
        if vectors > 1 and width > cdiv(ow, unit.lanes) * unit.lanes:
            break
        if best_key is None or key < best_key:
            best, best_key = DepthwiseTile(vectors, unit.lanes), key
    return best


#: a depthwise conv reading at least this many bytes runs threaded even with
#: few FLOPs (measured on Zen 4: ShuffleNet's 112-channel stride-2 conv of a
#: 56x56 map, 1.4 MB and 1.6 MFLOP, 179 -> 125 us; but 136 channels of
#: 28x28, 0.4 MB, went 21 -> 28 us threaded)
MIN_PARALLEL_BYTES = 1024 * 1024


def _parallel(s: ConvShape) -> bool:
    return s.flops >= MIN_PARALLEL_FLOPS or 4 * s.n * s.c * s.h * s.w >= MIN_PARALLEL_BYTES


def is_depthwise(shape: ConvShape) -> bool:
    return shape.groups > 1 and shape.groups == shape.c == shape.o


def _fold(pool: Pool | None, tap, weight, axes):
    """The window's taps folded: sum(x * w) for a depthwise conv, the pool's
    max or sum for a pool (which has no weights)."""
    return te.sum(tap * weight, axis=axes) if pool is None else pool.fold(tap, axes)


def _result(pool: Pool | None, acc, shape: ConvShape, y, x):
    return acc if pool is None else pool.finish(acc, shape, y, x)


def depthwise_kernel(shape: ConvShape, tile: DepthwiseTile, epi: Epilogue,
                     x_q: QParams | None = None) -> Kernel:
    """NCHW depthwise conv. ``x_q``: x is quantised (x_q.dtype) and read as its
    integer value in float32, the padding as the zero point (the weights hold
    integers too, the caller folds -zero point * sum(w) into the epilogue's
    pre_bias: zero_point_bias, and mult scales the exact sum: qchains.py)."""
    s = shape
    oh, ow = s.out_hw
    (sh, sw), (dh, dw) = s.stride, s.dilation
    top, left, _, _ = s.pad
    owp = cdiv(ow, tile.width) * tile.width
    hp = (oh - 1) * sh + (s.kh - 1) * dh + 1
    wp = (owp - 1) * sw + (s.kw - 1) * dw + 1
    f32 = "float32"
    x = te.placeholder((s.n, s.c, s.h, s.w), x_q.dtype if x_q else f32, name="x")
    w = te.placeholder((s.c, s.kh, s.kw), f32, name="w")
    inputs = [x, w]

    fill = float(x_q.zero_point) if x_q else 0.0

    def x_at(*i):
        return tirx.Cast(f32, x[i]) if x_q else x[i]

    # A stride spreads a vector's inputs sw apart: the padded plane splits each
    # row into its sw phases ([H, sw, W/sw]) so they are contiguous again.
    # Measured on Zen 4, stride 2: 136 channels of 28x28 50 -> 21 us, 272 of
    # 14x14 42 -> 20 us, 96 of 40x40 (5x5) 254 -> 127 us; 32 of 320x320 even.
    phases = sw
    needs_pad = top or left or hp > s.h or wp > s.w or phases > 1
    if needs_pad:
        read = read_clamped if phases > 1 else read_padded
        xp = te.compute(
            (s.n, s.c, hp, phases, cdiv(wp, phases)),
            lambda n, c, y, ph, xh: read(x_at, s, n, c, y, xh * phases + ph, fill),
            name="pad")

        def xin(n, c, y, col):
            return xp[n, c, y, col % phases, col // phases]
    else:
        def xin(n, c, y, col):
            return x_at(n, c, y, col)
    ry = te.reduce_axis((0, s.kh), "ry")
    rx = te.reduce_axis((0, s.kw), "rx")
    acc = te.compute(
        (s.n, s.c, oh, owp),
        lambda n, c, y, xx: te.sum(xin(n, c, y * sh + ry * dh, xx * sw + rx * dw)
                                   * w[c, ry, rx], axis=[ry, rx]),
        name="acc")
    tail = EpilogueTensors(epi, s.o, (s.n, s.o, oh, ow))
    inputs += tail.inputs
    out = te.compute((s.n, s.c, oh, ow),
                     lambda n, c, y, xx: tail.apply(acc[n, c, y, xx], c, (n, c, y, xx)),
                     name="out")
    workload = te.create_prim_func([*inputs, out])
    sch = Schedule(workload)
    a, o = sch.get_sblock("acc"), sch.get_sblock("out")
    sch.set_scope(a, 0, "local")
    n, c, y, xx, ry_l, rx_l = sch.get_loops(a)
    xo, xv, xl = sch.split(xx, [None, tile.vectors, tile.lanes])
    sch.reorder(n, c, y, xo, ry_l, rx_l, xv, xl)
    sch.reverse_compute_at(o, xo)
    planes = sch.fuse(n, c)
    if _parallel(s):
        sch.parallel(planes)
    sch.unroll(xv)
    sch.vectorize(xl)
    sch.decompose_reduction(a, ry_l)
    if needs_pad:
        # Each channel's padded plane is made right before its rows are computed
        # and stays in cache: depthwise convs are memory-bound, and a padded
        # copy of the whole input cost two extra passes over memory.
        pad = sch.get_sblock("pad")
        sch.compute_at(pad, planes)
        if phases > 1:  # a select per element, in vectors (see read_clamped)
            _, lanes = sch.split(sch.get_loops(pad)[-1], [None, tile.lanes])
            sch.vectorize(lanes)
        else:
            with contextlib.suppress(ScheduleError):
                sch.decompose_padding(pad, sch.get_loops(pad)[-1])
    return Kernel(workload, sch, s.flops)


#: output pixels per register tile of the blocked kernel (one vector of a
#: channel block each): with a tap's input vector and weight that is 10 of 16
#: registers on AVX2 / NEON-sized files, and stays well clear of spilling
BLOCKED_PIXELS = 8


def depthwise_blocked_kernel(shape: ConvShape, block: int, epi: Epilogue,
                             pool: Pool | None = None, x_q: QParams | None = None) -> Kernel:
    """Depthwise conv on NCHW[b]c data (see layout.py): x, y and the residual
    are blocked, the weights [C/b, KH, KW, b]; each tap is a vector FMA over a
    block of channels, for a row tile of BLOCKED_PIXELS pixels. Padding is
    read through a branch per tap (no padded copy: depthwise convs and pools
    are memory-bound). With ``pool``, that pool (no weights). ``x_q``: x is
    quantised, read as in depthwise_kernel."""
    s = shape
    oh, ow = s.out_hw
    (sh, sw), (dh, dw) = s.stride, s.dilation
    cb = s.c // block
    xt = min(BLOCKED_PIXELS, ow)
    owp = cdiv(ow, xt) * xt
    f32 = "float32"
    x = te.placeholder((s.n, cb, s.h, s.w, block), x_q.dtype if x_q else f32, name="x")
    w = None if pool else te.placeholder((cb, s.kh, s.kw, block), f32, name="w")
    ry = te.reduce_axis((0, s.kh), "ry")
    rx = te.reduce_axis((0, s.kw), "rx")

    def x_at(n, b, iy, ix, lane):
        v = x[n, b, iy, ix, lane]
        return tirx.Cast(f32, v) if x_q else v  # quantised: as depthwise_kernel reads it

    fill = float(x_q.zero_point) if x_q else (pool.fill if pool else 0.0)

    def tap(n, b, y, xx, lane):
        return read_padded(lambda n, b, iy, ix: x_at(n, b, iy, ix, lane), s, n, b,
                           y * sh + ry * dh, xx * sw + rx * dw, fill)

    acc = te.compute(
        (s.n, cb, oh, owp, block),
        lambda n, b, y, xx, lane: _fold(pool, tap(n, b, y, xx, lane),
                                        None if pool else w[b, ry, rx, lane],
                                        [ry, rx]),
        name="acc")
    out_shape = (s.n, cb, oh, ow, block)
    tail = EpilogueTensors(epi, s.o, out_shape)
    out = te.compute(out_shape, lambda n, b, y, xx, lane: tail.apply(
        _result(pool, acc[n, b, y, xx, lane], s, y, xx), b * block + lane,
        (n, b, y, xx, lane)), name="out")
    workload = te.create_prim_func([x, *([] if pool else [w]), *tail.inputs, out])
    sch = Schedule(workload)
    a, o = sch.get_sblock("acc"), sch.get_sblock("out")
    sch.set_scope(a, 0, "local")
    n, b, y, xx, lane, ry_l, rx_l = sch.get_loops(a)
    xo, xi = sch.split(xx, [None, xt])
    sch.reorder(n, b, y, xo, ry_l, rx_l, xi, lane)
    sch.reverse_compute_at(o, xo)
    rows = sch.fuse(n, b, y)
    if _parallel(s):
        sch.parallel(rows)
    sch.unroll(xi)
    sch.vectorize(lane)
    sch.vectorize(sch.get_loops(o)[-1])
    sch.decompose_reduction(a, ry_l)
    return Kernel(workload, sch, s.flops // 2 if pool else s.flops)  # a pool: one op per tap


def pack_blocked_weights(weight, block: int):
    """[C, KH, KW] (depthwise OIHW with I = 1, squeezed) -> [C/b, KH, KW, b]."""
    c, kh, kw = weight.shape
    return weight.reshape(c // block, block, kh, kw).transpose(0, 2, 3, 1).copy()


def zero_point_bias(weight: np.ndarray, zero_point: int) -> np.ndarray:
    """-zero_point * sum(w[c]) per channel: what reading a quantised input without
    subtracting its zero point adds to each sum (weights [C, KH, KW])."""
    return (-float(zero_point) * weight.reshape(weight.shape[0], -1).sum(1)).astype(np.float32)

"""Direct 2-D convolution with weights packed at compile time (regular and grouped).

Activations stay NCHW in memory; the kernel computes a register tile of XT
output pixels x OB output channels (OB a multiple of the vector width),
broadcasting one input value against one packed weight vector per FMA, so
the accumulators live in registers and the lane dimension is the packed
weight's innermost one (OIHW -> [G, O/OB, C/G, KH, KW, OB], zero-padded).
The tile is written back to NCHW through the fused epilogue. Output
channels and width are padded to the tile inside the kernel only, so any
shape works without predicates in the inner loop.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from tvm import te, tirx
from tvm.s_tir import Schedule, ScheduleError

from .epilogue import Epilogue, EpilogueTensors
from .generic import MIN_PARALLEL_FLOPS, Kernel
from .vector_unit import VectorUnit

#: input planes from this size on are re-laid out even with nothing to pad: measured
#: here, 1x1 convs on 14x14 ran 281 -> 481 GFLOP/s reading x in place, while at
#: 160x160 the aliasing planes made in-place 8x slower
RELAYOUT_BYTES = 16384


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def decompose_pad(sch: Schedule, name: str, outer: int, parallel: bool = True) -> None:
    """Parallelise a padding copy over its ``outer`` first loops and split it,
    row by row, into a zero fill and a predicate-free copy (both plain
    loops LLVM vectorises), instead of a select per element."""
    block = sch.get_sblock(name)
    loops = sch.get_loops(block)
    fused = sch.fuse(*loops[:outer])
    if parallel:
        sch.parallel(fused)
    # not a padding pattern when there is nothing to pad: keep the single copy
    with contextlib.suppress(ScheduleError):
        sch.decompose_padding(block, sch.get_loops(block)[-1])


@dataclass(frozen=True)
class ConvShape:
    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    stride: tuple[int, int]
    pad: tuple[int, int, int, int]  # top, left, bottom, right
    dilation: tuple[int, int]
    groups: int

    @property
    def out_hw(self) -> tuple[int, int]:
        (sh, sw), (dh, dw) = self.stride, self.dilation
        t, lf, b, r = self.pad
        return ((self.h + t + b - (self.kh - 1) * dh - 1) // sh + 1,
                (self.w + lf + r - (self.kw - 1) * dw - 1) // sw + 1)

    @property
    def flops(self) -> int:
        oh, ow = self.out_hw
        return 2 * self.n * self.o * oh * ow * (self.c // self.groups) * self.kh * self.kw


@dataclass(frozen=True)
class ConvTile:
    ob: int  # output channels per tile (a multiple of the lanes)
    xt: int  # output pixels per tile along the width
    lanes: int


def choose_tile(shape: ConvShape, unit: VectorUnit) -> ConvTile | None:
    """The tile with the least padded work and the fewest loads per FMA, among
    those with ``saturating_accumulators`` to ``preferred_accumulators``
    accumulators (more spill; fewer starve the FMA units). Measured on Zen 4:
    widths 7 and 14 ran 12-25% faster as 32x7 tiles (14 accumulators) than as
    32x8 tiles with a padded pixel.

    Blocks never straddle groups: a grouped conv pads each group's channels.
    """
    og = shape.o // shape.groups
    _, ow = shape.out_hw
    best, best_score = None, -1.0
    for lanes, vector_counts, max_accs in _vector_options(og, unit):
        for vectors in vector_counts:
            ob = vectors * lanes
            if vectors > 1 and ob > cdiv(og, lanes) * lanes:
                break
            for xt in range(1, max_accs // vectors + 1):
                accs = vectors * xt
                useful = (og / (cdiv(og, ob) * ob)) * (ow / (cdiv(ow, xt) * xt))
                fill = min(accs, unit.saturating_accumulators) / unit.saturating_accumulators
                # Loads per FMA: a weight vector (streamed from L2: the panel
                # outgrows L1) serves xt pixels, an input broadcast (from L1)
                # serves the tile's vectors.
                loads = 1 + 1.0 / xt + 0.25 / vectors
                score = useful * fill / loads
                if score > best_score + 1e-9:
                    best, best_score = ConvTile(ob, xt, lanes), score
    return best


def _vector_options(og: int, unit: VectorUnit):
    """(lanes, vector counts, accumulator cap) to try. Full-width vectors, in 1,
    2 or 4 (three measured 20-35% slower). Where the FMA units are half as
    wide as the registers (Zen 4 runs 512-bit FMAs as two halves) a
    half-width vector costs no throughput, so when the channels are a
    multiple of it but not of a full vector those tiles are tried too: 24
    channels as 3 x 8 lanes instead of 32 with 8 padded ran 96->24 at 160x160
    in 5.6 ms instead of 7.0 (measured: 12 accumulators there, not 15)."""
    yield unit.lanes, (1, 2, 4), unit.preferred_accumulators
    half = unit.fma_lanes
    if half < unit.lanes and og % unit.lanes and og % half == 0:
        yield half, (1, 2, 3), unit.saturating_accumulators


def pack_weights(weight: np.ndarray, groups: int, ob: int) -> np.ndarray:
    """OIHW -> [G, ceil(Og/ob), C/G, KH, KW, ob], each group's channels zero-padded."""
    o, cg, kh, kw = weight.shape
    og = o // groups
    obg = cdiv(og, ob)
    w = np.zeros((groups, obg * ob, cg, kh, kw), np.float32)
    w[:, :og] = weight.reshape(groups, og, cg, kh, kw)
    return np.ascontiguousarray(
        w.reshape(groups, obg, ob, cg, kh, kw).transpose(0, 1, 3, 4, 5, 2))


def output_shape(shape: ConvShape, shuffle: bool = False) -> tuple[int, ...]:
    """The kernel's output: NCHW, or [N, G, O/G, H, W] for a grouped conv (the
    same bytes; dispatch reshapes), so each group's channels index simply;
    [N, O/G, G, H, W] when a channel shuffle (ShuffleNet's) is folded in."""
    oh, ow = shape.out_hw
    if shape.groups == 1:
        return (shape.n, shape.o, oh, ow)
    if shuffle:
        return (shape.n, shape.o // shape.groups, shape.groups, oh, ow)
    return (shape.n, shape.groups, shape.o // shape.groups, oh, ow)


def conv2d_kernel(shape: ConvShape, tile: ConvTile, epi: Epilogue) -> Kernel:
    """(x, packed weights[, bias][, residual]) -> y."""
    s = shape
    g = s.groups
    cg, og = s.c // g, s.o // g
    oh, ow = s.out_hw
    (sh, sw), (dh, dw) = s.stride, s.dilation
    top, left, _, _ = s.pad
    ob, xt = tile.ob, tile.xt
    obg, owp = cdiv(og, ob), cdiv(ow, xt) * xt
    hp = (oh - 1) * sh + (s.kh - 1) * dh + 1
    wp = (owp - 1) * sw + (s.kw - 1) * dw + 1
    f32 = "float32"

    x = te.placeholder((s.n, s.c, s.h, s.w), f32, name="x")
    wpk = te.placeholder((g, obg, cg, s.kh, s.kw, ob), f32, name="w_packed")
    inputs = [x, wpk]
    # Rows of all channels side by side ([N, H, C, W]): the rows one output row
    # reads are contiguous, instead of C planes whose power-of-two-ish strides
    # alias in the L1 cache. One pass over the input, with the padding.
    # Needless when nothing is padded and planes are small (no aliasing): then x
    # is read in place through the same [N, H, C, W] view.
    relayout = bool(top or left or hp > s.h or wp > s.w or s.h * s.w * 4 >= RELAYOUT_BYTES)
    if relayout:
        xp = te.compute(
            (s.n, hp, s.c, wp),
            lambda n, y, c, xx: tirx.if_then_else(
                tirx.all(y >= top, y < s.h + top, xx >= left, xx < s.w + left),
                x[n, c, y - top, xx - left], tirx.const(0.0, f32)),
            name="pad")
    else:
        class _View:  # xp[n, y, c, x] -> x[n, c, y, x]
            def __getitem__(self, idx):
                n, y, c, xx = idx
                return x[n, c, y, xx]
        xp = _View()
    rc = te.reduce_axis((0, cg), "rc")
    ry = te.reduce_axis((0, s.kh), "ry")
    rx = te.reduce_axis((0, s.kw), "rx")
    # block b of group gi covers that group's output channels [b*ob, b*ob+ob)
    acc = te.compute(
        (s.n, g, obg, oh, owp, ob),
        lambda n, gi, b, y, xx, oi: te.sum(
            xp[n, y * sh + ry * dh, gi * cg + rc, xx * sw + rx * dw]
            * wpk[gi, b, rc, ry, rx, oi],
            axis=[rc, ry, rx]),
        name="acc")
    out_shape = output_shape(s, epi.shuffle)
    tail = EpilogueTensors(epi, s.o, out_shape)
    inputs += tail.inputs

    def out_value(*idx):
        if g == 1:
            n, o, y, xx = idx
            gi, j = 0, o
        elif epi.shuffle:
            n, j, gi, y, xx = idx
        else:
            n, gi, j, y, xx = idx
        return tail.apply(acc[n, gi, j // ob, y, xx, j % ob], gi * og + j, idx)

    out = te.compute(out_shape, out_value, name="out")
    workload = te.create_prim_func([*inputs, out])
    sch = _schedule(workload, tile, parallel=s.flops >= MIN_PARALLEL_FLOPS, relayout=relayout)
    return Kernel(workload, sch, s.flops)


def _schedule(func, tile: ConvTile, parallel: bool, relayout: bool) -> Schedule:
    sch = Schedule(func)
    acc, out = sch.get_sblock("acc"), sch.get_sblock("out")
    sch.set_scope(acc, 0, "local")  # the register tile; compacted to [xt, ob] when lowered
    n, gi, b, y, xx, oi, rc, ry, rx = sch.get_loops(acc)
    xo, xi = sch.split(xx, [None, tile.xt])
    sch.reorder(n, gi, b, y, xo, rc, ry, rx, xi, oi)
    # The epilogue writes each register tile into a row buffer; the row goes out
    # to the NCHW planes whole (a tile touches ob planes: written a few floats
    # at a time they thrash the cache when planes are large).
    row = sch.cache_write(out, 0, "local")
    sch.reverse_compute_at(out, xo)
    rows = sch.fuse(n, gi, b, y)
    sch.reverse_compute_at(row, rows)
    if parallel:
        sch.parallel(rows)
    sch.unroll(xi)
    vo, vi = sch.split(oi, [None, tile.lanes])
    sch.unroll(vo)
    sch.vectorize(vi)
    sch.decompose_reduction(acc, rc)
    if relayout:
        decompose_pad(sch, "pad", outer=2, parallel=parallel)
    return sch

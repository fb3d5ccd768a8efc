"""Winograd F(m x m, 3 x 3) convolution: 3x3 stride-1 convs in fewer multiplications.

A direct 3x3 conv runs at the FMA peak already (about 220 GFLOP/s on Zen 4),
so only doing less arithmetic makes it faster. Winograd's minimal filtering
computes an m x m output tile from an (m+2) x (m+2) input tile with
(m+2)^2 multiplications per channel pair instead of 9 m^2: 2.25x fewer
for m = 2, 4x for m = 4. The work becomes

1. input transform: each input tile d -> V = B^T d B, one vector of
   channels at a time (V: [(m+2)^2, tiles, C]);
2. (m+2)^2 independent GEMMs M[xi] = V[xi] @ U[xi], U = G g G^T the
   weights transformed at compile time ([(m+2)^2, O/ob, C, ob], packed
   like the direct kernel's) on the same register tiles;
3. output transform: Y = A^T M A per tile and channel vector, through the
   fused epilogue, written as NCHW[b]c.

The transforms' constant matrices are unrolled into straight-line vector
code with the zero terms dropped. Rounding differs from a direct conv (the
transforms add and scale): about 1e-6 relative for m = 2, a few times
that for m = 4, measured against onnxruntime in the tests.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import numpy as np
from tvm import te, tirx
from tvm.s_tir import Schedule, ScheduleError

from .conv2d import (
    ConvShape,
    ConvTile,
    blocked_shape,
    cdiv,
    choose_tile,
    decompose_pad,
    read_padded,
)
from .epilogue import Epilogue, EpilogueTensors
from .generic import MIN_PARALLEL_FLOPS, Kernel
from .vector_unit import VectorUnit

#: output tile sides tried (F(6, 3) and up lose too much precision in float32)
WINOGRAD_SIDES = (2, 4)
#: multiply-adds one weight costs to read: weights are streamed once per
#: inference, and F(4, 3) has 4x as many as the direct conv. Fitted to
#: ResNet-50 on Zen 4 (in the model, F(4, 3) beat F(2, 3) by 15% on
#: 256->256 at 14x14 and lost to it by 30% on 512->512 at 7x7)
WEIGHT_COST = 8
#: multiply-adds one transformed input or output value costs (the transforms
#: are a few adds each, but a pass over memory)
TRANSFORM_COST = 4

#: a strip's transformed input (V) is kept under this size, so a strip's stages
#: run in one core's L2 (measured on Zen 4: PP-OCRv4 det's 96->24 at 160x160,
#: 22 MB of V in one piece, ran 1.5x slower than the direct conv)
STRIP_BYTES = 512 * 1024
#: but only for maps whose whole V is larger than this: with few strips the
#: threads get uneven shares, and each stage threaded over the whole map ran
#: faster (ResNet-50's 256->256 at 14x14, 0.6 MB of V: 394 us as one piece,
#: 690 us as two strips)
STRIPS_FROM_BYTES = 4 * 1024 * 1024

# (B^T, G, A^T) of F(m, 3) with the interpolation points of Lavin & Gray
# (0, +-1, +-2 and infinity), in exact fractions
_MATRICES = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
         [0, 1, -1, 8, -8, 1]]),
}


def matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B^T, G, A^T) of F(m, 3) as float64 arrays."""
    return tuple(np.array(a, np.float64) for a in _MATRICES[m])


@dataclass(frozen=True)
class WinogradTile:
    m: int  # output tile side: F(m x m, 3 x 3)
    gemm: ConvTile  # register tile of the GEMMs: xt input tiles x ob output channels

    @property
    def alpha(self) -> int:
        return self.m + 2


def applies(shape: ConvShape, in_block: int, out_block: int, unit: VectorUnit) -> bool:
    """3x3, stride 1, no dilation, ungrouped, padding at most 1, and input
    channels in whole vectors (of the input's block, or of the registers
    for NCHW input)."""
    return (shape.kh == shape.kw == 3 and shape.stride == (1, 1) and shape.dilation == (1, 1)
            and shape.groups == 1 and max(shape.pad) <= 1
            and shape.c % (in_block or unit.lanes) == 0
            and (not out_block or shape.o % out_block == 0))


def pack_winograd_weights(weight: np.ndarray, m: int, ob: int) -> np.ndarray:
    """OIHW 3x3 -> U = G g G^T as [(m+2)^2, O/ob, C, ob] (channels zero-padded)."""
    _, g, _ = matrices(m)
    o, c, _, _ = weight.shape
    u = np.einsum("ak,ockl,bl->aboc", g, weight.astype(np.float64), g)
    alpha = m + 2
    obk = cdiv(o, ob)
    packed = np.zeros((alpha * alpha, obk * ob, c), np.float64)
    packed[:, :o] = u.reshape(alpha * alpha, o, c)
    return np.ascontiguousarray(
        packed.reshape(alpha * alpha, obk, ob, c).transpose(0, 1, 3, 2)).astype(np.float32)


def _select(k, rows: list):
    """rows[k] for a loop variable k that is unrolled later, so each copy of
    the body folds to one row."""
    expr = rows[-1]
    for i in range(len(rows) - 2, -1, -1):
        expr = tirx.Select(k == i, rows[i], expr)
    return expr


def _combine(coefs, terms):
    """sum(c * t) over the nonzero coefficients, without multiplying by +-1."""
    expr = None
    for c, t in zip(coefs, terms, strict=True):
        if c == 0:
            continue
        term = t if abs(c) == 1 else t * tirx.const(float(abs(c)), "float32")
        if expr is None:
            expr = term if c > 0 else tirx.const(0.0, "float32") - term
        else:
            expr = expr + term if c > 0 else expr - term
    return expr


def strip_rows(shape: ConvShape, m: int) -> int:
    """Tile rows per strip: all of them while the whole transformed input is
    at most STRIPS_FROM_BYTES, else as many as keep a strip's within STRIP_BYTES."""
    oh, ow = shape.out_hw
    th, tw = cdiv(oh, m), cdiv(ow, m)
    per_row = (m + 2) ** 2 * tw * shape.c * 4
    if th * per_row <= STRIPS_FROM_BYTES:
        return th
    return max(1, min(th, STRIP_BYTES // per_row))


def winograd_kernel(shape: ConvShape, tile: WinogradTile, epi: Epilogue, *,
                    in_block: int, out_block: int, lanes: int) -> Kernel:
    """(x, U[, bias][, residual]) -> y; x in NCHW[in_block]c or NCHW (0), y
    and the residual in NCHW[out_block]c or NCHW. ``lanes``: the input
    transform's vector width (it divides the channels).

    Each image is cut into strips of whole tile rows, and every stage has
    the strip as its first axis. A map whose transformed input fits
    STRIP_BYTES is one strip and each stage runs threaded; larger maps run
    strip by strip, a strip per thread, all stages back to back, so the
    intermediates stay in that core's cache."""
    s, m, alpha = shape, tile.m, tile.alpha
    bt, _, at = (a.tolist() for a in matrices(m))
    oh, ow = s.out_hw
    th, tw = cdiv(oh, m), cdiv(ow, m)
    tr = strip_rows(s, m)
    ns, hs = cdiv(th, tr), tr * m  # strips per image, output rows per strip
    tiles = tr * tw  # per strip
    xt, ob = tile.gemm.xt, tile.gemm.ob
    ppad, opad = cdiv(tiles, xt) * xt, cdiv(s.o, ob) * ob
    wp = tw * m + 2
    f32 = "float32"

    if in_block:
        x = te.placeholder(blocked_shape(s.n, s.c, s.h, s.w, in_block), f32, name="x")

        def x_at(n, c, y, xx):
            return x[n, c // in_block, y, xx, c % in_block]
    else:
        x = te.placeholder((s.n, s.c, s.h, s.w), f32, name="x")

        def x_at(n, c, y, xx):
            return x[n, c, y, xx]
    u = te.placeholder((alpha * alpha, opad // ob, s.c, ob), f32, name="u")

    def pad_value(q, y, xx, c):  # row y of strip q, padded, channels last
        return read_padded(x_at, s, q // ns, c, (q % ns) * hs + y, xx)

    xp = te.compute((s.n * ns, hs + 2, wp, s.c), pad_value, name="pad")

    def rows_bt(q, p, e, b, c):  # (B^T d)[e, b]
        p = tirx.min(p, tiles - 1)  # padded GEMM rows repeat the last tile
        y0, x0 = (p // tw) * m, (p % tw) * m
        col = [xp[q, y0 + a, x0 + b, c] for a in range(alpha)]
        return _select(e, [_combine(bt[k], col) for k in range(alpha)])

    t1 = te.compute((s.n * ns, ppad, alpha, alpha, s.c), rows_bt, name="bt_d")

    def v_value(q, xi, p, c):  # (B^T d B)[e, nu]
        e, nu = xi // alpha, xi % alpha
        row = [t1[q, p, e, b, c] for b in range(alpha)]
        return _select(nu, [_combine(bt[k], row) for k in range(alpha)])

    v = te.compute((s.n * ns, alpha * alpha, ppad, s.c), v_value, name="v")
    rc = te.reduce_axis((0, s.c), "rc")
    mm = te.compute((s.n * ns, alpha * alpha, ppad, opad),
                    lambda q, xi, p, o: te.sum(v[q, xi, p, rc] * u[xi, o // ob, rc, o % ob],
                                               axis=rc),
                    name="gemm")

    def at_rows(q, p, i, nu, o):  # (A^T M)[i, nu]
        col = [mm[q, e * alpha + nu, p, o] for e in range(alpha)]
        return _select(i, [_combine(at[k], col) for k in range(m)])

    s1 = te.compute((s.n * ns, ppad, m, alpha, opad), at_rows, name="at_m")

    def transformed(n, y, xx, o):  # (A^T M A) at output (y, xx)
        q, yy = n * ns + y // hs, y % hs
        row = [s1[q, (yy // m) * tw + xx // m, yy % m, nu, o] for nu in range(alpha)]
        return _select(xx % m, [_combine(at[k], row) for k in range(m)])

    if out_block:
        out_shape = blocked_shape(s.n, s.o, oh, ow, out_block)
        tail = EpilogueTensors(epi, s.o, out_shape)

        def out_value(n, blk, y, xx, lane):
            o = blk * out_block + lane
            return tail.apply(transformed(n, y, xx, o), o, (n, blk, y, xx, lane))
    else:
        # NCHW: the tiles' outputs, channels last, then one transpose with the
        # epilogue (rows of all channels stay in L1 while the planes' rows are written)
        ycl = te.compute((s.n, ns * hs, tw * m, opad), transformed, name="ycl")
        out_shape = (s.n, s.o, oh, ow)
        tail = EpilogueTensors(epi, s.o, out_shape)

        def out_value(n, o, y, xx):
            return tail.apply(ycl[n, y, xx, o], o, (n, o, y, xx))

    out = te.compute(out_shape, out_value, name="out")
    inputs = [x, u, *tail.inputs]
    workload = te.create_prim_func([*inputs, out])
    sch = _schedule(workload, tile, lanes, (ns, tr), s.flops >= MIN_PARALLEL_FLOPS,
                    nchw_in=not in_block, nchw_out=not out_block)
    return Kernel(workload, sch, s.flops)


def _half_transform_at(sch: Schedule, block, loop) -> None:
    """B^T d or A^T M (one side of a transform) for one tile and channel
    vector, in registers under ``loop``: its two matrix loops unrolled (the
    constant coefficients fold), the channels in a vector."""
    sch.compute_at(block, loop)
    sch.set_scope(block, 0, "local")
    *_, rows, cols, channels = sch.get_loops(block)
    sch.unroll(rows)
    sch.unroll(cols)
    sch.vectorize(channels)


def _schedule(func, tile: WinogradTile, lanes: int, strips: tuple[int, int],
              parallel: bool, nchw_in: bool, nchw_out: bool) -> Schedule:
    sch = Schedule(func)
    m = tile.m
    ns, tr = strips  # strips per image, tile rows per strip
    out_lanes = tile.gemm.lanes
    by_strip = ns > 1  # a strip per thread, its stages back to back
    par_stage = parallel and not by_strip

    def par(loop):
        if par_stage:
            sch.parallel(loop)

    # output side first (compute_at goes from consumers to producers)
    out = sch.get_sblock("out")
    if nchw_out:
        final, out = out, sch.get_sblock("ycl")
        n, y, xx, o = sch.get_loops(out)
        blk, lane = sch.split(o, [None, out_lanes])
    else:
        final = None
        n, blk, y, xx, lane = sch.get_loops(out)
    ys, ty, i = sch.split(y, [None, tr, m])
    tx, j = sch.split(xx, [None, m])
    sch.reorder(n, ys, ty, tx, blk, i, j, lane)
    strip = sch.fuse(n, ys)
    _half_transform_at(sch, sch.get_sblock("at_m"), blk)
    sch.unroll(i)
    sch.unroll(j)
    sch.vectorize(lane)
    acc = sch.get_sblock("gemm")
    gemm = sch.cache_write(acc, 0, "local")  # acc now accumulates in registers
    v, t1, pad = sch.get_sblock("v"), sch.get_sblock("bt_d"), sch.get_sblock("pad")
    if by_strip:
        if parallel:
            sch.parallel(strip)
        for block in (gemm, acc, v):
            sch.compute_at(block, strip)
    else:
        par(sch.fuse(strip, ty, tx))
    # the GEMMs: xt tiles x ob channels of accumulators, as in the direct conv
    *outer, xi, p, o, rc = sch.get_loops(acc)
    po, pi = sch.split(p, [None, tile.gemm.xt])
    oo, oi = sch.split(o, [None, tile.gemm.ob])
    sch.reorder(xi, oo, po, rc, pi, oi)
    sch.reverse_compute_at(gemm, po)
    par(sch.fuse(*outer, xi, oo, po) if not by_strip else po)
    sch.unroll(pi)
    vo, vi = sch.split(oi, [None, out_lanes])
    sch.unroll(vo)
    sch.vectorize(vi)
    sch.decompose_reduction(acc, rc)
    *_, wo = sch.get_loops(gemm)
    sch.vectorize(sch.split(wo, [None, out_lanes])[1])
    # input transform: per tile and channel vector, B^T d in a local buffer,
    # then V's (m+2)^2 vectors
    *outer, xi, p, c = sch.get_loops(v)
    co, ci = sch.split(c, [None, lanes])
    sch.reorder(p, co, xi, ci)
    _half_transform_at(sch, t1, co)
    sch.unroll(xi)
    sch.vectorize(ci)
    if by_strip:
        sch.compute_at(pad, strip)
    if nchw_in:
        # read the NCHW planes along their rows: channel vectors would be
        # gathers across planes (measured: 96->24 at 160x160 7.3 -> 2.9 ms)
        *_, pxx, pc = sch.get_loops(pad)
        sch.reorder(pc, pxx)
    if by_strip:
        with contextlib.suppress(ScheduleError):
            sch.decompose_padding(pad, sch.get_loops(pad)[-1])
    else:
        par(sch.fuse(*outer, p))
        decompose_pad(sch, "pad", outer=2, parallel=par_stage)
    if final is not None:
        fn, fo, fy, fx = sch.get_loops(final)
        sch.reorder(fn, fy, fo, fx)
        if parallel:
            sch.parallel(sch.fuse(fn, fy))
    return sch


def winograd_tile(shape: ConvShape, unit: VectorUnit, m: int) -> WinogradTile:
    """F(m, 3) with the GEMMs' register tile chosen as for a 1x1 conv over the tiles."""
    oh, ow = shape.out_hw
    tiles = shape.n * cdiv(oh, m) * cdiv(ow, m)
    gemm_shape = replace(shape, n=1, h=1, w=tiles, kh=1, kw=1, pad=(0, 0, 0, 0))
    return WinogradTile(m, choose_tile(gemm_shape, unit, pixels=False))


def _cost(shape: ConvShape, m: int, ob: int = 1, xt: int = 1) -> float:
    """Multiply-adds, plus WEIGHT_COST per weight read and TRANSFORM_COST per
    transformed value (m = 0: the direct conv)."""
    oh, ow = shape.out_hw
    if not m:
        return shape.flops / 2 + WEIGHT_COST * 9 * shape.c * shape.o
    alpha2 = (m + 2) ** 2
    tiles = cdiv(shape.n * cdiv(oh, m) * cdiv(ow, m), xt) * xt
    o = cdiv(shape.o, ob) * ob
    return alpha2 * (tiles * shape.c * o + WEIGHT_COST * shape.c * o
                     + TRANSFORM_COST * tiles * (shape.c + o))


def choose_winograd(shape: ConvShape, unit: VectorUnit) -> WinogradTile | None:
    """The cheapest of F(2, 3) and F(4, 3) by ``_cost``, or None when the
    direct conv costs less."""
    best, best_cost = None, _cost(shape, 0)
    for m in WINOGRAD_SIDES:
        tile = winograd_tile(shape, unit, m)
        cost = _cost(shape, m, tile.gemm.ob, tile.gemm.xt)
        if cost < best_cost:
            best, best_cost = tile, cost
    return best

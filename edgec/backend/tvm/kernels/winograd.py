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

from dataclasses import dataclass, replace

import numpy as np
from tvm import te, tirx
from tvm.s_tir import Schedule

from .conv2d import ConvShape, ConvTile, blocked_shape, cdiv, choose_tile, decompose_pad
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
    """3x3, stride 1, no dilation, ungrouped, padding at most 1, channels in
    whole vectors, and blocked data on both sides (what the layout pass
    gives convs between convs)."""
    return (shape.kh == shape.kw == 3 and shape.stride == (1, 1) and shape.dilation == (1, 1)
            and shape.groups == 1 and max(shape.pad) <= 1
            and in_block == out_block == unit.lanes and shape.c % unit.lanes == 0
            and shape.o % unit.lanes == 0)


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


def winograd_kernel(shape: ConvShape, tile: WinogradTile, epi: Epilogue, *,
                    block: int) -> Kernel:
    """(x, U[, bias][, residual]) -> y, x and y in NCHW[block]c."""
    s, m, alpha = shape, tile.m, tile.alpha
    bt, _, at = (a.tolist() for a in matrices(m))
    oh, ow = s.out_hw
    th, tw = cdiv(oh, m), cdiv(ow, m)
    tiles = s.n * th * tw
    xt, ob = tile.gemm.xt, tile.gemm.ob
    ppad, obk = cdiv(tiles, xt) * xt, cdiv(s.o, ob)
    hp, wp = th * m + 2, tw * m + 2
    top, left = s.pad[0], s.pad[1]
    f32 = "float32"

    x = te.placeholder(blocked_shape(s.n, s.c, s.h, s.w, block), f32, name="x")
    u = te.placeholder((alpha * alpha, obk, s.c, ob), f32, name="u")
    # padded input, channels last: a tile's channels are contiguous vectors
    xp = te.compute(
        (s.n, hp, wp, s.c),
        lambda n, y, xx, c: tirx.if_then_else(
            tirx.all(y >= top, y < s.h + top, xx >= left, xx < s.w + left),
            x[n, c // block, y - top, xx - left, c % block], tirx.const(0.0, f32)),
        name="pad")

    def tile_origin(p):
        p = tirx.min(p, tiles - 1)  # padded GEMM rows repeat the last tile
        n, t = p // (th * tw), p % (th * tw)
        return n, (t // tw) * m, (t % tw) * m

    def rows_bt(p, e, b, c):  # (B^T d)[e, b]
        n, y0, x0 = tile_origin(p)
        col = [xp[n, y0 + a, x0 + b, c] for a in range(alpha)]
        return _select(e, [_combine(bt[k], col) for k in range(alpha)])

    t1 = te.compute((ppad, alpha, alpha, s.c), rows_bt, name="bt_d")

    def v_value(xi, p, c):  # (B^T d B)[e, nu]
        e, nu = xi // alpha, xi % alpha
        row = [t1[p, e, b, c] for b in range(alpha)]
        return _select(nu, [_combine(bt[k], row) for k in range(alpha)])

    v = te.compute((alpha * alpha, ppad, s.c), v_value, name="v")
    rc = te.reduce_axis((0, s.c), "rc")
    mm = te.compute((alpha * alpha, ppad, obk * ob),
                    lambda xi, p, o: te.sum(v[xi, p, rc] * u[xi, o // ob, rc, o % ob], axis=rc),
                    name="gemm")

    def at_rows(p, i, nu, o):  # (A^T M)[i, nu]
        col = [mm[e * alpha + nu, p, o] for e in range(alpha)]
        return _select(i, [_combine(at[k], col) for k in range(m)])

    s1 = te.compute((ppad, m, alpha, obk * ob), at_rows, name="at_m")
    out_shape = blocked_shape(s.n, s.o, oh, ow, block)
    tail = EpilogueTensors(epi, s.o, out_shape)

    def out_value(n, blk, y, xx, lane):
        p = n * th * tw + (y // m) * tw + xx // m
        o = blk * block + lane
        row = [s1[p, y % m, nu, o] for nu in range(alpha)]
        value = _select(xx % m, [_combine(at[k], row) for k in range(m)])
        return tail.apply(value, o, (n, blk, y, xx, lane))

    out = te.compute(out_shape, out_value, name="out")
    inputs = [x, u, *tail.inputs]
    workload = te.create_prim_func([*inputs, out])
    sch = _schedule(workload, tile, block, (th, tw), s.flops >= MIN_PARALLEL_FLOPS)
    return Kernel(workload, sch, s.flops)


def _schedule(func, tile: WinogradTile, lanes: int, tiles_hw: tuple[int, int],
              parallel: bool) -> Schedule:
    sch = Schedule(func)
    m = tile.m

    def par(loop):
        if parallel:
            sch.parallel(loop)

    # input transform: per tile and channel vector, B^T d in a local buffer,
    # then V's (m+2)^2 vectors
    v, t1 = sch.get_sblock("v"), sch.get_sblock("bt_d")
    xi, p, c = sch.get_loops(v)
    co, ci = sch.split(c, [None, lanes])
    sch.reorder(p, co, xi, ci)
    sch.compute_at(t1, co)
    sch.set_scope(t1, 0, "local")
    *_, e, b, tc = sch.get_loops(t1)
    sch.unroll(e)
    sch.unroll(b)
    sch.vectorize(tc)
    sch.unroll(xi)
    sch.vectorize(ci)
    par(p)
    decompose_pad(sch, "pad", outer=2, parallel=parallel)
    # the GEMMs: xt tiles x ob channels of accumulators, as in the direct conv
    acc = sch.get_sblock("gemm")
    gemm = sch.cache_write(acc, 0, "local")  # acc now accumulates in registers
    xi, p, o, rc = sch.get_loops(acc)
    po, pi = sch.split(p, [None, tile.gemm.xt])
    oo, oi = sch.split(o, [None, tile.gemm.ob])
    sch.reorder(xi, oo, po, rc, pi, oi)
    sch.reverse_compute_at(gemm, po)
    rows = sch.fuse(xi, oo, po)
    par(rows)
    sch.unroll(pi)
    vo, vi = sch.split(oi, [None, lanes])
    sch.unroll(vo)
    sch.vectorize(vi)
    sch.decompose_reduction(acc, rc)
    *_, wo = sch.get_loops(gemm)
    sch.vectorize(sch.split(wo, [None, lanes])[1])
    # output transform: per tile and channel block, A^T M in a local buffer,
    # then the m x m outputs through the epilogue
    out, s1 = sch.get_sblock("out"), sch.get_sblock("at_m")
    n, blk, y, xx, lane = sch.get_loops(out)
    ty, i = sch.split(y, [tiles_hw[0], m])
    tx, j = sch.split(xx, [tiles_hw[1], m])
    sch.reorder(n, ty, tx, blk, i, j, lane)
    sch.compute_at(s1, blk)
    sch.set_scope(s1, 0, "local")
    *_, si, snu, so = sch.get_loops(s1)
    sch.unroll(si)
    sch.unroll(snu)
    sch.vectorize(so)
    sch.unroll(i)
    sch.unroll(j)
    sch.vectorize(lane)
    par(sch.fuse(n, ty, tx))
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

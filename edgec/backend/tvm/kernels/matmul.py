"""Matrix multiplication by a constant matrix (Gemm, MatMul with weights: the
linear layers of transformers and classifier heads), B packed at compile time.

The kernel is 2-D, [M, K] x [K, N]: dispatch reshapes batched operands (a
free view in the Relax VM). Weights are packed [N/NB, K, NB], zero-padded,
so the inner loop reads one contiguous weight vector per k, and an MR x NB
register tile accumulates broadcast A values times weight vectors. Rows are
padded to the tile in a copy of A only when MR does not divide M.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import te, tirx
from tvm.s_tir import Schedule

from .conv2d import cdiv
from .epilogue import Epilogue, EpilogueTensors
from .generic import MIN_PARALLEL_FLOPS, Kernel
from .vector_unit import VectorUnit


@dataclass(frozen=True)
class MatmulShape:
    m: int
    k: int
    n: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n


@dataclass(frozen=True)
class MatmulTile:
    mr: int  # rows per tile
    nb: int  # columns per tile (a multiple of the lanes)
    lanes: int


def choose_matmul_tile(shape: MatmulShape, unit: VectorUnit) -> MatmulTile:
    """Least padded work, then about ``preferred_accumulators`` accumulators."""
    best, best_score = None, -1.0
    for vectors in (1, 2, 3, 4):
        nb = vectors * unit.lanes
        if vectors > 1 and nb > cdiv(shape.n, unit.lanes) * unit.lanes:
            break
        for mr in range(1, min(shape.m, unit.accumulators // vectors) + 1):
            useful = (shape.n / (cdiv(shape.n, nb) * nb)) * (shape.m / (cdiv(shape.m, mr) * mr))
            fill = min(mr * vectors, unit.preferred_accumulators) / unit.preferred_accumulators
            score = useful * fill * (1 + 0.02 * vectors)
            if score > best_score + 1e-9:
                best, best_score = MatmulTile(mr, nb, unit.lanes), score
    return best


def pack_b(b: np.ndarray, nb: int) -> np.ndarray:
    """[K, N] -> [ceil(N/nb), K, nb], zero-padded columns."""
    k, n = b.shape
    padded = np.zeros((k, cdiv(n, nb) * nb), np.float32)
    padded[:, :n] = b
    return np.ascontiguousarray(padded.reshape(k, -1, nb).transpose(1, 0, 2))


def matmul_kernel(shape: MatmulShape, tile: MatmulTile, epi: Epilogue) -> Kernel:
    """(a [M, K], packed b[, bias [N]][, residual [M, N]]) -> out [M, N]."""
    s, f32 = shape, "float32"
    mp, nbs = cdiv(s.m, tile.mr) * tile.mr, cdiv(s.n, tile.nb)
    a = te.placeholder((s.m, s.k), f32, name="a")
    bp = te.placeholder((nbs, s.k, tile.nb), f32, name="b_packed")
    inputs = [a, bp]
    needs_pad = mp != s.m
    ap = te.compute((mp, s.k), lambda r, kk: tirx.if_then_else(
        r < s.m, a[r, kk], tirx.const(0.0, f32)), name="pad") if needs_pad else a
    rk = te.reduce_axis((0, s.k), "rk")
    acc = te.compute((mp, nbs, tile.nb),
                     lambda r, j, ni: te.sum(ap[r, rk] * bp[j, rk, ni], axis=[rk]), name="acc")
    tail = EpilogueTensors(epi, s.n, (s.m, s.n))
    inputs += tail.inputs
    out = te.compute((s.m, s.n),
                     lambda m, n: tail.apply(acc[m, n // tile.nb, n % tile.nb], n, (m, n)),
                     name="out")
    workload = te.create_prim_func([*inputs, out])
    sch = Schedule(workload)
    _register_tile(sch, tile, s.flops >= MIN_PARALLEL_FLOPS)
    return Kernel(workload, sch, s.flops)


def _register_tile(sch: Schedule, tile: MatmulTile, parallel: bool) -> None:
    """The "acc" block as MR x NB register tiles, each written out through "out"
    when done; threads over the column panels and row tiles (and any leading
    batch axes of the acc block)."""
    blk, ob = sch.get_sblock("acc"), sch.get_sblock("out")
    sch.set_scope(blk, 0, "local")
    *batch, r, j, ni, kk = sch.get_loops(blk)
    ro, ri = sch.split(r, [None, tile.mr])
    sch.reorder(*batch, j, ro, kk, ri, ni)
    sch.reverse_compute_at(ob, ro)
    if parallel:
        sch.parallel(sch.fuse(*batch, j, ro))
    sch.unroll(ri)
    vo, vi = sch.split(ni, [None, tile.lanes])
    sch.unroll(vo)
    sch.vectorize(vi)
    sch.decompose_reduction(blk, kk)


def batched_matmul_kernel(batch: int, shape: MatmulShape, tile: MatmulTile) -> Kernel:
    """(a [B, M, K], b [B, K, N]) -> [B, M, N] with both operands computed at
    run time (attention's Q K^T and A V). b is packed into [B, N/NB, K, NB]
    panels inside the kernel (K*N per batch, against M*K*N multiply-adds), then
    the same MR x NB register tile as the constant-B kernel runs."""
    s, f32 = shape, "float32"
    mp, nbs = cdiv(s.m, tile.mr) * tile.mr, cdiv(s.n, tile.nb)
    a = te.placeholder((batch, s.m, s.k), f32, name="a")
    b = te.placeholder((batch, s.k, s.n), f32, name="b")
    bp = te.compute((batch, nbs, s.k, tile.nb), lambda q, j, kk, ni: tirx.if_then_else(
        j * tile.nb + ni < s.n, b[q, kk, j * tile.nb + ni], tirx.const(0.0, f32)), name="pack")
    ap = te.compute((batch, mp, s.k), lambda q, r, kk: tirx.if_then_else(
        r < s.m, a[q, r, kk], tirx.const(0.0, f32)), name="pad") if mp != s.m else a
    rk = te.reduce_axis((0, s.k), "rk")
    acc = te.compute((batch, mp, nbs, tile.nb),
                     lambda q, r, j, ni: te.sum(ap[q, r, rk] * bp[q, j, rk, ni], axis=[rk]),
                     name="acc")
    out = te.compute((batch, s.m, s.n),
                     lambda q, m, n: acc[q, m, n // tile.nb, n % tile.nb], name="out")
    workload = te.create_prim_func([a, b, out])
    sch = Schedule(workload)
    parallel = batch * s.flops >= MIN_PARALLEL_FLOPS
    pack = sch.get_sblock("pack")
    q, j, _, ni = sch.get_loops(pack)
    if parallel:
        sch.parallel(sch.fuse(q, j))
    sch.vectorize(sch.split(ni, [None, tile.lanes])[1])
    _register_tile(sch, tile, parallel)
    return Kernel(workload, sch, batch * s.flops)

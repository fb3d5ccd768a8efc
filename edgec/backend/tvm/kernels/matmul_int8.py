"""Quantised matrix multiplication by a constant int8 matrix: A [M, K]
uint8/int8 x B [K, N] int8 (zero point 0), int32 accumulation, written out
requantised (QDQ MatMul from quantize_static) or as raw int32 (MatMulInteger
from quantize_dynamic, whose activation zero point is a run-time value).

Same instruction paths as conv2d_int8.py: B is packed [N/NB, K/KG, NB, KG]
(zero-padded), A is copied into [MP, K/KG, KG] in the instruction's
activation dtype (the shift to uint8 / int8 and the widening to int16 done
there; M*K bytes against M*K*N multiply-adds), and an MR x NB register tile
runs one dot product per (row, KG columns of K, NB/lanes vectors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import te, tirx
from tvm.s_tir import Schedule

from .conv2d import cdiv
from .conv2d_int8 import ISAS, _intrin_name
from .epilogue import Epilogue, EpilogueTensors
from .generic import MIN_PARALLEL_FLOPS, Kernel
from .matmul import MatmulShape


@dataclass(frozen=True)
class Int8MatmulTile:
    mr: int  # rows per tile
    nb: int  # columns per tile (a multiple of lanes)
    lanes: int
    kg: int


def choose_matmul_int8_tile(shape: MatmulShape, isa: str) -> Int8MatmulTile:
    """Least padded work, then the ISA's accumulator count filled (as conv2d_int8)."""
    spec = ISAS[isa]
    accs = spec.accumulators
    best, best_score = None, -1.0
    for vectors in (1, 2, 3, 4):
        nb = vectors * spec.lanes
        if vectors > 1 and nb > cdiv(shape.n, spec.lanes) * spec.lanes:
            break
        for mr in range(1, min(shape.m, accs // vectors) + 1):
            useful = (shape.n / (cdiv(shape.n, nb) * nb)) * (shape.m / (cdiv(shape.m, mr) * mr))
            fill = min(mr * vectors, accs) / accs
            loads = 1 + 1.0 / mr + 0.25 / vectors
            score = useful * fill / loads
            if score > best_score + 1e-9:
                best, best_score = Int8MatmulTile(mr, nb, spec.lanes, spec.kg), score
    return best


def prepare_matmul_int8(b_q: np.ndarray, bias_q: np.ndarray | None,
                        a_zero_point: int | None, a_dtype: str, isa: str,
                        tile: Int8MatmulTile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[K, N] int8 -> (packed [N/NB, K/KG, NB, KG] in the ISA's weight dtype,
    int32 bias [N] with the shift and a static zero point folded in, int32
    column sums [N]: what a run-time zero point multiplies, a_zero_point=None)."""
    spec = ISAS[isa]
    k, n = b_q.shape
    nb, kg = tile.nb, tile.kg
    kb, nbs = cdiv(k, kg), cdiv(n, nb)
    b = np.zeros((kb * kg, nbs * nb), np.int32)
    b[:k, :n] = b_q
    packed = b.reshape(kb, kg, nbs, nb).transpose(2, 0, 3, 1)
    packed = np.ascontiguousarray(packed.astype(spec.w_store))
    colsum = b_q.astype(np.int64).sum(axis=0)
    bias = np.zeros(n, np.int64) if bias_q is None else bias_q.astype(np.int64)
    bias = bias - ((a_zero_point or 0) + spec.shift(a_dtype)) * colsum
    return packed, bias.astype(np.int32), colsum.astype(np.int32)


def matmul_int8_kernel(shape: MatmulShape, tile: Int8MatmulTile, epi: Epilogue | None,
                       isa: str, a_dtype: str, a_zero_point: int | None = 0) -> Kernel:
    """(a [M, K] a_dtype, packed b, bias int32 [N], then a_zp a_dtype [1] and
    colsum int32 [N] if a_zero_point is None, then the epilogue's inputs) -> out
    [M, N]: sum((a - a_zp) * b) + bias through ``epi`` (kernels/epilogue.py:
    * mult, float work, quantisation; Requant.epilogue for QLinearMatMul's
    arithmetic), or as int32 without one (MatMulInteger). A static
    ``a_zero_point`` must be the one prepare_matmul_int8 folded."""
    spec = ISAS[isa]
    s, i32 = shape, "int32"
    mr, nb, kg = tile.mr, tile.nb, tile.kg
    mp, nbs, kb = cdiv(s.m, mr) * mr, cdiv(s.n, nb), cdiv(s.k, kg)
    delta = spec.shift(a_dtype)
    a = te.placeholder((s.m, s.k), a_dtype, name="a")
    bp = te.placeholder((nbs, kb, nb, kg), spec.w_store, name="b_packed")
    bias = te.placeholder((s.n,), i32, name="bias")
    inputs = [a, bp, bias]
    if a_zero_point is None:
        a_zp = te.placeholder((1,), a_dtype, name="a_zp")
        colsum = te.placeholder((s.n,), i32, name="colsum")
        inputs += [a_zp, colsum]
    tail = None if epi is None else EpilogueTensors(epi, s.n, (s.m, s.n))
    if tail is not None:
        inputs += tail.inputs

    def stored(v):
        return tirx.Cast(spec.x_store, tirx.Cast(i32, v) + delta) if delta else \
            tirx.Cast(spec.x_store, v)

    def a_value(r, blk, kk):
        col = blk * kg + kk
        ok = r < s.m
        if s.k % kg:
            ok = tirx.all(ok, col < s.k)
        # rows and columns of padding: any value (padded B is zero, rows are dropped)
        return tirx.if_then_else(ok, stored(a[r, col]), tirx.const(0, spec.x_store)) \
            if mp != s.m or s.k % kg else stored(a[r, col])

    ap = te.compute((mp, kb, kg), a_value, name="pack_a")
    rkb = te.reduce_axis((0, kb), "rkb")
    rk = te.reduce_axis((0, kg), "rk")
    acc = te.compute((mp, nbs, nb), lambda r, j, ni: te.sum(
        tirx.Cast(i32, ap[r, rkb, rk]) * tirx.Cast(i32, bp[j, rkb, ni, rk]), axis=[rkb, rk]),
        name="acc")

    def out_value(m, n):
        v = acc[m, n // nb, n % nb] + bias[n]
        if a_zero_point is None:
            v = v - tirx.Cast(i32, a_zp[0]) * colsum[n]
        return v if tail is None else tail.apply(tirx.Cast("float32", v), n, (m, n))

    out = te.compute((s.m, s.n), out_value, name="out")
    workload = te.create_prim_func([*inputs, out])
    sch = _schedule(workload, tile, spec, s.flops >= MIN_PARALLEL_FLOPS, s.n % nb == 0)
    return Kernel(workload, sch, s.flops)


def _schedule(func, tile: Int8MatmulTile, spec, parallel: bool, whole_blocks: bool) -> Schedule:
    sch = Schedule(func)
    blk, ob, pa = sch.get_sblock("acc"), sch.get_sblock("out"), sch.get_sblock("pack_a")
    sch.set_scope(blk, 0, "local")
    r, j, ni, kb, rk = sch.get_loops(blk)
    ro, ri = sch.split(r, [None, tile.mr])
    vo, vi = sch.split(ni, [None, tile.lanes])
    intrin = _intrin_name(spec)
    if intrin is None:
        sch.reorder(j, ro, kb, rk, ri, vo, vi)
    else:
        sch.reorder(j, ro, kb, ri, vo, vi, rk)
    sch.reverse_compute_at(ob, ro)
    if parallel:
        sch.parallel(sch.fuse(j, ro))
    sch.unroll(ri)
    sch.unroll(vo)
    if intrin is None:
        sch.vectorize(vi)
    init = sch.decompose_reduction(blk, kb)
    sch.vectorize(sch.get_loops(init)[-1])
    if intrin is not None:
        sch.tensorize(vi, intrin)
    # the write-back: each tile row's columns in vectors when the block is whole
    if whole_blocks:
        oloops = sch.get_loops(ob)
        wvo, wvi = sch.split(oloops[-1], [None, tile.lanes])
        sch.vectorize(wvi)
        sch.unroll(wvo)
    pr, _, _ = sch.get_loops(pa)
    if parallel:
        sch.parallel(pr)
    return sch

"""Quantised 2-D convolution (uint8/int8 activations x int8 weights, int32
accumulation) with the requantisation to uint8/int8 in the same kernel.

The layout follows the fp32 template (conv2d.py): weights packed at compile
time, [G, O/OB, C/G/KG, KH, KW, OB, KG] (zero-padded), where KG is how many
input channels one instruction reduces per output lane (4 for vpdpbusd and
sdot, 2 for pmaddwd on int16, 1 for plain widening multiplies). The kernel
copies x (NCHW, as the model has it) into a padded [N, HP, C/KG, WP, KG]
buffer, doing the activation shift an instruction needs there, then a
register tile of XT output pixels x OB output channels accumulates in int32,
one dot-product instruction per (pixel, KG channels, OB/lanes vectors),
reducing over (C/KG, KH, KW). Each finished tile goes through the epilogue
(kernels/epilogue.py: + int32 bias, * mult in float32, then whatever float
work the chain fused: bias, activation, affine; and the quantisation, round
half to even, + zero point, clamp) vectorised over channels into a per-row
buffer, and the row leaves for the NCHW output (adding a residual there),
or straight into NCHW[b]c blocks (layout.py) when the next kernels read
blocks: then a blocked input is read in place or through a plain padded
copy of its blocks, since a pixel's KG channels are already adjacent.

Exactness: every path computes the exact integer sum. vpdpbusd and sdot do
not saturate; AVX2 and AVX-512 without VNNI use pmaddwd on int16 (both
operands widened at copy / pack time) instead of pmaddubsw, whose int16
pair sums saturate (255 * 127 * 2 > 32767): onnxruntime accepts that or
restricts weights to 7 bits; here results are bit-exact for any weights at
3/4 of pmaddubsw's instruction throughput.

Zero points: padding is filled with the activation zero point (real 0), and
-x_zp * sum(w[o]) is folded into the bias at compile time, as is the
constant an activation shift adds (vpdpbusd wants unsigned activations:
int8 x is stored as x ^ 0x80 = x + 128; sdot wants signed ones: uint8 x is
stored as x - 128).

Measured on Zen 4, one thread, against onnxruntime 1.32's QLinearConv (bit-
identical outputs): 3x3 64->64 at 56x56 411 vs 403 GOP/s, 1x1 256->64 at
56x56 336 vs 330, 3x3 512->512 at 7x7 417 vs 408, the 7x7/2 3->64 stem at
224x224 210 vs 169 (edgec's fp32 template: 59-82 GFLOP/s in the same run).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import numpy as np
from tvm import te, tirx
from tvm.s_tir import Schedule, ScheduleError, TensorIntrin
from tvm.script import tirx as T

from .conv2d import ROWS_OUTER_MAX_WEIGHT_BYTES, ConvShape, blocked_shape, cdiv, output_shape
from .epilogue import Epilogue, EpilogueTensors, QuantOut
from .generic import MIN_PARALLEL_FLOPS, Kernel


@dataclass(frozen=True)
class Requant:
    """int32 accumulator -> quantised output: q = clamp(nearbyint(acc * mult[o]) + zp, lo, hi),
    onnxruntime's QLinearConv arithmetic (one float32 multiplier per channel)."""

    out_dtype: str  # "uint8" or "int8"
    zero_point: int
    lo: int  # clamp bounds in the quantised domain (a fused ReLU is lo = zero_point)
    hi: int

    def epilogue(self, mult: np.ndarray) -> Epilogue:
        """The epilogue that computes it, with ``mult`` [O] = x_scale * w_scale / y_scale."""
        return Epilogue(mult=np.asarray(mult, np.float32), ops=["requant"],
                        out_q=QuantOut(None, self.zero_point, self.out_dtype, self.lo, self.hi))


@dataclass(frozen=True)
class Int8Isa:
    """How one instruction set multiplies: ``lanes`` int32 accumulators per
    vector, ``kg`` channels reduced per lane, the dtypes the input copy and
    the packed weights are stored in, and the tensor intrinsic (None: plain
    TIR that LLVM vectorises)."""

    name: str
    lanes: int
    kg: int
    registers: int
    x_store: str  # "uint8", "int8" or "int16"
    w_store: str  # "int8" or "int16"
    intrin: str | None

    def shift(self, x_dtype: str) -> int:
        """What the input copy adds to x so it is of the instruction's signedness."""
        if self.x_store == "uint8" and x_dtype == "int8":
            return 128
        if self.x_store == "int8" and x_dtype == "uint8":
            return -128
        return 0

    @property
    def accumulators(self) -> int:
        """Accumulator vectors a tile may use: the rest hold weight vectors, the
        broadcast input and pmaddwd's products. Measured on Zen 4 (VNNI, 3x3
        64->64 at 56x56, one thread): 16 accumulators 417-420 GOP/s (32x8,
        64x4), 24 (32x12) 385, 12 (48x4) 285; as for fp32 tiles. AVX2's 16
        registers (pmaddwd, run on Zen 4): 8 accumulators 160-165 GOP/s (8x8,
        16x4), 9 131, 14 (spilling) 130."""
        return 16 if self.registers >= 32 else 8


def _dot_intrin(name: str, lanes: int, kg: int, a_dtype: str, b_dtype: str, impl_kind: str):
    """Register C[lanes] += A[kg] . B[lanes, kg] (int32) implemented by one
    instruction: ``impl_kind`` "vpdpbusd512", "vpdpbusd256", "pmaddwd512",
    "pmaddwd256" or "sdot". The broadcast input is the kg-element group read
    as one 32-bit value."""
    if TensorIntrin.get(name, allow_missing=True) is not None:
        return name
    width = lanes * kg

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (kg,), a_dtype, offset_factor=1)
        B = T.match_buffer(b, (lanes, kg), b_dtype, offset_factor=1)
        C = T.match_buffer(c, (lanes,), "int32", offset_factor=1, scope="local")
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:kg], B[0:lanes, 0:kg])
            T.writes(C[0:lanes])
            for i, k in T.grid(lanes, kg):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    i32v = f"int32x{lanes}"

    if impl_kind.startswith("vpdpbusd"):
        llvm = f"llvm.x86.avx512.vpdpbusd.{lanes * 32}"

        @T.prim_func(s_tir=True)
        def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
            A = T.match_buffer(a, (kg,), a_dtype, offset_factor=1)
            B = T.match_buffer(b, (lanes, kg), b_dtype, offset_factor=1)
            C = T.match_buffer(c, (lanes,), "int32", offset_factor=1, scope="local")
            with T.sblock("root"):
                T.reads(C[0:lanes], A[0:kg], B[0:lanes, 0:kg])
                T.writes(C[0:lanes])
                a32 = T.reinterpret(A.vload([0], f"{a_dtype}x{kg}"), dtype="int32")
                C[T.ramp(T.int32(0), 1, lanes)] = T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id(llvm), C.vload([0], i32v),
                    T.reinterpret(T.broadcast(a32, lanes), dtype=f"uint8x{width}"),
                    B.vload([0, 0], f"int8x{width}"), dtype=i32v)
    elif impl_kind.startswith("pmaddwd"):
        llvm = "llvm.x86.avx512.pmaddw.d.512" if lanes == 16 else "llvm.x86.avx2.pmadd.wd"

        @T.prim_func(s_tir=True)
        def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
            A = T.match_buffer(a, (kg,), a_dtype, offset_factor=1)
            B = T.match_buffer(b, (lanes, kg), b_dtype, offset_factor=1)
            C = T.match_buffer(c, (lanes,), "int32", offset_factor=1, scope="local")
            with T.sblock("root"):
                T.reads(C[0:lanes], A[0:kg], B[0:lanes, 0:kg])
                T.writes(C[0:lanes])
                a32 = T.reinterpret(A.vload([0], f"int16x{kg}"), dtype="int32")
                C[T.ramp(T.int32(0), 1, lanes)] = C.vload([0], i32v) + T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id(llvm),
                    T.reinterpret(T.broadcast(a32, lanes), dtype=f"int16x{width}"),
                    B.vload([0, 0], f"int16x{width}"), dtype=i32v)
    elif impl_kind == "sdot":
        llvm = "llvm.aarch64.neon.sdot.v4i32.v16i8"

        @T.prim_func(s_tir=True)
        def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
            A = T.match_buffer(a, (kg,), a_dtype, offset_factor=1)
            B = T.match_buffer(b, (lanes, kg), b_dtype, offset_factor=1)
            C = T.match_buffer(c, (lanes,), "int32", offset_factor=1, scope="local")
            with T.sblock("root"):
                T.reads(C[0:lanes], A[0:kg], B[0:lanes, 0:kg])
                T.writes(C[0:lanes])
                a32 = T.reinterpret(A.vload([0], f"int8x{kg}"), dtype="int32")
                C[T.ramp(T.int32(0), 1, lanes)] = T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id(llvm), C.vload([0], i32v),
                    T.reinterpret(T.broadcast(a32, lanes), dtype=f"int8x{width}"),
                    B.vload([0, 0], f"int8x{width}"), dtype=i32v)
    else:
        raise ValueError(impl_kind)
    TensorIntrin.register(name, desc, impl)
    return name


ISAS = {
    "avx512-vnni": Int8Isa("avx512-vnni", 16, 4, 32, "uint8", "int8", "vpdpbusd512"),
    "avx-vnni": Int8Isa("avx-vnni", 8, 4, 16, "uint8", "int8", "vpdpbusd256"),
    "avx512": Int8Isa("avx512", 16, 2, 32, "int16", "int16", "pmaddwd512"),
    "avx2": Int8Isa("avx2", 8, 2, 16, "int16", "int16", "pmaddwd256"),
    "neon-dot": Int8Isa("neon-dot", 4, 4, 32, "int8", "int8", "sdot"),
    # no dot product: int16 x int16 -> int32 multiply-adds over channel vectors
    # (LLVM emits smlal / vpmulld+vpaddd)
    "neon": Int8Isa("neon", 4, 1, 32, "int16", "int16", None),
    "generic": Int8Isa("generic", 4, 1, 16, "int16", "int16", None),
}


def _intrin_name(isa: Int8Isa, lanes: int | None = None) -> str | None:
    """The tensor intrinsic for ``isa`` at ``lanes`` int32 lanes (default: the
    ISA's; half of them is the same instruction on half-width registers)."""
    if isa.intrin is None:
        return None
    lanes = lanes or isa.lanes
    kind = isa.intrin
    if kind.startswith(("vpdpbusd", "pmaddwd")):
        kind = kind[:-3] + str(lanes * 32)
    return _dot_intrin(f"edgec_dot_{kind}_{lanes}x{isa.kg}", lanes, isa.kg,
                       isa.x_store, isa.w_store, kind)


def int8_isa(arch: str, features: set[str]) -> str:
    """The integer dot product a target has, from LLVM's feature names."""
    if arch == "x86_64":
        if "avx512vnni" in features and "avx512bw" in features:
            return "avx512-vnni"
        if "avxvnni" in features:
            return "avx-vnni"
        if "avx512bw" in features:
            return "avx512"
        if "avx2" in features:
            return "avx2"
        return "generic"
    if arch == "aarch64":
        return "neon-dot" if "dotprod" in features else "neon"
    return "generic"


@dataclass(frozen=True)
class Int8Tile:
    ob: int  # output channels per tile (a multiple of lanes)
    xt: int  # output pixels per tile along the width
    lanes: int  # int32 lanes per vector
    kg: int  # input channels per dot-product group


def is_depthwise(shape: ConvShape) -> bool:
    return shape.groups > 1 and (shape.c // shape.groups == 1 or shape.o // shape.groups == 1)


def choose_int8_tile(shape: ConvShape, isa: str, *, accumulators: int | None = None,
                     half_width: bool = False) -> Int8Tile | None:
    """The tile with the least padded work and the fewest loads per dot
    product, with 3/4 to all of the ISA's accumulator registers. None for
    depthwise / channel-wise convs (one channel per group: no channel
    reduction for a dot product, and 1-channel blocks would pad 16x): those
    stay on the float path. ``half_width``: vectors of half the lanes may be
    chosen too, where they cost no throughput (Zen 4 runs 512-bit ops as two
    256-bit halves) and pad less: 24 channels as 3 x 8 lanes instead of 32."""
    if is_depthwise(shape):
        return None
    spec = ISAS[isa]
    og = shape.o // shape.groups
    _, ow = shape.out_hw
    max_accs = accumulators or spec.accumulators
    widths = [spec.lanes]
    if half_width and spec.intrin is not None and spec.intrin.endswith("512") \
            and og % spec.lanes and og % (spec.lanes // 2) == 0:
        widths.append(spec.lanes // 2)
    best, best_score = None, -1.0
    for lanes in widths:
        for vectors in (1, 2, 3, 4):
            ob = vectors * lanes
            if vectors > 1 and ob > cdiv(og, lanes) * lanes:
                break
            for xt in range(1, min(ow, max_accs // vectors) + 1):
                accs = vectors * xt
                useful = (og / (cdiv(og, ob) * ob)) * (ow / (cdiv(ow, xt) * xt))
                sat = max_accs * 3 // 4
                fill = min(accs, sat) / sat
                # per dot product: a weight vector serves xt pixels, a broadcast
                # input (folded into the instruction on x86) serves the vectors
                loads = 1 + 1.0 / xt + 0.25 / vectors
                score = useful * fill / loads
                if score > best_score + 1e-9:
                    best, best_score = Int8Tile(ob, xt, lanes, spec.kg), score
    return best


def prepare_conv_int8(w_q: np.ndarray, bias_q: np.ndarray | None, x_zero_point: int,
                      x_dtype: str, groups: int, isa: str, tile: Int8Tile
                      ) -> tuple[np.ndarray, np.ndarray]:
    """OIHW int8 weights (zero point 0) -> ([G, O/G/OB, C/G/KG, KH, KW, OB, KG]
    in the ISA's weight dtype, zero-padded; int32 bias with the input zero
    point and shift folded in: bias - (x_zp + shift) * sum(w[o]), laid out
    by pad_channels)."""
    spec = ISAS[isa]
    o, cg, kh, kw = w_q.shape
    og = o // groups
    ob, kg = tile.ob, tile.kg
    obg, cbg = cdiv(og, ob), cdiv(cg, kg)
    w = np.zeros((groups, obg * ob, cbg * kg, kh, kw), np.int32)
    w[:, :og, :cg] = w_q.astype(np.int32).reshape(groups, og, cg, kh, kw)
    packed = w.reshape(groups, obg, ob, cbg, kg, kh, kw).transpose(0, 1, 3, 5, 6, 2, 4)
    packed = np.ascontiguousarray(packed.astype(spec.w_store))
    bias = np.zeros(o, np.int64) if bias_q is None else bias_q.astype(np.int64)
    bias = bias - (x_zero_point + spec.shift(x_dtype)) * \
        w_q.astype(np.int64).reshape(o, -1).sum(axis=1)
    return packed, pad_channels(bias.astype(np.int32), groups, tile)


def pad_channels(values: np.ndarray, groups: int, tile: Int8Tile) -> np.ndarray:
    """Per-output-channel values [O, ...] -> [G * O/G/OB * OB, ...]: each group's
    channels padded with zeros to whole tiles, the order the kernel's
    per-channel inputs (bias, epilogue arrays) are indexed in."""
    o = values.shape[0]
    og = o // groups
    obg = cdiv(og, tile.ob)
    out = np.zeros((groups, obg * tile.ob, *values.shape[1:]), values.dtype)
    out[:, :og] = values.reshape(groups, og, *values.shape[1:])
    return out.reshape(groups * obg * tile.ob, *values.shape[1:])


def padded_epilogue(epi: Epilogue, groups: int, tile: Int8Tile) -> Epilogue:
    """``epi`` with its per-channel arrays as pad_channels lays them out."""
    def pad(a):
        return None if a is None else pad_channels(np.asarray(a, np.float32), groups, tile)

    return replace(epi, pre_bias=pad(epi.pre_bias), mult=pad(epi.mult), bias=pad(epi.bias),
                   post=pad(epi.post))


def can_write_blocked_int8(shape: ConvShape, tile: Int8Tile, block: int) -> bool:
    """Whether the kernel can write NCHW[block]c: ungrouped, channel tiles of
    whole blocks that cover the channels exactly."""
    return shape.groups == 1 and tile.ob % block == 0 and shape.o % tile.ob == 0 \
        and block % tile.lanes == 0


def can_read_blocked_int8(shape: ConvShape, tile: Int8Tile, block: int) -> bool:
    """Whether the kernel can read x as NCHW[block]c (whole KG groups in a block)."""
    return shape.groups == 1 and shape.c % block == 0 and block % tile.kg == 0


def conv2d_int8_kernel(shape: ConvShape, tile: Int8Tile, epi: Epilogue, isa: str,
                       x_dtype: str, x_zero_point: int, *, in_block: int = 0,
                       out_block: int = 0, shuffle: int = 0) -> Kernel:
    """(x [N, C, H, W] x_dtype, packed weights, bias int32, then the epilogue's
    inputs: per-channel arrays laid out by padded_epilogue, a residual of the
    output's shape) -> y [N, O, OH, OW] in the epilogue's output dtype
    ([N, G, O/G, OH, OW] when grouped: the same bytes, as conv2d.output_shape).
    The int32 bias and the per-channel arrays are indexed as pad_channels lays
    them out. ``x_zero_point`` is what the padding is filled with (it must
    match the one prepare_conv_int8 folded). ``in_block`` / ``out_block``: x /
    y and the residual in NCHW[b]c (layout.py). ``shuffle`` = k: y pixel-shuffled,
    [N, O/k^2, H, k, W, k], as conv2d.conv2d_kernel writes a ConvTranspose whose
    kernel equals its stride (channel (o, i, j) is pixel (i, j) of channel o)."""
    spec = ISAS[isa]
    s = shape
    g = s.groups
    cg, og = s.c // g, s.o // g
    oh, ow = s.out_hw
    (sh, sw), (dh, dw) = s.stride, s.dilation
    top, left, _, _ = s.pad
    ob, xt, kg = tile.ob, tile.xt, tile.kg
    obg, cbg, owp = cdiv(og, ob), cdiv(cg, kg), cdiv(ow, xt) * xt
    hp = (oh - 1) * sh + (s.kh - 1) * dh + 1
    wp = (owp - 1) * sw + (s.kw - 1) * dw + 1
    i32 = "int32"
    delta = spec.shift(x_dtype)
    if in_block and not can_read_blocked_int8(s, tile, in_block):
        raise ValueError(f"{s} with {tile} cannot read {in_block}-channel blocks")
    if out_block and not can_write_blocked_int8(s, tile, out_block):
        raise ValueError(f"{s} with {tile} cannot write {out_block}-channel blocks")

    x = te.placeholder(blocked_shape(s.n, s.c, s.h, s.w, in_block) if in_block
                       else (s.n, s.c, s.h, s.w), x_dtype, name="x")
    wpk = te.placeholder((g, obg, cbg, s.kh, s.kw, ob, kg), spec.w_store, name="w_packed")
    bias = te.placeholder((g * obg * ob,), i32, name="bias")

    def stored(v):
        return tirx.Cast(spec.x_store, tirx.Cast(i32, v) + delta) if delta else \
            tirx.Cast(spec.x_store, v)

    fill = tirx.const(x_zero_point + delta, spec.x_store)

    def in_map(y, col):
        return tirx.all(y >= top, y < s.h + top, col >= left, col < s.w + left)

    if in_block:
        # [N, C/b, HP, WP, b]: the blocks as they are, padded (each pixel's KG
        # channels adjacent already); read in place when nothing is padded or
        # converted
        per_block = in_block // kg
        copy = bool(top or left or hp > s.h or wp > s.w or delta or
                    spec.x_store != x_dtype)
        if copy:
            xp = te.compute(
                (s.n, s.c // in_block, hp, wp, in_block),
                lambda n, cb, y, col, lane: tirx.if_then_else(
                    in_map(y, col), stored(x[n, cb, y - top, col - left, lane]), fill),
                name="pad")
        else:
            xp = x

        def x_group(n, y, rcb, col, k):
            return xp[n, rcb // per_block, y, col, (rcb % per_block) * kg + k]
    else:
        copy = True

        def pad_value(n, y, cb, col, k):
            gi, j = cb // cbg, (cb % cbg) * kg + k
            ok = in_map(y, col)
            if cg % kg:
                ok = tirx.all(ok, j < cg)
            return tirx.if_then_else(ok, stored(x[n, gi * cg + j, y - top, col - left]), fill)

        # [N, HP, C/KG, WP, KG]: the rows an output row reads are contiguous and
        # each pixel's KG channels are one 32-bit broadcast
        xp = te.compute((s.n, hp, g * cbg, wp, kg), pad_value, name="pad")

        def x_group(n, y, rcb, col, k):
            return xp[n, y, rcb, col, k]

    rcb = te.reduce_axis((0, cbg), "rcb")
    ry = te.reduce_axis((0, s.kh), "ry")
    rx = te.reduce_axis((0, s.kw), "rx")
    rk = te.reduce_axis((0, kg), "rk")
    acc = te.compute(
        (s.n, g, obg, oh, owp, ob),
        lambda n, gi, b, y, xx, oi: te.sum(
            tirx.Cast(i32, x_group(n, y * sh + ry * dh, gi * cbg + rcb, xx * sw + rx * dw, rk))
            * tirx.Cast(i32, wpk[gi, b, rcb, ry, rx, oi, rk]), axis=[rcb, ry, rx, rk]),
        name="acc")
    if shuffle and (out_block or g > 1):
        raise ValueError(f"{s}: a pixel shuffle needs an ungrouped conv with NCHW output")
    out_shape = output_shape(s, out_block=out_block, pixel_shuffle=shuffle)
    tail = EpilogueTensors(epi, g * obg * ob, out_shape)

    def channel(gi, b, oi):
        return (gi * obg + b) * ob + oi

    # the per-channel epilogue on whole tiles (padded pixels and channels too)
    rq = te.compute(
        (s.n, g, obg, oh, owp, ob),
        lambda n, gi, b, y, xx, oi: tail.apply_channel(
            tirx.Cast("float32", acc[n, gi, b, y, xx, oi] + bias[channel(gi, b, oi)]),
            channel(gi, b, oi)), name="rq")

    def out_value(*idx):
        if shuffle:
            n, o, y, i, xx, jj = idx
            gi, j = 0, (o * shuffle + i) * shuffle + jj
        elif out_block:
            n, blk, y, xx, lane = idx
            gi, j = 0, blk * out_block + lane
        elif g == 1:
            n, j, y, xx = idx
            gi = 0
        else:
            n, gi, j, y, xx = idx
        return tail.apply_tail(rq[n, gi, j // ob, y, xx, j % ob], idx)

    out = te.compute(out_shape, out_value, name="out")
    workload = te.create_prim_func([x, wpk, bias, *tail.inputs, out])
    parallel = s.flops >= MIN_PARALLEL_FLOPS
    w_bytes = np.dtype(spec.w_store).itemsize * g * obg * cbg * s.kh * s.kw * ob * kg
    rows_outer = w_bytes <= ROWS_OUTER_MAX_WEIGHT_BYTES
    sch = _schedule(workload, tile, spec, parallel, rows_outer, copy, in_block, out_block,
                    bool(shuffle))
    return Kernel(workload, sch, s.flops)


def _schedule(func, tile: Int8Tile, spec: Int8Isa, parallel: bool, rows_outer: bool,
              copy: bool, in_block: int, out_block: int, shuffle: bool = False) -> Schedule:
    sch = Schedule(func)
    acc, rq, out = sch.get_sblock("acc"), sch.get_sblock("rq"), sch.get_sblock("out")
    sch.set_scope(acc, 0, "local")  # the register tile
    if not shuffle:
        sch.set_scope(rq, 0, "local")  # one output row of tiles, through the epilogue
    n, gi, b, y, xx, oi, rcb, ry, rx, rk = sch.get_loops(acc)
    xo, xi = sch.split(xx, [None, tile.xt])
    vo, vi = sch.split(oi, [None, tile.lanes])
    order = (n, gi, y, b) if rows_outer else (n, gi, b, y)
    intrin = _intrin_name(spec, tile.lanes)
    if intrin is None:  # kg = 1: the multiply-adds vectorised over channels
        sch.reorder(*order, xo, rcb, ry, rx, rk, xi, vo, vi)
    else:  # (lanes, kg) innermost: what the instruction computes
        sch.reorder(*order, xo, rcb, ry, rx, xi, vo, vi, rk)
    rows = sch.fuse(*order)
    sch.reverse_compute_at(rq, xo)
    if out_block:  # each pixel's channel block leaves as one vector
        sch.reverse_compute_at(out, xo)
        sch.vectorize(sch.get_loops(out)[-1])
    elif shuffle:
        # a pass of its own: TVM cannot place it under the rows (its channel index
        # o * k^2 + i * k + j defeats the region analysis); rq is a whole buffer
        on, oo, oy = sch.get_loops(out)[:3]
        fused = sch.fuse(on, oo, oy)
        if parallel:
            sch.parallel(fused)
    else:
        sch.reverse_compute_at(out, rows)
    if parallel:
        sch.parallel(rows)
    sch.unroll(xi)
    sch.unroll(vo)
    if intrin is None:
        sch.vectorize(vi)
    init = sch.decompose_reduction(acc, rcb)
    iloops = sch.get_loops(init)
    sch.vectorize(iloops[-1])
    if intrin is not None:
        sch.tensorize(vi, intrin)
    # requant: channel vectors of each finished tile
    rql = sch.get_loops(rq)
    rvo, rvi = sch.split(rql[-1], [None, tile.lanes])
    sch.vectorize(rvi)
    sch.unroll(rvo)
    sch.unroll(rql[-2])
    if copy:
        _schedule_pad(sch, parallel, in_block)
    return sch


def _schedule_pad(sch: Schedule, parallel: bool, in_block: int = 0) -> None:
    """The input copy: threads over (n, row); split into a fill and a copy at
    the channel-block loop, so the copy's columns run over the map only and
    LLVM vectorises its KG interleaved planes (shuffles). Split at the
    innermost loop (conv2d.decompose_pad) the column test stays a branch per
    pixel and the copy went scalar (vpinsrb per byte): 256->64 1x1 at 56x56
    spent more time there than in the dot products."""
    block = sch.get_sblock("pad")
    if in_block:  # [N, C/b, HP, WP, b]: rows of blocks, split at the row
        n, cb, y, col, _ = sch.get_loops(block)
        fused = sch.fuse(n, cb, y)
        if parallel:
            sch.parallel(fused)
        with contextlib.suppress(ScheduleError):
            sch.decompose_padding(block, col)
        return
    n, y, cb, _, _ = sch.get_loops(block)
    fused = sch.fuse(n, y)
    if parallel:
        sch.parallel(fused)
    with contextlib.suppress(ScheduleError):
        sch.decompose_padding(block, cb)

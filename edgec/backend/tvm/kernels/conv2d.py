"""Direct 2-D convolution with weights packed at compile time (regular and grouped).

Activations stay NCHW in memory; the kernel computes a register tile of XT
output pixels x OB output channels (OB a multiple of the vector width),
broadcasting one input value against one packed weight vector per FMA, so
the accumulators live in registers and the lane dimension is the packed
weight's innermost one (OIHW -> [G, O/OB, C/G, KH, KW, OB], zero-padded).
The tile is written back to NCHW through the fused epilogue. Output
channels and width are padded to the tile inside the kernel only, so any
shape works without predicates in the inner loop.

Short reductions (a 3-channel stem, small 1x1s) do few FMAs per output, and
there transposing that tile into NCHW costs more than the FMAs: pixel tiles
swap the roles (a vector of XT neighbouring output pixels per channel, OB
weights broadcast), so finished tiles are stored as they are.
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
#: reductions up to this long (input channels per group x kernel taps) use pixel
#: tiles: with so few FMAs per output, transposing channel-vector tiles into
#: NCHW costs more than the FMAs (measured on Zen 4: 16->64 1x1 at 55x55 88 ->
#: 65 us, the 3-channel 3x3 stem 421 -> 331 us, 64->256 1x1 + residual at 56x56
#: 906 -> 689 us; at 144, a 16-channel 3x3, the two were even)
PIXEL_MAX_K = 64
#: output rows go outermost (channel blocks inside) while the packed weights
#: are at most this big: a thread then cycles all of them once per row, which
#: pays while they stay in L2 (256 KB: the smaller L2s of phone cores too).
#: Measured on Zen 4: 64->64 1x1 at 56x56 192 -> 173 us, 16->64 3x3 at 55x55
#: 360 -> 305 us; with 4 MB of weights (ResNet-50's 512->2048 at 7x7) rows
#: outermost ran 1.9 -> 3.4 ms, so larger weights keep blocks outermost.
ROWS_OUTER_MAX_WEIGHT_BYTES = 256 * 1024


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


def _in_map(shape: ConvShape, y, col):
    """Padded coordinates (y, col) fall on the map, not its padding."""
    top, left = shape.pad[0], shape.pad[1]
    return tirx.all(y >= top, y < shape.h + top, col >= left, col < shape.w + left)


def read_padded(x_at, shape: ConvShape, n, c, y, col, fill: float | None = 0.0):
    """x[n, c, y - top, col - left] at padded coordinates (y, col), ``fill`` in
    the padding (None: the lowest float, a max pool's): what every kernel's
    padded input copy holds."""
    top, left = shape.pad[0], shape.pad[1]
    pad = tirx.min_value("float32") if fill is None else tirx.const(fill, "float32")
    return tirx.if_then_else(_in_map(shape, y, col), x_at(n, c, y - top, col - left), pad)


def read_clamped(x_at, shape: ConvShape, n, c, y, col, fill: float = 0.0):
    """read_padded as a select between a read clamped into the map and zero:
    both sides are always evaluated, so a copy made of it vectorises. For
    the depthwise kernel's copy that splits rows into a stride's phases,
    which decompose_padding cannot split into fill and copy: there the
    if-then-else per element stays scalar (ShuffleNet's 112-channel stride-2
    depthwise conv: 124 -> 92 us, det's 32-channel one at 320x320 1599 ->
    1334 us; the conv kernel's phase copy measured no faster this way)."""
    top, left = shape.pad[0], shape.pad[1]
    iy = tirx.max(tirx.min(y - top, shape.h - 1), 0)
    ix = tirx.max(tirx.min(col - left, shape.w - 1), 0)
    return tirx.Select(_in_map(shape, y, col), x_at(n, c, iy, ix), tirx.const(fill, "float32"))


@dataclass(frozen=True)
class ConvTile:
    ob: int  # output channels per tile (a multiple of the lanes unless ``pixels``)
    xt: int  # output pixels per tile along the width (a multiple of the lanes if ``pixels``)
    lanes: int
    pixels: bool = False  # vectors run along the output row, channels are broadcast


def choose_tile(shape: ConvShape, unit: VectorUnit, *, pixels: bool = True) -> ConvTile | None:
    """The tile with the least padded work and the fewest loads per FMA, among
    those with ``saturating_accumulators`` to ``preferred_accumulators``
    accumulators (more spill; fewer starve the FMA units). Measured on Zen 4:
    widths 7 and 14 ran 12-25% faster as 32x7 tiles (14 accumulators) than as
    32x8 tiles with a padded pixel.

    Blocks never straddle groups: a grouped conv pads each group's channels.
    """
    og = shape.o // shape.groups
    _, ow = shape.out_hw
    if pixels and (shape.c // shape.groups) * shape.kh * shape.kw <= PIXEL_MAX_K:
        return _pixel_tile(og, ow, unit)
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


def _pixel_tile(og: int, ow: int, unit: VectorUnit) -> ConvTile:
    """ob channels x xv vectors of pixels: the least padded work with enough
    accumulators, then the longest run of pixels (measured: 2 x 56 beat
    4 x 32 and 8 x 16 at widths 55 and 56). Vectors as wide as the FMA
    datapath, so narrow rows waste less."""
    lanes = unit.fma_lanes
    sat = unit.saturating_accumulators
    best, best_key = None, None
    for xv in range(1, min(cdiv(ow, lanes), 8) + 1):
        xt = xv * lanes
        for ob in range(1, unit.preferred_accumulators // xv + 1):
            useful = (og / (cdiv(og, ob) * ob)) * (ow / (cdiv(ow, xt) * xt))
            key = (round(useful * min(ob * xv, sat) / sat, 6), xv, ob)
            if best_key is None or key > best_key:
                best, best_key = ConvTile(ob, xt, lanes, pixels=True), key
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


def output_shape(shape: ConvShape, shuffle: bool = False, *, out_block: int = 0,
                 pixel_shuffle: int = 0) -> tuple[int, ...]:
    """The kernel's output: NCHW, or [N, G, O/G, H, W] for a grouped conv (the
    same bytes; dispatch reshapes), so each group's channels index simply;
    [N, O/G, G, H, W] when a channel shuffle (ShuffleNet's) is folded in;
    NCHW[out_block]c blocks; [N, O/k^2, H, k, W, k] when the output is written
    pixel-shuffled by k = ``pixel_shuffle`` (a ConvTranspose's)."""
    oh, ow = shape.out_hw
    if pixel_shuffle:
        k = pixel_shuffle
        return (shape.n, shape.o // (k * k), oh, k, ow, k)
    if out_block:
        return blocked_shape(shape.n, shape.o, oh, ow, out_block)
    if shape.groups == 1:
        return (shape.n, shape.o, oh, ow)
    if shuffle:
        return (shape.n, shape.o // shape.groups, shape.groups, oh, ow)
    return (shape.n, shape.groups, shape.o // shape.groups, oh, ow)


def blocked_shape(n: int, c: int, h: int, w: int, cb: int) -> tuple[int, ...]:
    """NCHW[cb]c: channel blocks of ``cb`` innermost (``cb`` divides ``c``)."""
    return (n, c // cb, h, w, cb)


def can_write_blocked(shape: ConvShape, tile: ConvTile, cb: int) -> bool:
    """Whether the kernel can write NCHW[cb]c: an ungrouped conv whose channel
    tiles are whole blocks and cover the channels exactly (pixel tiles would
    need the transpose back)."""
    return (shape.groups == 1 and not tile.pixels and tile.lanes == cb
            and tile.ob % cb == 0 and shape.o % tile.ob == 0)


def can_pixel_shuffle(shape: ConvShape, tile: ConvTile, k: int) -> bool:
    """Whether the kernel can write its output pixel-shuffled by ``k``: an
    ungrouped conv on pixel tiles whose blocks hold whole k x k groups of channels."""
    return shape.groups == 1 and tile.pixels and tile.ob % (k * k) == 0 \
        and shape.o % tile.ob == 0


def conv2d_kernel(shape: ConvShape, tile: ConvTile, epi: Epilogue, *, in_block: int = 0,
                  out_block: int = 0, shuffle: int = 0) -> Kernel:
    """(x, packed weights[, bias][, residual]) -> y. ``in_block`` / ``out_block``:
    x / y (and the residual) in NCHW[b]c instead of NCHW (see layout.py).
    ``shuffle`` = k: y pixel-shuffled, [N, O/k^2, H, k, W, k] (the bytes of
    [N, O/k^2, H*k, W*k]; channel (o, i, j) of the conv is pixel (i, j) of
    channel o), so a ConvTranspose with kernel = stride = k is this 1x1 conv
    with no transpose pass after it."""
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

    if in_block:
        xb = te.placeholder(blocked_shape(s.n, s.c, s.h, s.w, in_block), f32, name="x")

        class _Planes:  # x[n, c, y, x] read from the blocked layout
            def __getitem__(self, idx):
                n, c, y, xx = idx
                return xb[n, c // in_block, y, xx, c % in_block]
        x = _Planes()
    else:
        xb = x = te.placeholder((s.n, s.c, s.h, s.w), f32, name="x")
    wpk = te.placeholder((g, obg, cg, s.kh, s.kw, ob), f32, name="w_packed")
    inputs = [xb, wpk]
    # Rows of all channels side by side ([N, H, C, W]): the rows one output row
    # reads are contiguous, instead of C planes whose power-of-two-ish strides
    # alias in the L1 cache. One pass over the input, with the padding.
    # Needless when nothing is padded and planes are small (no aliasing): then x
    # is read in place through the same [N, H, C, W] view.
    relayout = bool(top or left or hp > s.h or wp > s.w or s.h * s.w * 4 >= RELAYOUT_BYTES)
    # Pixel tiles load a vector of neighbouring output pixels' inputs, which a
    # stride s spreads s apart: their copy splits each row into its s phases
    # ([N, H, C, s, W/s]) so those inputs are contiguous again. Channel tiles
    # keep one phase: [N, H, C, 1, W].
    phases = sw if tile.pixels else 1
    relayout = relayout or phases > 1 or (tile.pixels and bool(in_block))
    if relayout:
        xp = te.compute(
            (s.n, hp, s.c, phases, (wp - 1) // phases + 1),
            lambda n, y, c, ph, xh: read_padded(lambda *i: x[i], s, n, c, y, xh * phases + ph),
            name="pad")

        def xin(n, y, c, xx):  # padded-input column xx of row y
            return xp[n, y, c, xx % phases, xx // phases] if phases > 1 else xp[n, y, c, 0, xx]
    else:
        def xin(n, y, c, xx):  # the same [N, H, C, W] view, read in place
            return x[n, c, y, xx]
    rc = te.reduce_axis((0, cg), "rc")
    ry = te.reduce_axis((0, s.kh), "ry")
    rx = te.reduce_axis((0, s.kw), "rx")

    def term(n, gi, b, y, xx, oi):
        return te.sum(xin(n, y * sh + ry * dh, gi * cg + rc, xx * sw + rx * dw)
                      * wpk[gi, b, rc, ry, rx, oi], axis=[rc, ry, rx])

    if out_block and not can_write_blocked(s, tile, out_block):
        raise ValueError(f"{s} with {tile} cannot write {out_block}-channel blocks")
    if shuffle and (out_block or not can_pixel_shuffle(s, tile, shuffle)):
        raise ValueError(f"{s} with {tile} cannot write a pixel shuffle by {shuffle}")
    out_shape = output_shape(s, epi.shuffle, out_block=out_block, pixel_shuffle=shuffle)
    tail = EpilogueTensors(epi, s.o, out_shape)
    inputs += tail.inputs

    def channel_of(idx):
        if shuffle:
            n, o, y, i, xx, j = idx
            return n, 0, (o * shuffle + i) * shuffle + j, y, xx
        if out_block:
            n, blk, y, xx, lane = idx
            return n, 0, blk * out_block + lane, y, xx
        if g == 1:
            n, o, y, xx = idx
            return n, 0, o, y, xx
        if epi.shuffle:
            n, j, gi, y, xx = idx
        else:
            n, gi, j, y, xx = idx
        return n, gi, j, y, xx

    if tile.pixels:
        # block b of group gi: [ob channels, owp pixels] per output row, pixels innermost
        acc = te.compute((s.n, g, obg, oh, ob, owp),
                         lambda n, gi, b, y, oi, xx: term(n, gi, b, y, xx, oi), name="acc")
        # the per-channel epilogue on whole tiles (padded pixels too: no predicate)
        rowbuf = te.compute(
            (s.n, g, obg, oh, ob, owp),
            lambda n, gi, b, y, oi, xx: tail.apply_channel(acc[n, gi, b, y, oi, xx],
                                                           gi * og + b * ob + oi),
            name="row")

        def out_value(*idx):
            n, gi, j, y, xx = channel_of(idx)
            return tail.apply_tail(rowbuf[n, gi, j // ob, y, j % ob, xx], idx)
    else:
        # block b of group gi covers that group's output channels [b*ob, b*ob+ob)
        acc = te.compute((s.n, g, obg, oh, owp, ob), term, name="acc")

        def out_value(*idx):
            n, gi, j, y, xx = channel_of(idx)
            return tail.apply(acc[n, gi, j // ob, y, xx, j % ob], gi * og + j, idx)

    out = te.compute(out_shape, out_value, name="out")
    workload = te.create_prim_func([*inputs, out])
    parallel = s.flops >= MIN_PARALLEL_FLOPS
    rows_outer = 4 * g * obg * cg * s.kh * s.kw * ob <= ROWS_OUTER_MAX_WEIGHT_BYTES
    if tile.pixels:
        sch = _schedule_pixels(workload, tile, parallel, relayout, rows_outer)
    else:
        sch = _schedule(workload, tile, parallel, relayout, rows_outer, bool(out_block))
    return Kernel(workload, sch, s.flops)


def _row_order(n, gi, b, y, rows_outer: bool) -> tuple:
    """The parallel loop's order: (n, g, y, b) shares each input row among the
    channel blocks a thread runs back to back (see ROWS_OUTER_MAX_WEIGHT_BYTES);
    (n, g, b, y) keeps one block's weights while it walks the rows."""
    return (n, gi, y, b) if rows_outer else (n, gi, b, y)


def _schedule(func, tile: ConvTile, parallel: bool, relayout: bool,
              rows_outer: bool, blocked_out: bool = False) -> Schedule:
    sch = Schedule(func)
    acc, out = sch.get_sblock("acc"), sch.get_sblock("out")
    sch.set_scope(acc, 0, "local")  # the register tile; compacted to [xt, ob] when lowered
    n, gi, b, y, xx, oi, rc, ry, rx = sch.get_loops(acc)
    xo, xi = sch.split(xx, [None, tile.xt])
    order = _row_order(n, gi, b, y, rows_outer)
    sch.reorder(*order, xo, rc, ry, rx, xi, oi)
    if blocked_out:
        # NCHW[b]c output: each pixel's channel block is one vector, stored as is
        sch.reverse_compute_at(out, xo)
        rows = sch.fuse(*order)
        sch.vectorize(sch.get_loops(out)[-1])
    else:
        # The epilogue writes each register tile into a row buffer; the row goes
        # out to the NCHW planes whole (a tile touches ob planes: written a few
        # floats at a time they thrash the cache when planes are large).
        row = sch.cache_write(out, 0, "local")
        sch.reverse_compute_at(out, xo)
        rows = sch.fuse(*order)
        sch.reverse_compute_at(row, rows)
    _register_tile(sch, acc, rows, unrolled=xi, vectors=oi, reduction=rc, tile=tile,
                   parallel=parallel, relayout=relayout)
    return sch


def _register_tile(sch: Schedule, acc, rows, *, unrolled, vectors, reduction, tile: ConvTile,
                   parallel: bool, relayout: bool) -> None:
    """What both tile kinds end with: threads over the rows, the tile's scalar
    axis unrolled and its vector axis split into unrolled vectors of lanes,
    the accumulators' zeroing taken out of the reduction, the input copy
    split into fill and copy."""
    if parallel:
        sch.parallel(rows)
    sch.unroll(unrolled)
    vo, vi = sch.split(vectors, [None, tile.lanes])
    sch.unroll(vo)
    sch.vectorize(vi)
    sch.decompose_reduction(acc, reduction)
    if relayout:
        decompose_pad(sch, "pad", outer=2, parallel=parallel)


def _schedule_pixels(func, tile: ConvTile, parallel: bool, relayout: bool,
                     rows_outer: bool) -> Schedule:
    """Pixel tiles: ob broadcast weights x xt/lanes pixel vectors of accumulators.
    Each finished tile goes through the per-channel epilogue into a row buffer
    with plain vector stores (the accumulators are already in NCHW order:
    no transpose), and the row leaves for the output planes in contiguous runs."""
    sch = Schedule(func)
    acc, row, out = sch.get_sblock("acc"), sch.get_sblock("row"), sch.get_sblock("out")
    sch.set_scope(acc, 0, "local")
    sch.set_scope(row, 0, "local")
    n, gi, b, y, oi, xx, rc, ry, rx = sch.get_loops(acc)
    xo, xi = sch.split(xx, [None, tile.xt])
    order = _row_order(n, gi, b, y, rows_outer)
    sch.reorder(*order, xo, rc, ry, rx, oi, xi)
    rows = sch.fuse(*order)
    sch.reverse_compute_at(row, xo)
    sch.reverse_compute_at(out, rows)
    _, rvi = sch.split(sch.get_loops(row)[-1], [None, tile.lanes])
    sch.vectorize(rvi)
    _register_tile(sch, acc, rows, unrolled=oi, vectors=xi, reduction=rc, tile=tile,
                   parallel=parallel, relayout=relayout)
    return sch

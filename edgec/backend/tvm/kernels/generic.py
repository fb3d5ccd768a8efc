"""Threads for the kernels TVM lowers itself (elementwise chains, pooling,
reductions, layout copies): its default lowering runs each as one serial
loop nest, and each op of a fused chain as a loop nest of its own writing
a whole intermediate buffer. Elementwise intermediates are first computed
inside their readers; then each root-level loop nest gets its outer
spatial loops fused and parallelised when there is enough work to pay for
waking the pool. Kernels that are already scheduled (edgec's own) are left
alone.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import tvm
from tvm.s_tir import Schedule, ScheduleError

#: below this many iterations a parallel region costs more than it saves
MIN_PARALLEL_WORK = 1 << 14
#: the same for edgec's kernels, in FLOPs: about 5-10 us of one core, what
#: waking the pool's other workers costs
MIN_PARALLEL_FLOPS = 1 << 21
#: fuse outer loops until the parallel loop has at least this many iterations
MIN_PARALLEL_TRIPS = 32
SCHEDULED = "edgec.scheduled"  # attr on edgec's kernels
_SPATIAL, _REDUCE = 0, 2  # tirx.IterVar.DataPar, CommReduce


def _extent(sch: Schedule, loop) -> int | None:
    ext = sch.get(loop).extent
    return int(ext) if isinstance(ext, tvm.tirx.IntImm) else None


def vectorize_reduction(sch: Schedule, block, lanes: int, parallel: bool) -> bool:
    """A reduction over a contiguous innermost axis (global pooling, the max
    and sum of a softmax) as ``lanes`` partial results per row (rfactor), so
    the inner loop is vector loads and adds instead of one serial chain;
    the partials are folded per row right after. False if it does not apply.

    Measured here: the mean of a 96x160x160 map took 1.0 ms as TVM lowers it."""
    stmt = sch.get(block)
    kinds = [int(iv.iter_type) for iv in stmt.iter_vars]
    loops = sch.get_loops(block)
    n_sp = kinds.count(_SPATIAL)
    if len(loops) != len(kinds) or not n_sp or n_sp == len(kinds) or \
            kinds != [_SPATIAL] * n_sp + [_REDUCE] * (len(kinds) - n_sp):
        return False
    ext = _extent(sch, loops[-1])
    if not ext or ext % lanes or ext < 2 * lanes:
        return False
    _, inner = sch.split(loops[-1], [None, lanes])
    rf = sch.rfactor(inner, factor_axis=n_sp)
    rf_loops = sch.get_loops(rf)
    rows = sch.fuse(*rf_loops[:n_sp]) if n_sp > 1 else rf_loops[0]
    if parallel:
        sch.parallel(rows)
    sch.reverse_compute_at(block, rows)
    sch.vectorize(sch.get_loops(rf)[-1])
    sch.decompose_reduction(rf, sch.get_loops(rf)[1])
    return True


def _out_shape(sch: Schedule, block) -> tuple | None:
    """The shape of the one buffer ``block`` writes (None: several, or symbolic)."""
    writes = sch.get(block).writes
    if len(writes) != 1:
        return None
    dims = list(writes[0].source.shape)
    if not all(isinstance(d, tvm.tirx.IntImm) for d in dims):
        return None
    return tuple(int(d) for d in dims)


#: inlining copies a block's expression into every load of its buffer; past this many
#: characters of copies (TVMScript) it stays a buffer: a clip lowered to
#: where(x < lo, lo, where(x > hi, hi, x)) reads x three times, and a chain of them
#: (GELU, Clip, HardSwish as HardSigmoid) grew 3^depth and compiled for over 5 minutes
MAX_INLINE_COPY_CHARS = 2000


def _copied_chars(sch: Schedule, block, readers) -> int:
    """How many characters of ``block``'s expression inlining it would add to its readers."""
    buf = sch.get(block).writes[0].source.name
    size = len(str(sch.get(block).body))
    loads = sum(str(sch.get(r).body).count(f"{buf}[") for r in readers)
    return (loads - 1) * size


def _reduces_one_input(sch: Schedule, block, reader) -> bool:
    """Whether ``reader`` is a reduction and ``block`` a function of one buffer: such an
    op (a compare, a cast) is cheaper inlined into the reduction than written out (a
    96x25600 x != -inf before a max wrote 9.8 MB: 0.41 -> 0.12 ms inlined). Ops of
    several buffers stay: layer norm's (x - mean)^2 inlined into its sum made PP-OCRv4
    rec 4% slower (9.28 against 8.90 ms)."""
    return len(sch.get(block).reads) == 1 and \
        any(int(iv.iter_type) == _REDUCE for iv in sch.get(reader).iter_vars)


def inline_elementwise(sch: Schedule) -> bool:
    """Compute each intermediate block inside its readers when they write
    tensors of its own shape (elementwise ops). FuseOps puts a chain of ops
    into one kernel, but without a schedule each op still writes a whole
    intermediate buffer that the next one reads back. Measured on Zen 4,
    PP-OCRv4 det's x * gate + x + upsample(y) over 96x160x160 wrote three
    9.8 MB intermediates: 1985 -> 514 us inlined. A block read by a bigger
    one (an upsample of x * gate + x) or by a reshape stays: det's upsample
    kernels that feed its concat ran 229 -> 432 us with the upsample
    inlined into the reshape (the flat index's div/mod per element), and
    208 -> 401 us with x * gate + x inlined into the upsample as well
    (recomputed per output, read through gathers). An elementwise op of one
    buffer read by a reduction is inlined into it. Reductions and the kernel's outputs
    stay."""
    changed, progress = False, True
    while progress:
        progress = False
        for block in sch.get_child_blocks(sch.get_sblock("root")):
            shape = _out_shape(sch, block)
            readers = sch.get_consumers(block)
            if shape is None or not readers or \
                    any(_out_shape(sch, r) != shape and not _reduces_one_input(sch, block, r)
                        for r in readers) or \
                    _copied_chars(sch, block, readers) > MAX_INLINE_COPY_CHARS:
                continue
            try:
                sch.compute_inline(block)
            except ScheduleError:
                continue
            changed = progress = True
            break
    return changed


def parallelize(func, lanes: int = 1):
    sch = Schedule(func)
    changed = inline_elementwise(sch)
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        extents = [_extent(sch, lp) for lp in sch.get_loops(block)]
        work = math.prod(e or 0 for e in extents)
        if lanes > 1:
            try:
                if vectorize_reduction(sch, block, lanes, work >= MIN_PARALLEL_WORK):
                    changed = True
                    continue
            except ScheduleError:
                pass
        loops = sch.get_loops(block)  # a failed attempt may have split the last loop
        extents = [_extent(sch, lp) for lp in loops]
        if not loops or None in extents or work < MIN_PARALLEL_WORK:
            continue
        take, trips = 0, 1
        while take < len(loops) - 1 and trips < MIN_PARALLEL_TRIPS:
            trips *= extents[take]
            take += 1
        if take == 0:
            take, trips = 1, extents[0]
        if trips < 2:
            continue
        with contextlib.suppress(ScheduleError):
            outer = sch.fuse(*loops[:take]) if take > 1 else loops[0]
            sch.parallel(outer)
            changed = True
        # The innermost loop in vectors when it is a whole number of them (a
        # reduction loop or an irregular access makes this fail: left scalar).
        inner = sch.get_loops(block)[-1]
        ext = _extent(sch, inner)
        if lanes > 1 and len(sch.get_loops(block)) > 1 and ext and ext % lanes == 0:
            with contextlib.suppress(ScheduleError):
                _, vec = sch.split(inner, [None, lanes])
                sch.vectorize(vec)
    return sch.mod["main"] if changed else func


@dataclass(frozen=True)
class Kernel:
    """A template's output. ``workload`` is the unscheduled compute, in the
    packed layouts: what tuning records are keyed by and what MetaSchedule
    searches. ``schedule`` is the template's schedule of it (its trace seeds
    the search, so a tuned kernel is never one measured slower than it)."""

    workload: tvm.tirx.PrimFunc
    schedule: Schedule
    flops: int


def finish(sch: Schedule):
    """An edgec kernel as it enters the module: opaque (FuseOps leaves it
    alone), marked scheduled, and without a global symbol (the module names it)."""
    return sch.mod["main"].with_attr("op_pattern", 8).with_attr(SCHEDULED, True) \
        .without_attr("global_symbol")


@tvm.transform.module_pass(opt_level=0, name="EdgecParallelizeDefaultKernels")
class ParallelizeDefaultKernels:
    """After TVM's legalisation and fusion: threads for its serial kernels."""

    def __init__(self, lanes: int = 1) -> None:
        self.lanes = lanes

    def transform_module(self, mod, _ctx):
        for gv, func in list(mod.functions_items()):
            if not isinstance(func, tvm.tirx.PrimFunc) or \
                    (func.attrs is not None and SCHEDULED in func.attrs):
                continue
            try:
                new = parallelize(func, self.lanes)
            except Exception:  # a kernel this cannot handle keeps TVM's lowering
                continue
            if new is not func:
                mod[gv] = new
        return mod

"""Concatenation as plain parallel copies.

TVM lowers ``concat`` to one loop over the output with a select per element
(which input, which index), and its innermost loop is rarely a whole number
of vectors: measured here, joining two 64x55x55 maps took 162 us that way and
39 us as two contiguous copies. Viewed as [outer, inner] (outer = the dims
before the axis), each input is ``outer`` contiguous rows that land side by
side in the output's rows; the rows are cut into chunks of ``CHUNK``
elements and every chunk of every input is one iteration of a single
parallel loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm.script
from tvm.s_tir import Schedule

from .conv2d import cdiv
from .generic import MIN_PARALLEL_WORK, Kernel

CHUNK = 4096  # elements per parallel iteration: 16 KiB of float32, a few us of copying


@dataclass(frozen=True)
class ConcatShape:
    outer: int
    inners: tuple[int, ...]  # row length of each input
    dtype: str
    quantize: object | None = None  # epilogue.QuantOut: float32 in, quantised out

    @property
    def total(self) -> int:
        return sum(self.inners)

    @property
    def out_dtype(self) -> str:
        return self.quantize.dtype if self.quantize is not None else self.dtype


def _value(shape: ConcatShape, read: str) -> str:
    """What a copy writes: the input, or it quantised as QuantizeLinear does (an
    int8 model's concat feeding a conv: one pass instead of a float concat and a
    quantize over it)."""
    q = shape.quantize
    if q is None:
        return read
    r = f'T.call_llvm_pure_intrin("float32", "llvm.nearbyint", {read} / T.float32({q.scale!r}))'
    r = f"T.max(T.min({r}, T.float32({float(q.hi - q.zero_point)!r})), " \
        f"T.float32({float(q.lo - q.zero_point)!r}))"
    return f'T.Cast("{q.dtype}", T.Cast("int32", {r}) + {q.zero_point})'


def concat_kernel(shape: ConcatShape) -> Kernel:
    """(in0 [outer, inner0], in1, ...) -> out [outer, sum(inner)] (quantised when
    ``shape.quantize``)."""
    s = shape
    params = [f'in{i}: T.Buffer(({s.outer}, {n}), "{s.dtype}")' for i, n in enumerate(s.inners)]
    params.append(f'out: T.Buffer(({s.outer}, {s.total}), "{s.out_dtype}")')
    lines = ["@T.prim_func(s_tir=True)",
             f"def main({', '.join(params)}):",
             '    T.func_attr({"tirx.noalias": True})']
    chunks = [cdiv(n, CHUNK) for n in s.inners]
    total = sum(s.outer * c for c in chunks)
    # small copies stay on one thread: waking the pool costs more (silero's
    # 1 KiB concat took 5 us in parallel)
    loop = "parallel" if s.outer * s.total >= MIN_PARALLEL_WORK else "serial"
    lines.append(f"    for p in T.{loop}({total}):")
    start, offset = 0, 0
    for i, (n, nch) in enumerate(zip(s.inners, chunks, strict=True)):
        last = i == len(s.inners) - 1
        pad = "        " + "    " * i
        body = pad + ("    " if not last else "")
        if not last:
            lines.append(f"{pad}if p < {start + s.outer * nch}:")
        q = f"(p - {start})"
        lines += [
            f"{body}for j in T.serial(T.min({CHUNK}, {n} - {q} % {nch} * {CHUNK})):",
            f'{body}    with T.sblock("copy{i}"):',
            f"{body}        r = T.axis.spatial({s.outer}, {q} // {nch})",
            f"{body}        c = T.axis.spatial({n}, {q} % {nch} * {CHUNK} + j)",
            f"{body}        out[r, {offset} + c] = {_value(s, f'in{i}[r, c]')}",
        ]
        if not last:
            lines.append(f"{pad}else:")
        start += s.outer * nch
        offset += n
    func = tvm.script.from_source("\n".join(lines) + "\n")
    return Kernel(func, Schedule(func), 0)

"""The layout pass: which conv outputs stay channel-blocked (NCHW[b]c) between
edgec's kernels.

A conv kernel's register tile runs channels along the vectors, so writing
NCHW planes means transposing every tile, and a row of output touches one
plane per channel (hundreds of write streams). In NCHW[b]c, b = the vector
width, each pixel's block of channels is one vector stored as it is.
Measured on Zen 4, ResNet-50's 1x1 expansions with their residual add ran
at 208-227 GFLOP/s blocked against 104-185 written as NCHW.

A conv output is kept blocked when every reader takes it blocked: another
edgec conv kernel (as its input, or as its residual: a residual has the
layout of the output it is added to, so both sides must agree), a depthwise
conv whose output is kept blocked too (its blocked template reads and writes
blocks: one vector FMA per tap over a block of channels), a max or
average pool (TVM's pools have layout attributes; one whose readers need
NCHW converts its smaller output back), or a channel concat whose output is
kept blocked too. Everything else (TVM's other kernels, the graph's
outputs) reads NCHW, and the conv feeding it writes NCHW itself,
so no conversion pass over a conv's output is ever added. The blocked
kernels carry ``_nchw{b}c`` in their names, and ``--save-temps`` shows the
5-D tensors in relax-kernels.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import relax

from .chains import Chain, _dtype, _Finder, _op, _shape, conv_shape
from .kernels.conv2d import ConvTile, can_write_blocked, choose_tile
from .kernels.conv2d_int8 import can_read_blocked_int8, can_write_blocked_int8
from .kernels.depthwise import DepthwiseTile
from .kernels.vector_unit import VectorUnit


@dataclass(frozen=True)
class Blocked:
    block: int  # channels per block (the vector width)
    tile: ConvTile | None = None  # a conv's channel tile (pixel tiles would need
    # the transpose back); None for the ops blocked data passes through

#: ops that take blocked data as it is (TVM's pooling has layout attributes) and
#: keep it blocked, so a stem's max pool or a bottleneck's concat does not end
#: a run of blocked convs. A pool whose readers need NCHW still reads blocked
#: data: its output, smaller, is converted after it.
POOLS = ("relax.nn.max_pool2d", "relax.nn.avg_pool2d")
CONCAT = "relax.concat"


def _plain_conv2d(chain: Chain) -> bool:
    return (_op(chain.head.value) == "relax.nn.conv2d" and isinstance(chain.tile, ConvTile)
            and conv_shape(chain.head.value).groups == 1)


def _int8_conv2d(chain: Chain) -> bool:
    """A conv on the int8 template (qchains.py), ungrouped."""
    return chain.quant is not None and chain.quant.kind == "conv2d" and \
        _op(chain.head.value) == "relax.nn.conv2d" and conv_shape(chain.head.value).groups == 1


def _blocked_depthwise(chain: Chain, block: int) -> bool:
    """A depthwise conv the blocked template takes (it reads and writes blocks)."""
    return (_op(chain.head.value) == "relax.nn.conv2d" and isinstance(chain.tile, DepthwiseTile)
            and conv_shape(chain.head.value).c % block == 0 and not chain.epilogue.shuffle)


def _input(chain: Chain):
    """The tensor a chain's kernel reads: an int8 chain's quantised input."""
    return chain.quant.x if chain.quant is not None else chain.head.value.args[0]


def _residual(chain: Chain):
    """The residual tensor a chain's kernel reads (quantised, for an int8 chain)."""
    if chain.quant is not None and chain.quant.residual is not None:
        return chain.quant.residual
    return chain.residual


def _channels_blocked(var, block: int) -> bool:
    shape = _shape(var)
    return shape is not None and len(shape) == 4 and shape[1] % block == 0 and \
        _dtype(var) == "float32"


def _pass_through(binding, block: int) -> bool:
    """A pool or channel concat that can run on blocked data."""
    v = binding.value
    op = _op(v)
    if op in POOLS:
        return str(v.attrs.layout) == "NCHW" and str(v.attrs.out_layout) == "NCHW" and \
            isinstance(v.args[0], relax.Var) and _channels_blocked(v.args[0], block)
    if op == CONCAT:
        parts = v.args[0]
        return isinstance(parts, relax.Tuple) and _shape(binding.var) is not None and \
            int(v.attrs.axis) % 4 == 1 and len(_shape(binding.var)) == 4 and \
            all(isinstance(f, relax.Var) and _channels_blocked(f, block) for f in parts.fields)
    return False


def _sources(binding) -> list:
    """The vars a pass-through op reads (they must be blocked for it to be)."""
    v = binding.value
    return list(v.args[0].fields) if _op(v) == CONCAT else [v.args[0]]


def plan_layouts(chains: list[Chain], finder: _Finder, unit: VectorUnit) -> dict:
    """{var: Blocked} for the conv outputs, pools and concats that stay blocked."""
    block = unit.lanes
    by_head = {c.head.var: c for c in chains}
    by_member = {m.var: c for c in chains for m in c.members}
    candidates: dict = {}  # var -> (chain or the pass-through binding, Blocked)
    for c in chains:
        if not isinstance(c.tail.var, relax.DataflowVar):
            continue
        if _blocked_depthwise(c, block):
            candidates[c.tail.var] = (c, Blocked(block))
        elif _int8_conv2d(c):
            if can_write_blocked_int8(conv_shape(c.head.value), c.tile, block):
                candidates[c.tail.var] = (c, Blocked(block))
        elif _plain_conv2d(c) and c.quant is None and not c.epilogue.shuffle:
            shape = conv_shape(c.head.value)
            tile = choose_tile(shape, unit, pixels=False)
            if tile is not None and can_write_blocked(shape, tile, block):
                candidates[c.tail.var] = (c, Blocked(block, tile))
    claimed = set(by_member)
    for var, value in finder.value.items():
        if var not in claimed and isinstance(var, relax.DataflowVar):
            binding = relax.VarBinding(var, value)
            if _pass_through(binding, block):
                candidates[var] = (binding, Blocked(block))

    def reads_blocked(var, user, kept, source=None) -> bool:
        """``user`` (a binding) can take ``var`` blocked: as a plain conv's input,
        as the residual of a conv whose output is blocked too, or as the input
        of a pool or concat that stays blocked. A dequantize of ``var`` passes
        it on to its readers: the int8 chains that read ``var`` itself
        (``source``) through it."""
        if source is None and _op(user.value) == "relax.dequantize" and \
                user.var not in by_member:
            readers = finder.by_input.get(user.var, [])
            return len(readers) == finder.users.get(user.var, 0) and len(readers) > 0 and all(
                reads_blocked(user.var, u, kept, source=var) for u in readers)
        head = by_head.get(user.var)
        if head is not None and (head.quant is not None) != (source is not None):
            head = None  # a float chain reads a dequantised tensor as TVM computed it
        if head is not None and head.head.value.args[0].same_as(var):
            if _plain_conv2d(head) and head.quant is None:
                return conv_shape(head.head.value).c % block == 0
            if _int8_conv2d(head):
                return can_read_blocked_int8(conv_shape(head.head.value), head.tile, block)
            if _blocked_depthwise(head, block):
                return head.tail.var in kept  # the blocked depthwise kernel writes blocks too
        owner = by_member.get(user.var)
        if owner is not None:
            res = _residual(owner)
            return res is not None and res.same_as(source if source is not None else var) \
                and owner.tail.var in kept
        if source is not None:
            return False
        if _op(user.value) in POOLS and _pass_through(user, block):
            return True  # a pool reads blocked data and converts its (smaller) output
        return user.var in kept

    kept = dict(candidates)
    changed = True
    while changed:  # drop what a reader or a source cannot match, until nothing changes
        changed = False
        for var, (node, _) in list(kept.items()):
            users = finder.by_input.get(var, [])
            ok = len(users) == finder.users.get(var, 0) and all(
                reads_blocked(var, u, kept) for u in users)
            if ok and isinstance(node, Chain) and _residual(node) is not None:
                ok = _residual(node) in kept  # the residual is added in the output's layout
            if ok and isinstance(node, Chain) and isinstance(node.tile, DepthwiseTile):
                ok = _input(node) in kept  # ... and reads blocks
            if ok and not isinstance(node, Chain):
                ok = all(src in kept for src in _sources(node))
            if not ok:
                del kept[var]
                changed = True
    return {var: blocked for var, (_, blocked) in kept.items()}

"""Put edgec's kernels into the imported Relax module (before TVM's own lowering).

Each chain chains.py finds in ``main``'s dataflow blocks becomes one
``call_tir`` of a scheduled kernel from ``kernels/``, its weights packed now
as constants; batched, 1-D and grouped operands are reshaped around it (free
views in the VM). A ConvTranspose whose kernel equals its stride becomes a
1x1 conv whose kernel writes its output pixel-shuffled. Kernels are shared
by chains of the same shape and epilogue; what does not match stays for
TVM's default lowering.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import tvm
from tvm import relax

from .chains import (
    Chain,
    _dtype,
    _Finder,
    _op,
    _shape,
    conv_shape,
    find_chain,
    pixel_shuffle_of,
)
from .kernels.concat import ConcatShape, concat_kernel
from .kernels.conv2d import (
    ConvShape,
    blocked_shape,
    choose_tile,
    conv2d_kernel,
    output_shape,
    pack_weights,
)
from .kernels.conv2d_int8 import conv2d_int8_kernel, padded_epilogue, prepare_conv_int8
from .kernels.depthwise import (
    DepthwiseTile,
    depthwise_blocked_kernel,
    depthwise_kernel,
    pack_blocked_weights,
    zero_point_bias,
)
from .kernels.epilogue import Epilogue
from .kernels.generic import Kernel
from .kernels.matmul import (
    MatmulShape,
    MatmulTile,
    batched_matmul_kernel,
    choose_matmul_tile,
    matmul_kernel,
    pack_b,
)
from .kernels.matmul_int8 import matmul_int8_kernel, prepare_matmul_int8
from .kernels.pool import pool_of
from .kernels.vector_unit import VectorUnit
from .kernels.winograd import WinogradTile, choose_winograd, pack_winograd_weights, winograd_kernel
from .kernels.winograd import applies as applies_winograd
from .layout import plan_layouts
from .qchains import _out_quantize, integer_result, quantise_chain
from .tuning_db import Schedules

#: shorter rows (a concat along a late axis) stay with TVM's kernel
MIN_CONCAT_ROW = 64
#: a grouped 1x1 conv runs on its map flattened to one row while a group's
#: input is at most this big (it stays in L2 while every channel block of
#: the group streams it)
FLAT_MAX_GROUP_BYTES = 256 * 1024


def _flattens(shape: ConvShape) -> bool:
    """A grouped pointwise conv (ShuffleNet's): flattened, its rows have no
    tails to pad and pixel tiles run the whole map. Measured on Zen 4: 136
    channels in 4 groups at 28x28 103 -> 48 us, 272 at 14x14 64 -> 51 us
    (onnxruntime runs these as GEMMs over H*W too)."""
    return (1 < shape.groups < shape.c and shape.kh == shape.kw == 1 and shape.h > 1
            and shape.stride == (1, 1) and shape.dilation == (1, 1) and not any(shape.pad)
            and 4 * (shape.c // shape.groups) * shape.h * shape.w <= FLAT_MAX_GROUP_BYTES)


@relax.expr_functor.mutator
class _Rewriter(relax.PyExprMutator):
    def __init__(self, mod, unit: VectorUnit, chains: list[Chain], notes: dict,
                 finder: _Finder, schedules: Schedules, isa: str | None = None):
        super().__init__(mod)
        self.unit = unit
        self.isa = isa  # the int8 instruction set (kernels/conv2d_int8.ISAS)
        self.blocked = plan_layouts(chains, finder, unit)  # output var -> Blocked
        self.schedules = schedules
        self.finder = finder
        self.tail = {c.tail.var: c for c in chains}
        self.skip = {m.var for c in chains for m in c.members[:-1]}
        self.kernels: dict = {}  # (shape, tile, epilogue key) -> GlobalVar
        self.fused: dict = {}  # var of a binding an earlier kernel computed -> its new var
        self.notes = notes  # kernel name -> var names of the bindings it replaced

    def _emit_as(self, binding, expr):
        """``expr`` bound under the replaced binding's name, as a dataflow var or,
        for the function's outputs, an output var."""
        emit = self.builder_.emit if isinstance(binding.var, relax.DataflowVar) \
            else self.builder_.emit_output
        return emit(expr, name_hint=binding.var.name)

    def _view(self, expr, shape):
        """``expr`` reshaped to ``shape``; when ``expr`` is itself a reshape, of
        the tensor that one views. One reshape of a kernel's output is a free
        view in the VM, but TVM fuses a reshape of a reshape into a copy
        kernel: ShuffleNet's grouped conv output read by edgec's concat cost
        67 us that way."""
        if isinstance(expr, relax.Var):
            bound = self.builder_.lookup_binding(expr)
            if bound is not None and _op(bound) == "relax.reshape":
                expr = bound.args[0]
        return relax.op.reshape(expr, shape)

    def _kernel(self, key, make, name: str):
        """The GlobalVar of the kernel for ``key``, added on first use (``make()``
        builds the template; the schedule comes from ``self.schedules``)."""
        gv = self.kernels.get(key)
        if gv is None:
            kernel: Kernel = make()
            func, tuned = self.schedules.pick(kernel)
            gv = self.builder_.add_func(func, name)
            self.schedules.added(gv.name_hint, kernel, tuned)
            self.kernels[key] = gv
        self.schedules.called(gv.name_hint)
        return gv

    def visit_var_binding_(self, binding):
        if binding.var in self.skip:
            return
        if binding.var in self.fused:  # computed by the kernel of an earlier binding
            self.set_var_remap(binding.var, self.fused[binding.var])
            return
        chain = self.tail.get(binding.var)
        if chain is None:
            rewrite = {"relax.concat": self._concat,
                       "relax.matmul": self._batched_matmul,
                       "relax.nn.max_pool2d": self._pool,
                       "relax.nn.avg_pool2d": self._pool}.get(_op(binding.value))
            new = rewrite(binding) if rewrite is not None else None
            if new is not None:
                self.set_var_remap(binding.var, new)
                return
            return super().visit_var_binding_(binding)
        new = self._emit_as(binding, self._kernel_call(chain))
        self.set_var_remap(binding.var, new)

    def _pool(self, binding):
        """A max or average pool of blocked float32 data whose windows reach
        into padding: the blocked depthwise template without weights
        (pool.py). Measured on Zen 4, TVM pads the input into a copy first:
        ResNet-50's stem pool 157 -> 55 us. Without padding, TVM's blocked
        pool is as fast (SqueezeNet's: 30 us against the template's 39), and
        on NCHW data its pools were as fast as the NCHW depthwise template
        to 3.6x faster (the template's per-plane padded copy is one more
        pass): those stay TVM's op, in the layout the layout pass gave the
        input. Blocked output stays blocked or, when a reader needs NCHW, is
        converted back after the pool (a transpose TVM fuses with what
        reads it)."""
        call = binding.value
        x, a = call.args[0], call.attrs
        source, out = self.blocked.get(x), _shape(binding.var)
        if source is None:
            return None
        kind = "max" if _op(call) == "relax.nn.max_pool2d" else "avg"
        found = None
        if out is not None and len(out) == 4 and \
                str(a.layout) == str(a.out_layout) == "NCHW" and \
                {_dtype(x), _dtype(binding.var)} == {"float32"}:
            found = pool_of(kind, *_shape(x), tuple(out[2:]),
                            kernel=tuple(int(v) for v in a.pool_size),
                            stride=tuple(int(v) for v in a.strides),
                            dilation=tuple(int(v) for v in a.dilation),
                            pad=tuple(int(v) for v in a.padding),
                            count_include_pad=bool(a.count_include_pad))
        if found is None or not any(found[0].pad):
            return self._blocked_pool(binding)
        window, pool = found
        block = source.block
        gv = self._kernel(("pool", window, pool, block), lambda: depthwise_blocked_kernel(
            window, block, Epilogue(), pool), f"edgec_{kind}pool_nchw{block}c")
        self.notes.setdefault(gv.name_hint, []).append(binding.var.name)
        y = relax.call_tir(gv, [self.visit_expr(x)], relax.TensorType(
            list(blocked_shape(*out, block)), "float32"))
        if binding.var not in self.blocked:
            y = self._unblock(y, binding)
        return self._emit_as(binding, y)

    def _unblock(self, y, binding):
        """Blocked ``y`` back as the NCHW tensor ``binding`` binds (each step
        bound under the node's name: provenance)."""
        name = binding.var.name
        y = relax.op.permute_dims(self.builder_.emit(y, name_hint=name), [0, 1, 4, 2, 3])
        return relax.op.reshape(self.builder_.emit(y, name_hint=name), _shape(binding.var))

    def _blocked_pool(self, binding):
        """TVM's pool on blocked data: the same op on NCHW[b]c."""
        call = binding.value
        layout = f"NCHW{self.blocked[call.args[0]].block}c"
        a = call.attrs
        common = dict(pool_size=a.pool_size, strides=a.strides, padding=a.padding,
                      dilation=a.dilation, ceil_mode=bool(a.ceil_mode),
                      count_include_pad=bool(a.count_include_pad), layout=layout,
                      out_layout=layout)
        pool = relax.op.nn.max_pool2d if _op(call) == "relax.nn.max_pool2d" \
            else relax.op.nn.avg_pool2d
        y = pool(self.visit_expr(call.args[0]), **common)
        if binding.var not in self.blocked:
            y = self._unblock(y, binding)
        return self._emit_as(binding, y)

    def _batched_matmul(self, binding):
        """A MatMul of two computed operands (attention's Q K^T and A V) with
        equal leading dims: the batched kernel on [B, M, K] x [B, K, N] views."""
        call = binding.value
        a, b = call.args
        sa, sb, out = _shape(a), _shape(b), _shape(binding.var)
        if sa is None or sb is None or out is None or len(sa) < 2 or len(sa) != len(sb) or \
                sa[:-2] != sb[:-2] or sa[-1] != sb[-2] or self.finder.const(b) is not None or \
                {_dtype(a), _dtype(b), _dtype(binding.var)} != {"float32"}:
            return None
        batch, (m, k), n = int(np.prod(sa[:-2])), sa[-2:], sb[-1]
        shape = MatmulShape(m, k, n)
        tile = choose_matmul_tile(shape, self.unit)
        gv = self._kernel(("bmm", batch, shape, tile),
                          lambda: batched_matmul_kernel(batch, shape, tile), "edgec_batch_matmul")
        self.notes.setdefault(gv.name_hint, []).append(binding.var.name)
        a3 = self.builder_.emit(self._view(self.visit_expr(a), [batch, m, k]))
        b3 = self.builder_.emit(self._view(self.visit_expr(b), [batch, k, n]))
        y = self.builder_.emit(relax.call_tir(gv, [a3, b3],
                                              relax.TensorType([batch, m, n], "float32")))
        return self._emit_as(binding, relax.op.reshape(y, out))

    def _concat(self, binding):
        """A concat of static-shape tensors whose rows (the dims from the axis
        on) are long enough to copy in chunks: the copy kernel, on [outer,
        inner] views of its inputs (free reshapes). Kept blocked by the layout
        pass, a channel concat is the same copy of whole blocks."""
        call = binding.value
        parts = call.args[0]
        out = _shape(binding.var)
        if not isinstance(parts, relax.Tuple) or out is None or len(parts.fields) < 2:
            return None
        blocked = self.blocked.get(binding.var)
        if blocked is not None:
            out = list(blocked_shape(*out, blocked.block))
        shapes = [_shape(f) for f in parts.fields]
        dtype = _dtype(binding.var)
        if any(sh is None for sh in shapes) or \
                any(_dtype(f) != dtype for f in parts.fields):
            return None
        axis = int(call.attrs.axis) % len(out)
        outer = int(np.prod(out[:axis]))
        inners = tuple(int(np.prod(sh[axis:])) for sh in shapes)
        if min(inners) < MIN_CONCAT_ROW:
            if blocked is None:
                return None
            return self._emit_as(binding, relax.op.concat(
                [self.visit_expr(f) for f in parts.fields], axis=1))
        quant = _out_quantize(self.finder, binding.var, set()) \
            if blocked is None and dtype == "float32" else None
        shape = ConcatShape(outer, inners, dtype, quant[1] if quant else None)
        gv = self._kernel(("concat", shape), lambda: concat_kernel(shape),
                          "edgec_concat" + ("_q" if quant else ""))
        self.notes.setdefault(gv.name_hint, []).append(binding.var.name)
        args = [self.builder_.emit(self._view(self.visit_expr(f), [outer, n]))
                for f, n in zip(parts.fields, inners, strict=True)]
        y = self.builder_.emit(relax.call_tir(gv, args, relax.TensorType(
            [outer, shape.total], shape.out_dtype)))
        if quant is None:
            return self._emit_as(binding, relax.op.reshape(y, out))
        # the quantize reading it is done: its var is this kernel's output
        self.notes[gv.name_hint].append(quant[0].var.name)
        new = self._emit_as(quant[0], relax.op.reshape(y, out))
        self.fused[quant[0].var] = new
        return new

    def _epilogue_args(self, epi: Epilogue, residual, view=None) -> list:
        """The epilogue's inputs in EpilogueTensors' order (``view`` reshapes the
        residual to the kernel's output, when it differs)."""
        args = [relax.const(np.ascontiguousarray(a, np.float32))
                for a in (epi.pre_bias, epi.mult, epi.bias, epi.post) if a is not None]
        if residual is not None:
            res = self.visit_expr(residual)
            args.append(self.builder_.emit(view(res)) if view is not None else res)
        return args

    def _quant_call(self, chain: Chain):
        """An int8 chain (qchains.py): the int8 conv or matmul template, or the
        depthwise template reading the quantised input."""
        q = chain.quant
        if q.kind == "matmul":
            return self._int8_matmul_call(chain)
        conv = chain.head.value
        shape = conv_shape(conv)
        epi = chain.epilogue
        blocked = self.blocked.get(chain.tail.var)
        out_block = blocked.block if blocked else 0
        in_block = self.blocked[q.x].block if q.x in self.blocked else 0
        x = self.visit_expr(q.x)
        if _op(conv) == "relax.nn.conv1d":  # -> [N, C, 1, W]: the same bytes
            x = self.builder_.emit(self._view(x, [shape.n, shape.c, 1, shape.w]))
        out_dtype = epi.out_q.dtype if epi.out_q is not None else "float32"
        residual = q.residual if q.residual is not None else chain.residual
        if q.kind == "depthwise":
            weight = q.w_int.reshape(shape.c, shape.kh, shape.kw).astype(np.float32)
            pre_bias = zero_point_bias(weight, q.x_q.zero_point)
            if q.int_bias is not None:
                pre_bias = pre_bias + q.int_bias.astype(np.float32)
            epi = replace(epi, pre_bias=pre_bias)
            key = ("qdw", shape, chain.tile, epi.describe(), epi.act, epi.act2,
                   epi.quant_key(), q.x_q, out_block)
            if out_block:
                weight = pack_blocked_weights(weight, out_block)
                gv = self._kernel(key, lambda: depthwise_blocked_kernel(
                    shape, out_block, epi, x_q=q.x_q),
                    f"edgec_qdw{epi.describe()}_nchw{out_block}c")
            else:
                gv = self._kernel(key, lambda: depthwise_kernel(shape, chain.tile, epi, x_q=q.x_q),
                                  "edgec_qdw" + epi.describe())
            kernel_out = blocked_shape(shape.n, shape.o, *shape.out_hw, out_block) \
                if out_block else (shape.n, shape.o, *shape.out_hw)
            args = [x, relax.const(weight)]
        else:
            tile = chain.tile
            shuffle = pixel_shuffle_of(conv) or 0  # a ConvTranspose as a 1x1 conv
            epi = padded_epilogue(epi, shape.groups, tile)
            key = ("qconv", shape, tile, epi.describe(), epi.act, epi.act2, epi.quant_key(),
                   q.x_q.dtype, q.x_q.zero_point, in_block, out_block, shuffle, self.isa)
            gv = self._kernel(key, lambda: conv2d_int8_kernel(
                shape, tile, epi, self.isa, q.x_q.dtype, q.x_q.zero_point, in_block=in_block,
                out_block=out_block, shuffle=shuffle),
                f"edgec_q{epi.describe()}_{self.isa.replace('-', '_')}"
                + (f"_nchw{out_block}c" if out_block else ""))
            packed, bias = prepare_conv_int8(q.w_int.astype(np.int8), q.int_bias,
                                             q.x_q.zero_point, q.x_q.dtype, shape.groups,
                                             self.isa, tile)
            # pixel-shuffled, [N, O, H, k, W, k], is the bytes of the op's [N, O, H*k, W*k]
            kernel_out = output_shape(shape, out_block=out_block, pixel_shuffle=shuffle)
            args = [x, relax.const(packed), relax.const(bias)]
        self.notes.setdefault(gv.name_hint, []).extend(m.var.name for m in chain.members)
        reshaped = not out_block and list(kernel_out) != _shape(chain.tail.var)
        args += self._epilogue_args(epi, residual, (lambda r: self._view(r, kernel_out))
                                    if reshaped else None)
        out = relax.call_tir(gv, args, relax.TensorType(list(kernel_out), out_dtype))
        if reshaped:  # [N, G, O/G, H, W] or [N, O, 1, W] -> the op's shape: the same bytes
            out = relax.op.reshape(self.builder_.emit(out), _shape(chain.tail.var))
        return out

    def _int8_matmul_call(self, chain: Chain):
        call, tile, epi, q = chain.head.value, chain.tile, chain.epilogue, chain.quant
        x_shape = _shape(call.args[0])
        k, n = q.w_int.shape
        shape = MatmulShape(int(np.prod(x_shape[:-1])), k, n)
        out_dtype = epi.out_q.dtype if epi.out_q is not None else "float32"
        key = ("qmatmul", shape, tile, epi.describe(), epi.act, epi.act2, epi.quant_key(),
               q.x_q.dtype, q.x_q.zero_point, self.isa)
        gv = self._kernel(key, lambda: matmul_int8_kernel(shape, tile, epi, self.isa,
                                                          q.x_q.dtype, q.x_q.zero_point),
                          f"edgec_q{epi.describe()}_{self.isa.replace('-', '_')}")
        self.notes.setdefault(gv.name_hint, []).extend(m.var.name for m in chain.members)
        flat = len(x_shape) != 2

        def as_2d(expr, cols):
            return self.builder_.emit(self._view(expr, [shape.m, cols])) if flat else expr

        packed, bias, _ = prepare_matmul_int8(q.w_int.astype(np.int8), q.int_bias,
                                              q.x_q.zero_point, q.x_q.dtype, self.isa, tile)
        residual = q.residual if q.residual is not None else chain.residual
        args = [as_2d(self.visit_expr(q.x), k), relax.const(packed), relax.const(bias)]
        args += self._epilogue_args(epi, residual, (lambda r: self._view(r, [shape.m, n]))
                                    if flat else None)
        out = relax.call_tir(gv, args, relax.TensorType([shape.m, n], out_dtype))
        if flat:
            out = relax.op.reshape(self.builder_.emit(out), [*x_shape[:-1], n])
        return out

    def _kernel_call(self, chain: Chain):
        if chain.quant is not None:
            return self._quant_call(chain)
        if isinstance(chain.tile, MatmulTile):
            return self._matmul_call(chain)
        conv = chain.head.value
        shape = conv_shape(conv)
        tile = chain.tile
        epi = chain.epilogue
        blocked = self.blocked.get(chain.tail.var)
        out_block = blocked.block if blocked else 0
        in_block = self.blocked[conv.args[0]].block if conv.args[0] in self.blocked else 0
        if blocked and blocked.tile is not None:  # a conv's channel tile
            tile = blocked.tile
        flat = not (in_block or out_block) and _flattens(shape)
        if flat:  # one row of H*W pixels: [N, C, H, W] and [N, C, 1, H*W] are the same bytes
            shape = replace(shape, h=1, w=shape.h * shape.w)
            tile = choose_tile(shape, self.unit)
        depthwise = isinstance(tile, DepthwiseTile)
        if not depthwise and applies_winograd(shape, in_block, out_block, self.unit):
            tile = choose_winograd(shape, self.unit) or tile
        shuffle = pixel_shuffle_of(conv) or 0  # a ConvTranspose as a 1x1 conv
        key = (shape, tile, epi.describe(), epi.act, epi.act2, in_block, out_block, shuffle)
        if isinstance(tile, WinogradTile):
            gv = self._kernel(key, lambda: winograd_kernel(
                shape, tile, epi, in_block=in_block, out_block=out_block,
                lanes=in_block or self.unit.lanes),
                f"edgec_{epi.describe()}_winograd{tile.m}"
                + (f"_nchw{out_block}c" if out_block else ""))
        elif depthwise and out_block:
            gv = self._kernel(key, lambda: depthwise_blocked_kernel(shape, out_block, epi),
                              "edgec_dw" + epi.describe() + f"_nchw{out_block}c")
        elif depthwise:
            gv = self._kernel(key, lambda: depthwise_kernel(shape, tile, epi),
                              "edgec_dw" + epi.describe())
        else:
            name = "edgec_" + epi.describe() + (f"_nchw{out_block}c" if out_block else "")
            gv = self._kernel(key, lambda: conv2d_kernel(shape, tile, epi, in_block=in_block,
                                                         out_block=out_block, shuffle=shuffle),
                              name)
        self.notes.setdefault(gv.name_hint, []).extend(m.var.name for m in chain.members)
        if isinstance(tile, WinogradTile):
            weight = pack_winograd_weights(chain.weight, tile.m, tile.gemm.ob)
        elif depthwise:
            weight = chain.weight.reshape(shape.c, shape.kh, shape.kw)
            if out_block:
                weight = pack_blocked_weights(weight, out_block)
        else:
            weight = pack_weights(chain.weight, shape.groups, tile.ob)
        x = self.visit_expr(conv.args[0])
        if _op(conv) == "relax.nn.conv1d" or flat:  # -> [N, C, 1, W]: the same bytes
            x = self.builder_.emit(self._view(x, [shape.n, shape.c, 1, shape.w]))
        args = [x, relax.const(weight)]
        grouped = not depthwise and shape.groups > 1
        if out_block or shuffle or grouped:
            # blocks are read only by edgec conv kernels, which take them blocked; a
            # pixel shuffle's [N, O, H, k, W, k] is the bytes of the op's [N, O, H*k, W*k]
            kernel_out = output_shape(shape, epi.shuffle, out_block=out_block,
                                      pixel_shuffle=shuffle)
        else:
            kernel_out = (shape.n, shape.o, *shape.out_hw)
        reshaped = not out_block and list(kernel_out) != _shape(chain.tail.var)
        if epi.bias is not None:
            args.append(relax.const(epi.bias))
        if epi.post is not None:
            args.append(relax.const(epi.post))
        if chain.residual is not None:
            res = self.visit_expr(chain.residual)
            args.append(self.builder_.emit(self._view(res, kernel_out)) if reshaped
                        else res)
        out = relax.call_tir(gv, args, relax.TensorType(list(kernel_out), "float32"))
        if reshaped:  # [N, G, O/G, H, W] or [N, O, 1, W] -> the op's shape: the same bytes
            out = relax.op.reshape(self.builder_.emit(out), _shape(chain.tail.var))
        return out

    def _matmul_call(self, chain: Chain):
        call, tile, epi = chain.head.value, chain.tile, chain.epilogue
        x_shape = _shape(call.args[0])
        k, n = chain.weight.shape
        shape = MatmulShape(int(np.prod(x_shape[:-1])), k, n)
        gv = self._kernel((shape, tile, epi.describe(), epi.act, epi.act2),
                          lambda: matmul_kernel(shape, tile, epi), "edgec_" + epi.describe())
        self.notes.setdefault(gv.name_hint, []).extend(m.var.name for m in chain.members)
        flat = len(x_shape) != 2

        def as_2d(expr, cols):
            expr = self.visit_expr(expr)
            return self.builder_.emit(self._view(expr, [shape.m, cols])) if flat else expr

        args = [as_2d(call.args[0], k), relax.const(pack_b(chain.weight, tile.nb))]
        if epi.bias is not None:
            args.append(relax.const(epi.bias))
        if epi.post is not None:
            args.append(relax.const(epi.post))
        if chain.residual is not None:
            args.append(as_2d(chain.residual, n))
        out = relax.call_tir(gv, args, relax.TensorType([shape.m, n], "float32"))
        if flat:
            out = relax.op.reshape(self.builder_.emit(out), [*x_shape[:-1], n])
        return out


def dispatch_kernels(mod: tvm.IRModule, unit: VectorUnit,
                     schedules: Schedules | None = None, isa: str | None = None,
                     stats: dict | None = None) -> tuple[tvm.IRModule, dict]:
    """``mod`` with matched chains replaced by edgec kernels, and
    {kernel name: [var names replaced]} for provenance. ``schedules`` picks
    each kernel's schedule (template or tuning record) and records the kernels.
    ``isa``: the target's int8 instruction set; chains of an int8 model then
    run on the integer templates (qchains.py); ``stats["integer_chains"]`` counts them."""
    mod = relax.transform.DeadCodeElimination(["main"])(mod)  # unused results count as users
    func = mod["main"]
    finder = _Finder(func)
    chains, claimed = [], set()
    for block in func.body.blocks:
        if not isinstance(block, relax.DataflowBlock):
            continue
        for b in block.bindings:
            if b.var in claimed:
                continue
            chain = find_chain(finder, b, claimed, unit)
            if chain is not None:
                chain = quantise_chain(finder, chain, claimed, isa,
                                       unit.fma_lanes < unit.lanes)
                if chain.quant is None and integer_result(finder, chain):
                    continue  # exact int32 sums: quantized.lower_quantized's
                chains.append(chain)
                claimed.update(m.var for m in chain.members)
    if stats is not None:
        stats["integer_chains"] = sum(c.quant is not None for c in chains)
    notes: dict = {}
    rewriter = _Rewriter(mod, unit, chains, notes, finder, schedules or Schedules(), isa)
    new_main = rewriter.visit_expr(func)
    rewriter.builder_.update_func(mod.get_global_var("main"), new_main)
    out = rewriter.builder_.get()
    out = relax.transform.DeadCodeElimination(["main"])(out)
    return out, notes

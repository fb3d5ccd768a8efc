"""Reading the imported Relax module: which bindings form a chain one edgec
kernel can compute (dispatch.py replaces them).

A chain starts at a conv2d / conv1d / matmul with constant weights and takes
the bindings after it while each intermediate has one user: per-channel
scale and shift (folded into the weights and bias), an activation, an affine
after it, a residual add and a second activation, or a channel shuffle after
a grouped conv. Constants are followed through the reshapes, broadcasts and
transposes the importer wraps them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import tvm
from tvm import relax

from .kernels.conv2d import ConvShape, ConvTile, choose_tile
from .kernels.depthwise import choose_depthwise_tile, is_depthwise
from .kernels.epilogue import Epilogue
from .kernels.matmul import MatmulShape, choose_matmul_tile
from .kernels.vector_unit import VectorUnit
from .qparams import dequantize_value
from .relax_util import _const, _dtype, _op, _shape, _vars_in


@dataclass
class Chain:
    head: relax.VarBinding  # the conv2d
    members: list  # bindings folded into the kernel, head first, tail last
    epilogue: Epilogue
    weight: np.ndarray
    tile: object  # ConvTile | DepthwiseTile | MatmulTile | WinogradTile, an int8 tile
    residual: relax.Expr | None = None
    # per output channel: the scale folded into ``weight`` (a BatchNorm's), and the
    # constants added before the activation (an int8 chain reads them again)
    channel_scale: np.ndarray | None = None
    bias_exprs: list = field(default_factory=list)
    quant: object | None = None  # qchains.ChainQuant: an int8 chain's integer side

    @property
    def tail(self):
        return self.members[-1]


class _Finder:
    """Reads one function: constants behind vars, users per var, conv chains."""

    def __init__(self, func: relax.Function) -> None:
        self._dequantized: dict = {}  # var -> its dequantised constant (computed once)
        self.value = {}  # var -> bound value
        self.users: dict = {}
        refs: list = []
        for block in func.body.blocks:
            for b in block.bindings:
                self.value[b.var] = b.value
                _vars_in(b.value, refs)
        _vars_in(func.body.body, refs)
        for v in refs:
            self.users[v] = self.users.get(v, 0) + 1
        self.by_input: dict = {}  # var -> the bindings that use it
        for block in func.body.blocks:
            for b in block.bindings:
                used: list = []
                _vars_in(b.value, used)
                for v in used:
                    self.by_input.setdefault(v, []).append(b)

    def const(self, expr) -> np.ndarray | None:
        """The value of a constant, or of a var bound to a reshape or broadcast of
        one (how the importer makes Conv biases and ConstantOfShape weights)."""
        if _const(expr) is not None:
            return _const(expr)
        if isinstance(expr, relax.Var) and expr in self.value:
            v = self.value[expr]
            if _const(v) is not None:  # a weight fold_weight_dequantize computed
                return _const(v)
            op, shape = _op(v), _shape(expr)
            if op == "relax.dequantize":  # an int8 model's weights and biases
                if expr not in self._dequantized:
                    self._dequantized[expr] = dequantize_value(self, v)
                return self._dequantized[expr]
            if op in ("relax.reshape", "relax.broadcast_to", "relax.permute_dims") \
                    and shape is not None:
                inner = self.const(v.args[0])
                if inner is None:
                    return None
                if op == "relax.permute_dims":
                    axes = v.attrs.axes
                    axes = None if axes is None else [int(i) for i in axes]
                    return np.ascontiguousarray(np.transpose(inner, axes))
                return inner.reshape(shape) if op == "relax.reshape" \
                    else np.ascontiguousarray(np.broadcast_to(inner, shape))
        return None

    def sole_user(self, var):
        if self.users.get(var, 0) != 1 or not isinstance(var, relax.DataflowVar):
            return None
        users = self.by_input.get(var, [])
        return users[0] if len(users) == 1 else None


_UNARY_ACTIVATIONS = {"relax.nn.relu": "relu", "relax.sigmoid": "sigmoid",
                      "relax.nn.silu": "silu", "relax.nn.gelu": "gelu",
                      "relax.nn.gelu_tanh": "gelu_tanh"}


def _activation(finder: _Finder, value) -> tuple | None:
    op = _op(value)
    if op in _UNARY_ACTIVATIONS:
        return (_UNARY_ACTIVATIONS[op],)
    if op == "relax.clip" and len(value.args) == 3:
        bounds = []
        for a in value.args[1:]:  # IntImm/FloatImm, or a PrimValue wrapping one
            v = getattr(a, "value", None)
            v = getattr(v, "value", v)
            if not isinstance(v, int | float):
                return None
            bounds.append(float(v))
        return ("clip", *bounds)
    return None


def _head(finder: _Finder, binding):
    """(kind, weight, output channels, bias shapes accepted) of a chain's first op."""
    call = binding.value
    op = _op(call)
    if op not in ("relax.nn.conv2d", "relax.nn.conv1d", "relax.matmul",
                  "relax.nn.conv2d_transpose"):
        return None
    a = call.attrs
    if a.out_dtype is not None and str(a.out_dtype) not in ("", "float32", "void"):
        return None
    x, w = call.args
    weight = finder.const(w)
    if weight is None or weight.dtype != np.float32:
        return None
    out = _shape(binding.var)
    if _shape(x) is None or out is None or _dtype(x) != "float32":
        return None
    if op == "relax.nn.conv2d":
        if (a.data_layout, a.kernel_layout, a.out_layout) != ("NCHW", "OIHW", "NCHW"):
            return None
        oc = weight.shape[0]
        return "conv2d", weight, oc, ((1, oc, 1, 1), (oc, 1, 1))
    if op == "relax.nn.conv2d_transpose":  # kernel = stride: a 1x1 conv + pixel shuffle
        if pixel_shuffle_of(call) is None:
            return None
        oc = weight.shape[1]
        return "conv2d_transpose", weight, oc, ((1, oc, 1, 1), (oc, 1, 1))
    if op == "relax.nn.conv1d":  # runs as a conv2d of height 1
        if (a.data_layout, a.kernel_layout, a.out_layout) != ("NCW", "OIW", "NCW"):
            return None
        oc = weight.shape[0]
        return "conv2d", weight[:, :, None, :], oc, ((1, oc, 1), (oc, 1))
    if weight.ndim != 2 or len(_shape(x)) < 2 or isinstance(x, tvm.ir.Constant):
        return None  # batched or vector B: TVM's lowering
    n = weight.shape[1]
    return "matmul", weight, n, tuple((1,) * i + (n,) for i in range(len(out)))


def _scalar(finder: _Finder, expr) -> float | None:
    c = finder.const(expr)
    return float(c.reshape(())) if c is not None and c.size == 1 else None


def _two_users(finder: _Finder, var) -> list | None:
    """The two bindings that read ``var`` (a gated activation's), else None."""
    if finder.users.get(var, 0) != 2 or not isinstance(var, relax.DataflowVar):
        return None
    users = finder.by_input.get(var, [])
    return users if len(users) == 2 else None


def _hardswish(finder: _Finder, var, claimed: set) -> list | None:
    """The bindings of x * clip(x * 1/6 + 1/2, 0, 1) (HardSwish as TVM imports
    x * HardSigmoid(x)) computed from ``var``, last one last; else None."""
    users = _two_users(finder, var)
    scale = [b for b in users or [] if _op(b.value) == "relax.multiply" and
             any(_scalar(finder, a) is not None and abs(_scalar(finder, a) - 1 / 6) < 1e-5
                 for a in b.value.args)]
    if len(scale) != 1:
        return None
    m1 = scale[0]
    add = finder.sole_user(m1.var)
    if add is None or _op(add.value) != "relax.add" or not any(
            _scalar(finder, a) is not None and abs(_scalar(finder, a) - 0.5) < 1e-6
            for a in add.value.args):
        return None
    clip = finder.sole_user(add.var)
    if clip is None or _activation(finder, clip.value) != ("clip", 0.0, 1.0):
        return None
    out = finder.sole_user(clip.var)
    other = next(b for b in users if not b.var.same_as(m1.var))
    if out is None or not out.var.same_as(other.var) or _op(out.value) != "relax.multiply":
        return None
    chain = [m1, add, clip, out]
    return None if any(b.var in claimed for b in chain) else chain


def _silu(finder: _Finder, var, claimed: set) -> list | None:
    """The bindings of x * sigmoid(x) (SiLU / Swish as ONNX exports spell it)."""
    users = _two_users(finder, var)
    sig = [b for b in users or [] if _op(b.value) == "relax.sigmoid"]
    if len(sig) != 1:
        return None
    mul = finder.sole_user(sig[0].var)
    other = next(b for b in users if not b.var.same_as(sig[0].var))
    if mul is None or not mul.var.same_as(other.var) or _op(mul.value) != "relax.multiply":
        return None
    chain = [sig[0], mul]
    return None if any(b.var in claimed for b in chain) else chain


def _erf_gelu(finder: _Finder, var, claimed: set) -> list | None:
    """The bindings of x * (erf(x / sqrt 2) + 1) * 0.5 (GELU as exported before
    ONNX had a Gelu op; x / sqrt 2 may be x * (1 / sqrt 2))."""
    users = _two_users(finder, var)
    if users is None:
        return None

    def is_scale(b):
        op = _op(b.value)
        if op not in ("relax.divide", "relax.multiply"):
            return False  # a tuple of outputs, another op
        c = [_scalar(finder, a) for a in b.value.args if not a.same_as(var)]
        return len(c) == 1 and c[0] is not None and (
            (op == "relax.divide" and abs(c[0] - 2 ** 0.5) < 1e-4) or
            (op == "relax.multiply" and abs(c[0] - 0.5 ** 0.5) < 1e-4))

    scale = [b for b in users if is_scale(b)]
    if len(scale) != 1:
        return None
    erf = finder.sole_user(scale[0].var)
    add = erf and finder.sole_user(erf.var)
    mul = add and finder.sole_user(add.var)
    half = mul and finder.sole_user(mul.var)
    other = next(b for b in users if not b.var.same_as(scale[0].var))
    if half is None or _op(erf.value) != "relax.erf" or _op(add.value) != "relax.add" or \
            not any(_scalar(finder, a) == 1.0 for a in add.value.args) or \
            not mul.var.same_as(other.var) or _op(mul.value) != "relax.multiply" or \
            _op(half.value) != "relax.multiply" or \
            not any(_scalar(finder, a) == 0.5 for a in half.value.args):
        return None
    chain = [scale[0], erf, add, mul, half]
    return None if any(b.var in claimed for b in chain) else chain


#: gated activations (the input is read twice), as (kind, pattern finder)
_GATED = (("hardswish", _hardswish), ("silu", _silu), ("gelu", _erf_gelu))


def _channel_shuffle(finder: _Finder, var, groups: int, claimed: set) -> list | None:
    """The bindings of a channel shuffle of ``var`` ([N, C, H, W] -> reshape
    [N, G, C/G, H, W] -> permute (0, 2, 1, 3, 4) -> reshape [N, C, H, W]) with
    G the producing conv's groups, else None: that conv can write its
    channels in shuffled order for free."""
    shape = _shape(var)
    if groups < 2 or shape is None or len(shape) != 4 or shape[1] % groups:
        return None
    n, c, h, w = shape
    r1 = finder.sole_user(var)
    if r1 is None or _op(r1.value) != "relax.reshape" or \
            _shape(r1.var) != [n, groups, c // groups, h, w]:
        return None
    perm = finder.sole_user(r1.var)
    if perm is None or _op(perm.value) != "relax.permute_dims" or perm.value.attrs.axes is None \
            or [int(a) for a in perm.value.attrs.axes] != [0, 2, 1, 3, 4]:
        return None
    r2 = finder.sole_user(perm.var)
    if r2 is None or _op(r2.value) != "relax.reshape" or _shape(r2.var) != shape:
        return None
    chain = [r1, perm, r2]
    return None if any(b.var in claimed for b in chain) else chain


def _inference_batch_norm(finder: _Finder, binding, channels: int, axis: int):
    """((scale, shift), the binding taking result [0]) of an inference-mode
    batch_norm with constant parameters on ``axis``, else None."""
    v = binding.value
    a = v.attrs
    if bool(a.training) or int(a.axis) != axis:
        return None
    params = [finder.const(x) for x in v.args[1:5]]
    if any(p is None or p.size != channels for p in params):
        return None
    gamma, beta, mean, var = (p.reshape(channels).astype(np.float64) for p in params)
    gamma = gamma if bool(a.scale) else np.ones(channels)
    beta = beta if bool(a.center) else np.zeros(channels)
    s = gamma / np.sqrt(var + float(a.epsilon))
    item = finder.sole_user(binding.var)
    if item is None or not isinstance(item.value, relax.TupleGetItem) or item.value.index != 0:
        return None
    return (s.astype(np.float32), (beta - mean * s).astype(np.float32)), item


def find_chain(finder: _Finder, binding, claimed: set, unit: VectorUnit) -> Chain | None:
    head = _head(finder, binding)
    if head is None:
        return None
    kind, weight, oc, bias_shapes = head
    call = binding.value
    members, epi, residual = [binding], Epilogue(ops=[kind]), None
    bias_exprs = []
    current = binding.var
    stage = "bias"
    scale = shift = None  # per output channel, applied before the first activation
    post = None  # [oc, 2] scale and shift after it
    while True:
        if stage in ("bias", "act"):
            gated = next(((kind, found) for kind, find in _GATED
                          if (found := find(finder, current, claimed))),
                         None)
            if gated is not None:
                epi.act = (gated[0],)
                epi.ops.append(gated[0])
                members += gated[1]
                current = gated[1][-1].var
                stage = "act1done"
                continue
        nxt = finder.sole_user(current)
        if nxt is None or nxt.var in claimed:
            break
        op, v = _op(nxt.value), nxt.value
        if op == "relax.broadcast_to" and _shape(nxt.var) == _shape(current):
            members.append(nxt)  # a no-op broadcast (how the importer starts an ONNX Sum)
            current = nxt.var
            continue
        if op == "relax.nn.batch_norm" and stage in ("bias", "act"):
            folded = _inference_batch_norm(finder, nxt, oc, 1 if kind != "matmul"
                                           else len(_shape(current)) - 1)
            if folded is None:
                break
            (s_bn, t_bn), item = folded
            scale = s_bn if scale is None else scale * s_bn
            shift = t_bn if shift is None else shift * s_bn + t_bn
            epi.ops.append("bn")
            bias_exprs.append(None)  # a shift of its own: not an integer bias
            members += [nxt, item]
            current = item.var
            stage = "act"
            continue
        other = (v.args[1] if v.args[0].same_as(current) else v.args[0]) \
            if op in ("relax.add", "relax.multiply", "relax.divide") else None
        per_channel = None if other is None else finder.const(other)
        if per_channel is not None and not (
                per_channel.size == 1 or (per_channel.size == oc and per_channel.shape in
                                          bias_shapes)):
            per_channel = None
        if per_channel is not None and stage == "act1done" and \
                op in ("relax.add", "relax.multiply"):
            # an affine after the activation: kept per channel in the epilogue
            c = np.broadcast_to(per_channel.reshape(-1).astype(np.float32), (oc,))
            if post is None:
                post = np.stack([np.ones(oc, np.float32), np.zeros(oc, np.float32)], 1)
            if op == "relax.add":
                post[:, 1] += c
            else:
                post *= c[:, None]
            epi.ops.append("affine")
            members.append(nxt)
            current = nxt.var
            continue
        if per_channel is not None and stage in ("bias", "act") and \
                (op != "relax.divide" or v.args[1].same_as(other)):
            # y*s + t before the activation (BatchNorm exported as Mul and Add):
            # the scale goes into the weights, the shift into the bias
            c = np.broadcast_to(per_channel.reshape(-1).astype(np.float32), (oc,))
            if op == "relax.add":
                shift = c if shift is None else shift + c
                epi.ops.append("bias")
                bias_exprs.append(other)
            else:
                c = 1.0 / c if op == "relax.divide" else c
                scale = c if scale is None else scale * c
                shift = None if shift is None else shift * c
                epi.ops.append("scale")
                bias_exprs.clear()  # scaled: no longer the integer bias
            stage = "act"
        elif op == "relax.add" and stage == "bias":
            b = finder.const(other)
            if b is not None:
                break
            elif b is None and isinstance(other, relax.Var) and \
                    _shape(other) == _shape(current) and _dtype(other) == "float32":
                residual, epi.residual = other, True
                epi.ops.append("add")
                stage = "act2"
            else:
                break
        elif op == "relax.add" and stage in ("act", "act1done"):
            other = v.args[1] if v.args[0].same_as(current) else v.args[0]
            if isinstance(other, relax.Var) and _shape(other) == _shape(current) \
                    and _dtype(other) == "float32" and finder.const(other) is None:
                residual, epi.residual = other, True
                epi.ops.append("add")
                stage = "act2"
            else:
                break
        elif _activation(finder, v) is not None and stage in ("bias", "act"):
            epi.act = _activation(finder, v)
            epi.ops.append(epi.act[0])
            stage = "act1done"
        elif _activation(finder, v) is not None and stage == "act2":
            epi.act2 = _activation(finder, v)
            epi.ops.append(epi.act2[0])
            stage = "done"
        else:
            break
        members.append(nxt)
        current = nxt.var
        if stage == "done":
            break
    if kind == "conv2d" and residual is None and _op(call) == "relax.nn.conv2d":
        shuffle = _channel_shuffle(finder, current, int(call.attrs.groups), claimed)
        if shuffle is not None:
            epi.shuffle = True
            epi.ops.append("shuffle")
            members += shuffle
    if shift is not None:
        epi.bias = shift.astype(np.float32)
    if post is not None:
        epi.post = np.ascontiguousarray(post, np.float32)
    if scale is not None:  # output channel o of the weights: dim 0 (OIHW) or 1 ([K, N], IOHW)
        weight = weight * (scale[:, None, None, None] if kind == "conv2d" else
                           scale[None, :, None, None] if kind == "conv2d_transpose" else
                           scale[None, :])
        weight = weight.astype(np.float32)
    if kind == "conv2d_transpose":
        # channel (o, i, j) of the 1x1 conv is output pixel (i, j) of channel o:
        # W[c, o, i, j] -> W'[(o, i, j), c], per-channel epilogue values repeated
        c, o, kh, kw = weight.shape
        weight = np.ascontiguousarray(weight.transpose(1, 2, 3, 0)).reshape(o * kh * kw, c, 1, 1)
        if epi.bias is not None:
            epi.bias = np.repeat(epi.bias, kh * kw)
        if epi.post is not None:
            epi.post = np.repeat(epi.post, kh * kw, axis=0)
        shape = conv_shape(call)
        return Chain(binding, members, epi, weight, shuffle_tile(shape, unit, kh), residual,
                     scale, bias_exprs)
    if kind == "matmul":
        x_shape = _shape(call.args[0])
        shape = MatmulShape(int(np.prod(x_shape[:-1])), x_shape[-1], oc)
        tile = choose_matmul_tile(shape, unit)
    else:
        shape = conv_shape(call)
        tile = choose_depthwise_tile(shape, unit) if is_depthwise(shape) \
            else choose_tile(shape, unit)
    if tile is None:
        return None
    return Chain(binding, members, epi, weight, tile, residual, scale, bias_exprs)


def pixel_shuffle_of(call) -> int | None:
    """k for a ConvTranspose whose kernel equals its stride (k x k, no padding,
    groups or dilation; the upsampling heads of detection models), else None."""
    if _op(call) != "relax.nn.conv2d_transpose":
        return None
    a = call.attrs
    kh, kw = _shape(call.args[1])[2:]
    if (a.data_layout, a.kernel_layout, a.out_layout) != ("NCHW", "IOHW", "NCHW") or \
            int(a.groups) != 1 or kh != kw or [int(v) for v in a.strides] != [kh, kw] or \
            any(int(v) for v in a.padding) or any(int(v) for v in a.output_padding) or \
            any(int(v) != 1 for v in a.dilation):
        return None
    return kh


def shuffle_tile(shape: ConvShape, unit: VectorUnit, k: int) -> ConvTile:
    """A pixel tile whose channel blocks hold whole k x k groups, so the kernel
    can write them pixel-shuffled (see conv2d_kernel)."""
    tile = choose_tile(shape, unit)
    if not tile.pixels:
        tile = choose_tile(replace(shape, c=1), unit)  # the pixel tile for these widths
    k2 = k * k
    ob = max(k2, tile.ob - tile.ob % k2)
    # the pixel-shuffled write-back has no tail tile: the blocks must cover the channels
    # exactly (O*k*k = 8 with 12-channel blocks failed to build: "TensorRegion pattern
    # match failed"); k*k always divides them
    while shape.o % ob:
        ob -= k2
    vectors = max(1, min(tile.xt // tile.lanes, unit.preferred_accumulators // ob))
    return ConvTile(ob, vectors * tile.lanes, tile.lanes, pixels=True)


def conv_shape(call) -> ConvShape:
    """The conv2d a conv2d or conv1d call computes (a conv1d is one of height 1;
    a ConvTranspose with kernel = stride = k, the 1x1 conv to k*k*O channels)."""
    a = call.attrs
    k = pixel_shuffle_of(call)
    if k is not None:
        n, c, h, w = _shape(call.args[0])
        o = _shape(call.args[1])[1]
        return ConvShape(n, c, h, w, o * k * k, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    strides, dilation = [int(v) for v in a.strides], [int(v) for v in a.dilation]
    padding = [int(v) for v in a.padding]
    if _op(call) == "relax.nn.conv1d":
        n, c, w = _shape(call.args[0])
        o, _, kw = _shape(call.args[1])
        return ConvShape(n, c, 1, w, o, 1, kw, (1, strides[0]), (0, padding[0], 0, padding[1]),
                         (1, dilation[0]), int(a.groups))
    n, c, h, w = _shape(call.args[0])
    o, _, kh, kw = _shape(call.args[1])
    return ConvShape(n, c, h, w, o, kh, kw, tuple(strides), tuple(padding), tuple(dilation),
                     int(a.groups))

"""Seeded random valid ONNX graphs for edgec's differential tester.

``generate(seed, index)`` builds one small float32 graph (opset 17, 2-12 ops
plus the constants they need) from a generator seeded with ``(seed, index)``,
so the same pair always gives the same model. The graphs are aimed at what
edgec special-cases (docs/kernels.md): convs of every stride / dilation /
group / depthwise / 1x1 / Winograd-eligible 3x3 kind with constant weights,
conv chains (blocked NCHW[b]c layouts between them), fused epilogues
(BatchNorm, per-channel affine, activations, residual Add), padded pools,
channel concats, MatMul / Gemm with constant or computed right-hand sides and
broadcast batch dims, reductions, softmax and normalisations, reshapes,
transposes, slices and resizes, plus the patterns edgec's ``simplify`` pass
rewrites (decomposed HardSwish, SiLU, GELU, x*1, x+0, Transpose pairs,
Sum of 2-3 inputs, shape subgraphs).

Every graph is checked with ``onnx.checker`` (full), strict shape inference
and one onnxruntime run before it is returned; a candidate that fails (a
combination the generator got wrong) is redrawn with the next attempt number,
so the result is still a function of ``(seed, index)``.

Inputs are uniform in [-1, 1) (``make_feeds``); weights are scaled by
1/sqrt(fan-in) and divisors kept away from zero, so values stay O(1) and a
difference from onnxruntime is about the compiler, not about conditioning.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
#: channel counts: odd ones, whole AVX2 / AVX-512 vectors (blocked layouts, Winograd) and
#: off-by-one from them
CHANNELS = (1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 24, 32)
SPATIAL = (1, 2, 3, 5, 7, 8, 9, 11, 13, 14, 16, 17)
MAX_ELEMENTS = 40_000  # per tensor: keeps compiles and runs fast


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass
class Graph:
    """A generated model and how to feed it."""

    model: onnx.ModelProto
    seed: int
    index: int
    attempt: int
    ops: Counter = field(default_factory=Counter)
    features: Counter = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return f"s{self.seed}-g{self.index}"


class Reject(Exception):
    """This op does not fit the chosen tensor; the builder tries another."""


def make_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Uniform [-1, 1) float32 inputs for every graph input (the fuzzer's input range)."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.uniform(-1, 1, shape).astype(np.float32)
    return feeds


def ort_session(model: onnx.ModelProto, *, optimise: bool = True):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimise:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray], *,
              optimise: bool = True) -> dict[str, np.ndarray]:
    """onnxruntime's outputs, by name (``optimise=False``: no graph fusions, e.g. QDQ
    models run as their float ops)."""
    sess = ort_session(model, optimise=optimise)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds), strict=True))


class Builder:
    """Grows one graph op by op; each ``op_*`` method adds a node (or a short pattern)
    reading existing tensors and returns the new tensor, or raises Reject."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[Tensor] = []
        self.tensors: list[Tensor] = []
        self.uses: Counter = Counter()
        self.features: Counter = Counter()
        self.counter = 0

    # ------------------------------------------------------------------ helpers

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def const(self, arr: np.ndarray, prefix: str = "c") -> str:
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def weight(self, shape, fan_in: int) -> str:
        w = self.rng.standard_normal(shape) / math.sqrt(max(fan_in, 1))
        return self.const(w.astype(np.float32), "w")

    def node(self, op: str, inputs: list[str], shape, **attrs) -> Tensor:
        out = Tensor(self.fresh("t"), tuple(int(d) for d in shape))
        if out.size > MAX_ELEMENTS or any(d < 1 for d in out.shape):
            raise Reject(f"{op}: output {out.shape}")
        for i in inputs:
            if i:
                self.uses[i] += 1
        self.nodes.append(helper.make_node(op, inputs, [out.name], name=f"n{len(self.nodes)}_{op}",
                                           **attrs))
        self.tensors.append(out)
        return out

    def add_input(self, shape) -> Tensor:
        t = Tensor(f"in{len(self.inputs)}", tuple(shape))
        self.inputs.append(t)
        self.tensors.append(t)
        return t

    def broadcast_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A shape that broadcasts against ``shape`` (to ``shape`` itself, mostly)."""
        kind = self.rng.integers(5)
        if kind == 0:
            return ()
        if kind == 1:
            return shape
        if kind == 2 and len(shape) >= 3:  # per channel, as BatchNorm exported as Mul/Add
            return (shape[1],) + (1,) * (len(shape) - 2) if len(shape) == 4 else (shape[-1],)
        out = [d if self.chance(0.5) else 1 for d in shape]
        drop = int(self.rng.integers(0, len(shape))) if self.chance(0.4) else 0
        return tuple(out[drop:])

    def _same_shape_tensors(self, t: Tensor) -> list[Tensor]:
        return [u for u in self.tensors if u.shape == t.shape and u.name != t.name]

    # --------------------------------------------------------------- elementwise

    def op_unary(self, x: Tensor) -> Tensor:
        op = self.choice(["Relu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu",
                          "Clip", "Clip", "Abs", "Neg", "Elu", "Softplus", "Erf", "Identity"])
        if op == "Clip":
            lo = float(self.choice([0.0, -1.0, -0.5, -6.0]))
            hi = float(self.choice([6.0, 1.0, 0.5, 3.0]))
            ins = [x.name, self.const(np.array(lo, np.float32))]
            if self.chance(0.8):
                ins.append(self.const(np.array(hi, np.float32)))
            return self.node("Clip", ins, x.shape)
        attrs = {}
        if op == "LeakyRelu":
            attrs["alpha"] = float(self.choice([0.01, 0.1, 0.2]))
        if op == "HardSigmoid" and self.chance(0.5):
            attrs.update(alpha=1 / 6, beta=0.5)
        return self.node(op, [x.name], x.shape, **attrs)

    def op_binary(self, x: Tensor) -> Tensor:
        op = self.choice(["Add", "Add", "Mul", "Mul", "Sub", "Div", "Max", "Min"])
        partners = self._same_shape_tensors(x)
        if op != "Div" and partners and self.chance(0.4):
            other = self.choice(partners).name  # residual / two computed tensors
            oshape: tuple[int, ...] = x.shape
            self.features["binary-computed"] += 1
        else:
            oshape = self.broadcast_shape(x.shape)
            if op == "Div":
                mag = self.rng.uniform(0.5, 2.0, oshape)
                val = mag * self.rng.choice([-1.0, 1.0], oshape)
            else:
                val = self.rng.uniform(-1.0, 1.0, oshape)
            other = self.const(val.astype(np.float32))
            self.features["binary-const"] += 1
        ins = [x.name, other]
        if op in ("Add", "Mul", "Max", "Min") and self.chance(0.3):
            ins.reverse()
        rank = max(len(x.shape), len(oshape))
        a = (1,) * (rank - len(x.shape)) + x.shape
        b = (1,) * (rank - len(oshape)) + oshape
        return self.node(op, ins, tuple(max(p, q) for p, q in zip(a, b, strict=True)))

    def op_div_computed(self, x: Tensor) -> Tensor:
        """x / (1 + |y|): a divide by a computed tensor that stays away from zero."""
        ys = self._same_shape_tensors(x) or [x]
        y = self.choice(ys)
        a = self.node("Abs", [y.name], y.shape)
        d = self.node("Add", [a.name, self.const(np.array(1.0, np.float32))], y.shape)
        return self.node("Div", [x.name, d.name], x.shape)

    def op_pattern(self, x: Tensor) -> Tensor:
        """What exporters emit and edgec's simplify pass rewrites."""
        kind = self.choice(["hardswish", "silu", "gelu", "mul1", "add0", "sum", "affine",
                            "cast", "expand"])
        self.features[f"pattern-{kind}"] += 1
        f32 = lambda v: self.const(np.array(v, np.float32))  # noqa: E731
        if kind == "hardswish":  # x * Clip(x + 3, 0, 6) / 6
            a = self.node("Add", [x.name, f32(3.0)], x.shape)
            c = self.node("Clip", [a.name, f32(0.0), f32(6.0)], x.shape)
            m = self.node("Mul", [x.name, c.name], x.shape)
            return self.node("Div", [m.name, f32(6.0)], x.shape)
        if kind == "silu":
            s = self.node("Sigmoid", [x.name], x.shape)
            return self.node("Mul", [x.name, s.name], x.shape)
        if kind == "gelu":  # x * (Erf(x / sqrt 2) + 1) * 0.5
            d = self.node("Div", [x.name, f32(math.sqrt(2.0))], x.shape)
            e = self.node("Erf", [d.name], x.shape)
            a = self.node("Add", [e.name, f32(1.0)], x.shape)
            m = self.node("Mul", [x.name, a.name], x.shape)
            return self.node("Mul", [m.name, f32(0.5)], x.shape)
        if kind == "mul1":
            return self.node("Mul", [x.name, f32(1.0)], x.shape)
        if kind == "add0":
            return self.node("Add", [f32(0.0), x.name], x.shape)
        if kind == "sum":
            others = self._same_shape_tensors(x)
            k = min(len(others), int(self.rng.integers(1, 3)))
            if k == 0:
                raise Reject("sum: no partner")
            picks = [others[int(i)].name for i in self.rng.choice(len(others), k, replace=False)]
            return self.node("Sum", [x.name, *picks], x.shape)
        if kind == "affine":  # BatchNorm exported as per-channel Mul then Add
            if x.rank != 4:
                raise Reject("affine: not NCHW")
            c = x.shape[1]
            s = self.const(self.rng.uniform(0.5, 1.5, (c, 1, 1)).astype(np.float32))
            b = self.const(self.rng.uniform(-0.5, 0.5, (c, 1, 1)).astype(np.float32))
            m = self.node("Mul", [x.name, s], x.shape)
            return self.node("Add", [m.name, b], x.shape)
        if kind == "cast":
            return self.node("Cast", [x.name], x.shape, to=TensorProto.FLOAT)
        # expand: to its own shape (a no-op) or along a broadcast dim of size 1
        target = list(x.shape)
        ones = [i for i, d in enumerate(target) if d == 1]
        if ones and self.chance(0.5):
            target[self.choice(ones)] = int(self.choice([2, 3]))
        return self.node("Expand", [x.name, self.const(np.array(target, np.int64))], target)

    # -------------------------------------------------------------------- convs

    def op_conv(self, x: Tensor) -> Tensor:
        if x.rank != 4:
            raise Reject("conv: not NCHW")
        n, c, h, w = x.shape
        kind = self.choice(["dense", "dense", "dense", "depthwise", "grouped", "pointwise",
                            "winograd"])
        if c % 16 == 0 and min(h, w) >= 7 and self.chance(0.4):
            kind = "winograd"
        k = int(self.choice([1, 3, 3, 3, 5, 2]))
        stride = int(self.choice([1, 1, 1, 2]))
        dil = 1 if self.chance(0.8) else 2
        groups = 1
        out_c = int(self.choice(CHANNELS))
        if kind == "pointwise":
            k, dil = 1, 1
        elif kind == "winograd":  # 3x3 stride 1, pad <= 1, ungrouped, whole input vectors
            if c % 8:
                raise Reject("winograd: channels not in vectors")
            k, stride, dil = 3, 1, 1
        elif kind == "depthwise":
            groups = c
            out_c = c * int(self.choice([1, 1, 1, 2]))
        elif kind == "grouped":
            divs = [g for g in range(2, c + 1) if c % g == 0 and g < c]
            if not divs:
                raise Reject("grouped: prime channels")
            groups = int(self.choice(divs))
            out_c = groups * int(self.choice([1, 2, 3, 4]))
        if k > 1 and kind != "winograd":
            pads = [int(self.rng.integers(0, k)) for _ in range(4)]
            if self.chance(0.6):
                p = (dil * (k - 1)) // 2
                pads = [p, p, p, p]
        else:
            pads = [1, 1, 1, 1] if k == 3 and self.chance(0.8) else [0, 0, 0, 0]
        ek = dil * (k - 1) + 1
        oh = (h + pads[0] + pads[2] - ek) // stride + 1
        ow = (w + pads[1] + pads[3] - ek) // stride + 1
        if oh < 1 or ow < 1:
            raise Reject("conv: window larger than the map")
        attrs = {"kernel_shape": [k, k], "pads": pads}
        if stride != 1:
            attrs["strides"] = [stride, stride]
        if dil != 1:
            attrs["dilations"] = [dil, dil]
        if groups != 1:
            attrs["group"] = groups
        if self.chance(0.15) and stride == 1 and dil == 1 and k % 2 == 1 and pads[0] == k // 2:
            attrs.pop("pads")
            attrs["auto_pad"] = "SAME_UPPER"
        fan_in = (c // groups) * k * k
        ins = [x.name, self.weight((out_c, c // groups, k, k), fan_in)]
        if self.chance(0.7):
            ins.append(self.const(self.rng.uniform(-0.3, 0.3, out_c).astype(np.float32)))
        self.features[f"conv-{kind}"] += 1
        self.features[f"conv-k{k}s{stride}d{dil}"] += 1
        return self.node("Conv", ins, (n, out_c, oh, ow), **attrs)

    def op_conv_chain(self, x: Tensor) -> Tensor:
        """conv -> (BN | affine) -> activation -> conv: blocked layouts and epilogues."""
        y = self.op_conv(x)
        if self.chance(0.5):
            y = self.op_batchnorm(y)
        if self.chance(0.7):
            y = self.node(self.choice(["Relu", "HardSwish", "Sigmoid", "LeakyRelu"]), [y.name],
                          y.shape)
        z = self.op_conv(y)
        if z.shape == y.shape and self.chance(0.5):
            self.features["residual-add"] += 1
            z = self.node("Add", [z.name, y.name], z.shape)
        return z

    def op_conv_transpose(self, x: Tensor) -> Tensor:
        if x.rank != 4:
            raise Reject("convT: not NCHW")
        n, c, h, w = x.shape
        k = int(self.choice([2, 2, 3, 4]))
        s = k if self.chance(0.7) else int(self.choice([1, 2]))
        out_c = int(self.choice(CHANNELS))
        attrs = {"kernel_shape": [k, k], "strides": [s, s]}
        pad = 0
        if s != k and self.chance(0.5):
            pad = 1 if k >= 3 else 0
            attrs["pads"] = [pad] * 4
        oh = (h - 1) * s + k - 2 * pad
        ow = (w - 1) * s + k - 2 * pad
        ins = [x.name, self.weight((c, out_c, k, k), c * k * k // max(s * s, 1))]
        if self.chance(0.6):
            ins.append(self.const(self.rng.uniform(-0.3, 0.3, out_c).astype(np.float32)))
        self.features["convT-k=s" if s == k else "convT-other"] += 1
        return self.node("ConvTranspose", ins, (n, out_c, oh, ow), **attrs)

    def op_batchnorm(self, x: Tensor) -> Tensor:
        if x.rank < 2:
            raise Reject("bn: rank")
        c = x.shape[1]
        vals = [self.rng.uniform(0.5, 1.5, c), self.rng.uniform(-0.5, 0.5, c),
                self.rng.uniform(-0.3, 0.3, c), self.rng.uniform(0.5, 2.0, c)]
        ins = [x.name] + [self.const(v.astype(np.float32)) for v in vals]
        return self.node("BatchNormalization", ins, x.shape,
                         epsilon=float(self.choice([1e-5, 1e-3])))

    def op_pad(self, x: Tensor) -> Tensor:
        """A constant Pad, mostly before a conv (edgec's fuse-pad)."""
        if x.rank != 4:
            raise Reject("pad: rank")
        p = [0, 0, int(self.rng.integers(0, 3)), int(self.rng.integers(0, 3)),
             0, 0, int(self.rng.integers(0, 3)), int(self.rng.integers(0, 3))]
        mode = self.choice(["constant", "constant", "reflect", "edge"])
        if mode == "reflect" and (max(p[2], p[6]) >= x.shape[2] or max(p[3], p[7]) >= x.shape[3]):
            mode = "constant"
        shape = tuple(d + p[i] + p[i + 4] for i, d in enumerate(x.shape))
        ins = [x.name, self.const(np.array(p, np.int64))]
        if mode == "constant" and self.chance(0.3):
            ins.append(self.const(np.array(0.5, np.float32)))
        y = self.node("Pad", ins, shape, mode=mode)
        if self.chance(0.7):
            self.features["pad-conv"] += 1
            return self.op_conv(y)
        return y

    # -------------------------------------------------------------------- pools

    def op_pool(self, x: Tensor) -> Tensor:
        if x.rank != 4:
            raise Reject("pool: rank")
        n, c, h, w = x.shape
        op = self.choice(["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"])
        if op.startswith("Global"):
            return self.node(op, [x.name], (n, c, 1, 1))
        k = int(self.choice([2, 3, 3, 5]))
        s = int(self.choice([1, 2, 2]))
        d = 2 if op == "MaxPool" and self.chance(0.15) else 1
        pads = [0, 0, 0, 0]
        if self.chance(0.6):
            pads = [int(self.rng.integers(0, k // 2 + 1)) for _ in range(4)]
        ceil = self.chance(0.3)
        ek = d * (k - 1) + 1
        attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": pads}
        if d != 1:
            attrs["dilations"] = [d, d]
        if ceil:
            attrs["ceil_mode"] = 1
        if op == "AveragePool" and self.chance(0.5):
            attrs["count_include_pad"] = 1

        def out(size: int, a: int, b: int) -> int:
            span = size + a + b - ek
            if span < 0:
                raise Reject("pool: window larger than the map")
            o = (-(-span // s) if ceil else span // s) + 1
            if ceil and (o - 1) * s >= size + a:  # the last window would start in the padding
                o -= 1
            return o

        shape = (n, c, out(h, pads[0], pads[2]), out(w, pads[1], pads[3]))
        self.features[f"{op}-{'padded' if any(pads) else 'valid'}"] += 1
        return self.node(op, [x.name], shape, **attrs)

    def op_resize(self, x: Tensor) -> Tensor:
        if x.rank != 4:
            raise Reject("resize: rank")
        n, c, h, w = x.shape
        mode = self.choice(["nearest", "linear"])
        if mode == "nearest":
            ctm = self.choice(["asymmetric", "half_pixel", "align_corners"])
            nm = self.choice(["floor", "round_prefer_floor", "round_prefer_ceil", "ceil"])
            attrs = {"mode": mode, "coordinate_transformation_mode": ctm, "nearest_mode": nm}
        else:
            ctm = self.choice(["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"])
            attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
        if self.chance(0.6):
            f = float(self.choice([2.0, 2.0, 3.0, 0.5]))
            oh, ow = math.floor(h * f), math.floor(w * f)
            if oh < 1 or ow < 1:
                raise Reject("resize: empty")
            ins = [x.name, "", self.const(np.array([1, 1, f, f], np.float32))]
            if oh != h * f or ow != w * f:  # ONNX samples at the scale, not at oh / h
                self.features["resize-scale-not-size-ratio"] += 1
        else:
            oh = int(self.choice([h * 2, h + 1, max(1, h - 2), 13, 7]))
            ow = int(self.choice([w * 2, w + 3, max(1, w // 2), 13, 9]))
            ins = [x.name, "", "", self.const(np.array([n, c, oh, ow], np.int64))]
        self.features[f"resize-{mode}-{ctm}"] += 1
        return self.node("Resize", ins, (n, c, oh, ow), **attrs)

    # ----------------------------------------------------------------- matrices

    def op_matmul(self, x: Tensor) -> Tensor:
        if x.rank < 2:
            raise Reject("matmul: rank")
        k = x.shape[-1]
        n = int(self.choice([1, 3, 7, 8, 13, 16, 17, 32, 48]))
        if self.chance(0.25) and x.rank <= 3:  # broadcast batch dims on the constant side
            b = int(self.choice([2, 3]))
            lead = (b,) if x.rank == 2 or x.shape[0] == 1 else (x.shape[0],)
            bshape = (*lead, k, n)
            self.features["matmul-const-batched"] += 1
        else:
            bshape = (k, n)
            self.features["matmul-const"] += 1
        wname = self.weight(bshape, k)
        a = x.shape[:-2]
        bb = bshape[:-2]
        rank = max(len(a), len(bb))
        a = (1,) * (rank - len(a)) + a
        bb = (1,) * (rank - len(bb)) + bb
        lead = tuple(max(p, q) for p, q in zip(a, bb, strict=True))
        y = self.node("MatMul", [x.name, wname], (*lead, x.shape[-2], n))
        if self.chance(0.5):
            bias = self.const(self.rng.uniform(-0.3, 0.3, n).astype(np.float32))
            y = self.node("Add", [y.name, bias], y.shape)
        return y

    def op_batch_matmul(self, x: Tensor) -> Tensor:
        """Two computed operands: attention's scores and context, with broadcast batches."""
        if x.rank < 2:
            raise Reject("bmm: rank")
        d = x.shape[-1]
        perm = list(range(x.rank))
        perm[-1], perm[-2] = perm[-2], perm[-1]
        if self.chance(0.5):  # x @ x^T -> scores, softmax, @ x
            xt = self.node("Transpose", [x.name], tuple(x.shape[p] for p in perm), perm=perm)
            s = self.node("MatMul", [x.name, xt.name], (*x.shape[:-1], x.shape[-2]))
            s = self.node("Mul", [s.name, self.const(np.array(1 / math.sqrt(d), np.float32))],
                          s.shape)
            p = self.node("Softmax", [s.name], s.shape, axis=-1)
            self.features["attention"] += 1
            return self.node("MatMul", [p.name, x.name], x.shape)
        # broadcast: x [.., M, K] @ y [B, .., K, N] with y computed from a constant-shaped input
        n = int(self.choice([3, 5, 8, 16]))
        lead = (int(self.choice([1, 2, 3])),) + (1,) * (x.rank - 2)
        yshape = (*lead, d, n) if x.rank > 2 else (d, n)
        y0 = self.const(self.rng.uniform(-1, 1, yshape).astype(np.float32))
        y = self.node("Tanh", [y0], yshape)  # computed: not a constant weight
        lx = x.shape[:-2]
        ly = yshape[:-2]
        rank = max(len(lx), len(ly))
        lx = (1,) * (rank - len(lx)) + lx
        ly = (1,) * (rank - len(ly)) + ly
        out_lead = tuple(max(p, q) for p, q in zip(lx, ly, strict=True))
        self.features["matmul-computed-broadcast"] += 1
        return self.node("MatMul", [x.name, y.name], (*out_lead, x.shape[-2], n))

    def op_gemm(self, x: Tensor) -> Tensor:
        if x.rank != 2:
            raise Reject("gemm: rank")
        m, k = x.shape
        n = int(self.choice([1, 5, 8, 13, 16, 33]))
        trans_b = self.chance(0.6)
        attrs = {}
        if trans_b:
            attrs["transB"] = 1
        if self.chance(0.3):
            attrs["alpha"] = float(self.choice([0.5, 2.0]))
        ins = [x.name, self.weight((n, k) if trans_b else (k, n), k)]
        if self.chance(0.7):
            cshape = self.choice([(n,), (1, n), (m, n), (m, 1), ()])
            ins.append(self.const(self.rng.uniform(-0.3, 0.3, cshape).astype(np.float32)))
            if self.chance(0.3):
                attrs["beta"] = float(self.choice([0.5, 2.0]))
        return self.node("Gemm", ins, (m, n), **attrs)

    # ---------------------------------------------------------- normalisations

    def op_softmax(self, x: Tensor) -> Tensor:
        axis = int(self.rng.integers(-x.rank, x.rank)) if self.chance(0.4) else -1
        return self.node(self.choice(["Softmax", "Softmax", "LogSoftmax"]), [x.name], x.shape,
                         axis=axis)

    def op_layernorm(self, x: Tensor) -> Tensor:
        axis = -1 if self.chance(0.7) else int(self.rng.integers(1, x.rank)) if x.rank > 1 else -1
        norm = x.shape[axis:]
        ins = [x.name, self.const(self.rng.uniform(0.5, 1.5, norm).astype(np.float32))]
        if self.chance(0.7):
            ins.append(self.const(self.rng.uniform(-0.5, 0.5, norm).astype(np.float32)))
        return self.node("LayerNormalization", ins, x.shape, axis=axis,
                         epsilon=float(self.choice([1e-5, 1e-6])))

    def op_reduce(self, x: Tensor) -> Tensor:
        op = self.choice(["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2"])
        k = int(self.rng.integers(1, x.rank + 1))
        axes = sorted(int(a) for a in self.rng.choice(x.rank, k, replace=False))
        if self.chance(0.3):
            axes = [a - x.rank for a in axes]
        keep = self.chance(0.6)
        shape = [1 if (i in axes or i - x.rank in axes) else d for i, d in enumerate(x.shape)]
        if not keep:
            shape = [d for i, d in enumerate(x.shape) if not (i in axes or i - x.rank in axes)]
        if not shape:
            raise Reject("reduce: scalar output")
        if op == "ReduceSum":  # opset 13+: axes as an input
            ins = [x.name, self.const(np.array(axes, np.int64))]
            return self.node(op, ins, shape, keepdims=int(keep))
        return self.node(op, [x.name], shape, axes=axes, keepdims=int(keep))

    # ------------------------------------------------------------------ shapes

    def op_reshape(self, x: Tensor) -> Tensor:
        kind = self.rng.integers(4)
        if kind == 0 and x.rank == 4:
            return self.op_shuffle(x)
        return self._reshape(x, kind)

    def op_shuffle(self, x: Tensor) -> Tensor:
        """Channel shuffle (ShuffleNet): [n, g, c/g, h, w] -> swap g and c/g -> back."""
        if x.rank != 4:
            raise Reject("shuffle: rank")
        n, c, h, w = x.shape
        gs = [g for g in range(2, c) if c % g == 0]
        if not gs:
            raise Reject("shuffle: prime channels")
        g = int(self.choice(gs))
        r = self.node("Reshape", [x.name, self.const(np.array([n, g, c // g, h, w], np.int64))],
                      (n, g, c // g, h, w))
        t = self.node("Transpose", [r.name], (n, c // g, g, h, w), perm=[0, 2, 1, 3, 4])
        self.features["channel-shuffle"] += 1
        return self.node("Reshape", [t.name, self.const(np.array(x.shape, np.int64))], x.shape)

    def _reshape(self, x: Tensor, kind: int) -> Tensor:
        total = x.size
        if kind == 1 and x.rank >= 2:  # flatten the tail, as exporters do with -1 / 0
            shape = [x.shape[0], total // x.shape[0]]
            spec = [0, -1] if self.chance(0.5) else shape
            return self.node("Reshape", [x.name, self.const(np.array(spec, np.int64))], shape)
        if kind == 2:  # exported shape subgraph: Shape -> Gather -> Unsqueeze -> Concat
            s = self.node_any("Shape", [x.name])
            g = self.node_any("Gather", [s, self.const(np.array(0, np.int64))], axis=0)
            u = self.node_any("Unsqueeze", [g, self.const(np.array([0], np.int64))])
            cat = self.node_any("Concat", [u, self.const(np.array([-1], np.int64))], axis=0)
            self.features["shape-subgraph"] += 1
            return self.node("Reshape", [x.name, cat], (x.shape[0], total // x.shape[0]))
        # a random factorisation of the size into 2-4 dims
        rank = int(self.rng.integers(2, 5))
        dims = factorise(total, rank, self.rng)
        return self.node("Reshape", [x.name, self.const(np.array(dims, np.int64))], dims)

    def node_any(self, op: str, inputs: list[str], **attrs) -> str:
        """A node whose output is not a float tensor (shape arithmetic)."""
        name = self.fresh("s")
        for i in inputs:
            self.uses[i] += 1
        self.nodes.append(helper.make_node(op, inputs, [name], name=f"n{len(self.nodes)}_{op}",
                                           **attrs))
        return name

    def op_transpose(self, x: Tensor) -> Tensor:
        if x.rank < 2:
            raise Reject("transpose: rank")
        perm = [int(p) for p in self.rng.permutation(x.rank)]
        y = self.node("Transpose", [x.name], tuple(x.shape[p] for p in perm), perm=perm)
        if self.chance(0.3):  # a Transpose pair for simplify, back to the original
            inv = [perm.index(i) for i in range(x.rank)]
            self.features["transpose-pair"] += 1
            return self.node("Transpose", [y.name], x.shape, perm=inv)
        return y

    def op_flatten(self, x: Tensor) -> Tensor:
        axis = int(self.rng.integers(0, x.rank + 1))
        a = int(np.prod(x.shape[:axis])) if axis else 1
        return self.node("Flatten", [x.name], (a, x.size // a), axis=axis)

    def op_slice(self, x: Tensor) -> Tensor:
        axes = [i for i, d in enumerate(x.shape) if d > 1]
        if not axes:
            raise Reject("slice: nothing to cut")
        k = min(len(axes), int(self.rng.integers(1, 3)))
        picked = sorted(int(a) for a in self.rng.choice(axes, k, replace=False))
        starts, ends, steps = [], [], []
        shape = list(x.shape)
        for a in picked:
            d = x.shape[a]
            step = int(self.choice([1, 1, 1, 2, -1]))
            if step > 0:
                st = int(self.rng.integers(0, d))
                en = int(self.rng.integers(st + 1, d + 1))
                if self.chance(0.2):
                    en = 2**31 - 1  # "to the end" as exporters write it
                    shape[a] = len(range(st, d, step))
                else:
                    shape[a] = len(range(st, en, step))
                if self.chance(0.3):
                    st -= d  # negative start
            else:
                st = int(self.rng.integers(1, d)) if d > 1 else 0
                en = -d - 1 if self.chance(0.5) else int(self.rng.integers(-1, st))
                shape[a] = len(range(st, en if en >= -1 else -1, step)) if en >= 0 else st + 1
                if en >= 0:
                    shape[a] = len(range(st, en, step))
            starts.append(st)
            ends.append(en)
            steps.append(step)
        if any(d < 1 for d in shape):
            raise Reject("slice: empty")
        ins = [x.name, self.const(np.array(starts, np.int64)), self.const(np.array(ends, np.int64)),
               self.const(np.array(picked, np.int64))]
        if any(s != 1 for s in steps) or self.chance(0.5):
            ins.append(self.const(np.array(steps, np.int64)))
        return self.node("Slice", ins, shape)

    def op_concat(self, x: Tensor) -> Tensor:
        axis = int(self.rng.integers(0, x.rank)) if x.rank else 0
        if x.rank == 4 and self.chance(0.6):
            axis = 1  # channel concat (edgec_concat; relu-through-concat)
        parts = [x.name]
        shape = list(x.shape)
        for _ in range(int(self.rng.integers(1, 3))):
            cands = [u for u in self.tensors if u.rank == x.rank and all(
                u.shape[i] == x.shape[i] for i in range(x.rank) if i != axis)]
            if cands and self.chance(0.6):
                u = self.choice(cands)
            else:  # a branch off x: a unary op or a 1x1 conv to another width
                if axis == 1 and x.rank == 4 and self.chance(0.5):
                    n, c, h, w = x.shape
                    oc = int(self.choice(CHANNELS))
                    u = self.node("Conv", [x.name, self.weight((oc, c, 1, 1), c)], (n, oc, h, w),
                                  kernel_shape=[1, 1])
                else:
                    u = self.node(self.choice(["Tanh", "Neg", "Relu"]), [x.name], x.shape)
            parts.append(u.name)
            shape[axis] += u.shape[axis]
        if self.chance(0.3):
            cshape = [*x.shape[:axis], 2, *x.shape[axis + 1:]]
            parts.append(self.const(self.rng.uniform(-1, 1, cshape).astype(np.float32)))
            shape[axis] += 2
        if axis >= 0 and self.chance(0.3):
            axis -= x.rank
        y = self.node("Concat", parts, shape, axis=axis)
        if self.chance(0.3):
            self.features["relu-after-concat"] += 1
            y = self.node("Relu", [y.name], y.shape)
        return y


def factorise(total: int, rank: int, rng: np.random.Generator) -> list[int]:
    primes = []
    n, p = total, 2
    while n > 1 and p * p <= n:
        while n % p == 0:
            primes.append(p)
            n //= p
        p += 1
    if n > 1:
        primes.append(n)
    dims = [1] * rank
    for q in primes:
        dims[int(rng.integers(rank))] *= q
    return dims


#: op builders, with weights: (name, method, ranks it takes, weight)
OPS = [
    ("conv", Builder.op_conv, (4,), 10),
    ("conv_chain", Builder.op_conv_chain, (4,), 5),
    ("conv_transpose", Builder.op_conv_transpose, (4,), 2),
    ("batchnorm", Builder.op_batchnorm, (4, 3), 2),
    ("pad", Builder.op_pad, (4,), 2),
    ("pool", Builder.op_pool, (4,), 5),
    ("resize", Builder.op_resize, (4,), 3),
    ("unary", Builder.op_unary, (2, 3, 4), 8),
    ("binary", Builder.op_binary, (2, 3, 4), 8),
    ("div_computed", Builder.op_div_computed, (2, 3, 4), 1),
    ("pattern", Builder.op_pattern, (2, 3, 4), 4),
    ("matmul", Builder.op_matmul, (2, 3), 7),
    ("batch_matmul", Builder.op_batch_matmul, (2, 3), 3),
    ("gemm", Builder.op_gemm, (2,), 4),
    ("softmax", Builder.op_softmax, (2, 3, 4), 2),
    ("layernorm", Builder.op_layernorm, (2, 3, 4), 2),
    ("reduce", Builder.op_reduce, (2, 3, 4), 3),
    ("reshape", Builder.op_reshape, (2, 3, 4), 3),
    ("transpose", Builder.op_transpose, (2, 3, 4), 2),
    ("shuffle", Builder.op_shuffle, (4,), 1),
    ("flatten", Builder.op_flatten, (3, 4), 1),
    ("slice", Builder.op_slice, (2, 3, 4), 2),
    ("concat", Builder.op_concat, (2, 3, 4), 3),
]


def _input_shape(b: Builder) -> tuple[int, ...]:
    kind = b.rng.random()
    if kind < 0.6:  # image
        n = 1 if b.chance(0.85) else 2
        c = int(b.choice(CHANNELS))
        h = int(b.choice(SPATIAL[2:]))
        w = h if b.chance(0.6) else int(b.choice(SPATIAL[2:]))
        return (n, c, h, w)
    if kind < 0.85:  # sequence
        return (int(b.choice([1, 1, 2, 3])), int(b.choice([1, 4, 7, 9, 16])),
                int(b.choice([8, 13, 16, 17, 32])))
    return (int(b.choice([1, 2, 5, 7, 16])), int(b.choice([3, 8, 13, 16, 32])))


def _build(rng: np.random.Generator, name: str) -> tuple[onnx.ModelProto, Counter]:
    b = Builder(rng)
    x = b.add_input(_input_shape(b))
    if b.chance(0.2):  # a second input that broadcasts against the first
        b.add_input(b.broadcast_shape(x.shape) or (1,))
    target = int(rng.integers(2, 13))
    tries = 0
    while len(b.nodes) < target and tries < 200:
        tries += 1
        floats = [t for t in b.tensors if t.rank >= 2]
        if not floats:
            break
        cur = floats[-1] if b.chance(0.65) else b.choice(floats)
        cands = [(n, f, w) for n, f, ranks, w in OPS if cur.rank in ranks]
        weights = np.array([w for _, _, w in cands], float)
        pick = cands[int(rng.choice(len(cands), p=weights / weights.sum()))]
        snapshot = (len(b.nodes), len(b.inits), len(b.tensors), b.counter, Counter(b.uses),
                    Counter(b.features))
        try:
            pick[1](b, cur)
            b.features[f"op-{pick[0]}"] += 1
        except Reject:
            n_nodes, n_inits, n_tensors, counter, uses, feats = snapshot
            del b.nodes[n_nodes:], b.inits[n_inits:], b.tensors[n_tensors:]
            b.counter, b.uses, b.features = counter, uses, feats
    if not b.nodes:
        raise Reject("no node fitted")
    used_inputs = [t for t in b.inputs if b.uses[t.name]]
    if not used_inputs:
        raise Reject("inputs unused")
    # outputs: every computed leaf, and now and then an intermediate with readers too
    # (a second reader stops epilogue fusion)
    computed = [t for t in b.tensors if t not in b.inputs]
    outs = [t for t in computed if not b.uses[t.name]]
    if len(outs) > 3:
        outs = outs[-3:]
    mids = [t for t in computed if b.uses[t.name] and t not in outs]
    if mids and b.chance(0.2):
        outs.append(b.choice(mids))
        b.features["intermediate-output"] += 1
    graph = helper.make_graph(
        b.nodes, name,
        [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, t.shape) for t in used_inputs],
        [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, t.shape) for t in outs],
        b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="edgec-fuzz")
    # dead leaves that are not outputs would be dropped by remove-dead: prune them here so
    # the graph is what it says
    return prune(model), b.features


def prune(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop nodes, initializers and inputs nothing leading to an output reads."""
    g = model.graph
    live = {o.name for o in g.output}
    keep = []
    for node in reversed(g.node):
        if any(o in live for o in node.output):
            keep.append(node)
            live.update(i for i in node.input if i)
    keep.reverse()
    del g.node[:]
    g.node.extend(keep)
    inits = [t for t in g.initializer if t.name in live]
    del g.initializer[:]
    g.initializer.extend(inits)
    ins = [i for i in g.input if i.name in live]
    del g.input[:]
    g.input.extend(ins)
    return model


def check(model: onnx.ModelProto) -> None:
    """Raise unless the model is valid: checker, strict shape inference agreeing with the
    declared outputs, and an onnxruntime run giving the declared shapes."""
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)
    declared = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim]
                for o in model.graph.output}
    for o in inferred.graph.output:
        dims = [d.dim_value if d.HasField("dim_value") else -1
                for d in o.type.tensor_type.shape.dim]
        if dims != declared[o.name]:
            raise ValueError(f"{o.name}: inferred {dims}, declared {declared[o.name]}")
    ref = reference(model, make_feeds(model))
    for name, arr in ref.items():
        if list(arr.shape) != declared[name]:
            raise ValueError(f"{name}: onnxruntime gives {arr.shape}, declared {declared[name]}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: not finite")


def generate(seed: int, index: int, *, max_attempts: int = 50) -> Graph:
    """Graph ``index`` of the run seeded ``seed``: the first valid candidate drawn from
    generators seeded ``(seed, index, attempt)``."""
    last: Exception | None = None
    for attempt in range(max_attempts):
        rng = np.random.default_rng([seed, index, attempt])
        try:
            model, features = _build(rng, f"fuzz_s{seed}_g{index}")
            check(model)
        except Exception as exc:
            last = exc
            continue
        ops = Counter(n.op_type for n in model.graph.node)
        return Graph(model, seed, index, attempt, ops, features)
    raise RuntimeError(f"no valid graph for seed {seed} index {index}: {last}")


if __name__ == "__main__":  # python graphgen.py SEED INDEX OUT.onnx
    import sys

    seed, index = int(sys.argv[1]), int(sys.argv[2])
    g = generate(seed, index)
    onnx.save(g.model, sys.argv[3])
    print(f"{g.name} attempt {g.attempt}: {dict(g.ops)}")

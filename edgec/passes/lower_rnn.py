"""Unroll ONNX ``LSTM``, ``GRU`` and ``RNN`` into primitive ops for a static sequence length.

TVM's ONNX importer (``tvm.relax.frontend.onnx``) has no converter for the
recurrent ops, yet speech models (silero VAD, keyword spotters) are built
around them. Once the user has bound the input shapes the sequence length is a
number, so the recurrence can be written out step by step with ops every
importer understands: one ``MatMul`` projects the inputs of all timesteps at
once, then each step costs a ``MatMul`` against the recurrent weights plus the
gate arithmetic, and the per-step hidden states are concatenated into ``Y``.

Semantics follow the ONNX operator spec, and where the spec leaves room
(how ``activation_alpha``/``activation_beta`` are consumed) they follow
onnxruntime, which is edgec's numeric reference. Weights are transposed,
split and bias-folded once with numpy into new initializers.

Emitted ops: MatMul, Add, Sub, Mul, Slice (inputs form), Reshape, Concat,
Clip (attribute form before opset 11, inputs form from 11) and the activation
ops themselves (Sigmoid, Tanh, Relu, LeakyRelu, ThresholdedRelu, Elu,
HardSigmoid, Softsign, Softplus); no Split/Squeeze/Unsqueeze, whose signature
changed at opset 13.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from ..errors import ModelError, UnsupportedError
from .registry import register

_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
_MIN_OPSET = 10  # Slice with inputs, ThresholdedRelu in the default domain
_DEFAULT_DOMAINS = ("", "ai.onnx")

# Which activations take alpha / beta, and the defaults the spec and
# onnxruntime agree on. For ThresholdedRelu, Affine and ScaledTanh they do not
# agree (onnxruntime falls back to 0), so a missing value is refused, not guessed.
_TAKES_ALPHA_BETA = {
    "sigmoid": (False, False), "tanh": (False, False), "relu": (False, False),
    "softsign": (False, False), "softplus": (False, False),
    "leakyrelu": (True, False), "thresholdedrelu": (True, False), "elu": (True, False),
    "hardsigmoid": (True, True), "affine": (True, True), "scaledtanh": (True, True),
}
_AGREED_DEFAULTS = {"leakyrelu": (0.01, None), "hardsigmoid": (0.2, 0.5), "elu": (1.0, None)}

# Weight chains are evaluated (not just read) so that exporters that build W
# from Slice/Concat/Unsqueeze of initializers (silero VAD) lower without a
# full constant-folding pass; these ops never give a constant answer.
_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike",
                     "RandomUniformLike", "Multinomial", "Bernoulli"}
_MAX_EVAL_NODES = 64


@dataclass(frozen=True)
class _Act:
    """One activation function with its resolved alpha and beta."""

    name: str  # lower case
    alpha: float | None = None
    beta: float | None = None


@register("lower-rnn", "Unroll LSTM/GRU/RNN into MatMul/Add/activation ops for a static "
                       "sequence length")
class LowerRecurrentOps(ir.passes.InPlacePass):
    """Replace every default-domain LSTM/GRU/RNN (main graph and subgraphs) by its unrolled form."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        targets = [n for n in ir.traversal.RecursiveGraphIterator(model.graph)
                   if n.domain in _DEFAULT_DOMAINS and n.op_type in _GATES]
        if not targets:
            return ir.passes.PassResult(model, False)
        opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
        names = _NameSource(model)
        lowerings = [_Lowering(model, node, opset, names) for node in targets]
        for lowering in lowerings:  # check every node first: refuse before changing anything
            lowering.read()
        for lowering in lowerings:
            lowering.rewrite()
        return ir.passes.PassResult(model, True)


# --------------------------------------------------------------------------- helpers


def _graphs(graph: ir.Graph):
    """The graph and all graphs nested in its nodes' attributes."""
    yield graph
    for node in graph:
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                yield from _graphs(attr.value)
            elif attr.type == ir.AttributeType.GRAPHS:
                for g in attr.value:
                    yield from _graphs(g)


class _NameSource:
    """Unique value/node names across the whole model, so outer-scope references never clash."""

    def __init__(self, model: ir.Model):
        self.taken: set[str] = set()
        for g in _graphs(model.graph):
            for v in (*g.inputs, *g.outputs, *g.initializers.values()):
                if v.name:
                    self.taken.add(v.name)
            for n in g:
                if n.name:
                    self.taken.add(n.name)
                self.taken.update(o.name for o in n.outputs if o.name)

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken:
            name = f"{base}_{i}"
            i += 1
        self.taken.add(name)
        return name


def _static_dims(value: ir.Value | None) -> tuple[int, ...] | None:
    if value is None or value.shape is None:
        return None
    dims = tuple(value.shape)
    if not all(isinstance(d, int) for d in dims):
        return None
    return dims


def _eval_const(value: ir.Value, opset: int, budget: list[int]) -> np.ndarray | None:
    """The value as a numpy array if it is an initializer/Constant or a pure function of them."""
    tensor = ir.convenience.get_const_tensor(value)
    if tensor is not None:
        return tensor.numpy()
    node = value.producer()
    if (node is None or node.domain not in _DEFAULT_DOMAINS or node.op_type in _NONDETERMINISTIC
            or budget[0] <= 0):
        return None
    if any(a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
           for a in node.attributes.values()):
        return None
    budget[0] -= 1
    feeds = {}
    for inp in node.inputs:
        if inp is None:
            continue
        if not inp.name:
            return None
        arr = _eval_const(inp, opset, budget)
        if arr is None:
            return None
        feeds[inp.name] = arr
    from onnx.reference import ReferenceEvaluator  # only needed for unusual exports

    try:
        results = ReferenceEvaluator(ir.serde.serialize_node(node),
                                     opsets={"": opset}).run(None, feeds)
    except Exception:  # an op the evaluator lacks: treat as not constant
        return None
    out = results[value.index()]
    return None if out is None else np.asarray(out)


def _remove_if_dead(value: ir.Value) -> None:
    """Drop a weight's producer chain / initializer once nothing uses it any more."""
    if value.uses() or value.is_graph_output() or value.is_graph_input():
        return
    node = value.producer()
    if node is not None:
        if node.graph is None or any(o.uses() or o.is_graph_output() for o in node.outputs):
            return
        inputs = [i for i in node.inputs if i is not None]
        node.graph.remove(node, safe=True)
        for i in inputs:
            _remove_if_dead(i)
    elif value.is_initializer() and value.graph is not None and value.name:
        value.graph.initializers.pop(value.name, None)


# --------------------------------------------------------------------------- lowering


class _Lowering:
    """Lowers one recurrent node: reads and checks it, emits the unrolled nodes, rewires outputs."""

    def __init__(self, model: ir.Model, node: ir.Node, opset: int, names: _NameSource):
        self.model, self.node, self.opset, self.names = model, node, opset, names
        self.op = node.op_type
        self.base = node.name or next((o.name for o in node.outputs if o.name), None) or self.op
        self.new_nodes: list[ir.Node] = []
        self.const_cache: dict[tuple, ir.Value] = {}

    # ---- diagnostics

    def _unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"node '{self.node.name or self.base}' ({self.op}): {what}")

    def _invalid(self, what: str) -> ModelError:
        return ModelError(f"node '{self.node.name or self.base}' ({self.op}): {what}")

    def _input(self, index: int) -> ir.Value | None:
        inputs = self.node.inputs
        return inputs[index] if index < len(inputs) else None

    def _weight(self, index: int, label: str) -> np.ndarray | None:
        value = self._input(index)
        if value is None:
            return None
        arr = _eval_const(value, self.opset, [_MAX_EVAL_NODES])
        if arr is None:
            raise self._unsupported(
                f"input {label} ('{value.name}') is not a constant; edgec can only unroll "
                "recurrent ops whose weights are initializers or computed from them")
        return arr

    # ---- reading the node

    def read(self) -> None:
        """Check the node can be lowered and gather its static sizes and constant weights."""
        node, op = self.node, self.op
        attrs = node.attributes
        if self.opset < _MIN_OPSET:
            raise self._unsupported(
                f"the model imports default-domain opset {self.opset}; lowering needs opset "
                f">= {_MIN_OPSET} (convert the model with onnx.version_converter)")
        direction = attrs.get_string("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise self._invalid(f"unknown direction '{direction}'")
        self.direction = direction
        self.dirs = 2 if direction == "bidirectional" else 1
        self.layout = attrs.get_int("layout", 0)
        if self.layout not in (0, 1):
            raise self._invalid(f"layout must be 0 or 1, not {self.layout}")

        x = self._input(0)
        dims = _static_dims(x)
        if dims is None:
            roles = ("seq_length", "batch_size", "input_size")
            if self.layout == 1:
                roles = ("batch_size", "seq_length", "input_size")
            if x is None or x.shape is None or len(x.shape) != 3:
                what = "the shape of input X is unknown, so seq_length, batch_size and input_size"
                what += " are" if x is None or x.shape is None else f" ({x.shape}) are"
            else:
                loose = [f"{role} ({d})" for role, d in zip(roles, x.shape, strict=True)
                         if not isinstance(d, int)]
                what = f"{' and '.join(loose)} of input X {x.shape} " + (
                    "are" if len(loose) > 1 else "is")
            raise self._unsupported(
                f"{what} not static; bind the model's input shapes with --input-shape (and "
                "inputs that choose branches with --input-const) so edgec can unroll it; at "
                "-O0 nothing is folded, so shapes computed by subgraphs stay unknown: use -O1+")
        if len(dims) != 3:
            raise self._invalid(f"input X has rank {len(dims)}, expected 3")
        if self.layout == 0:
            self.seq, self.batch, self.in_size = dims
        else:
            self.batch, self.seq, self.in_size = dims
        if x.dtype is None or not x.dtype.is_floating_point():
            raise self._unsupported(f"input X has type {x.dtype}; only floating point is "
                                    "supported")
        self.x, self.dtype, self.np_dtype = x, x.dtype, x.dtype.numpy()

        gates = _GATES[op]
        w = self._weight(1, "W")
        r = self._weight(2, "R")
        if w is None or r is None:
            raise self._invalid("inputs W and R are required")
        hidden = attrs.get_int("hidden_size", r.shape[-1] if r.ndim == 3 else -1)
        self.hidden = hidden
        expect = {"W": (self.dirs, gates * hidden, self.in_size),
                  "R": (self.dirs, gates * hidden, hidden)}
        b = self._weight(3, "B")
        if b is not None:
            expect["B"] = (self.dirs, 2 * gates * hidden)
        p = self._weight(7, "P") if op == "LSTM" else None
        if p is not None:
            expect["P"] = (self.dirs, 3 * hidden)
        for label, arr in (("W", w), ("R", r), ("B", b), ("P", p)):
            if arr is not None and tuple(arr.shape) != expect[label]:
                raise self._invalid(f"{label} has shape {list(arr.shape)}, expected "
                                    f"{list(expect[label])}")
        cast = self.np_dtype
        self.w, self.r = w.astype(cast), r.astype(cast)
        self.b = None if b is None else b.astype(cast)
        self.p = None if p is None else p.astype(cast)

        seq_lens = self._input(4)
        if seq_lens is not None:
            lens = _eval_const(seq_lens, self.opset, [_MAX_EVAL_NODES])
            if lens is None:
                raise self._unsupported(
                    f"sequence_lens ('{seq_lens.name}') is not a constant; only full-length "
                    "sequences can be unrolled")
            if lens.size != self.batch or not np.all(lens.reshape(-1) == self.seq):
                raise self._unsupported(
                    f"sequence_lens {lens.reshape(-1).tolist()} has entries other than "
                    f"seq_length {self.seq}; only full-length sequences can be unrolled")
        self.initial_h = self._input(5)
        self.initial_c = self._input(6) if op == "LSTM" else None

        clip = attrs.get_float("clip", None)
        self.clip = None if clip is None else float(clip)
        if self.clip is not None and self.clip < 0:
            raise self._invalid("clip must not be negative")
        self.input_forget = op == "LSTM" and attrs.get_int("input_forget", 0) != 0
        self.linear_before_reset = op == "GRU" and attrs.get_int("linear_before_reset", 0) != 0
        self.acts = self._activations()

    def _activations(self) -> list[list[_Act]]:
        """Per direction, the op's activation functions (f, g, h for LSTM) with alpha/beta.

        alpha/beta are consumed in order, each only by the functions that take
        one (this is what onnxruntime does for all three ops).
        """
        attrs, op = self.node.attributes, self.op
        per_dir = len(_DEFAULT_ACTS[op])
        given = attrs.get_strings("activations", None)
        names = list(given) if given else list(_DEFAULT_ACTS[op]) * self.dirs
        if op == "RNN" and self.dirs == 1 and len(names) == 2:
            names = names[:1]  # the schema default is ["Tanh", "Tanh"]
        if len(names) != per_dir * self.dirs:
            raise self._invalid(f"{len(names)} activations given, "
                             f"expected {per_dir * self.dirs}")
        lowered = [n.lower() for n in names]
        for n, original in zip(lowered, names, strict=True):
            if n not in _TAKES_ALPHA_BETA:
                raise self._unsupported(f"activation '{original}' is not one the spec defines")
        alphas = list(attrs.get_floats("activation_alpha", ()) or ())
        betas = list(attrs.get_floats("activation_beta", ()) or ())

        def pick(name, vals, idx, want, default, label):
            if not want:
                return None, idx
            if idx < len(vals):
                return float(vals[idx]), idx + 1
            if default is None:
                raise self._unsupported(
                    f"activation '{name}' needs an explicit activation_{label} (the ONNX spec "
                    "and onnxruntime disagree on its default)")
            return default, idx

        acts: list[_Act] = []
        ia = ib = 0
        for k, n in enumerate(lowered):
            want_a, want_b = _TAKES_ALPHA_BETA[n]
            da, db = _AGREED_DEFAULTS.get(n, (None, None))
            a, ia = pick(names[k], alphas, ia, want_a, da, "alpha")
            b, ib = pick(names[k], betas, ib, want_b, db, "beta")
            acts.append(_Act(n, a, b))
        return [acts[d * per_dir:(d + 1) * per_dir] for d in range(self.dirs)]

    # ---- emitting

    def _name(self, tag: str) -> str:
        return self.names.fresh(f"{self.base}/{tag}")

    def _const(self, array: np.ndarray, tag: str) -> ir.Value:
        """A new main-graph initializer (visible from every subgraph); small ones are shared."""
        array = np.ascontiguousarray(array)
        key = None
        if array.size <= 16:
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self.const_cache:
                return self.const_cache[key]
        name = self._name(tag)
        value = ir.Value(name=name, shape=ir.Shape(array.shape),
                         type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                         const_value=ir.tensor(array, name=name))
        self.model.graph.register_initializer(value)
        if key is not None:
            self.const_cache[key] = value
        return value

    def _ints(self, values: Sequence[int]) -> ir.Value:
        return self._const(np.array(values, dtype=np.int64), "i64")

    def _scalar(self, v: float) -> ir.Value:
        return self._const(np.array(v, dtype=self.np_dtype), "scalar")

    def _emit(self, op_type: str, inputs: Sequence[ir.Value | None], tag: str,
              shape: Sequence[int], **attributes) -> ir.Value:
        name = self._name(tag)
        out = ir.Value(name=name, shape=ir.Shape(shape), type=ir.TensorType(self.dtype))
        node = ir.Node("", op_type, inputs,
                       attributes=ir.convenience.convert_attributes(attributes),
                       outputs=[out], name=name)
        self.new_nodes.append(node)
        return out

    def _slice(self, x: ir.Value, starts, ends, axes, shape, tag, steps=None) -> ir.Value:
        inputs = [x, self._ints(starts), self._ints(ends), self._ints(axes)]
        if steps is not None:
            inputs.append(self._ints(steps))
        return self._emit("Slice", inputs, tag, shape)

    def _cols(self, x: ir.Value, start: int, stop: int, tag: str) -> ir.Value:
        """Columns [start, stop) of a [batch, n] tensor."""
        return self._slice(x, [start], [stop], [1], [self.batch, stop - start], tag)

    def _clip(self, x: ir.Value, tag: str) -> ir.Value:
        if self.clip is None:
            return x
        shape = list(x.shape)
        if self.opset >= 11:
            return self._emit("Clip", [x, self._scalar(-self.clip), self._scalar(self.clip)],
                              f"{tag}_clip", shape)
        return self._emit("Clip", [x], f"{tag}_clip", shape, min=-self.clip, max=self.clip)

    def _act(self, act: _Act, x: ir.Value, tag: str) -> ir.Value:
        """Apply one spec activation to ``x``."""
        shape = list(x.shape)
        n = act.name
        simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu",
                  "softsign": "Softsign", "softplus": "Softplus"}
        if n in simple:
            return self._emit(simple[n], [x], tag, shape)
        if n == "leakyrelu":
            return self._emit("LeakyRelu", [x], tag, shape, alpha=act.alpha)
        if n == "thresholdedrelu":
            return self._emit("ThresholdedRelu", [x], tag, shape, alpha=act.alpha)
        if n == "elu":
            return self._emit("Elu", [x], tag, shape, alpha=act.alpha)
        if n == "hardsigmoid":
            return self._emit("HardSigmoid", [x], tag, shape, alpha=act.alpha, beta=act.beta)
        if n == "affine":
            scaled = self._emit("Mul", [x, self._scalar(act.alpha)], f"{tag}_scale", shape)
            return self._emit("Add", [scaled, self._scalar(act.beta)], tag, shape)
        if n == "scaledtanh":
            inner = self._emit("Mul", [x, self._scalar(act.beta)], f"{tag}_in", shape)
            t = self._emit("Tanh", [inner], f"{tag}_tanh", shape)
            return self._emit("Mul", [t, self._scalar(act.alpha)], tag, shape)
        raise AssertionError(n)  # rejected in _activations

    def _gate(self, act: _Act, pre: ir.Value, tag: str) -> ir.Value:
        return self._act(act, self._clip(pre, tag), tag)

    def _initial(self, value: ir.Value | None, d: int, tag: str) -> ir.Value | None:
        """Direction d's [batch, hidden] slice of initial_h / initial_c."""
        if value is None:
            return None
        axis = 0 if self.layout == 0 else 1
        if self.dirs > 1:
            shape = [1, self.batch, self.hidden] if axis == 0 else [self.batch, 1, self.hidden]
            value = self._slice(value, [d], [d + 1], [axis], shape, f"{tag}_slice")
        return self._emit("Reshape", [value, self._ints([self.batch, self.hidden])], tag,
                          [self.batch, self.hidden])

    # ---- the recurrence

    def _projection(self) -> tuple[ir.Value, list[np.ndarray | None]]:
        """X @ W^T + folded biases for all timesteps and directions at once: [seq*batch, D*G*H].

        Returns the projection and, for GRU with linear_before_reset, the per-direction
        recurrent h-gate bias that must stay inside the reset product.
        """
        g, h = _GATES[self.op], self.hidden
        w_t = np.concatenate([self.w[d].T for d in range(self.dirs)], axis=1)
        rows = self.seq * self.batch
        x2d = self._emit("Reshape", [self.x, self._ints([rows, self.in_size])], "x_2d",
                         [rows, self.in_size])
        proj = self._emit("MatMul", [x2d, self._const(w_t, "W_T")], "x_proj",
                          [rows, self.dirs * g * h])
        rbh: list[np.ndarray | None] = [None] * self.dirs
        if self.b is not None:
            biases = []
            for d in range(self.dirs):
                wb, rb = self.b[d][: g * h], self.b[d][g * h:].copy()
                if self.linear_before_reset:
                    rbh[d] = rb[2 * h:].copy()
                    rb[2 * h:] = 0
                biases.append(wb + rb)
            proj = self._emit("Add", [proj, self._const(np.concatenate(biases), "B_folded")],
                              "x_proj_bias", [rows, self.dirs * g * h])
        return proj, rbh

    def _x_at(self, proj: ir.Value, t: int, d: int, start: int, stop: int, tag: str) -> ir.Value:
        """Step t's [batch, stop-start] part of direction d's projected input."""
        width = _GATES[self.op] * self.hidden
        if self.seq == 1 and self.dirs == 1 and (start, stop) == (0, width):
            return proj  # already [batch, G*H]
        col0 = d * width
        shape = [self.batch, stop - start]
        if self.layout == 0:  # rows are t * batch + b
            return self._slice(proj, [t * self.batch, col0 + start],
                               [(t + 1) * self.batch, col0 + stop], [0, 1], shape, tag)
        # layout 1: rows are b * seq + t
        return self._slice(proj, [t, col0 + start], [self.batch * self.seq, col0 + stop],
                           [0, 1], shape, tag, steps=[self.seq, 1])

    def _direction(self, proj: ir.Value, d: int, rbh: np.ndarray | None):
        """Unroll one direction; returns hidden states by time index and the final H and C."""
        h, op = self.hidden, self.op
        bh = [self.batch, h]
        reverse = self.direction == "reverse" or d == 1
        dt = ("fw/" if d == 0 else "bw/") if self.dirs == 2 else ""
        acts = self.acts[d]
        r = self.r[d]
        r_all = r_zr = r_h = None
        if op == "GRU" and not self.linear_before_reset:
            r_zr = self._const(r[: 2 * h].T, f"{dt}R_zr_T")
            r_h = self._const(r[2 * h:].T, f"{dt}R_h_T")
        else:
            r_all = self._const(r.T, f"{dt}R_T")
        if self.p is not None:
            p_i, p_o, p_f = (self._const(self.p[d][k * h:(k + 1) * h], f"{dt}P_{g}")
                             for k, g in enumerate("iof"))
        rbh_v = self._const(rbh, f"{dt}Rb_h") if rbh is not None else None

        h_prev = self._initial(self.initial_h, d, f"{dt}h0")
        c_prev = self._initial(self.initial_c, d, f"{dt}c0") if op == "LSTM" else None
        states: dict[int, ir.Value] = {}
        for t in (range(self.seq - 1, -1, -1) if reverse else range(self.seq)):
            tag = f"{dt}t{t}"
            if op == "RNN":
                pre = self._x_at(proj, t, d, 0, h, f"{tag}/x")
                if h_prev is not None:
                    rec = self._emit("MatMul", [h_prev, r_all], f"{tag}/h_proj", bh)
                    pre = self._emit("Add", [pre, rec], f"{tag}/pre", bh)
                h_new = self._gate(acts[0], pre, f"{tag}/H")
            elif op == "LSTM":
                h_new, c_prev = self._lstm_step(proj, t, d, tag, h_prev, c_prev, r_all, acts,
                                                (p_i, p_o, p_f) if self.p is not None else None)
            else:
                h_new = self._gru_step(proj, t, d, tag, h_prev, (r_all, r_zr, r_h), rbh_v, acts)
            states[t] = h_new
            h_prev = h_new
        return states, h_prev, c_prev

    def _lstm_step(self, proj, t, d, tag, h_prev, c_prev, r_all, acts, peep):
        """One LSTM step (gate order i, o, f, c); returns (H_t, C_t)."""
        h = self.hidden
        bh = [self.batch, h]
        f_act, g_act, h_act = acts
        gates = self._x_at(proj, t, d, 0, 4 * h, f"{tag}/x")
        if h_prev is not None:
            rec = self._emit("MatMul", [h_prev, r_all], f"{tag}/h_proj", [self.batch, 4 * h])
            gates = self._emit("Add", [gates, rec], f"{tag}/gates", [self.batch, 4 * h])
        i_pre = self._cols(gates, 0, h, f"{tag}/i_pre")
        o_pre = self._cols(gates, h, 2 * h, f"{tag}/o_pre")
        f_pre = self._cols(gates, 2 * h, 3 * h, f"{tag}/f_pre")
        c_pre = self._cols(gates, 3 * h, 4 * h, f"{tag}/c_pre")
        if peep is not None and c_prev is not None:
            pi = self._emit("Mul", [c_prev, peep[0]], f"{tag}/i_peep", bh)
            i_pre = self._emit("Add", [i_pre, pi], f"{tag}/i_pre_peep", bh)
        i = self._gate(f_act, i_pre, f"{tag}/i")
        c = self._gate(g_act, c_pre, f"{tag}/c")
        ic = self._emit("Mul", [i, c], f"{tag}/i_c", bh)
        if c_prev is None:  # C_{t-1} = 0, so the forget gate has nothing to act on
            c_new = ic
        else:
            if self.input_forget:
                f = self._emit("Sub", [self._scalar(1.0), i], f"{tag}/f", bh)
            else:
                if peep is not None:
                    pf = self._emit("Mul", [c_prev, peep[2]], f"{tag}/f_peep", bh)
                    f_pre = self._emit("Add", [f_pre, pf], f"{tag}/f_pre_peep", bh)
                f = self._gate(f_act, f_pre, f"{tag}/f")
            fc = self._emit("Mul", [f, c_prev], f"{tag}/f_C", bh)
            c_new = self._emit("Add", [fc, ic], f"{tag}/C", bh)
        if peep is not None:
            po = self._emit("Mul", [c_new, peep[1]], f"{tag}/o_peep", bh)
            o_pre = self._emit("Add", [o_pre, po], f"{tag}/o_pre_peep", bh)
        o = self._gate(f_act, o_pre, f"{tag}/o")
        hc = self._act(h_act, c_new, f"{tag}/h_C")
        return self._emit("Mul", [o, hc], f"{tag}/H", bh), c_new

    def _gru_step(self, proj, t, d, tag, h_prev, recurrent, rbh_v, acts):
        """One GRU step (gate order z, r, h); returns H_t."""
        h = self.hidden
        bh = [self.batch, h]
        r_all, r_zr, r_h = recurrent
        zr = self._x_at(proj, t, d, 0, 2 * h, f"{tag}/x_zr")
        xh = self._x_at(proj, t, d, 2 * h, 3 * h, f"{tag}/x_h")
        hr_h = None
        if h_prev is None:
            hr_h = rbh_v  # H_{t-1} = 0: only the recurrent bias survives
        elif self.linear_before_reset:
            hr = self._emit("MatMul", [h_prev, r_all], f"{tag}/h_proj", [self.batch, 3 * h])
            zr = self._emit("Add", [zr, self._cols(hr, 0, 2 * h, f"{tag}/h_proj_zr")],
                            f"{tag}/zr_pre", [self.batch, 2 * h])
            hr_h = self._cols(hr, 2 * h, 3 * h, f"{tag}/h_proj_h")
            if rbh_v is not None:
                hr_h = self._emit("Add", [hr_h, rbh_v], f"{tag}/h_proj_h_bias", bh)
        else:
            rec = self._emit("MatMul", [h_prev, r_zr], f"{tag}/h_proj_zr", [self.batch, 2 * h])
            zr = self._emit("Add", [zr, rec], f"{tag}/zr_pre", [self.batch, 2 * h])
        z = self._gate(acts[0], self._cols(zr, 0, h, f"{tag}/z_pre"), f"{tag}/z")
        rg = self._gate(acts[0], self._cols(zr, h, 2 * h, f"{tag}/r_pre"), f"{tag}/r")
        if h_prev is not None and not self.linear_before_reset:
            reset = self._emit("Mul", [rg, h_prev], f"{tag}/r_h", bh)
            rec_h = self._emit("MatMul", [reset, r_h], f"{tag}/r_h_proj", bh)
            h_pre = self._emit("Add", [xh, rec_h], f"{tag}/h_pre", bh)
        elif hr_h is not None:
            gated = self._emit("Mul", [rg, hr_h], f"{tag}/r_h_proj", bh)
            h_pre = self._emit("Add", [xh, gated], f"{tag}/h_pre", bh)
        else:
            h_pre = xh
        cand = self._gate(acts[1], h_pre, f"{tag}/h")
        if h_prev is None:  # (1 - z) * h
            zh = self._emit("Mul", [z, cand], f"{tag}/z_h", bh)
            return self._emit("Sub", [cand, zh], f"{tag}/H", bh)
        # (1 - z) * h + z * H_{t-1} == h + z * (H_{t-1} - h)
        diff = self._emit("Sub", [h_prev, cand], f"{tag}/H_diff", bh)
        zd = self._emit("Mul", [z, diff], f"{tag}/z_diff", bh)
        return self._emit("Add", [cand, zd], f"{tag}/H", bh)

    def _stack(self, parts: list[ir.Value], out_shape: list[int], tag: str) -> ir.Value:
        """Concatenate [batch, hidden] parts and reshape them into an output's layout."""
        axis = 0 if self.layout == 0 else 1
        if len(parts) == 1:
            joined = parts[0]
        else:
            shape = ([len(parts) * self.batch, self.hidden] if axis == 0
                     else [self.batch, len(parts) * self.hidden])
            joined = self._emit("Concat", parts, f"{tag}_concat", shape, axis=axis)
        return self._emit("Reshape", [joined, self._ints(out_shape)], tag, out_shape)

    # ---- driver

    def rewrite(self) -> None:
        """Emit the unrolled nodes, move every use of the outputs to them, drop the node."""
        node = self.node
        graph = node.graph
        outputs = list(node.outputs)
        wanted = [i < len(outputs) and bool(outputs[i].uses() or outputs[i].is_graph_output())
                  for i in range(3)]
        results: list[ir.Value | None] = [None, None, None]
        if any(wanted):
            proj, rbh = self._projection()
            per_dir = [self._direction(proj, d, rbh[d]) for d in range(self.dirs)]
            s, b, h, nd = self.seq, self.batch, self.hidden, self.dirs
            if wanted[0]:
                ordered = [per_dir[d][0][t] for t in range(s) for d in range(nd)]
                shape = [s, nd, b, h] if self.layout == 0 else [b, s, nd, h]
                results[0] = self._stack(ordered, shape, "Y")
            state_shape = [nd, b, h] if self.layout == 0 else [b, nd, h]
            if wanted[1]:
                results[1] = self._stack([pd[1] for pd in per_dir], state_shape, "Y_h")
            if wanted[2]:
                results[2] = self._stack([pd[2] for pd in per_dir], state_shape, "Y_c")
        graph.insert_before(node, self.new_nodes)
        for old, new in zip(outputs, results[:len(outputs)], strict=True):
            if new is not None:
                old.replace_all_uses_with(new, replace_graph_outputs=True)
        weights = [self._input(i) for i in (1, 2, 3, 4, 7)]
        graph.remove(node, safe=True)
        for old, new in zip(outputs, results[:len(outputs)], strict=True):
            if new is not None and old.name:
                # Keep the original output names (graph outputs, value_info, debugging).
                name = old.name
                old.name = None
                new.name = name
        for value in weights:
            if value is not None:
                _remove_if_dead(value)

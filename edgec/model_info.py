"""What ``edgec inspect MODEL.onnx`` reports: shapes, ops, parameters, compute, blockers.

Everything here is answered from the ONNX file alone, without importing TVM, so
``inspect`` is fast and works where TVM is not installed. The model goes through
the same front end as a compile (``load_model`` checks, ``bind_inputs``, strict
shape inference), so what inspect says about dynamic dims and contradictions is
what a compile would say. Two things are deliberately never guessed:

* compute: a node whose shapes are unknown (typically because a dim is still
  dynamic) is listed as *uncounted*, never counted as zero MACs, so a total is
  never quietly too low;
* TVM coverage: read from ``backend/tvm/onnx_ops.txt``, which a test keeps in
  sync with the installed TVM; recurrent ops are reported apart because
  edgec's ``lower-rnn`` pass rewrites them into ops TVM has.

FLOPs are 2 x MACs, counting only the multiply-accumulate ops (convolutions,
matrix products, recurrent gates): the convention under which ResNet-50 is
about 8.2 GFLOP.
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import onnx
import onnx_ir as ir
from onnx_ir.passes.common._c_api_utils import call_onnx_api
from onnx_ir.passes.common.shape_inference import _merge_func

from .backend.tvm.coverage import LOWERED_BY_EDGEC, LOWERED_CONTRIB_BY_EDGEC, tvm_onnx_ops
from .errors import UsageError
from .frontend.binding import (
    Bindings,
    bind_inputs,
    binding_hint,
    suggest_binding,
    unbound_inputs,
)
from .frontend.loader import DEFAULT_MAX_MODEL_BYTES, load_model, to_ir
from .passes.shapes import InferShapes
from .specs import DEFAULT_MAX_NODES

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "ComputeInfo",
    "ModelInfo",
    "OpUse",
    "ParamInfo",
    "TensorInfo",
    "inspect_model",
    "render_model_info",
]

#: Ops whose MACs are counted; every other op is treated as MAC-free.
MAC_OPS = frozenset({
    "Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "Gemm", "MatMul",
    "MatMulInteger", "QLinearMatMul", "Einsum", "LSTM", "GRU", "RNN",
})
#: Gates per recurrent cell: each gate is one (input + hidden) x hidden matmul.
RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
#: How many ops the rendered histogram shows before summarising the rest.
TOP_OPS = 25

_DEFAULT_DOMAINS = ("", "ai.onnx")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: dims hold ints, dim names, or "?" for unnamed dynamic dims.

    ``dims`` is None when even the rank is unknown.
    """

    name: str
    dtype: str | None
    dims: tuple[int | str, ...] | None

    @property
    def is_static(self) -> bool:
        """True when the rank and every dim are known integers."""
        return self.dims is not None and all(isinstance(d, int) for d in self.dims)

    def shape_text(self) -> str:
        """``[1, 3, batch, ?]``, or ``?`` for an unknown rank."""
        return "?" if self.dims is None else "[" + ", ".join(map(str, self.dims)) + "]"

    def to_json(self) -> dict:
        """``{"name", "dtype", "dims"}``."""
        return {"name": self.name, "dtype": self.dtype,
                "dims": None if self.dims is None else list(self.dims)}


@dataclass(frozen=True)
class OpUse:
    """An op type the backend has to know about: how often, and where to look first."""

    op: str
    count: int
    first_node: str
    static: bool = True  # only meaningful for lowered_by_edgec: all its nodes have static X

    def to_json(self) -> dict:
        """``{"op", "count", "first_node"}``."""
        return {"op": self.op, "count": self.count, "first_node": self.first_node}


@dataclass(frozen=True)
class ParamInfo:
    """Weights stored in the file, and weights the graph makes at run time.

    ``generated_*`` count ConstantOfShape outputs with a constant shape: models
    such as onnx's "light" test models ship no weights and build them that way,
    so their stored parameter count alone would say almost nothing.
    """

    count: int
    bytes: int
    initializers: int
    constants: int
    generated_params: int = 0
    generated_bytes: int = 0
    generated_tensors: int = 0

    def to_json(self) -> dict:
        """The counts as a dict (``inspect --json``'s ``params``)."""
        return {"count": self.count, "bytes": self.bytes, "initializers": self.initializers,
                "constant_nodes": self.constants, "generated_params": self.generated_params,
                "generated_bytes": self.generated_bytes,
                "generated_tensors": self.generated_tensors}


@dataclass(frozen=True)
class ComputeInfo:
    """MACs per op type (largest first), and the nodes that could not be counted."""

    macs_by_op: MappingProxyType[str, int]
    uncounted: MappingProxyType[str, int]
    notes: tuple[str, ...] = ()

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the counted nodes."""
        return sum(self.macs_by_op.values())

    @property
    def flops(self) -> int:
        """2 x `macs` (ResNet-50 is about 8.2 GFLOP by this count)."""
        return 2 * self.macs

    @property
    def complete(self) -> bool:
        """True when no node was left uncounted, so `flops` is the whole model's."""
        return not self.uncounted

    def to_json(self) -> dict:
        """The totals and per-op counts as a dict (``inspect --json``'s ``compute``)."""
        return {"macs": self.macs, "flops": self.flops, "gflops": round(self.flops / 1e9, 4),
                "macs_by_op": dict(self.macs_by_op), "uncounted": dict(self.uncounted),
                "complete": self.complete, "notes": list(self.notes)}


@dataclass(frozen=True)
class ModelInfo:
    """Everything ``edgec inspect`` reports about one model (after any bindings).

    Returned by `edgec.inspect`. The main fields: ``inputs`` and ``outputs``
    (`TensorInfo`), ``op_counts`` (op -> count, largest first), ``params``
    (`ParamInfo`), ``compute`` (`ComputeInfo`), ``unsupported`` (ops TVM
    cannot import, each with its first node), ``lowered_by_edgec`` (recurrent
    ops edgec unrolls), ``dynamic_inputs`` / ``dynamic_dims`` and
    ``suggested_flags`` (the ``--input-shape`` flags that would bind them),
    ``warnings``.
    """

    path: str
    sha256: str
    size_bytes: int
    ir_version: int
    producer_name: str
    producer_version: str
    opsets: MappingProxyType[str, int]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    op_counts: MappingProxyType[str, int]  # "Op" or "domain::Op" -> count, largest first
    node_count: int
    params: ParamInfo
    compute: ComputeInfo
    unsupported: tuple[OpUse, ...]
    lowered_by_edgec: tuple[OpUse, ...]
    dynamic_inputs: tuple[TensorInfo, ...]
    dynamic_dims: tuple[str, ...]
    suggested_flags: str
    bindings: dict | None = None
    warnings: tuple[str, ...] = field(default=())
    binding_hint: str = ""  # suggested_flags and what their placeholders stand for

    @property
    def flops(self) -> int:
        """The model's FLOPs, ``compute.flops`` (check ``compute.complete``)."""
        return self.compute.flops

    def to_json(self) -> dict:
        """A plain dict for ``json.dumps`` (the ``--json`` output; keep keys stable)."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "ir_version": self.ir_version,
            "producer": {"name": self.producer_name, "version": self.producer_version},
            "opsets": dict(self.opsets),
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "ops": dict(self.op_counts),
            "node_count": self.node_count,
            "params": self.params.to_json(),
            "compute": self.compute.to_json(),
            "unsupported": [u.to_json() for u in self.unsupported],
            "lowered_by_edgec": [
                {**u.to_json(), "pass": lowering_pass(u.op), "static": u.static}
                for u in self.lowered_by_edgec],
            "dynamic": {
                "inputs": [t.to_json() for t in self.dynamic_inputs],
                "dims": list(self.dynamic_dims),
                "suggested_flags": self.suggested_flags,
                "hint": self.binding_hint,
            },
            "bindings": self.bindings,
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------- entry point


def inspect_model(path: str | os.PathLike, *, bindings: Bindings | None = None,
                  max_bytes: int = DEFAULT_MAX_MODEL_BYTES,
                  max_nodes: int = DEFAULT_MAX_NODES) -> ModelInfo:
    """Load, check, bind and shape-infer the model at ``path`` and describe it.

    Raises the front end's EdgecErrors: a bad file as ModelError, a binding that
    contradicts the model as UsageError. Shape inference that fails only
    because dims are still dynamic is not an error: the report then says what
    it could not work out.
    """
    loaded = load_model(path, max_bytes=max_bytes, max_nodes=max_nodes)
    proto = loaded.proto
    params = _param_info(proto)  # before binding: constant inputs are not weights
    model = to_ir(path, proto)
    params = _with_generated(params, model)
    bound = bindings is not None and bool(bindings.shapes or bindings.consts)
    if bound:
        bind_inputs(model, bindings, loaded.path)
    warnings = _infer_shapes(model, proto, bound)

    initializers = set(model.graph.initializers)
    inputs = [v for v in model.graph.inputs if v.name not in initializers]
    dynamic = [v for v in unbound_inputs(model) if v.name not in initializers]
    dyn_names: list[str] = []
    for v in dynamic:
        for d in _dims(v) or ("?",):
            if isinstance(d, str) and d not in dyn_names:
                dyn_names.append(d)

    walk = list(_walk(model.graph))
    nodes = [node for node, _ in walk]
    unsupported, lowered = _coverage(nodes)
    return ModelInfo(
        path=str(loaded.path),
        sha256=loaded.sha256,
        size_bytes=loaded.size_bytes,
        ir_version=proto.ir_version,
        producer_name=proto.producer_name,
        producer_version=proto.producer_version,
        opsets=MappingProxyType({(imp.domain or "ai.onnx"): imp.version
                                 for imp in proto.opset_import}),
        inputs=tuple(_tensor_info(v) for v in inputs),
        outputs=tuple(_tensor_info(v) for v in model.graph.outputs),
        op_counts=MappingProxyType(_sorted_counts(Counter(_op_key(n) for n in nodes))),
        node_count=len(nodes),
        params=params,
        compute=_compute(walk),
        unsupported=unsupported,
        lowered_by_edgec=lowered,
        dynamic_inputs=tuple(_tensor_info(v) for v in dynamic),
        dynamic_dims=tuple(dyn_names),
        suggested_flags=suggest_binding(dynamic) if dynamic else "",
        bindings=bindings.to_json() if bound else None,
        warnings=tuple(warnings),
        binding_hint=binding_hint(dynamic) if dynamic else "",
    )


# --------------------------------------------------------------------------- shapes


_lenient_infer = functools.partial(onnx.shape_inference.infer_shapes, check_type=False,
                                   strict_mode=False, data_prop=True)


def _infer_shapes(model: ir.Model, proto: onnx.ModelProto, bound: bool) -> list[str]:
    """Strict inference; on failure, decide whether the bindings are to blame.

    If the unbound model fails strict inference too, the failure is the model's
    own (dynamic dims, an op onnx cannot infer), so inspect carries on with
    lenient inference. If only the bound model fails, the bindings contradict
    the model and the UsageError goes to the user, as a compile would.
    """
    try:
        InferShapes()(model)
        return []
    except UsageError as exc:
        if bound:
            try:
                InferShapes()(ir.serde.deserialize_model(proto))
            except UsageError:
                pass  # not the bindings' fault
            else:
                raise
        reason = exc.message.split(" (", 1)[-1].rsplit(");", 1)[0]
    try:
        _merge_func(model, call_onnx_api(_lenient_infer, model))
    except Exception as exc:  # onnx raises many types; inspect must still report
        return [f"shape inference failed ({reason}; lenient retry: {exc}); "
                "shapes are the ones the file declares"]
    return [f"strict shape inference failed ({reason}); shapes are partial"]


def _dims(value: ir.Value | None) -> tuple[int | str, ...] | None:
    """A value's dims with dynamic ones as their name or "?"; None if the rank is unknown."""
    if value is None or value.shape is None:
        return None
    return tuple(d if isinstance(d, int) else (d.value or "?") for d in value.shape)


def _static(value: ir.Value | None) -> tuple[int, ...] | None:
    """A value's dims if every one is a known int, else None."""
    dims = _dims(value)
    if dims is None or not all(isinstance(d, int) and d >= 0 for d in dims):
        return None
    return dims  # type: ignore[return-value]


def _dtype_name(value: ir.Value) -> str | None:
    dt = value.dtype
    if dt is None:
        return None
    if dt == ir.DataType.STRING:
        return "string"
    try:
        return dt.numpy().name
    except (TypeError, ValueError):
        return dt.name.lower()


def _tensor_info(value: ir.Value) -> TensorInfo:
    return TensorInfo(name=value.name or "", dtype=_dtype_name(value), dims=_dims(value))


# --------------------------------------------------------------------------- ops


def _walk(graph: ir.Graph, owners: tuple[str, ...] = ()
          ) -> Iterator[tuple[ir.Node, tuple[str, ...]]]:
    """Every node, subgraphs (If/Loop/Scan bodies) included, with the op types that own it."""
    for node in graph:
        yield node, owners
        for attr in node.attributes.values():
            if attr.is_ref():
                continue
            if attr.type == ir.AttributeType.GRAPH:
                yield from _walk(attr.as_graph(), (*owners, node.op_type))
            elif attr.type == ir.AttributeType.GRAPHS:
                for sub in attr.as_graphs():
                    yield from _walk(sub, (*owners, node.op_type))


def _op_key(node: ir.Node) -> str:
    return node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}"


def _sorted_counts(counts: Counter) -> dict:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _node_label(node: ir.Node) -> str:
    """The node's name, or (for unnamed nodes) what it produces, so a user can find it."""
    if node.name:
        return node.name
    outs = [o.name for o in node.outputs if o is not None and o.name]
    return f"(unnamed, output '{outs[0]}')" if outs else "(unnamed)"


def lowering_pass(op_key: str) -> str:
    """The edgec pass that rewrites an op ("Op" or "domain::Op") TVM cannot import."""
    domain, _, op = op_key.rpartition("::")
    return LOWERED_CONTRIB_BY_EDGEC.get((domain, op)) or LOWERED_BY_EDGEC[op]


def _coverage(nodes: Sequence[ir.Node]) -> tuple[tuple[OpUse, ...], tuple[OpUse, ...]]:
    """Split ops TVM lacks into those edgec lowers itself and those nothing handles.

    TVM's importer dispatches on op_type alone (it ignores domains), so that is
    what is checked; reports still key custom-domain ops as "domain::Op".
    """
    known = tvm_onnx_ops()
    bad: dict[str, list[ir.Node]] = {}
    low: dict[str, list[ir.Node]] = {}
    for node in nodes:
        default = node.domain in _DEFAULT_DOMAINS
        if (node.op_type in LOWERED_BY_EDGEC and default) or \
                (node.domain, node.op_type) in LOWERED_CONTRIB_BY_EDGEC:
            low.setdefault(_op_key(node), []).append(node)
        elif not default or node.op_type not in known:  # other domains are refused
            bad.setdefault(_op_key(node), []).append(node)

    def uses(groups: dict[str, list[ir.Node]], check_static: bool) -> tuple[OpUse, ...]:
        out = [OpUse(op, len(ns), _node_label(ns[0]),
                     static=not check_static or lowering_pass(op) != "lower-rnn"
                     or all(_static(n.inputs[0]) for n in ns))
               for op, ns in groups.items()]
        return tuple(sorted(out, key=lambda u: (-u.count, u.op)))

    return uses(bad, False), uses(low, True)


# --------------------------------------------------------------------------- parameters


def _tensor_size(t: onnx.TensorProto) -> tuple[int, int]:
    """(elements, bytes) of a stored tensor, from its header (no data decoded)."""
    n = math.prod(t.dims)
    if t.data_type == onnx.TensorProto.STRING:
        return n, sum(len(s) for s in t.string_data)
    try:
        return n, math.ceil(n * ir.DataType(t.data_type).itemsize)
    except (TypeError, ValueError):
        return n, len(t.raw_data)


def _constant_size(node: onnx.NodeProto) -> tuple[int, int]:
    """(elements, bytes) of a Constant node's value, whichever attribute holds it."""
    for attr in node.attribute:
        if attr.HasField("t"):
            return _tensor_size(attr.t)
        if attr.HasField("sparse_tensor"):
            return _sparse_size(attr.sparse_tensor)
        if attr.name == "value_float":
            return 1, 4
        if attr.name == "value_int":
            return 1, 8
        if attr.name == "value_floats":
            return len(attr.floats), 4 * len(attr.floats)
        if attr.name == "value_ints":
            return len(attr.ints), 8 * len(attr.ints)
        if attr.name == "value_string":
            return 1, len(attr.s)
        if attr.name == "value_strings":
            return len(attr.strings), sum(len(s) for s in attr.strings)
    return 0, 0


def _sparse_size(sp: onnx.SparseTensorProto) -> tuple[int, int]:
    """Stored values count as parameters; their indices add bytes only."""
    n, b = _tensor_size(sp.values)
    return n, b + _tensor_size(sp.indices)[1]


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for g in attr.graphs:
                yield from _graphs(g)


def _param_info(proto: onnx.ModelProto) -> ParamInfo:
    """Initializers (dense and sparse) and Constant-node tensors in every (sub)graph."""
    count = nbytes = inits = consts = 0
    for graph in _graphs(proto.graph):
        for n, b in [*map(_tensor_size, graph.initializer),
                     *map(_sparse_size, graph.sparse_initializer)]:
            count, nbytes, inits = count + n, nbytes + b, inits + 1
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS:
                n, b = _constant_size(node)
                count, nbytes, consts = count + n, nbytes + b, consts + 1
    return ParamInfo(count=count, bytes=nbytes, initializers=inits, constants=consts)


def _with_generated(params: ParamInfo, model: ir.Model) -> ParamInfo:
    """Add ConstantOfShape outputs whose shape is a constant: weights made at run time."""
    elems = nbytes = tensors = 0
    for node, _ in _walk(model.graph):
        if node.op_type != "ConstantOfShape" or node.domain not in _DEFAULT_DOMAINS:
            continue
        try:
            shape = ir.convenience.get_const_tensor(node.inputs[0]) if node.inputs else None
        except ValueError:  # a malformed Constant producer: not a constant shape
            shape = None
        if shape is None:
            continue
        n = math.prod(int(d) for d in shape.numpy().reshape(-1))
        attr = node.attributes.get("value")
        dtype = attr.as_tensor().dtype if attr is not None else ir.DataType.FLOAT
        elems += n
        nbytes += math.ceil(n * dtype.itemsize) if dtype != ir.DataType.STRING else 0
        tensors += 1
    return ParamInfo(count=params.count, bytes=params.bytes, initializers=params.initializers,
                     constants=params.constants, generated_params=elems,
                     generated_bytes=nbytes, generated_tensors=tensors)


# --------------------------------------------------------------------------- compute


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """numpy broadcasting of two static shapes; None if they are incompatible."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return tuple(reversed(out))


def _matmul_macs(a: tuple[int, ...], b: tuple[int, ...]) -> int | None:
    """numpy.matmul: 1-D operands get a dim of 1 (prepended to A, appended to B)."""
    if not a or not b:
        return None
    if len(a) == 1:
        a = (1, *a)
    if len(b) == 1:
        b = (*b, 1)
    (m, k), (k2, n) = a[-2:], b[-2:]
    batch = _broadcast(a[:-2], b[:-2])
    if k != k2 or batch is None:
        return None
    return math.prod(batch) * m * n * k


def _einsum_macs(equation: str, shapes: Sequence[tuple[int, ...]]) -> int | None:
    """Two-operand einsum: one MAC per point of the joint index space (naive contraction)."""
    lhs = equation.replace(" ", "").split("->")[0]
    terms = lhs.split(",")
    if len(terms) != 2 or len(shapes) != 2:
        return None
    sizes: dict[str, int] = {}
    ellipsis: list[tuple[int, ...]] = []
    for term, shape in zip(terms, shapes, strict=True):
        if "..." in term:
            pre, post = term.split("...", 1)
            n_ell = len(shape) - len(pre) - len(post)
            if n_ell < 0:
                return None
            ellipsis.append(shape[len(pre):len(pre) + n_ell])
            labels = [*pre, *([""] * n_ell), *post]
        else:
            labels = list(term)
        if len(labels) != len(shape):
            return None
        for label, size in zip(labels, shape, strict=True):
            if not label:
                continue
            prev = sizes.setdefault(label, size)
            if prev != size:
                if 1 not in (prev, size):
                    return None
                sizes[label] = max(prev, size)
    ell = _broadcast(*ellipsis) if len(ellipsis) == 2 else (ellipsis[0] if ellipsis else ())
    if ell is None:
        return None
    return math.prod(sizes.values()) * math.prod(ell)


def _input(node: ir.Node, i: int) -> ir.Value | None:
    return node.inputs[i] if i < len(node.inputs) else None


def _node_macs(node: ir.Node) -> int | None:
    """MACs of one node, or None when a shape it needs is unknown (or inconsistent)."""
    op = node.op_type
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        # out = (N, Cout, *spatial); W = (Cout, Cin/group, *kernel)
        w = _static(_input(node, 3 if op == "QLinearConv" else 1))
        out = _static(node.outputs[0])
        if w is None or out is None or len(w) != len(out) or len(w) < 3:
            return None
        return math.prod(out) * math.prod(w[1:])
    if op == "ConvTranspose":
        # X = (N, Cin, *in spatial); W = (Cin, Cout/group, *kernel)
        x, w = _static(_input(node, 0)), _static(_input(node, 1))
        if x is None or w is None or len(w) != len(x) or len(w) < 3:
            return None
        return math.prod(x) * math.prod(w[1:])
    if op == "Gemm":
        a, b = _static(_input(node, 0)), _static(_input(node, 1))
        if a is None or b is None or len(a) != 2 or len(b) != 2:
            return None
        m, k = reversed(a) if node.attributes.get_int("transA", 0) else a
        k2, n = reversed(b) if node.attributes.get_int("transB", 0) else b
        return m * n * k if k == k2 else None
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a = _static(_input(node, 0))
        b = _static(_input(node, 3 if op == "QLinearMatMul" else 1))
        return None if a is None or b is None else _matmul_macs(a, b)
    if op == "Einsum":
        shapes = [_static(v) for v in node.inputs]
        if any(s is None for s in shapes):
            return None
        return _einsum_macs(node.attributes.get_string("equation", ""), shapes)
    if op in RNN_GATES:
        # W = (dirs, gates*hidden, input), R = (dirs, gates*hidden, hidden):
        # per step and batch row, dirs * gates*hidden * (input + hidden) MACs.
        # X is (seq, batch, input), or (batch, seq, input) with layout=1: same product.
        x, w, r = (_static(_input(node, i)) for i in range(3))
        if x is None or w is None or r is None or len(x) != 3:
            return None
        return x[0] * x[1] * (math.prod(w) + math.prod(r))
    return None


def compute_info(model: ir.Model) -> ComputeInfo:
    """MACs/FLOPs of an already shape-inferred model (bench counts its static copy)."""
    return _compute(list(_walk(model.graph)))


def _compute(walk: Sequence[tuple[ir.Node, tuple[str, ...]]]) -> ComputeInfo:
    """MACs of every node; nodes in subgraphs are counted once and say so in notes."""
    macs: Counter[str] = Counter()
    uncounted: Counter[str] = Counter()
    in_if = in_loop = 0
    for node, owner_ops in walk:
        if node.domain not in _DEFAULT_DOMAINS or node.op_type not in MAC_OPS:
            continue
        if node.op_type == "Einsum" and len(node.inputs) == 1:
            continue  # a transpose or reduction: no multiplies
        n = _node_macs(node)
        if n is None:
            uncounted[node.op_type] += 1
            continue
        macs[node.op_type] += n
        owners = set(owner_ops)
        in_if += "If" in owners
        in_loop += bool(owners & {"Loop", "Scan"})
    notes = []
    if in_if:
        notes.append(f"{in_if} counted node(s) sit in If branches; every branch is counted")
    if in_loop:
        notes.append(f"{in_loop} counted node(s) sit in Loop/Scan bodies; counted for one "
                     "iteration")
    return ComputeInfo(macs_by_op=MappingProxyType(_sorted_counts(macs)),
                       uncounted=MappingProxyType(_sorted_counts(uncounted)),
                       notes=tuple(notes))


# --------------------------------------------------------------------------- rendering


def _human(n: float, unit: str = "") -> str:
    """1234567 -> "1.23 M": short numbers for tables (exact ones are in --json)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()


def _bytes(n: int) -> str:
    for factor, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{n} B"


def render_model_info(info: ModelInfo, console: Console) -> None:
    """Print ``info`` for a person: header, then one table per topic, problems in colour."""
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    producer = " ".join(p for p in (info.producer_name, info.producer_version) if p) or "unknown"
    opsets = ", ".join(f"{d} {v}" for d, v in info.opsets.items())
    header = (f"[bold]{escape(info.path)}[/]\n"
              f"size {_bytes(info.size_bytes)}   sha256 {info.sha256}\n"
              f"IR version {info.ir_version}   opsets {escape(opsets)}   "
              f"producer {escape(producer)}")
    console.print(Panel(header, title="edgec inspect", expand=False))
    for warning in info.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")

    io = Table(title="Inputs and outputs", title_justify="left")
    for col in ("", "name", "dtype", "shape"):
        io.add_column(col)
    for kind, tensors in (("in", info.inputs), ("out", info.outputs)):
        for t in tensors:
            shape = escape(t.shape_text())
            io.add_row(kind, escape(t.name), t.dtype or "?",
                       shape if t.is_static else f"[yellow]{shape}[/]")
    console.print(io)

    ops = Table(title=f"Ops ({info.node_count} nodes, {len(info.op_counts)} types)",
                title_justify="left")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    items = list(info.op_counts.items())
    for op, count in items[:TOP_OPS]:
        ops.add_row(escape(op), str(count))
    if len(items) > TOP_OPS:
        ops.add_row(f"[dim]... {len(items) - TOP_OPS} more[/]", "")
    console.print(ops)

    p = info.params
    params = Table(title="Parameters", title_justify="left")
    params.add_column("")
    params.add_column("count", justify="right")
    params.add_column("size", justify="right")
    params.add_row(f"stored ({p.initializers} initializers, {p.constants} Constant nodes)",
                   f"{_human(p.count)} ({p.count:,})", _bytes(p.bytes))
    if p.generated_tensors:
        params.add_row(f"generated at run time ({p.generated_tensors} ConstantOfShape)",
                       f"{_human(p.generated_params)} ({p.generated_params:,})",
                       _bytes(p.generated_bytes))
    console.print(params)

    c = info.compute
    at_least = "" if c.complete else "at least "
    console.print(f"[bold]Compute: {at_least}{c.flops / 1e9:.2f} GFLOP[/] ({_human(c.macs)} "
                  "MACs; FLOPs = 2 x MACs)" + ("" if c.complete else
                                               " [yellow]some nodes uncounted[/]"))
    compute = Table()
    compute.add_column("op")
    compute.add_column("MACs", justify="right")
    compute.add_column("share", justify="right")
    for op, macs in c.macs_by_op.items():
        share = f"{100 * macs / c.macs:.1f}%" if c.macs else "-"
        compute.add_row(escape(op), _human(macs), share)
    for op, count in c.uncounted.items():
        compute.add_row(f"[yellow]{escape(op)}[/]", f"[yellow]{count} node(s) uncounted[/]", "")
    console.print(compute)
    for note in c.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    if c.uncounted:
        console.print("[yellow]Some nodes have unknown shapes, so the totals above leave them "
                      "out; bind the dynamic dims to count them.[/]")

    if info.unsupported:
        bad = Table(title="[red]Ops TVM cannot import[/]", title_justify="left")
        bad.add_column("op", style="red")
        bad.add_column("count", justify="right")
        bad.add_column("first node")
        for u in info.unsupported:
            bad.add_row(escape(u.op), str(u.count), escape(u.first_node))
        console.print(bad)
        console.print("[red]edgec compile will stop at these ops (exit 4): re-export the model "
                      "without them, or run that part outside edgec.[/]")
    for u in info.lowered_by_edgec:
        hint = "" if u.static else ("; it needs static shapes, so bind the dynamic dims "
                                    "(see below)")
        console.print(f"{escape(u.op)} x{u.count} (first: {escape(u.first_node)}): TVM lacks "
                      f"it; edgec's {lowering_pass(u.op)} pass rewrites it into primitive "
                      f"ops{hint}")

    if info.dynamic_inputs:
        names = ", ".join(escape(t.name) + " " + escape(t.shape_text())
                          for t in info.dynamic_inputs)
        console.print(f"[yellow]Dynamic inputs:[/] {names}")
        console.print(f"Bind them to compile, e.g. [bold]{escape(info.binding_hint)}[/]")
    else:
        console.print("[green]All input shapes are static.[/]")

"""Rewrite pre-quantised operators into the QDQ form TVM's importer reads.

Models that arrive quantised come in three shapes. onnxruntime's
``quantize_static(..., quant_format=QuantFormat.QDQ)`` writes standard
``QuantizeLinear``/``DequantizeLinear`` pairs around float ops, which TVM's
ONNX importer (``tvm.relax.frontend.onnx``) converts already. The QOperator
format writes ``QLinearConv``/``QLinearMatMul`` (and onnxruntime contrib ops in
the ``com.microsoft`` domain), and ``quantize_dynamic`` writes ``ConvInteger``
next to ``MatMulInteger``/``DynamicQuantizeLinear``; TVM has no converter for
``QLinearConv``, ``QLinearMatMul`` or ``ConvInteger``. This pass rewrites them
into exactly the QDQ form ``quantize_static`` writes, which edgec's integer
lowering (edgec/backend/tvm/quantized.py) recognises and runs on integer
kernels:

- ``QLinearConv(x, xs, xz, w, ws, wz, ys, yz[, B])`` becomes
  ``QuantizeLinear(Conv(DequantizeLinear(x, xs, xz), DequantizeLinear(w, ws, wz,
  axis=0)[, DequantizeLinear(B, xs*ws, 0, axis=0)]), ys, yz)``;
- ``QLinearMatMul(a, as, az, b, bs, bz, ys, yz)`` becomes
  ``QuantizeLinear(MatMul(DequantizeLinear(a, as, az), DequantizeLinear(b, bs, bz,
  axis=-1 of b)), ys, yz)`` (the spec's per-column scales of b are its last axis);
- ``ConvInteger(x, w[, xz][, wz])`` becomes ``Cast(Conv(DequantizeLinear(x, 1, xz),
  DequantizeLinear(w, 1, wz, axis=0)), to=INT32)``. The float32 conv of these
  integer values equals the int32 result only while every partial sum stays
  below 2**24 in magnitude (about 258 worst-case uint8 x uint8 products); the
  integer lowering recognises this form and computes it in int32, which is
  exact. Without it (other backends) large reductions can be off by rounding.
- the onnxruntime contrib ops its QOperator format writes around those
  (domain ``com.microsoft``): ``QLinearAdd``, ``QLinearMul``, ``QLinearSigmoid``,
  ``QLinearLeakyRelu``, ``QLinearConcat``, ``QLinearGlobalAveragePool`` and
  ``QLinearAveragePool`` become DequantizeLinear -> the float op ->
  QuantizeLinear. onnxruntime computes some of them with fixed-point or
  lookup-table arithmetic, so results can differ from it by one quantisation
  step. Other contrib ops are left alone; the importer check refuses them.

Scales and zero points of the QLinear ops must be constants (initializers or
``Constant`` nodes): a node whose scale is computed at run time is refused,
naming the node. ``ConvInteger``'s zero points may be computed (that is what
``DynamicQuantizeLinear`` feeds it). Per-channel scales need
``DequantizeLinear``'s ``axis``, so a model with per-channel scales must import
default-domain opset 13 or later. New nodes are named after the node they
replace (``conv1_quant/conv``), so kernels still trace back to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from ..errors import ModelError, UnsupportedError
from .lower_rnn import _NameSource, _remove_if_dead
from .registry import register

_DEFAULT_DOMAINS = ("", "ai.onnx")
_CONTRIB = "com.microsoft"
_MIN_OPSET = 10  # QuantizeLinear / DequantizeLinear
_AXIS_OPSET = 13  # DequantizeLinear's axis (per-channel scales)


@dataclass(frozen=True)
class _Elementwise:
    """A contrib QLinear op that is DequantizeLinear -> ``op`` -> QuantizeLinear."""

    op: str
    inputs: tuple[tuple[int, int, int], ...]  # (x, scale, zero point) input indices
    output: tuple[int, int]  # (scale, zero point) input indices of the result
    variadic_from: int | None = None  # QLinearConcat: (x, s, z) triples from here on


_CONTRIB_OPS = {
    "QLinearAdd": _Elementwise("Add", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    "QLinearMul": _Elementwise("Mul", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    "QLinearSigmoid": _Elementwise("Sigmoid", ((0, 1, 2),), (3, 4)),
    "QLinearLeakyRelu": _Elementwise("LeakyRelu", ((0, 1, 2),), (3, 4)),
    "QLinearGlobalAveragePool": _Elementwise("GlobalAveragePool", ((0, 1, 2),), (3, 4)),
    "QLinearAveragePool": _Elementwise("AveragePool", ((0, 1, 2),), (3, 4)),
    "QLinearConcat": _Elementwise("Concat", (), (0, 1), variadic_from=2),
}
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_STANDARD_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger")

#: What this pass lowers: default-domain op types, and com.microsoft op types.
LOWERED_STANDARD = frozenset(_STANDARD_OPS)
LOWERED_CONTRIB = frozenset(_CONTRIB_OPS)


def _targeted(node: ir.Node) -> bool:
    if node.domain in _DEFAULT_DOMAINS:
        return node.op_type in _STANDARD_OPS
    return node.domain == _CONTRIB and node.op_type in _CONTRIB_OPS


@register("lower-qlinear", "Rewrite QLinearConv/QLinearMatMul/ConvInteger and onnxruntime's "
                           "QLinearAdd/Concat/... into QuantizeLinear/DequantizeLinear form")
class LowerQLinear(ir.passes.InPlacePass):
    """Replace every pre-quantised op this module knows (main graph and subgraphs)."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        targets = [n for n in ir.traversal.RecursiveGraphIterator(model.graph) if _targeted(n)]
        if not targets:
            return ir.passes.PassResult(model, False)
        opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
        names = _NameSource(model)
        lowerings = [_Lowering(model, node, opset, names) for node in targets]
        for lowering in lowerings:  # check every node first: refuse before changing anything
            lowering.read()
        for lowering in lowerings:
            lowering.rewrite()
        if _CONTRIB in model.opset_imports and not any(
                n.domain == _CONTRIB for n in ir.traversal.RecursiveGraphIterator(model.graph)):
            del model.opset_imports[_CONTRIB]
        return ir.passes.PassResult(model, True)


class _Lowering:
    """Lowers one node: checks its parameters, emits the QDQ nodes, rewires its output."""

    def __init__(self, model: ir.Model, node: ir.Node, opset: int, names: _NameSource):
        self.model, self.node, self.opset, self.names = model, node, opset, names
        self.op = node.op_type
        self.base = node.name or next((o.name for o in node.outputs if o.name), None) or self.op
        self.new_nodes: list[ir.Node] = []
        self.const_cache: dict[tuple, ir.Value] = {}
        self.params: dict[int, np.ndarray] = {}

    # ---- diagnostics and inputs

    def _label(self) -> str:
        domain = "" if self.node.domain in _DEFAULT_DOMAINS else f", domain {self.node.domain}"
        return f"node '{self.node.name or self.base}' ({self.op}{domain})"

    def _unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"{self._label()}: {what}")

    def _invalid(self, what: str) -> ModelError:
        return ModelError(f"{self._label()}: {what}")

    def _input(self, index: int) -> ir.Value | None:
        inputs = self.node.inputs
        return inputs[index] if index < len(inputs) else None

    def _param(self, index: int, label: str, *, required: bool = True) -> np.ndarray | None:
        """A scale or zero point, which must be a constant; kept for the rewrite."""
        value = self._input(index)
        if value is None:
            if required:
                raise self._invalid(f"input {label} is required")
            return None
        tensor = ir.convenience.get_const_tensor(value)
        if tensor is None:
            raise self._unsupported(
                f"{label} ('{value.name}') is not a constant; edgec lowers quantised ops only "
                "when their scales and zero points are initializers or Constant nodes "
                "(re-export with static quantisation, or fold the computation that makes it)")
        arr = tensor.numpy()
        self.params[index] = arr
        return arr

    def _scalar_param(self, index: int, label: str, *, required: bool = True):
        arr = self._param(index, label, required=required)
        if arr is not None and arr.size != 1:
            raise self._unsupported(f"{label} has shape {list(arr.shape)}; only a per-tensor "
                                    "(single-value) scale and zero point are supported here")
        return arr

    def _need_axis(self, what: str) -> None:
        if self.opset < _AXIS_OPSET:
            raise self._unsupported(
                f"{what} needs DequantizeLinear's axis, which default-domain opset {self.opset} "
                f"lacks; convert the model to opset >= {_AXIS_OPSET} with "
                "onnx.version_converter")

    # ---- reading the node

    def read(self) -> None:
        node = self.node
        if self.opset < _MIN_OPSET:
            raise self._unsupported(
                f"the model imports default-domain opset {self.opset}; lowering quantised ops "
                f"needs opset >= {_MIN_OPSET} (convert it with onnx.version_converter)")
        if len(node.outputs) != 1:
            raise self._invalid(f"expected one output, found {len(node.outputs)}")
        if self.op in ("QLinearConv", "QLinearMatMul"):
            self._read_qlinear()
        elif self.op == "ConvInteger":
            for idx in (2, 3):
                value = self._input(idx)
                tensor = None if value is None else ir.convenience.get_const_tensor(value)
                if tensor is not None:
                    self.params[idx] = tensor.numpy()
            wz = self.params.get(3)
            if wz is not None and wz.size != 1:
                self._need_axis("a per-channel w_zero_point")
            xz = self.params.get(2)
            if xz is not None and xz.size != 1:
                raise self._unsupported(f"x_zero_point has shape {list(xz.shape)}; the spec "
                                        "allows only a single value")
        else:
            self._read_contrib()

    def _read_qlinear(self) -> None:
        """QLinearConv / QLinearMatMul: every scale and zero point is a constant."""
        conv = self.op == "QLinearConv"
        a, w = ("x", "w") if conv else ("a", "b")
        xs = self._param(1, f"{a}_scale")
        xz = self._param(2, f"{a}_zero_point")
        ws = self._param(4, f"{w}_scale")
        wz = self._param(5, f"{w}_zero_point")
        self._scalar_param(6, "y_scale")
        self._scalar_param(7, "y_zero_point")
        if conv:
            for arr, label in ((xs, "x_scale"), (xz, "x_zero_point")):
                if arr.size != 1:
                    raise self._unsupported(f"{label} has shape {list(arr.shape)}; the spec "
                                            "allows only a per-tensor value")
        elif xs.size != 1 or xz.size != 1:
            if xs.size != 1 and xz.size != 1 and xs.size != xz.size:
                raise self._invalid(f"a_scale ({xs.size}) and a_zero_point ({xz.size}) differ "
                                    "in length")
            self._need_axis("per-row scales of a")
        if ws.size != 1 or wz.size != 1:
            if ws.size != 1 and wz.size != 1 and ws.size != wz.size:
                raise self._invalid(f"{w}_scale ({ws.size}) and {w}_zero_point ({wz.size}) "
                                    "differ in length")
            self._need_axis(f"per-{'channel' if conv else 'column'} scales of {w}")
        if conv and self._input(8) is not None:
            bias = self._input(8)
            if bias.dtype is not None and bias.dtype != ir.DataType.INT32:
                raise self._invalid(f"bias B has type {bias.dtype}, expected int32")

    def _read_contrib(self) -> None:
        spec = _CONTRIB_OPS[self.op]
        attrs = self.node.attributes
        if self.op in ("QLinearGlobalAveragePool", "QLinearAveragePool") and \
                attrs.get_int("channels_last", 0):
            raise self._unsupported("channels_last=1 is not supported; re-export with "
                                    "quantize_static(..., quant_format=QuantFormat.QDQ)")
        for x, s, z in self._triples(spec):
            if self._input(x) is None:
                raise self._invalid(f"input {x} is required")
            self._scalar_param(s, f"input {s} (scale)")
            self._scalar_param(z, f"input {z} (zero point)", required=False)
        self._scalar_param(spec.output[0], f"input {spec.output[0]} (output scale)")
        self._scalar_param(spec.output[1], f"input {spec.output[1]} (output zero point)",
                           required=False)
        if self._input(spec.output[1]) is None and self._qtype() is None:
            raise self._unsupported("its output type is unknown (no zero point says it); give "
                                    "the output zero point explicitly")

    def _triples(self, spec: _Elementwise) -> list[tuple[int, int, int]]:
        if spec.variadic_from is None:
            return list(spec.inputs)
        n = len(self.node.inputs) - spec.variadic_from
        if n <= 0 or n % 3:
            raise self._invalid(f"expected (X, scale, zero point) triples after input "
                                f"{spec.variadic_from - 1}, found {n} inputs")
        return [(i, i + 1, i + 2) for i in range(spec.variadic_from, len(self.node.inputs), 3)]

    def _qtype(self) -> ir.DataType | None:
        """The quantised element type of a contrib op (its output is of its inputs' type)."""
        triples = self._triples(_CONTRIB_OPS[self.op])
        for _, _, z in triples:
            if z in self.params:
                return ir.DataType.from_numpy(self.params[z].dtype)
        first = self._input(triples[0][0])
        if first is not None and first.dtype in (ir.DataType.UINT8, ir.DataType.INT8):
            return first.dtype
        return None

    # ---- emitting

    def _name(self, tag: str) -> str:
        return self.names.fresh(f"{self.base}/{tag}")

    def _const(self, array: np.ndarray, tag: str) -> ir.Value:
        """A new main-graph initializer (visible from every subgraph); small ones shared."""
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

    def _emit(self, op_type: str, inputs: Sequence[ir.Value | None], tag: str,
              dtype: ir.DataType | None = None, **attributes) -> ir.Value:
        name = self._name(tag)
        out = ir.Value(name=name, type=None if dtype is None else ir.TensorType(dtype))
        node = ir.Node("", op_type, inputs,
                       attributes=ir.convenience.convert_attributes(attributes),
                       outputs=[out], name=name)
        self.new_nodes.append(node)
        return out

    def _as_param(self, idx: int, shape: tuple[int, ...], tag: str) -> ir.Value:
        """The constant input ``idx`` with ``shape``: the original value when it has it."""
        arr = self.params[idx]
        if tuple(arr.shape) == shape:
            return self.node.inputs[idx]
        return self._const(np.broadcast_to(arr.reshape(-1) if arr.size > 1 else
                                           arr.reshape(()), shape).copy(), tag)

    def _dequantize(self, x: ir.Value, s: int, z: int | None, tag: str, *,
                    axis_of: int | None = None, rank: int | None = None) -> ir.Value:
        """DequantizeLinear of ``x`` with the constant scale/zero point at ``s``/``z``.

        A parameter with more than one value is per-axis along ``axis_of``
        (negative: counted from the back, made positive when ``x``'s rank is known).
        """
        sizes = [self.params[s].size] + ([self.params[z].size] if z is not None else [])
        n = max(sizes)
        if n == 1:
            inputs = [x, self._as_param(s, (), f"{tag}_scale")]
            if z is not None:
                inputs.append(self._as_param(z, (), f"{tag}_zero_point"))
            return self._emit("DequantizeLinear", inputs, tag)
        inputs = [x, self._as_param(s, (n,), f"{tag}_scale")]
        if z is not None:
            inputs.append(self._as_param(z, (n,), f"{tag}_zero_point"))
        axis = axis_of if axis_of >= 0 or rank is None else rank + axis_of
        return self._emit("DequantizeLinear", inputs, tag, axis=axis)

    def _quantize(self, x: ir.Value, s: int, z: int | None, tag: str) -> ir.Value:
        inputs = [x, self._as_param(s, (), f"{tag}_scale")]
        if z is not None:
            inputs.append(self._as_param(z, (), f"{tag}_zero_point"))
        return self._emit("QuantizeLinear", inputs, tag)

    def _rank(self, value: ir.Value) -> int | None:
        tensor = ir.convenience.get_const_tensor(value)
        if tensor is not None:
            return len(tensor.shape)
        return None if value.shape is None else len(value.shape)

    def _attrs(self, drop: tuple[str, ...] = ()) -> dict:
        """Copies of the node's attributes (the float op takes the same ones)."""
        return {k: ir.Attr(a.name, a.type, a.value) for k, a in self.node.attributes.items()
                if k not in drop}

    def rewrite(self) -> None:
        node = self.node
        graph = node.graph
        if self.op == "QLinearConv":
            result = self._rewrite_qlinear_conv()
        elif self.op == "QLinearMatMul":
            result = self._rewrite_qlinear_matmul()
        elif self.op == "ConvInteger":
            result = self._rewrite_conv_integer()
        else:
            result = self._rewrite_contrib()
        old = node.outputs[0]
        inputs = [v for v in node.inputs if v is not None]
        graph.insert_before(node, self.new_nodes)
        old.replace_all_uses_with(result, replace_graph_outputs=True)
        graph.remove(node, safe=True)
        if node.name:
            # The float op keeps the replaced node's name (as fused nodes do), so
            # profiles and error messages still point at the node in the file.
            core = next(n for n in self.new_nodes if n.op_type not in _QDQ_OPS)
            core.name = node.name
        if old.name:
            name = old.name
            old.name = None
            result.name = name
        result.type = old.type if old.type is not None else result.type
        result.shape = old.shape if old.shape is not None else result.shape
        for value in inputs:
            _remove_if_dead(value)

    def _rewrite_qlinear_conv(self) -> ir.Value:
        x, w, bias = self._input(0), self._input(3), self._input(8)
        xq = self._dequantize(x, 1, 2, "x_dequantize")
        wq = self._dequantize(w, 4, 5, "w_dequantize", axis_of=0)
        inputs = [xq, wq]
        if bias is not None:
            xs, ws = self.params[1], self.params[4]
            scale = (xs.reshape(()).astype(np.float32) * ws.reshape(-1).astype(np.float32))
            n = max(self.params[4].size, self.params[5].size)
            scale = np.broadcast_to(scale, (n,)).copy() if n > 1 else scale.reshape(())
            zeros = np.zeros(scale.shape, np.int32)
            args = [bias, self._const(scale, "B_scale"), self._const(zeros, "B_zero_point")]
            inputs.append(self._emit("DequantizeLinear", args, "B_dequantize",
                                     **({"axis": 0} if n > 1 else {})))
        y = self._emit("Conv", inputs, "conv", **self._attrs())
        return self._quantize(y, 6, 7, "quantize")

    def _rewrite_qlinear_matmul(self) -> ir.Value:
        a, b = self._input(0), self._input(3)
        aq = self._dequantize(a, 1, 2, "a_dequantize", axis_of=-2, rank=self._rank(a))
        bq = self._dequantize(b, 4, 5, "b_dequantize", axis_of=-1, rank=self._rank(b))
        y = self._emit("MatMul", [aq, bq], "matmul")
        return self._quantize(y, 6, 7, "quantize")

    def _rewrite_conv_integer(self) -> ir.Value:
        x, w = self._input(0), self._input(1)
        xz, wz = self._input(2), self._input(3)
        one = np.array(1.0, np.float32)
        args = [x, self._const(one, "x_scale")]
        if xz is not None:
            args.append(self._as_param(2, (), "x_zero_point") if 2 in self.params else xz)
        xq = self._emit("DequantizeLinear", args, "x_dequantize", ir.DataType.FLOAT)
        n = self.params[3].size if 3 in self.params else 1
        if wz is None:
            wq = self._emit("DequantizeLinear", [w, self._const(one, "w_scale")],
                            "w_dequantize", ir.DataType.FLOAT)
        elif n > 1:
            wq = self._emit("DequantizeLinear",
                            [w, self._const(np.ones(n, np.float32), "w_scale"),
                             self._as_param(3, (n,), "w_zero_point")],
                            "w_dequantize", ir.DataType.FLOAT, axis=0)
        else:
            zp = self._as_param(3, (), "w_zero_point") if 3 in self.params else wz
            wq = self._emit("DequantizeLinear", [w, self._const(one, "w_scale"), zp],
                            "w_dequantize", ir.DataType.FLOAT)
        y = self._emit("Conv", [xq, wq], "conv", ir.DataType.FLOAT, **self._attrs())
        return self._emit("Cast", [y], "cast", ir.DataType.INT32, to=ir.DataType.INT32)

    def _rewrite_contrib(self) -> ir.Value:
        spec = _CONTRIB_OPS[self.op]
        triples = self._triples(spec)
        deq = []
        for k, (x, s, z) in enumerate(triples):
            z = z if self._input(z) is not None else None
            tag = "dequantize" if len(triples) == 1 else f"dequantize_{k}"
            deq.append(self._dequantize(self._input(x), s, z, tag))
        y = self._emit(spec.op, deq, spec.op.lower(), **self._attrs(("channels_last",)))
        s, z = spec.output
        if self._input(z) is None:
            qtype = self._qtype()
            zero = np.zeros((), qtype.numpy())
            out = [y, self._as_param(s, (), "quantize_scale"), self._const(zero, "zero_point")]
            return self._emit("QuantizeLinear", out, "quantize")
        return self._quantize(y, s, z, "quantize")

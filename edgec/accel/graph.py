"""A read-only view of an ONNX graph for accelerator plugins and the partitioner.

Plugins decide per node whether their device runs it; they need shapes, constants
and, in an int8 (QDQ) graph, the quantisation around each float op. This view
answers those questions once, so no plugin walks the protobuf itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper


@dataclass(frozen=True)
class QParams:
    """One end of a QuantizeLinear/DequantizeLinear: the integer tensor and how it maps
    to real values (``real = (q - zero_point) * scale``, per ``axis`` when not scalar)."""

    tensor: str  # the integer tensor's name
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    dtype: np.dtype  # the integer type: int8, uint8, int32

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


class GraphView:
    """Shapes, constants, producers and consumers of a model with static shapes."""

    def __init__(self, model: onnx.ModelProto):
        self.model = onnx.shape_inference.infer_shapes(model)
        g = self.model.graph
        self._consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i)
                                               for i in g.initializer}
        self._types: dict[str, onnx.TypeProto] = {}
        for v in (*g.input, *g.value_info, *g.output):
            self._types[v.name] = v.type
        self._producer: dict[str, onnx.NodeProto] = {}
        self._consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in g.node:
            for out in node.output:
                self._producer[out] = node
            for name in node.input:
                if name:
                    self._consumers.setdefault(name, []).append(node)
            if node.op_type == "Constant" and node.attribute:
                value = helper.get_attribute_value(node.attribute[0])
                if isinstance(value, onnx.TensorProto):
                    self._consts[node.output[0]] = numpy_helper.to_array(value)
        self._index = {id(n): i for i, n in enumerate(g.node)}
        self._by_name = {n.name: n for n in g.node}
        self.inputs = [i.name for i in g.input if i.name not in self._consts]
        self.outputs = [o.name for o in g.output]
        self.nodes = list(g.node)

    def index(self, node: onnx.NodeProto) -> int:
        """The node's position in ``nodes`` (nodes as ``producer``/``consumers`` give them)."""
        return self._index[id(node)]

    def node(self, name: str) -> onnx.NodeProto:
        """The node called ``name`` (names must be unique: see partition.name_nodes)."""
        return self._by_name[name]

    def shape(self, name: str) -> tuple[int, ...] | None:
        """The tensor's static shape, or None when unknown or symbolic."""
        if name in self._consts:
            return tuple(self._consts[name].shape)
        t = self._types.get(name)
        if t is None or not t.tensor_type.HasField("shape"):
            return None
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in t.tensor_type.shape.dim]
        return None if any(d is None for d in dims) else tuple(dims)

    def dtype(self, name: str) -> np.dtype | None:
        if name in self._consts:
            return self._consts[name].dtype
        t = self._types.get(name)
        if t is None or not t.tensor_type.elem_type:
            return None
        return np.dtype(helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type))

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant output, else None."""
        return self._consts.get(name)

    def producer(self, name: str) -> onnx.NodeProto | None:
        return self._producer.get(name)

    def consumers(self, name: str) -> list[onnx.NodeProto]:
        return list(self._consumers.get(name, ()))

    @staticmethod
    def attrs(node: onnx.NodeProto) -> dict[str, Any]:
        """The node's attributes as Python values (bytes decoded to str)."""
        out = {}
        for a in node.attribute:
            v = helper.get_attribute_value(a)
            out[a.name] = v.decode() if isinstance(v, bytes) else v
        return out

    def _qparams(self, node: onnx.NodeProto, tensor: str) -> QParams | None:
        scale = self.const(node.input[1])
        if scale is None:
            return None
        zp = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        dtype = zp.dtype if zp is not None else (
            self.dtype(tensor) if node.op_type == "DequantizeLinear" else np.dtype(np.uint8))
        if zp is None:
            zp = np.zeros_like(scale, dtype=dtype)
        return QParams(tensor, np.asarray(scale, np.float32), np.asarray(zp),
                       int(self.attrs(node).get("axis", 1)), np.dtype(dtype))

    def dequantized(self, name: str) -> QParams | None:
        """If ``name`` is a DequantizeLinear's output: the integer tensor and its
        parameters (constant scales and zero points only), else None."""
        node = self.producer(name)
        if node is None or node.op_type != "DequantizeLinear":
            return None
        return self._qparams(node, node.input[0])

    def quantized(self, name: str) -> QParams | None:
        """If every consumer of float tensor ``name`` is one QuantizeLinear: the
        integer tensor it writes and its parameters, else None."""
        users = self.consumers(name)
        if len(users) != 1 or users[0].op_type != "QuantizeLinear" or name in self.outputs:
            return None
        return self._qparams(users[0], users[0].output[0])

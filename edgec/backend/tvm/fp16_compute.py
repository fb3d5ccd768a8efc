"""A float16 model computed in float32 on CPUs, as onnxruntime and TFLite do there.

A CPU computes float16 arithmetic by converting to float32 and back around
every op (x86 has no float16 ALU short of AVX512-FP16), so keeping the model's
types bought nothing but a rounding after each op: ONNX's float16 attention
node tests came out 1-3 ulp off where onnxruntime, which runs float16 ops
without a float16 kernel in float32 and drops the casts between them, passed.
The graph is rewritten before import: float16 weights, constants and
intermediate types become float32, graph inputs are cast up where they enter
and outputs cast down where they leave (the artifact still takes and returns
float16), and the model's explicit Casts still round: to float16 (a cast
down and back up), and from a float16 value to another type (rounded
first). ``--quantize fp16`` asks for float16 arithmetic and is left alone.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .coverage import DEFAULT_DOMAINS

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT


def _graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for g in attr.graphs:
                yield from _graphs(g)


def _widen_tensor(t: onnx.TensorProto) -> bool:
    if t.data_type != F16:
        return False
    wide = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)
    t.CopyFrom(wide)
    return True


def _widen_types(graph: onnx.GraphProto, *, top: bool) -> None:
    infos = list(graph.value_info)
    if not top:  # a subgraph's own inputs and outputs are internal values
        infos += list(graph.input) + list(graph.output)
    for vi in infos:
        if vi.type.tensor_type.elem_type == F16:
            vi.type.tensor_type.elem_type = F32


def _has_float16(model: onnx.ModelProto) -> bool:
    for graph in _graphs(model.graph):
        if any(t.data_type == F16 for t in graph.initializer):
            return True
        for vi in [*graph.input, *graph.output, *graph.value_info]:
            if vi.type.tensor_type.elem_type == F16:
                return True
        for node in graph.node:
            for attr in node.attribute:
                if (attr.name in ("to", "dtype") and attr.i == F16) or \
                        (attr.HasField("t") and attr.t.data_type == F16):
                    return True
    return False


def compute_float16_in_float32(model: onnx.ModelProto) -> bool:
    """Rewrite ``model`` in place (see the module docstring); whether it had float16."""
    if not _has_float16(model):
        return False
    top = model.graph
    types = {vi.name: vi.type.tensor_type.elem_type
             for g in _graphs(top) for vi in [*g.input, *g.output, *g.value_info]}
    types.update({t.name: t.data_type for g in _graphs(top) for t in g.initializer})
    renamed: dict[str, str] = {}
    entry = []
    for vi in top.input:
        if vi.type.tensor_type.elem_type == F16:
            wide = f"{vi.name}__edgec_f32"
            renamed[vi.name] = wide
            entry.append(helper.make_node("Cast", [vi.name], [wide], to=F32,
                                          name=f"{vi.name}__edgec_up"))
    for graph in _graphs(top):
        for t in graph.initializer:
            _widen_tensor(t)
        nodes = []
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name in renamed:
                    node.input[i] = renamed[name]
            default = node.domain in DEFAULT_DOMAINS
            for attr in node.attribute:
                if attr.HasField("t"):
                    _widen_tensor(attr.t)
                if default and attr.name == "dtype" and attr.i == F16:
                    attr.i = F32
            rounding = default and (
                (node.op_type == "Cast" and any(a.name == "to" and a.i == F16
                                                for a in node.attribute))
                or (node.op_type == "CastLike" and types.get(node.input[1]) == F16))
            if rounding:  # keep the model's own rounding to float16, then go on in float32
                out = node.output[0]
                half = f"{out}__edgec_f16"
                nodes.append(helper.make_node("Cast", [node.input[0]], [half], to=F16,
                                              name=f"{node.name or out}__edgec_round"))
                nodes.append(helper.make_node("Cast", [half], [out], to=F32,
                                              name=node.name or f"{out}__edgec_up"))
                continue
            if default and node.op_type == "Cast" and types.get(node.input[0]) == F16:
                # a float16 value leaving for another type leaves rounded, as the model says
                half = f"{node.input[0]}__edgec_f16_{len(nodes)}"
                nodes.append(helper.make_node("Cast", [node.input[0]], [half], to=F16,
                                              name=f"{half}__edgec_round"))
                node.input[0] = half
            nodes.append(node)
        del graph.node[:]
        graph.node.extend(nodes)
        _widen_types(graph, top=graph is top)
    exits = []
    inputs = {vi.name for vi in top.input}
    for vi in top.output:
        if vi.type.tensor_type.elem_type != F16 or vi.name in inputs:
            continue  # (an input passed straight through stays as it is)
        wide = f"{vi.name}__edgec_f32"
        for t in top.initializer:  # an output folded into a constant
            if t.name == vi.name:
                t.name = wide
        for graph in _graphs(top):
            for node in graph.node:
                for i, name in enumerate(node.output):
                    if name == vi.name:
                        node.output[i] = wide
                for i, name in enumerate(node.input):
                    if name == vi.name:
                        node.input[i] = wide
        exits.append(helper.make_node("Cast", [wide], [vi.name], to=F16,
                                      name=f"{vi.name}__edgec_down"))
    nodes = [*entry, *top.node, *exits]
    del top.node[:]
    top.node.extend(nodes)
    return True

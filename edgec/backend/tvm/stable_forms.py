"""Softplus and Mish in forms that keep float32's precision, before TVM imports them.

TVM's converters compute softplus as ``max(x, 0) + log(1 + exp(-|x|))`` and
mish as ``x * tanh(log(1 + exp(x)))``: for x below about -5, ``1 + e`` rounds
away most of ``e`` and the result is off by up to 1e-3 relative (ONNX's node
tests for Mish failed there). ``log1p(e)`` is computed instead by its
series for small e and as ``log(1 + e)`` above (Goldberg's
``e * log(u) / (u - 1)`` does not survive TVM's simplifier, which folds
``(1 + e) - 1`` to ``e``); mish is built on that softplus.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .coverage import DEFAULT_DOMAINS

_FLOATS = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
           onnx.TensorProto.FLOAT16: np.float16}


def _elem_types(graph: onnx.GraphProto) -> dict[str, int]:
    infos = itertools.chain(graph.input, graph.value_info, graph.output)
    return {vi.name: vi.type.tensor_type.elem_type for vi in infos}


#: below this e = exp(-|x|), log1p(e) is its series to e^6 (truncation <= 5.4e-7
#: relative); above it log(1 + e) loses at most 6e-8 / e = 5e-7 relative
SERIES_BELOW = 0.125
#: log1p(e) = e * (1 - e/2 + e^2/3 - e^3/4 + e^4/5 - e^5/6 + ...), Horner from the inside
SERIES = (-1 / 6, 1 / 5, -1 / 4, 1 / 3, -1 / 2, 1)


def _softplus_nodes(x: str, out: str, tag: str, dtype) -> tuple[list, list]:
    """Nodes computing ``out = softplus(x)`` stably, and the constants they use."""
    def name(s):
        return f"{tag}_{s}"

    consts = [numpy_helper.from_array(np.array(v, dtype), name(f"c{i}"))
              for i, v in enumerate(SERIES)]
    consts += [numpy_helper.from_array(np.array(1, dtype), name("one")),
               numpy_helper.from_array(np.array(SERIES_BELOW, dtype), name("below"))]
    nodes = [
        helper.make_node("Abs", [x], [name("abs")]),
        helper.make_node("Neg", [name("abs")], [name("neg")]),
        helper.make_node("Exp", [name("neg")], [name("e")]),
    ]
    acc = name("c0")
    for i in range(1, len(SERIES)):
        nodes += [helper.make_node("Mul", [acc, name("e")], [name(f"m{i}")]),
                  helper.make_node("Add", [name(f"m{i}"), name(f"c{i}")], [name(f"h{i}")])]
        acc = name(f"h{i}")
    nodes += [
        helper.make_node("Mul", [acc, name("e")], [name("series")]),
        helper.make_node("Add", [name("one"), name("e")], [name("u")]),
        helper.make_node("Log", [name("u")], [name("logu")]),
        helper.make_node("Less", [name("e"), name("below")], [name("small")]),
        helper.make_node("Where", [name("small"), name("series"), name("logu")],
                         [name("log1p")]),
        helper.make_node("Relu", [x], [name("relu")]),
        helper.make_node("Add", [name("relu"), name("log1p")], [out]),
    ]
    return nodes, consts


def stable_softplus_mish(model: onnx.ModelProto) -> int:
    """Rewrite the top graph's float Softplus and Mish nodes in place; how many."""
    graph = model.graph
    types = _elem_types(graph)
    out, added, count = [], [], 0
    for i, node in enumerate(graph.node):
        dtype = _FLOATS.get(types.get(node.input[0] if node.input else "", 0))
        if (node.op_type not in ("Softplus", "Mish") or node.domain not in DEFAULT_DOMAINS
                or dtype is None):
            out.append(node)
            continue
        tag = f"edgec_stable_{i}"
        y = node.output[0]
        sp = y if node.op_type == "Softplus" else f"{tag}_softplus"
        nodes, consts = _softplus_nodes(node.input[0], sp, tag, dtype)
        if node.op_type == "Mish":
            nodes += [helper.make_node("Tanh", [sp], [f"{tag}_tanh"]),
                      helper.make_node("Mul", [node.input[0], f"{tag}_tanh"], [y])]
        out.extend(nodes)
        added.extend(consts)
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(out)
        graph.initializer.extend(added)
    return count

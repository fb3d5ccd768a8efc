"""ONNX -> Relax through TVM's importer, with the checks its own errors lack.

TVM's importer stops at the first op it has no converter for with an error
that names neither the node nor what to do; edgec checks every node first.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import onnx

from ...errors import CompileError, UnsupportedError, first_line
from .coverage import DEFAULT_DOMAINS, LOWERED_BY_EDGEC, LOWERED_CONTRIB_BY_EDGEC, tvm_onnx_ops


def _nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _nodes(attr.g)
            for g in attr.graphs:
                yield from _nodes(g)


def _label(node: onnx.NodeProto) -> str:
    """The node's name, or (unnamed) with what it produces, so a user can find it."""
    if node.name:
        return node.name
    outs = [o for o in node.output if o]
    return f"(unnamed, output '{outs[0]}')" if outs else "(unnamed)"


def _op_key(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}"


def _more(bad: list[onnx.NodeProto]) -> str:
    if len(bad) <= 1:
        return ""
    kinds = sorted({_op_key(n) for n in bad})
    return f" and {len(bad) - 1} more node(s) ({', '.join(kinds)})"


_QUANT_WORDS = ("Quant", "QLinear", "Integer", "QGemm", "QAttention", "QOrdered")


def _domain_refusal(node: onnx.NodeProto, more: str) -> str:
    """Why a node outside the default domains cannot be compiled, and what to do."""
    what = f"node '{_label(node)}' ({node.op_type}, domain {node.domain or 'ai.onnx'})"
    lowered = LOWERED_CONTRIB_BY_EDGEC.get((node.domain, node.op_type))
    if lowered is not None:
        return (f"{what} is an onnxruntime contrib op TVM cannot import{more}; edgec's "
                f"'{lowered}' pass lowers it: use a pipeline that includes it (every -O "
                "level does)")
    if node.domain == "com.microsoft":
        if any(w in node.op_type for w in _QUANT_WORDS):
            hint = ("re-export the model with onnxruntime.quantization.quantize_static(..., "
                    "quant_format=QuantFormat.QDQ), which writes only standard ops, and save "
                    "it without onnxruntime's extended graph optimisations")
        else:
            hint = ("save the model without onnxruntime's extended graph optimisations, which "
                    "write contrib ops (graph_optimization_level ORT_ENABLE_BASIC keeps "
                    "standard ops), or re-export it")
        return f"{what} is an onnxruntime contrib op edgec does not implement{more}; {hint}"
    return (f"{what} is in a domain edgec does not implement{more}; only standard ONNX "
            "(ai.onnx) ops compile: replace it in the exporter")


def check_importable(model: onnx.ModelProto, source: str | Path) -> None:
    """Raise UnsupportedError naming the first node (and the count) TVM cannot import.

    TVM's importer picks a converter by op type alone, so a node of another
    domain (onnxruntime's ``com.microsoft`` contrib ops, custom ops) would be
    converted as the standard op of that name, or fail with a message about
    TVM; every such node is refused here, before any of them is looked up.
    """
    nodes = list(_nodes(model.graph))
    foreign = [n for n in nodes if n.domain not in DEFAULT_DOMAINS]
    if foreign:
        raise UnsupportedError(f"{source}: {_domain_refusal(foreign[0], _more(foreign))}")
    known = tvm_onnx_ops()
    bad = [n for n in nodes if n.op_type not in known]
    if not bad:
        return
    node = bad[0]
    lowered = LOWERED_BY_EDGEC.get(node.op_type)
    if lowered == "lower-rnn":
        hint = (f"edgec's '{lowered}' pass lowers it when its shapes are static: bind them "
                "with --input-shape / --input-const")
    elif lowered is not None:
        hint = f"edgec's '{lowered}' pass lowers it: use a pipeline that includes it (every " \
               "-O level does)"
    else:
        hint = "replace it in the exporter or open an issue with the model"
    raise UnsupportedError(f"{source}: node '{_label(node)}' ({node.op_type}) "
                           f"cannot be imported by TVM{_more(bad)}; {hint}")


def import_onnx(model: onnx.ModelProto, source: str | Path):
    """Relax IRModule for a static-shape model, weights embedded as constants."""
    from tvm.relax.frontend.onnx import from_onnx

    check_importable(model, source)
    shapes = {}
    for vi in model.graph.input:
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    dtypes = {vi.name: onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name
              for vi in model.graph.input}
    chatter = io.StringIO()
    try:
        # TVM's importer prints and warns (e.g. "X in initializer but not in graph
        # input", true of every modern export); keep the user's terminal clean.
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            return from_onnx(model, shape_dict=shapes, dtype_dict=dtypes,
                             keep_params_in_input=False)
    except Exception as exc:  # TVM raises many types; the user needs one line
        where = re.search(r"Error converting operator (\w+)", chatter.getvalue())
        op = f" on a {where.group(1)} node" if where else ""
        raise CompileError(f"{source}: TVM's ONNX importer failed{op}: {first_line(exc)}; rerun "
                           "with --save-temps DIR and report the saved model") from exc

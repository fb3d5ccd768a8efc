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
from .coverage import LOWERED_BY_EDGEC, tvm_onnx_ops


def _nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _nodes(attr.g)
            for g in attr.graphs:
                yield from _nodes(g)


def check_importable(model: onnx.ModelProto, source: str | Path) -> None:
    """Raise UnsupportedError naming the first node (and the count) TVM cannot import."""
    known = tvm_onnx_ops()
    bad = [n for n in _nodes(model.graph) if n.op_type not in known]
    if not bad:
        return
    node = bad[0]
    kinds = sorted({n.op_type for n in bad})
    more = f" and {len(bad) - 1} more node(s) ({', '.join(kinds)})" if len(bad) > 1 else ""
    hint = (f"edgec's '{LOWERED_BY_EDGEC[node.op_type]}' pass lowers it when its shapes are "
            "static: bind them with --input-shape / --input-const"
            if node.op_type in LOWERED_BY_EDGEC else
            "replace it in the exporter or open an issue with the model")
    raise UnsupportedError(f"{source}: node '{node.name or '(unnamed)'}' ({node.op_type}) "
                           f"cannot be imported by TVM{more}; {hint}")


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

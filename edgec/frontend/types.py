"""Types edgec compiles, checked before the compile starts.

TVM 0.27 imported casts to float8, 4-bit, 2-bit and bfloat16 types and
built them, and the run then failed inside DLPack (numpy has no such
types; the kernels' arithmetic for them is not checked either): refused
here instead, naming the node or tensor. Graph inputs and outputs must be
tensors: an optional input raised a KeyError in the binding, and a
sequence output was accepted at compile time and refused only when run.
"""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir

from ..errors import UnsupportedError

#: element types edgec compiles and runs (numpy has them, and TVM computes them)
SUPPORTED = frozenset({
    ir.DataType.FLOAT, ir.DataType.DOUBLE, ir.DataType.FLOAT16, ir.DataType.BOOL,
    ir.DataType.INT8, ir.DataType.INT16, ir.DataType.INT32, ir.DataType.INT64,
    ir.DataType.UINT8, ir.DataType.UINT16, ir.DataType.UINT32, ir.DataType.UINT64,
})


def _name(dtype) -> str:
    return getattr(dtype, "name", str(dtype)).lower()


def _check(dtype, subject: str, path: Path) -> None:
    """Refuse ``dtype``: ``subject`` reads before its name ("graph input 'x' is")."""
    if dtype is not None and dtype != ir.DataType.UNDEFINED and dtype not in SUPPORTED:
        raise UnsupportedError(f"{path}: {subject} {_name(dtype)}, a type edgec does not "
                               "compile (it compiles float32/64/16, bool and 8- to 64-bit "
                               "integers); convert the model to one of those")


def _kind(value: ir.Value) -> str | None:
    """'sequence', 'optional' or 'map' for a value that is not a tensor, else None."""
    ty = value.type
    if ty is None or isinstance(ty, ir.TensorType):
        return None
    text = type(ty).__name__.lower()
    return next((k for k in ("sequence", "optional", "map") if k in text), "non-tensor")


def check_types(model: ir.Model, path: Path) -> None:
    """Refuse graph inputs and outputs that are not tensors, and any tensor, cast or
    constant of a type edgec cannot run (one line naming it)."""
    graph = model.graph
    for what, values in (("input", graph.inputs), ("output", graph.outputs)):
        for v in values:
            kind = _kind(v)
            if kind is not None:
                article = "an" if kind[0] in "aeiou" else "a"
                raise UnsupportedError(f"{path}: graph {what} '{v.name}' is {article} {kind}; "
                                       "edgec compiles tensor inputs and outputs only: "
                                       "re-export the model with tensors there")
            _check(v.dtype, f"graph {what} '{v.name}' is", path)
    for init in graph.initializers.values():
        _check(init.dtype, f"weight '{init.name}' is", path)
    for node in ir.traversal.RecursiveGraphIterator(graph):
        label = f"node '{node.name or '(unnamed)'}' ({node.op_type})"
        if node.op_type in ("Cast", "CastLike"):
            to = node.attributes.get("to")
            if to is not None:
                _check(ir.DataType(to.as_int()), f"{label} casts to", path)
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.TENSOR:
                _check(attr.as_tensor().dtype, f"{label} holds a constant of type", path)
        for out in node.outputs:
            if out is not None:
                _check(out.dtype, f"{label} output '{out.name}' is", path)

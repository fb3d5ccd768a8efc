"""Uses of valid ops that TVM 0.27 computes wrongly: refused at compile time, named.

Each rule below comes from a case of ONNX's node tests where edgec ran and
gave wrong values or failed at run time (benchmarks/conformance.md): a model
that needs one of these is refused with one line naming the node and why,
never compiled into an artifact that answers wrongly. The check runs on the
model after edgec's passes, when constants are folded and every tensor has
a type and shape.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx_ir as ir

from ..errors import UnsupportedError


def _const(value: ir.Value | None) -> np.ndarray | None:
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def _used(value: ir.Value | None) -> bool:
    """Whether an optional output is consumed or is a graph output."""
    return value is not None and value.name != "" and (bool(value.uses())
                                                       or value.is_graph_output())


def _batchnorm(node: ir.Node) -> str | None:
    if node.attributes.get_int("training_mode", 0):
        return "training mode (TVM computes the running statistics wrongly)"
    return None


def _dropout(node: ir.Node) -> str | None:
    training = node.inputs[2] if len(node.inputs) > 2 else None
    if training is not None:
        value = _const(training)
        if value is None or bool(value.reshape(-1)[0]):
            return "training mode (its output depends on a random mask)"
    if len(node.outputs) > 1 and _used(node.outputs[1]):
        return "its mask output (TVM returns it as float32, not bool)"
    return None


def _layernorm(node: ir.Node) -> str | None:
    if any(_used(v) for v in node.outputs[1:]):
        return "its Mean / InvStdDev outputs (TVM returns placeholders for them)"
    return None


def _roialign(node: ir.Node) -> str | None:
    if node.attributes.get_string("mode", "avg") == "max":
        return "mode 'max' (TVM's max differs from ONNX's)"
    return None


def _topk(node: ir.Node) -> str | None:
    if node.inputs[0].dtype in (ir.DataType.UINT64, ir.DataType.UINT32):
        return f"{node.inputs[0].dtype.name.lower()} input (TVM's sort fails on it)"
    return None


def _expand(node: ir.Node) -> str | None:
    # a constant shape TVM's importer broadcasts as ONNX says; one computed at run
    # time it takes as the output's shape (an input [3, 1] to [2, 1, 6] gave [2, 1, 6])
    x = node.inputs[0]
    if _const(node.inputs[1]) is not None or x.shape is None:
        return None
    if all(d == 1 for d in x.shape):
        return None  # broadcasting ones to any shape is that shape
    return ("a shape computed at run time on an input of shape "
            f"{[str(d) for d in x.shape]} (TVM's importer takes the target shape as "
            "the output's and does not broadcast them); bind it with --input-const")


def _resize(node: ir.Node) -> str | None:
    scales = _const(node.inputs[2]) if len(node.inputs) > 2 else None
    x, out = node.inputs[0], node.outputs[0]
    mode = node.attributes.get_string("coordinate_transformation_mode", "half_pixel")
    if mode == "align_corners" and out.shape is not None and x.shape is not None:
        for i, b in enumerate(out.shape):
            if i >= 2 and b == 1:  # the spatial axes TVM resizes
                return (f"align_corners to an output size of 1 on axis {i} (TVM divides "
                        "(in - 1) by (out - 1) = 0); use coordinate_transformation_mode "
                        "'asymmetric', which samples the same pixel there")
    if scales is None or scales.size == 0 or x.shape is None or out.shape is None:
        return None
    for i, (s, a, b) in enumerate(zip(scales.tolist(), x.shape, out.shape, strict=False)):
        if isinstance(a, int) and isinstance(b, int) and a and abs(b / a - s) > 1e-6:
            return (f"scale {s:g} on axis {i} that is not output/input size ({b}/{a}): TVM "
                    "samples at the size ratio, ONNX at the scale; give sizes instead")
    return None


def _pow(node: ir.Node) -> str | None:
    base = node.inputs[0].dtype
    if base is not None and not base.is_floating_point():
        return f"a base of type {base.name.lower()} (TVM's power takes floats only)"
    return None


def _maxpool(node: ir.Node) -> str | None:
    if len(node.outputs) > 1 and _used(node.outputs[1]):
        return "its Indices output (TVM's converter returns the values only)"
    return None


def _rmsnorm(node: ir.Node) -> str | None:
    x = node.inputs[0]
    axis = node.attributes.get_int("axis", -1)
    if x.shape is not None and axis % max(len(x.shape), 1) == 0:
        return "axis 0, every axis normalised (TVM's converter indexes the scale wrongly)"
    return None


def _constantofshape(node: ir.Node) -> str | None:
    shape = node.inputs[0] if node.inputs else None
    if shape is not None and shape.is_graph_input():
        return ("a shape given at run time (TVM's converter needs it while compiling); "
                "bind it with --input-const")
    return None


def _nms(node: ir.Node) -> str | None:
    return "NonMaxSuppression itself (TVM's converter selects no boxes)"


def _qlinear(node: ir.Node) -> str | None:
    for v in node.inputs:
        if v is not None and v.dtype == ir.DataType.FLOAT16:
            return "float16 scales (edgec's integer lowering takes float32 scales)"
    return None


#: op type -> why a node of it cannot be compiled right, or None; checked on the
#: model after edgec's passes (constants folded, shapes known)
RULES: dict[str, Callable[[ir.Node], str | None]] = {
    "BatchNormalization": _batchnorm, "Dropout": _dropout, "LayerNormalization": _layernorm,
    "RoiAlign": _roialign, "TopK": _topk, "Expand": _expand,
    "Resize": _resize, "NonMaxSuppression": _nms, "Pow": _pow, "MaxPool": _maxpool,
    "RMSNormalization": _rmsnorm, "ConstantOfShape": _constantofshape,
}
#: the same, checked on the model as loaded (edgec's passes rewrite these ops)
RULES_AS_LOADED: dict[str, Callable[[ir.Node], str | None]] = {
    "QLinearMatMul": _qlinear, "QLinearConv": _qlinear,
}


#: the biggest tensor edgec compiles: 4 GiB (a ConstantOfShape of 2^36 floats folded into
#: a 256-GiB constant and died of bad_alloc in TVM; edge models are far below it)
MAX_VALUE_BYTES = 1 << 32


def _too_big(value: ir.Value) -> int | None:
    """``value``'s size in bytes when its static shape makes it bigger than the limit."""
    if value is None or value.shape is None or value.dtype is None:
        return None
    dims = [d for d in value.shape if isinstance(d, int)]
    if len(dims) != len(value.shape):
        return None
    size = int(np.prod(dims, dtype=object)) * max(value.dtype.itemsize, 1)
    return size if size > MAX_VALUE_BYTES else None


def check_sizes(model: ir.Model, path: Path) -> None:
    """UnsupportedError for the first graph input or node output over MAX_VALUE_BYTES."""
    for value in model.graph.inputs:
        size = _too_big(value)
        if size is not None:
            raise UnsupportedError(f"{path}: graph input '{value.name}' is {size / 2**30:.0f} "
                                   f"GiB, over edgec's limit of {MAX_VALUE_BYTES >> 30} GiB "
                                   "per tensor; bind smaller dims with --input-shape")
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        for value in node.outputs:
            size = _too_big(value)
            if size is not None:
                raise UnsupportedError(
                    f"{path}: node '{node.name or '(unnamed)'}' ({node.op_type}) makes "
                    f"'{value.name}' of {size / 2**30:.0f} GiB, over edgec's limit of "
                    f"{MAX_VALUE_BYTES >> 30} GiB per tensor; change the model there")


def check_refusals(model: ir.Model, path: Path, *, as_loaded: bool = False) -> None:
    """UnsupportedError for the first node a rule refuses (RULES, or RULES_AS_LOADED
    for the model before edgec's passes), or a tensor over the size limit."""
    if not as_loaded:
        check_sizes(model, path)
    rules = RULES_AS_LOADED if as_loaded else RULES
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        rule = rules.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        why = rule(node) if rule is not None else None
        if why is not None:
            raise UnsupportedError(f"{path}: node '{node.name or '(unnamed)'}' "
                                   f"({node.op_type}) uses {why}; edgec would compute it "
                                   "wrongly or not at all, so it is refused: change the model "
                                   "there")

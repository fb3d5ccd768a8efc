"""Shape inference over the bound model.

Strict: once the user has bound the inputs, a shape that cannot propagate is
a contradiction between the binding and the model, and the user must hear it
(onnx-ir's own pass only logs a warning and carries on). The round trip to
onnx's C++ inference reuses onnx-ir's helpers, which leave big weights out.
"""

from __future__ import annotations

import functools
import math

import onnx
import onnx_ir as ir
from onnx_ir.passes.common._c_api_utils import call_onnx_api
from onnx_ir.passes.common.shape_inference import _merge_func

from ..errors import UsageError, first_line
from .registry import register

_infer = functools.partial(onnx.shape_inference.infer_shapes, check_type=True,
                           strict_mode=True, data_prop=True)


@register("shape-inference", "Infer every value's dtype and shape from the bound inputs")
class InferShapes(ir.passes.InPlacePass):
    def call(self, model: ir.Model) -> ir.passes.PassResult:
        try:
            inferred = call_onnx_api(_infer, model)
        except onnx.shape_inference.InferenceError as exc:
            raise UsageError(f"the bound input shapes do not fit the model ({first_line(exc)}); "
                             "check --input-shape") from None
        modified = _merge_func(model, inferred)
        for graph in model.graphs():
            for node in graph:
                if node.op_type == "Reshape" and node.domain == "":
                    _check_reshape(node)
        return ir.passes.PassResult(model, modified)


def _check_reshape(node: ir.Node) -> None:
    """ONNX inference does not check that a Reshape keeps the element count; TVM
    would fail later with a message about TVM. Say it is the binding."""
    data, shape = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None
    target = ir.convenience.get_const_tensor(shape) if shape is not None else None
    if data is None or data.shape is None or target is None or \
            not all(isinstance(d, int) for d in data.shape):
        return
    dims = [int(d) for d in target.numpy().reshape(-1)]
    allowzero = node.attributes.get_int("allowzero", 0)
    if not allowzero:
        dims = [data.shape[i] if d == 0 and i < len(data.shape) else d
                for i, d in enumerate(dims)]
    total = math.prod(data.shape)
    known = math.prod(d for d in dims if d != -1)
    ok = (total % known == 0 if known else total == 0) if -1 in dims else known == total
    if not ok:
        raise UsageError(f"node '{node.name}' (Reshape) cannot reshape "
                         f"{list(data.shape)} ({total} elements) to {dims}: the bound input "
                         "shapes do not fit the model; check --input-shape")

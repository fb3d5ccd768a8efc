"""Constant folding, including shape-only subgraphs and ``If`` on a constant.

onnxscript's folder does the evaluation (with onnx's reference evaluator and
per-node shape inference): once inputs are bound, ``Shape``-> ``Gather`` ->
``Concat`` -> ``Reshape`` chains become constants and an ``If`` whose
condition folds is replaced by the branch it takes. Size limits keep big
weights from being materialised unless asked (-O3).
"""

from __future__ import annotations

import logging
import math

import onnx_ir as ir
from onnxscript.optimizer import fold_constants_ir

from .registry import register


class _Fold(ir.passes.InPlacePass):
    input_limit = 8192  # elements: inputs bigger than this are not evaluated
    output_limit = 1 << 18  # elements: results bigger than this stay as ops

    def _should_fold(self, node: ir.Node) -> bool | None:
        # onnxscript never folds ConstantOfShape (to keep files small); small
        # ones are exactly what shape subgraphs and padding computations need.
        if node.op_type == "ConstantOfShape" and node.domain == "":
            shape = ir.convenience.get_const_tensor(node.inputs[0]) if node.inputs else None
            if shape is not None:
                return math.prod(int(d) for d in shape.numpy().reshape(-1)) <= self.output_limit
        return None

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        # the folder logs a node it could not evaluate as a warning on stderr ("Evaluation
        # failed: Unable to allocate 256. GiB"); the node just stays an op
        folder_log = logging.getLogger("onnxscript.optimizer._constant_folding")
        level = folder_log.level
        folder_log.setLevel(logging.ERROR)
        try:
            result = fold_constants_ir(model, onnx_shape_inference=True,
                                       input_size_limit=self.input_limit,
                                       output_size_limit=self.output_limit,
                                       should_fold=self._should_fold)
        finally:
            folder_log.setLevel(level)
        return ir.passes.PassResult(model, bool(result.modified))


@register("fold-constants", "Evaluate constant and shape-only subgraphs, fold If on constant "
                            "conditions (results up to 256 K elements)")
class FoldConstants(_Fold):
    pass


@register("fold-constants-all", "As fold-constants, up to 256 M elements: materialises "
                                "generated weights (bigger artifact, fewer ops at run time)")
class FoldAllConstants(_Fold):
    # bounded all the same: a ConstantOfShape of 2^36 elements was evaluated (256 GiB)
    input_limit = 1 << 28
    output_limit = 1 << 28

"""Structural clean-up passes, thin wrappers around onnx-ir's common passes.

They are registered under edgec names so pipelines, reports and --save-temps
speak one vocabulary, whichever library does the work underneath.
"""

from __future__ import annotations

import onnx_ir as ir
import onnx_ir.passes.common as common

from .registry import register


def _run(model: ir.Model, *passes: ir.passes.PassBase) -> ir.passes.PassResult:
    modified = False
    for p in passes:
        modified |= p(model).modified
    return ir.passes.PassResult(model, modified)


@register("canonicalize", "Treat initializers listed as inputs as constants, inline local "
                          "functions, lift Constant nodes into initializers")
class Canonicalize(ir.passes.InPlacePass):
    """Old exporters list every weight as a graph input (IR < 4); importers then see
    hundreds of 'inputs'. Weights are constants for inference, so drop them from inputs."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return _run(model,
                    common.RemoveInitializersFromInputsPass(),
                    common.InlinePass(),
                    common.LiftConstantsToInitializersPass(lift_all_constants=True,
                                                           size_limit=0),
                    common.LiftSubgraphInitializersToMainGraphPass())


@register("remove-dead", "Remove nodes, initializers, functions and opsets nothing uses")
class RemoveDead(ir.passes.InPlacePass):
    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return _run(model,
                    common.RemoveUnusedNodesPass(),
                    common.RemoveUnusedFunctionsPass(),
                    common.RemoveUnusedOpsetsPass())


class _IdentityElimination(common.IdentityEliminationPass):
    """onnx_ir's pass keeps ``y = Identity(x)`` when ``y`` is a graph output and ``x`` a
    graph input, but not when ``x`` is a graph output too: it renames ``x`` to ``y`` and
    the graph loses output ``x`` (its outputs read ``y, y``). Keep that node as well."""

    def _try_eliminate_identity_node(self, node: ir.Node) -> bool:
        if (node.op_type == "Identity" and node.domain == "" and len(node.inputs) == 1
                and node.inputs[0] is not None and node.outputs[0].is_graph_output()
                and node.inputs[0].is_graph_output()):
            return False
        return super()._try_eliminate_identity_node(node)


@register("eliminate-identity", "Drop Identity nodes, keeping graph output names")
class EliminateIdentity(ir.passes.InPlacePass):
    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return _run(model, _IdentityElimination())


@register("cse", "Merge identical nodes and duplicate initializers (common subexpressions)")
class CommonSubexpressions(ir.passes.InPlacePass):
    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return _run(model,
                    common.DeduplicateInitializersPass(),
                    common.CommonSubexpressionEliminationPass())

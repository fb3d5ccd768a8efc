"""Pattern rewrites (pattern + check + rewrite) from onnxscript's rule library.

Each rule matches a small subgraph, checks it may rewrite it (constant
weights, compatible attributes) and replaces it; a rejected match leaves the
graph alone. These are the ONNX-level fusions edgec applies before TVM.
"""

from __future__ import annotations

import onnx_ir as ir
from onnxscript import rewriter
from onnxscript.rewriter.rules import common as rules

from .registry import register


class _RuleSetPass(ir.passes.InPlacePass):
    rules: tuple = ()

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        count = rewriter.RewriteRuleSet(list(self.rules)).apply_to_model(model)
        return ir.passes.PassResult(model, count > 0)


@register("fuse-batchnorm", "Fold BatchNormalization into the preceding Conv, ConvTranspose "
                            "or Gemm weights")
class FuseBatchNorm(_RuleSetPass):
    rules = (rules.fuse_batchnorm_into_conv_rule, rules.fuse_batchnorm_into_conv_transpose_rule,
             rules.fuse_batchnorm_into_gemm_rule)


@register("fuse-pad", "Fold a constant Pad into the following Conv's pads")
class FusePad(_RuleSetPass):
    rules = (rules.normalize_pad_format_conv_rule, rules.fuse_pad_into_conv_rule)


@register("simplify", "Algebraic clean-ups: no-op Cast/Expand/Transpose, x*1, x+0, "
                      "Transpose-Transpose, Reshape-Reshape, Relu/Clip chains")
class Simplify(_RuleSetPass):
    rules = (rules.no_op_cast_rule, rules.no_op_expand_rule, rules.no_op_transpose_rule,
             rules.add_0_rule, rules.sub_0_rule, rules.mul_by_1_rule, rules.div_by_1_rule,
             rules.dropout_inference_rule, rules.dropout_zero_rule,
             rules.transpose_transpose_rule, rules.reshape_reshape_rule,
             rules.unsqueeze_unsqueeze_rule, rules.cast_cast_rule,
             rules.successive_relu_rule, rules.successive_clip_rule,
             rules.successive_clip_relu_rule, rules.successive_relu_clip_rule)

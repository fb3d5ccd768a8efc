"""Pattern rewrites (pattern + check + rewrite) from onnxscript's rule library.

Each rule matches a small subgraph, checks it may rewrite it (constant
weights, compatible attributes) and replaces it; a rejected match leaves the
graph alone. These are the ONNX-level fusions edgec applies before TVM.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript import rewriter
from onnxscript.rewriter import pattern
from onnxscript.rewriter.rules import common as rules

from .registry import register


class _RuleSetPass(ir.passes.InPlacePass):
    rules: tuple = ()
    late_rules: tuple = ()  # applied after ``rules`` (they would pre-empt bigger patterns)

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        count = 0
        for rule_set in (self.rules, self.late_rules):
            if not rule_set:
                continue
            before = _producers(model.graph)
            done = rewriter.RewriteRuleSet(list(rule_set)).apply_to_model(model)
            if done:
                _keep_names(model.graph, before)
            count += done
        return ir.passes.PassResult(model, count > 0)


def _producers(graph: ir.Graph) -> dict[str, tuple[str, str, list[str]]]:
    """value name -> (node name, op type, input value names) of the node making it."""
    return {out.name: (n.name, n.op_type, [v.name for v in n.inputs if v is not None])
            for n in graph for out in n.outputs if out.name}


def _keep_names(graph: ir.Graph, before: dict[str, tuple[str, str, list[str]]]) -> None:
    """Give a node a rewrite made the name of the node of its kind it replaced.

    The rewriter names new nodes 'node_Conv_1'; after folding /bn1 into
    /conv1/Conv the Conv should still be '/conv1/Conv', so that --save-temps,
    error messages and 'edgec profile' speak the model's own names. Found by
    walking back from the old producer of the new node's output through nodes
    that are gone, to one of the same op type.
    """
    old = {b[0] for b in before.values()}
    alive = {n.name for n in graph}
    taken = set(alive)
    for node in graph:
        if node.name in old or not node.outputs:
            continue
        todo, seen = [node.outputs[0].name], set()
        while todo:
            producer = before.get(todo.pop())
            if producer is None or producer[0] in seen or producer[0] in alive:
                continue
            seen.add(producer[0])
            if (producer[1] == node.op_type or producer[1] in _SAME_ROLE.get(node.op_type, ())) \
                    and producer[0] not in taken:
                node.name = producer[0]
                taken.add(producer[0])
                break
            todo.extend(producer[2])


#: a rewrite may replace a node by one of another type doing the same job
_SAME_ROLE = {"Add": ("Sum", "Clip"), "Mul": ("Clip",)}


def _sum2(op, a, b):
    return op.Sum(a, b)


def _sum3(op, a, b, c):
    return op.Sum(a, b, c)


def _add2(op, a, b):
    return op.Add(a, b)


def _add3(op, a, b, c):
    return op.Add(op.Add(a, b), c)


# Sum of two or three inputs is Add (same broadcasting): TVM imports Sum as
# broadcast + stack + reduce, which neither fuses into a conv's residual add
# nor runs fast.
sum_as_add_rules = (pattern.RewriteRule(_sum2, _add2), pattern.RewriteRule(_sum3, _add3))


def _hardswish_mul_first(op, x, bias, lo, hi, divisor):
    return op.Div(op.Mul(x, op.Clip(op.Add(x, bias), lo, hi)), divisor)


def _hardswish_div_first(op, x, bias, lo, hi, divisor):
    return op.Mul(x, op.Div(op.Clip(op.Add(x, bias), lo, hi), divisor))


def _is_hardswish(context, x, bias, lo, hi, divisor, **_) -> bool:
    def near(v, want):
        c = v.const_value if v is not None else None
        return c is not None and c.numpy().size == 1 and \
            abs(float(c.numpy().reshape(())) - want) < 1e-4

    return near(bias, 3.0) and near(lo, 0.0) and near(hi, 6.0) and near(divisor, 6.0)


def _as_hardsigmoid(op, x, **_):
    return op.Mul(x, op.HardSigmoid(x, alpha=1.0 / 6.0, beta=0.5))


# x * clip(x + 3, 0, 6) / 6 (HardSwish as exported by Paddle and opset < 14
# exporters) becomes x * HardSigmoid(x), valid from opset 6: TVM imports that
# as one clip that edgec's kernels fuse, where its Clip with tensor bounds
# became maximum/minimum of runtime scalars that nothing fused.
hardswish_rules = tuple(
    rule for p in (_hardswish_mul_first, _hardswish_div_first)
    for rule in pattern.RewriteRule(p, _as_hardsigmoid, _is_hardswish).commute())


def _clip(op, x, lo, hi):
    return op.Clip(x, lo, hi)


def _clip_bounds(lo, hi) -> tuple[float, float] | None:
    def scalar(v):
        c = v.const_value if v is not None else None
        return float(c.numpy().reshape(())) if c is not None and c.numpy().size == 1 else None

    bounds = scalar(lo), scalar(hi)
    if None in bounds or not all(abs(b) < 1e30 for b in bounds) or bounds[1] <= bounds[0]:
        return None
    return bounds


def _is_bounded_clip(context, x, lo, hi, **_) -> bool:
    return _clip_bounds(lo, hi) is not None


def _clip_as_hardsigmoid(op, x, lo, hi, **_):
    low, high = _clip_bounds(lo, hi)
    gate = op.HardSigmoid(x, alpha=1.0 / (high - low), beta=-low / (high - low))
    def const(v):
        return op.Constant(value=ir.tensor(np.array(v, np.float32)))

    scaled = op.Mul(gate, const(high - low))
    return scaled if low == 0 else op.Add(scaled, const(low))


# Clip with constant bounds (ReLU6 and friends) as lo + (hi - lo) * HardSigmoid(x):
# TVM imports an opset >= 11 Clip as maximum/minimum against runtime scalars, which
# nothing fuses, but HardSigmoid as scale, shift and clip(0, 1), which edgec's
# kernels take whole (the scale and shift fold into the weights).
clip_rules = (pattern.RewriteRule(_clip, _clip_as_hardsigmoid, _is_bounded_clip),)


@register("fuse-batchnorm", "Fold BatchNormalization into the preceding Conv, ConvTranspose "
                            "or Gemm weights")
class FuseBatchNorm(_RuleSetPass):
    rules = (rules.fuse_batchnorm_into_conv_rule, rules.fuse_batchnorm_into_conv_transpose_rule,
             rules.fuse_batchnorm_into_gemm_rule)


@register("fuse-pad", "Fold a constant Pad into the following Conv's pads")
class FusePad(_RuleSetPass):
    rules = (rules.normalize_pad_format_conv_rule, rules.fuse_pad_into_conv_rule)


@register("simplify", "Algebraic clean-ups: no-op Cast/Expand/Transpose, x*1, x+0, "
                      "Transpose-Transpose, Reshape-Reshape, Relu/Clip chains, Sum of 2-3 "
                      "inputs as Add, decomposed HardSwish as x*HardSigmoid(x), bounded Clip "
                      "as scaled HardSigmoid")
class Simplify(_RuleSetPass):
    rules = (rules.no_op_cast_rule, rules.no_op_expand_rule, rules.no_op_transpose_rule,
             rules.add_0_rule, rules.sub_0_rule, rules.mul_by_1_rule, rules.div_by_1_rule,
             rules.dropout_inference_rule, rules.dropout_zero_rule,
             rules.transpose_transpose_rule, rules.reshape_reshape_rule,
             rules.unsqueeze_unsqueeze_rule, rules.cast_cast_rule,
             rules.successive_relu_rule, rules.successive_clip_rule,
             rules.successive_clip_relu_rule, rules.successive_relu_clip_rule,
             *sum_as_add_rules, *hardswish_rules)
    late_rules = clip_rules  # after HardSwish, whose pattern contains a Clip


@register("relu-through-concat", "Relu(Concat(a, b, ...)) as Concat(Relu(a), Relu(b), ...), "
                                 "so each Relu fuses into its producer's write-back")
class ReluThroughConcat(ir.passes.InPlacePass):
    """ShuffleNet's downsampling units end in Relu(Concat(conv branch, pool)).
    After TVM's import that Relu is one more pass over the joined map, with
    the concat in it (measured on Zen 4: 30-87 us per unit); moved onto the
    parts, it rides in the conv kernel's write-back and TVM's pool, and the
    concat is a plain copy. Only parts read by the Concat alone move (else
    the Relu would be a new tensor beside the old one)."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph, count = model.graph, 0
        for relu in list(graph):
            if relu.op_type != "Relu" or relu.domain not in ("", "ai.onnx"):
                continue
            concat = relu.inputs[0].producer()
            if concat is None or concat.op_type != "Concat" or \
                    concat.domain not in ("", "ai.onnx") or \
                    len(concat.outputs[0].uses()) != 1 or concat.outputs[0].is_graph_output():
                continue
            parts = list(concat.inputs)
            if any(p is None or len(p.uses()) != 1 or p.is_graph_input() or
                   p.is_graph_output() or p.const_value is not None for p in parts):
                continue
            for i, part in enumerate(parts):
                moved = ir.Node("", "Relu", [part], name=f"{relu.name}/{i}")
                graph.insert_before(concat, moved)
                moved.outputs[0].shape, moved.outputs[0].type = part.shape, part.type
                concat.replace_input_with(i, moved.outputs[0])
            # The joined map takes the Relu's output name (it may be a graph output).
            out, name = relu.outputs[0], relu.outputs[0].name
            out.replace_all_uses_with(concat.outputs[0], replace_graph_outputs=True)
            graph.remove(relu, safe=True)
            concat.outputs[0].name = name
            count += 1
        return ir.passes.PassResult(model, count > 0)

"""lower-rnn: unrolled LSTM/GRU/RNN must compute what onnxruntime computes for the original op.

Every case builds a one-node model with onnx.helper (random float32 weights
from a fixed seed), lowers it the way the pipeline does (shape inference first,
so X carries a static shape) and compares every output with onnxruntime on the
original model. onnxruntime's CPU kernels refuse layout=1, so for layout 1 the
reference is the same op in layout 0 wrapped in Transposes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from edgec.errors import UnsupportedError
from edgec.passes.lower_rnn import LowerRecurrentOps

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
RECURRENT = set(GATES)


@dataclass(frozen=True)
class Case:
    op: str
    direction: str = "forward"
    layout: int = 0
    seq: int = 7
    batch: int = 3
    input_size: int = 5
    hidden: int = 6
    bias: bool = True
    initial: bool = True
    peephole: bool = False
    seq_lens: bool = False
    clip: float | None = None
    activations: tuple[str, ...] | None = None
    alpha: tuple[float, ...] | None = None
    beta: tuple[float, ...] | None = None
    input_forget: int = 0
    linear_before_reset: int = 0
    outputs: tuple[bool, bool, bool] = (True, True, True)
    opset: int = 17
    scale: float = 0.5
    seed: int = 0

    @property
    def dirs(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def n_outputs(self) -> int:
        return 3 if self.op == "LSTM" else 2


def _vi(name, dims, dtype=T.FLOAT):
    return h.make_tensor_value_info(name, dtype, dims)


def build(case: Case, *, node_layout: int | None = None,
          x_dims: list | None = None) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One recurrent node; graph I/O always in case.layout, the node itself in node_layout."""
    node_layout = case.layout if node_layout is None else node_layout
    rng = np.random.default_rng(case.seed)
    d, g, hs, i = case.dirs, GATES[case.op], case.hidden, case.input_size
    s, b = case.seq, case.batch

    def rand(*shape, scale=case.scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits = [numpy_helper.from_array(rand(d, g * hs, i), "W"),
             numpy_helper.from_array(rand(d, g * hs, hs), "R")]
    names = ["X", "W", "R", "", "", "", "", ""]
    if case.bias:
        inits.append(numpy_helper.from_array(rand(d, 2 * g * hs), "B"))
        names[3] = "B"
    if case.seq_lens:
        inits.append(numpy_helper.from_array(np.full(b, s, dtype=np.int32), "seq_lens"))
        names[4] = "seq_lens"
    if case.peephole:
        inits.append(numpy_helper.from_array(rand(d, 3 * hs), "P"))
        names[7] = "P"

    state_dims = [d, b, hs] if case.layout == 0 else [b, d, hs]
    x_dims = x_dims or ([s, b, i] if case.layout == 0 else [b, s, i])
    graph_inputs = [_vi("X", x_dims)]
    feeds = {"X": rand(*[x if isinstance(x, int) else s for x in x_dims], scale=1.0)}
    states = ["initial_h", "initial_c"] if case.op == "LSTM" else ["initial_h"]
    if case.initial:
        for k, name in enumerate(states):
            graph_inputs.append(_vi(name, state_dims))
            feeds[name] = rand(*state_dims, scale=1.0)
            names[5 + k] = name

    nodes = []
    transpose = case.layout == 1 and node_layout == 0
    if transpose:  # layout-1 I/O around a layout-0 node (onnxruntime's kernels need layout 0)
        nodes.append(h.make_node("Transpose", ["X"], ["X_t"], perm=[1, 0, 2]))
        names[0] = "X_t"
        for k in (5, 6):
            if names[k]:
                nodes.append(h.make_node("Transpose", [names[k]], [names[k] + "_t"],
                                         perm=[1, 0, 2]))
                names[k] += "_t"
    while names[-1] == "":
        names.pop()

    out_names = ["Y", "Y_h", "Y_c"][: case.n_outputs]
    node_outputs = [(n + "_raw" if transpose else n) if want else ""
                    for n, want in zip(out_names, case.outputs, strict=False)]
    while node_outputs[-1] == "":
        node_outputs.pop()
    attrs = {"hidden_size": hs, "direction": case.direction}
    if node_layout:
        attrs["layout"] = node_layout
    for key in ("clip", "activations", "input_forget", "linear_before_reset"):
        value = getattr(case, key)
        if value:
            attrs[key] = list(value) if isinstance(value, tuple) else value
    if case.alpha is not None:
        attrs["activation_alpha"] = list(case.alpha)
    if case.beta is not None:
        attrs["activation_beta"] = list(case.beta)
    nodes.append(h.make_node(case.op, names, node_outputs, name=f"/enc/{case.op.lower()}",
                             **attrs))
    graph_outputs = []
    for k, (name, want) in enumerate(zip(out_names, case.outputs, strict=False)):
        if not want:
            continue
        if transpose:
            perm = [2, 0, 1, 3] if k == 0 else [1, 0, 2]
            nodes.append(h.make_node("Transpose", [name + "_raw"], [name], perm=perm))
        graph_outputs.append(_vi(name, None))
    graph = h.make_graph(nodes, "rnn", graph_inputs, graph_outputs, inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", case.opset)], ir_version=8)
    return model, feeds


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds), strict=True))


def all_op_types(graph: onnx.GraphProto) -> set[str]:
    ops = set()
    for node in graph.node:
        ops.add(node.op_type)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                ops |= all_op_types(attr.g)
    return ops


def lower(model: onnx.ModelProto) -> onnx.ModelProto:
    """What the pipeline does: shape inference, then the pass; check the result is valid ONNX."""
    ir_model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(model))
    result = LowerRecurrentOps()(ir_model)
    assert result.modified
    lowered = ir.serde.serialize_model(result.model)
    assert not all_op_types(lowered.graph) & RECURRENT
    onnx.checker.check_model(lowered, full_check=True)
    return lowered


def check(case: Case) -> onnx.ModelProto:
    model, feeds = build(case)
    ref_model = build(case, node_layout=0)[0] if case.layout == 1 else model
    reference = run_ort(ref_model, feeds)
    lowered = lower(model)
    got = run_ort(lowered, feeds)
    assert set(got) == set(reference)
    for name, ref in reference.items():
        assert got[name].shape == ref.shape, name
        np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)
    return lowered


# --------------------------------------------------------------------------- the matrix

CORE = [pytest.param(Case(op, direction=direction, layout=layout),
                     id=f"{op}-{direction}-layout{layout}")
        for op in ("LSTM", "GRU", "RNN")
        for direction in ("forward", "reverse", "bidirectional")
        for layout in (0, 1)]


@pytest.mark.parametrize("case", CORE)
def test_direction_and_layout(case):
    check(case)


VARIANTS = {
    # optional inputs absent: no B, no initial states (first step skips the recurrence)
    "LSTM-bare": Case("LSTM", bias=False, initial=False),
    "LSTM-bare-bidirectional-layout1": Case("LSTM", "bidirectional", 1, bias=False,
                                            initial=False),
    "GRU-bare": Case("GRU", bias=False, initial=False),
    "GRU-bare-reverse": Case("GRU", "reverse", bias=False, initial=False),
    "RNN-bare-bidirectional": Case("RNN", "bidirectional", bias=False, initial=False),
    "LSTM-no-initial": Case("LSTM", "bidirectional", initial=False),
    "GRU-no-bias": Case("GRU", "bidirectional", 1, bias=False),
    # sizes: seq 1, batch 1, odd hidden sizes
    "LSTM-seq1": Case("LSTM", seq=1),
    "LSTM-seq1-bidirectional-layout1": Case("LSTM", "bidirectional", 1, seq=1),
    "GRU-seq1-batch1": Case("GRU", seq=1, batch=1, initial=False),
    "RNN-seq1-batch1-layout1": Case("RNN", "reverse", 1, seq=1, batch=1),
    "LSTM-batch1": Case("LSTM", "reverse", batch=1, hidden=11),
    "GRU-batch1-layout1": Case("GRU", "bidirectional", 1, batch=1, hidden=13),
    "RNN-batch1": Case("RNN", batch=1, hidden=3),
    "LSTM-hidden1": Case("LSTM", hidden=1, input_size=1),
    # peepholes
    "LSTM-peephole": Case("LSTM", peephole=True),
    "LSTM-peephole-bidirectional-layout1": Case("LSTM", "bidirectional", 1, peephole=True),
    "LSTM-peephole-no-initial-reverse": Case("LSTM", "reverse", peephole=True, initial=False),
    # sequence_lens given, every entry full
    "LSTM-seqlens": Case("LSTM", "bidirectional", seq_lens=True),
    "GRU-seqlens": Case("GRU", seq_lens=True),
    "RNN-seqlens-layout1": Case("RNN", layout=1, seq_lens=True),
    # clip (weights scaled up so pre-activations do exceed it)
    "LSTM-clip": Case("LSTM", "bidirectional", clip=0.7, scale=1.0),
    "LSTM-clip-peephole": Case("LSTM", clip=0.5, peephole=True, scale=1.0),
    "GRU-clip": Case("GRU", clip=0.6, scale=1.0),
    "GRU-clip-lbr": Case("GRU", "reverse", clip=0.6, scale=1.0, linear_before_reset=1),
    "RNN-clip": Case("RNN", "bidirectional", clip=0.4, scale=1.0),
    # input_forget
    "LSTM-input-forget": Case("LSTM", input_forget=1),
    "LSTM-input-forget-peephole-bidirectional": Case("LSTM", "bidirectional", input_forget=1,
                                                     peephole=True),
    # linear_before_reset
    "GRU-lbr": Case("GRU", linear_before_reset=1),
    "GRU-lbr-bidirectional-layout1": Case("GRU", "bidirectional", 1, linear_before_reset=1),
    "GRU-lbr-bare": Case("GRU", bias=False, initial=False, linear_before_reset=1),
    "GRU-lbr-no-initial": Case("GRU", "reverse", initial=False, linear_before_reset=1),
    # activations with alpha/beta (consumed in order by the functions that take them)
    "LSTM-act-hardsigmoid-leaky-softsign": Case(
        "LSTM", activations=("HardSigmoid", "LeakyRelu", "Softsign"),
        alpha=(0.3, 0.05), beta=(0.4,)),
    "LSTM-act-defaults-alpha": Case("LSTM", activations=("HardSigmoid", "Elu", "Tanh")),
    "LSTM-act-bidirectional-six": Case(
        "LSTM", "bidirectional", activations=("Sigmoid", "Affine", "Softplus",
                                              "HardSigmoid", "ScaledTanh", "Elu"),
        alpha=(0.8, 0.25, 1.3, 0.7), beta=(0.1, 0.45, 0.9)),
    "LSTM-act-bidirectional-layout1": Case(
        "LSTM", "bidirectional", 1, activations=("Sigmoid", "Relu", "Softsign",
                                                 "Sigmoid", "Tanh", "Relu")),
    "GRU-act-relu-thresholded": Case("GRU", activations=("Sigmoid", "ThresholdedRelu"),
                                     alpha=(0.1,)),
    "GRU-act-scaledtanh": Case("GRU", "bidirectional", activations=(
        "HardSigmoid", "ScaledTanh", "Sigmoid", "Softsign"),
        alpha=(0.25, 1.5), beta=(0.55, 0.8)),
    "GRU-act-lbr-elu": Case("GRU", activations=("Sigmoid", "Elu"), alpha=(0.6,),
                            linear_before_reset=1),
    "RNN-act-relu": Case("RNN", activations=("Relu",)),
    "RNN-act-leakyrelu-affine": Case("RNN", "bidirectional", activations=("LeakyRelu", "Affine"),
                                     alpha=(0.2, 0.9), beta=(0.0, 0.3)),
    "RNN-act-scaledtanh": Case("RNN", activations=("ScaledTanh",), alpha=(1.4,), beta=(0.6,)),
    "RNN-act-sigmoid-softplus": Case("RNN", "bidirectional", 1,
                                     activations=("Sigmoid", "Softplus")),
    "RNN-act-hardsigmoid": Case("RNN", activations=("HardSigmoid",), alpha=(0.3,), beta=(0.6,)),
    # unused optional outputs (empty names) and partial outputs
    "LSTM-only-Y": Case("LSTM", outputs=(True, False, False)),
    "LSTM-only-Y_h": Case("LSTM", "bidirectional", outputs=(False, True, False)),
    "LSTM-only-Y_c-layout1": Case("LSTM", layout=1, outputs=(False, False, True)),
    "GRU-only-Y_h": Case("GRU", "reverse", outputs=(False, True, False)),
    "RNN-only-Y-layout1": Case("RNN", "bidirectional", 1, outputs=(True, False, False)),
    # Clip in attribute form before opset 11; opset 10 has no layout attribute
    "LSTM-opset10-clip": Case("LSTM", "bidirectional", clip=0.5, scale=1.0, opset=10),
    "GRU-opset10": Case("GRU", opset=10, linear_before_reset=1),
    "RNN-opset13-clip": Case("RNN", clip=0.5, scale=1.0, opset=13),
}


@pytest.mark.parametrize("case", [pytest.param(c, id=k) for k, c in VARIANTS.items()])
def test_variant(case):
    check(case)


def test_output_names_and_shapes_kept():
    """Graph outputs keep their names and get static shapes in the right layout."""
    lowered = check(Case("LSTM", "bidirectional", 1, seq=4, batch=2, hidden=3))
    shapes = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim]
              for o in lowered.graph.output}
    assert shapes == {"Y": [2, 4, 2, 3], "Y_h": [2, 2, 3], "Y_c": [2, 2, 3]}
    names = [n.name for n in lowered.graph.node]
    assert len(names) == len(set(names))
    assert "/enc/lstm/bw/t2/gates" in names
    # one input projection for all timesteps and both directions, one MatMul per step after
    matmuls = [n for n in lowered.graph.node if n.op_type == "MatMul"]
    assert len(matmuls) == 1 + 4 * 2


def test_no_recurrent_nodes_means_unmodified():
    model = h.make_model(h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g",
                                      [_vi("x", [2])], [_vi("y", [2])]),
                         opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    assert not LowerRecurrentOps()(ir.serde.deserialize_model(model)).modified


def test_stacked_layers_rewire_consumers():
    """Layer 2 consumes layer 1's Y through a Reshape; both lower and stay wired."""
    rng = np.random.default_rng(1)
    s, b, i, hs = 5, 2, 4, 6

    def init(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(np.float32),
                                       name)

    nodes = [h.make_node("LSTM", ["X", "W1", "R1", "B1"], ["Y1", "Y1_h"], name="l1",
                         hidden_size=hs),
             h.make_node("Reshape", ["Y1", "shape"], ["X2"]),
             h.make_node("GRU", ["X2", "W2", "R2"], ["Y2", "Y2_h"], name="l2", hidden_size=hs,
                         direction="bidirectional"),
             h.make_node("Add", ["Y1_h", "Y1_h"], ["Y1_h2"])]
    inits = [init("W1", 1, 4 * hs, i), init("R1", 1, 4 * hs, hs), init("B1", 1, 8 * hs),
             init("W2", 2, 3 * hs, hs), init("R2", 2, 3 * hs, hs),
             numpy_helper.from_array(np.array([s, b, hs], dtype=np.int64), "shape")]
    graph = h.make_graph(nodes, "stack", [_vi("X", [s, b, i])],
                         [_vi("Y2", None), _vi("Y2_h", None), _vi("Y1_h2", None)], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    feeds = {"X": rng.standard_normal((s, b, i)).astype(np.float32)}
    reference = run_ort(model, feeds)
    got = run_ort(lower(model), feeds)
    for name, ref in reference.items():
        np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)


def test_refusal_leaves_model_untouched():
    """Every node is checked before any is rewritten: one bad node changes nothing."""
    model, _ = build(Case("LSTM"))
    bad = onnx.helper.make_node("GRU", ["X", "W_dyn", "R2"], ["Y2"], name="bad", hidden_size=2)
    model.graph.node.append(bad)
    model.graph.input.append(_vi("W_dyn", [1, 6, 5]))
    model.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 6, 2), np.float32), "R2"))
    model.graph.output.append(_vi("Y2", None))
    ir_model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(model))
    with pytest.raises(UnsupportedError, match="'bad'"):
        LowerRecurrentOps()(ir_model)
    assert [n.op_type for n in ir_model.graph] == ["LSTM", "GRU"]


def test_unnamed_node_gets_names_from_its_output():
    model, feeds = build(Case("RNN", seq=2))
    model.graph.node[0].name = ""
    lowered = lower(model)
    assert any(n.name.startswith("Y/t1/") for n in lowered.graph.node)
    np.testing.assert_allclose(run_ort(lowered, feeds)["Y"], run_ort(model, feeds)["Y"],
                               rtol=1e-5, atol=1e-5)


def _if_model(op: str) -> onnx.ModelProto:
    """An If whose then-branch holds the recurrent node; cond is a graph input, W a Constant
    inside the branch (as exporters write it), R and B outer-scope initializers."""
    rng = np.random.default_rng(2)
    s, b, i, hs, g = 6, 2, 3, 5, GATES[op]
    w = (rng.standard_normal((1, g * hs, i)) * 0.5).astype(np.float32)
    r = (rng.standard_normal((1, g * hs, hs)) * 0.5).astype(np.float32)
    bias = (rng.standard_normal((1, 2 * g * hs)) * 0.5).astype(np.float32)
    then_nodes = [h.make_node("Constant", [], ["W_in_branch"],
                              value=numpy_helper.from_array(w, "w")),
                  h.make_node(op, ["X", "W_in_branch", "R", "B", "", "h0"], ["Yb", "Yb_h"],
                              name=f"/dec/rnn/{op}", hidden_size=hs),
                  h.make_node("Relu", ["Yb_h"], ["then_h"])]
    then_graph = h.make_graph(then_nodes, "then", [], [_vi("Yb", None), _vi("then_h", None)])
    else_graph = h.make_graph(
        [h.make_node("Constant", [], ["else_y"], value=numpy_helper.from_array(
            np.ones((s, 1, b, hs), np.float32), "ones")),
         h.make_node("Neg", ["h0"], ["else_h"])],
        "else", [], [_vi("else_y", None), _vi("else_h", None)])
    graph = h.make_graph(
        [h.make_node("If", ["cond"], ["out_y", "out_h"], then_branch=then_graph,
                     else_branch=else_graph)],
        "if_rnn", [_vi("cond", [], T.BOOL), _vi("X", [s, b, i]), _vi("h0", [1, b, hs])],
        [_vi("out_y", None), _vi("out_h", None)],
        [numpy_helper.from_array(r, "R"), numpy_helper.from_array(bias, "B")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_inside_if_branch(op):
    model = _if_model(op)
    lowered = lower(model)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 2, 3)).astype(np.float32)
    h0 = rng.standard_normal((1, 2, 5)).astype(np.float32)
    for cond in (True, False):
        feeds = {"cond": np.array(cond), "X": x, "h0": h0}
        reference, got = run_ort(model, feeds), run_ort(lowered, feeds)
        for name, ref in reference.items():
            np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)


def test_weights_computed_from_initializers():
    """W = Unsqueeze(Concat(Slice(w), Slice(w))) as the silero VAD export writes it."""
    case = Case("LSTM", seq=4, batch=2, hidden=3, input_size=2, initial=False, bias=False)
    model, feeds = build(case)
    w = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "W"))
    model.graph.initializer.remove(next(t for t in model.graph.initializer if t.name == "W"))
    model.graph.initializer.extend([
        numpy_helper.from_array(w[0], "w2d"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([6], np.int64), "six"),
        numpy_helper.from_array(np.array([12], np.int64), "twelve")])
    model.graph.node.insert(0, h.make_node("Unsqueeze", ["w_cat", "zero"], ["W"]))
    model.graph.node.insert(0, h.make_node("Concat", ["w_lo", "w_hi"], ["w_cat"], axis=0))
    model.graph.node.insert(0, h.make_node("Slice", ["w2d", "six", "twelve", "zero"], ["w_hi"]))
    model.graph.node.insert(0, h.make_node("Slice", ["w2d", "zero", "six", "zero"], ["w_lo"]))
    lowered = lower(model)
    assert "Unsqueeze" not in all_op_types(lowered.graph)  # the dead weight chain is gone
    reference, got = run_ort(model, feeds), run_ort(lowered, feeds)
    for name, ref in reference.items():
        np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)


# --------------------------------------------------------------------------- refusals


def _lower_expecting(model: onnx.ModelProto, *fragments: str) -> None:
    ir_model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(model))
    with pytest.raises(UnsupportedError) as err:
        LowerRecurrentOps()(ir_model)
    for fragment in fragments:
        assert fragment in str(err.value)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_dynamic_seq_length_is_refused(op):
    model, _ = build(Case(op), x_dims=["seq", 3, 5])
    _lower_expecting(model, f"'/enc/{op.lower()}'", "not static", "--input-shape")


def test_dynamic_batch_is_refused():
    model, _ = build(Case("GRU", initial=False), x_dims=[7, "batch", 5])
    _lower_expecting(model, "'/enc/gru'", "not static")


def test_short_sequence_lens_is_refused():
    model, _ = build(Case("LSTM", seq_lens=True))
    lens = next(t for t in model.graph.initializer if t.name == "seq_lens")
    lens.CopyFrom(numpy_helper.from_array(np.array([7, 5, 7], np.int32), "seq_lens"))
    _lower_expecting(model, "'/enc/lstm'", "sequence_lens")


def test_non_constant_sequence_lens_is_refused():
    model, _ = build(Case("RNN", seq_lens=True))
    model.graph.initializer.remove(next(t for t in model.graph.initializer
                                        if t.name == "seq_lens"))
    model.graph.input.append(_vi("seq_lens", [3], T.INT32))
    _lower_expecting(model, "'/enc/rnn'", "sequence_lens")


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_non_constant_weight_is_refused(op):
    model, _ = build(Case(op))
    w = next(t for t in model.graph.initializer if t.name == "W")
    model.graph.input.append(_vi("W", list(w.dims)))
    model.graph.initializer.remove(w)
    _lower_expecting(model, f"'/enc/{op.lower()}'", "W", "not a constant")


def test_ambiguous_activation_default_is_refused():
    """ThresholdedRelu without alpha: the spec says 1.0, onnxruntime uses 0; don't guess."""
    model, _ = build(Case("GRU", activations=("Sigmoid", "ThresholdedRelu")))
    _lower_expecting(model, "'/enc/gru'", "ThresholdedRelu", "activation_alpha")


def test_old_opset_is_refused():
    model, _ = build(Case("RNN", opset=9))
    _lower_expecting(model, "'/enc/rnn'", "opset 9")


def test_case_helper_sanity():
    """build() honours every knob it is given (guards the matrix above against typos)."""
    model, feeds = build(replace(Case("LSTM"), peephole=True, seq_lens=True, clip=1.0,
                                 input_forget=1))
    node = next(n for n in model.graph.node if n.op_type == "LSTM")
    assert list(node.input) == ["X", "W", "R", "B", "seq_lens", "initial_h", "initial_c", "P"]
    assert {a.name for a in node.attribute} >= {"clip", "input_forget", "hidden_size"}
    assert set(feeds) == {"X", "initial_h", "initial_c"}

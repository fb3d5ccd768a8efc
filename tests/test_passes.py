"""edgec's ONNX-level passes: each one does its job, keeps the numbers (checked
with onnxruntime on the rewritten graph), reports node counts, and runs
without TVM."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from conftest import conv_model
from onnx import TensorProto, helper, numpy_helper

from edgec.errors import UsageError
from edgec.frontend import Bindings, bind_inputs
from edgec.passes import PIPELINES, count_nodes, resolve_pipeline, run_pipeline
from edgec.passes.pipelines import define_pipeline
from edgec.passes.registry import register


def ort_run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v for k, v in feeds.items() if k in names})


def prepared(model: onnx.ModelProto, **bind) -> ir.Model:
    m = ir.serde.deserialize_model(model)
    bind_inputs(m, Bindings(bind.get("shapes", {}), bind.get("consts", {})), "test.onnx")
    return m


def ops(model: ir.Model) -> list[str]:
    return [n.op_type for n in ir.traversal.RecursiveGraphIterator(model.graph)]


def flatten_model() -> onnx.ModelProto:
    """Conv, then flatten as PyTorch exports it (Shape, Gather, Unsqueeze, Concat, Reshape)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["c"], ["s"], name="/Shape"),
             helper.make_node("Gather", ["s", "zero"], ["n"], name="/Gather", axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="/Unsqueeze"),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], name="/Concat", axis=0),
             helper.make_node("Reshape", ["c", "shape"], ["y"], name="/Reshape")]
    g = helper.make_graph(nodes, "flatten",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 256])],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def if_model() -> onnx.ModelProto:
    """y = If(sr == 16000, x * 2, x + 100): the structure of silero VAD's sample-rate switch."""
    then_g = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t"], name="/then/Mul")], "then", [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array(2, np.float32), "two")])
    else_g = helper.make_graph(
        [helper.make_node("Add", ["x", "hundred"], ["e"], name="/else/Add")], "else", [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array(100, np.float32), "hundred")])
    nodes = [helper.make_node("Equal", ["sr", "k16"], ["is16"], name="/Equal"),
             helper.make_node("If", ["is16"], ["y"], name="/If", then_branch=then_g,
                              else_branch=else_g)]
    g = helper.make_graph(nodes, "switch",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                           helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                          [numpy_helper.from_array(np.array(16000, np.int64), "k16")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_shape_subgraph_folds_after_binding():
    m = prepared(flatten_model(), shapes={"x": (2, 3, 8, 8)})
    reports = run_pipeline(m, PIPELINES["O1"])
    assert ops(m) == ["Conv", "Reshape"]
    assert ir.convenience.get_const_tensor(m.graph.node(1).inputs[1]).numpy().tolist() == [2, -1]
    fold = next(r for r in reports if r.name == "fold-constants")
    assert fold.nodes_before == 6 and fold.modified
    assert reports[-1].nodes_after == 2
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(ort_run(ir.serde.serialize_model(m), {"x": x})[0],
                                  ort_run(flatten_model(), {"x": x})[0])


@pytest.mark.parametrize("sr,expect", [(16000, "Mul"), (8000, "Add")])
def test_if_on_bound_constant_takes_the_right_branch(sr, expect):
    m = prepared(if_model(), consts={"sr": np.array(sr)})
    assert [v.name for v in m.graph.inputs] == ["x"]
    run_pipeline(m, PIPELINES["O1"])
    assert ops(m) == [expect]
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    got = ort_run(ir.serde.serialize_model(m), {"x": x})[0]
    ref = ort_run(if_model(), {"x": x, "sr": np.array(sr, np.int64)})[0]
    np.testing.assert_array_equal(got, ref)


def test_o0_keeps_the_if():
    m = prepared(if_model(), consts={"sr": np.array(16000)})
    run_pipeline(m, PIPELINES["O0"])
    assert "If" in ops(m)


def bn_model() -> onnx.ModelProto:
    rng = np.random.default_rng(2)
    arr = {"W": rng.standard_normal((6, 3, 3, 3)), "scale": rng.random(6) + 0.5,
           "bias": rng.standard_normal(6), "mean": rng.standard_normal(6) * 0.1,
           "var": rng.random(6) + 0.5}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in arr.items()]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="/Conv"),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"],
                              ["b"], name="/BN"),
             helper.make_node("Identity", ["b"], ["i"], name="/Identity"),
             helper.make_node("Relu", ["i"], ["y"], name="/Relu")]
    g = helper.make_graph(nodes, "bn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 8, 8])],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])


def test_o2_fuses_batchnorm_and_drops_identity():
    m = prepared(bn_model())
    reports = run_pipeline(m, PIPELINES["O2"])
    assert ops(m) == ["Conv", "Relu"]
    assert [n.name for n in m.graph] == ["/Conv", "/Relu"]  # the model's names survive
    assert next(r for r in reports if r.name == "fuse-batchnorm").modified
    x = np.random.default_rng(3).standard_normal((1, 3, 10, 10)).astype(np.float32)
    np.testing.assert_allclose(ort_run(ir.serde.serialize_model(m), {"x": x})[0],
                               ort_run(bn_model(), {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_sum_of_two_or_three_becomes_add():
    """TVM imports Sum as broadcast+stack+reduce; as Add it fuses into a conv's residual."""
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 1, 3]) for n in "abc"]
    nodes = [helper.make_node("Sum", ["a", "b"], ["s"], name="/res/Sum"),
             helper.make_node("Sum", ["s", "b", "c"], ["t"], name="/three/Sum"),
             helper.make_node("Sum", ["t", "a", "b", "c"], ["y"], name="/four/Sum")]
    model = helper.make_model(
        helper.make_graph(nodes, "sums", info,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 3])]),
        opset_imports=[helper.make_opsetid("", 17)])
    m = prepared(model)
    run_pipeline(m, PIPELINES["O2"])
    assert ops(m) == ["Add", "Add", "Add", "Sum"]  # four inputs stay a Sum
    assert {"/res/Sum", "/three/Sum"} <= {n.name for n in m.graph}  # names survive
    feeds = {k: np.random.default_rng(i).standard_normal((2, 1, 3)).astype(np.float32)
             for i, k in enumerate("abc")}
    np.testing.assert_allclose(ort_run(ir.serde.serialize_model(m), feeds)[0],
                               ort_run(model, feeds)[0], rtol=1e-6)


@pytest.mark.parametrize("lo,hi,ops_after", [(0.0, 6.0, ["HardSigmoid", "Mul"]),
                                              (-1.0, 2.5, ["HardSigmoid", "Mul", "Add"])])
def test_bounded_clip_becomes_a_scaled_hardsigmoid(lo, hi, ops_after):
    """TVM imports an opset-13 Clip as maximum/minimum of runtime scalars, which
    nothing fuses; lo + (hi - lo) * HardSigmoid(x) it imports as fusable ops."""
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", lo),
                                                                             ("hi", hi))]
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="/act/Clip")], "clip",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 7])], inits),
        opset_imports=[helper.make_opsetid("", 13)])
    m = prepared(model)
    run_pipeline(m, PIPELINES["O2"])
    assert [op for op in ops(m) if op != "Constant"] == ops_after
    assert "/act/Clip" in {n.name for n in m.graph}  # the last node keeps the name
    x = np.linspace(-9, 9, 21, dtype=np.float32).reshape(3, 7)
    np.testing.assert_allclose(ort_run(ir.serde.serialize_model(m), {"x": x})[0],
                               np.clip(x, lo, hi), rtol=1e-6, atol=1e-6)


def concat_relu_model(*, shared_part=False, relu_output=True) -> onnx.ModelProto:
    """ShuffleNet's downsampling tail: Relu(Concat(Conv(x), AveragePool(x))).
    ``shared_part``: the conv's output is also a graph output (a second user)."""
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/branch/Conv",
                              pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("AveragePool", ["x"], ["p"], name="/short/AveragePool",
                              kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["c", "p"], ["cat"], name="/cat/Concat", axis=1),
             helper.make_node("Relu", ["cat"], ["y"], name="/cat/Relu")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7, 4, 5])]
    if shared_part:
        outputs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4, 4, 5]))
    if not relu_output:  # the Relu feeds a Sigmoid, the graph's output
        nodes[-1].output[0] = "r"
        nodes.append(helper.make_node("Sigmoid", ["r"], ["y"], name="/head/Sigmoid"))
    return helper.make_model(helper.make_graph(
        nodes, "cat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 9])],
        outputs, [w]), opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("relu_output", [True, False])
def test_relu_moves_ahead_of_concat(relu_output):
    """Each part gets its own Relu (it fuses into the conv's write-back and
    TVM's pool) and the concat becomes a plain copy; the graph output keeps
    its name and the numbers."""
    model = concat_relu_model(relu_output=relu_output)
    m = prepared(model)
    run_pipeline(m, PIPELINES["O2"])
    assert ops(m) == ["Conv", "AveragePool", "Relu", "Relu", "Concat"] + \
        ([] if relu_output else ["Sigmoid"])
    assert {"/cat/Relu/0", "/cat/Relu/1"} <= {n.name for n in m.graph}
    assert [o.name for o in m.graph.outputs] == ["y"]
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 9)).astype(np.float32)
    np.testing.assert_allclose(ort_run(ir.serde.serialize_model(m), {"x": x})[0],
                               ort_run(model, {"x": x})[0], rtol=1e-6, atol=1e-6)


def test_relu_stays_after_a_concat_whose_part_is_read_elsewhere():
    m = prepared(concat_relu_model(shared_part=True))
    run_pipeline(m, PIPELINES["O2"])
    assert ops(m) == ["Conv", "AveragePool", "Concat", "Relu"]


@pytest.mark.parametrize("level", ["O0", "O1", "O2", "O3"])
def test_every_level_keeps_the_numbers(level):
    model = flatten_model()
    m = prepared(model, shapes={"x": (1, 3, 8, 8)})
    run_pipeline(m, PIPELINES[level])
    x = np.random.default_rng(4).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(ort_run(ir.serde.serialize_model(m), {"x": x})[0],
                               ort_run(model, {"x": x})[0], rtol=1e-6, atol=1e-6)


def test_levels_differ():
    assert PIPELINES["O0"] != PIPELINES["O1"] != PIPELINES["O2"] != PIPELINES["O3"]
    assert "fold-constants-all" in PIPELINES["O3"] and "fold-constants" not in PIPELINES["O3"]


def test_o3_materialises_generated_weights():
    shape = numpy_helper.from_array(np.array([600, 600], np.int64), "shape")
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["w"], name="/gen",
                              value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="/MatMul")]
    g = helper.make_graph(nodes, "gen",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 600])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 600])],
                          [shape])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    o2, o3 = prepared(model), prepared(model)
    run_pipeline(o2, PIPELINES["O2"])
    run_pipeline(o3, PIPELINES["O3"])
    assert ops(o2) == ["ConstantOfShape", "MatMul"]  # 360 K elements: above the O2 limit
    assert ops(o3) == ["MatMul"]


def test_canonicalize_drops_initializers_from_inputs():
    model = conv_model()
    model.graph.input.extend([helper.make_tensor_value_info("W", TensorProto.FLOAT, [8, 3, 3, 3]),
                              helper.make_tensor_value_info("B", TensorProto.FLOAT, [8])])
    model.ir_version = 3
    m = ir.serde.deserialize_model(model)
    assert len(m.graph.inputs) == 3
    run_pipeline(m, ("canonicalize",))
    assert [v.name for v in m.graph.inputs] == ["x"]


def test_node_counts_and_observer():
    m = prepared(flatten_model(), shapes={"x": (1, 3, 8, 8)})
    seen = []
    reports = run_pipeline(m, PIPELINES["O2"], observer=lambda i, n, mm: seen.append((i, n)))
    assert [n for _, n in seen] == list(PIPELINES["O2"])
    assert reports[0].nodes_before == 6 and reports[-1].nodes_after == count_nodes(m) == 2
    for a, b in itertools.pairwise(reports):
        assert a.nodes_after == b.nodes_before


def test_pipeline_resolution():
    assert resolve_pipeline("O2") == ("O2", PIPELINES["O2"])
    assert resolve_pipeline("canonicalize, fold-constants") == (
        "custom", ("canonicalize", "fold-constants"))
    with pytest.raises(UsageError, match="no-such-pass"):
        resolve_pipeline("canonicalize,no-such-pass")
    with pytest.raises(UsageError, match="O1"):
        resolve_pipeline("O9")


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="twice"):
        register("canonicalize", "again")(type("Again", (), {}))
    with pytest.raises(ValueError, match="defined twice"):
        define_pipeline("O2", "again", ("canonicalize",))
    with pytest.raises(ValueError, match="unknown passes"):
        define_pipeline("new", "bad", ("nope",))


def test_passes_do_not_import_tvm():
    code = ("import sys, onnx_ir as ir, conftest\n"
            "from edgec.frontend import Bindings, bind_inputs\n"
            "from edgec.passes import PIPELINES, run_pipeline\n"
            "m = ir.serde.deserialize_model(conftest.conv_model(batch='n'))\n"
            "bind_inputs(m, Bindings({'x': (1, 3, 16, 16)}), 'm')\n"
            "run_pipeline(m, PIPELINES['O3'])\n"
            "import edgec\n"
            "assert 'tvm' not in sys.modules, 'tvm was imported'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=__file__.rsplit("/", 1)[0], timeout=120)
    assert res.returncode == 0, res.stderr

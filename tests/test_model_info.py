"""edgec inspect's engine: every number checked against a hand count or a known model.

Small models are built with onnx.helper in tmp_path, so each expected value can
be worked out on paper (the arithmetic is in the comments). Real models are
checked where their files exist and skipped otherwise.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from rich.console import Console

from edgec.backend.tvm.coverage import tvm_onnx_ops
from edgec.errors import UsageError
from edgec.frontend.binding import Bindings
from edgec.model_info import inspect_model, render_model_info

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
REPO = Path(__file__).resolve().parents[1]
PPOCR_NAME = "ch_PP-OCRv4_det_infer.onnx"


def _vi(name, dims, dtype=T.FLOAT):
    return h.make_tensor_value_info(name, dtype, dims)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _save(tmp_path, nodes, inputs, outputs, inits=(), opset=17, domains=(), name="m.onnx",
          ir_version=None):
    graph = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    opsets = [h.make_opsetid("", opset), *(h.make_opsetid(d, 1) for d in domains)]
    model = h.make_model(graph, opset_imports=opsets, producer_name="tests",
                         producer_version="1.0")
    if ir_version is not None:
        model.ir_version = ir_version
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _render(info) -> str:
    buf = io.StringIO()
    render_model_info(info, Console(file=buf, width=200, color_system=None))
    return buf.getvalue()


# --------------------------------------------------------------------------- compute


@pytest.fixture
def macs_model(tmp_path):
    """Conv (groups, stride) -> ConvTranspose (groups); Gemm (transB); MatMuls that broadcast."""
    nodes = [
        # x (2,8,16,16), W (16, 8/2, 3, 3), group 2, stride 2, pad 1 -> (2,16,8,8)
        h.make_node("Conv", ["x", "w"], ["c"], name="conv", group=2, strides=[2, 2],
                    pads=[1, 1, 1, 1]),
        # c (2,16,8,8), W (16, 6/2, 2, 2), group 2, stride 2 -> (2,6,16,16)
        h.make_node("ConvTranspose", ["c", "wt"], ["ct"], name="convt", group=2,
                    strides=[2, 2]),
        # A (4,10), B (6,10) transposed -> M=4, N=6, K=10
        h.make_node("Gemm", ["a", "b"], ["g"], name="gemm", transB=1),
        # (3,1,5,7) @ (4,7,2): batch broadcasts to (3,4), M=5, K=7, N=2
        h.make_node("MatMul", ["p", "q"], ["mm"], name="mm_batched"),
        # 1-D A: (7,) @ (2,7,3) -> (2,3): batch 2, M=1, K=7, N=3
        h.make_node("MatMul", ["v", "r"], ["mv"], name="mm_vec_a"),
        # 1-D B: (5,7) @ (7,) -> (5,): M=5, K=7, N=1
        h.make_node("MatMul", ["s", "v"], ["ms"], name="mm_vec_b"),
    ]
    inits = [_init("w", np.zeros((16, 4, 3, 3), np.float32)),
             _init("wt", np.zeros((16, 3, 2, 2), np.float32)),
             _init("b", np.zeros((6, 10), np.float32))]
    inputs = [_vi("x", [2, 8, 16, 16]), _vi("a", [4, 10]), _vi("p", [3, 1, 5, 7]),
              _vi("q", [4, 7, 2]), _vi("v", [7]), _vi("r", [2, 7, 3]), _vi("s", [5, 7])]
    outputs = [_vi("ct", [2, 6, 16, 16]), _vi("g", [4, 6]), _vi("mm", [3, 4, 5, 2]),
               _vi("mv", [2, 3]), _vi("ms", [5])]
    return _save(tmp_path, nodes, inputs, outputs, inits)


def test_macs_of_conv_convtranspose_gemm_matmul(macs_model):
    info = inspect_model(macs_model)
    conv = 2 * 16 * (8 * 8) * (8 // 2) * (3 * 3)  # N*Cout*out spatial*(Cin/group)*kernel
    convt = 2 * 16 * (8 * 8) * (6 // 2) * (2 * 2)  # N*Cin*in spatial*(Cout/group)*kernel
    gemm = 4 * 6 * 10
    matmul = (3 * 4) * 5 * 2 * 7 + 2 * 1 * 3 * 7 + 5 * 1 * 7
    assert (conv, convt, gemm, matmul) == (73728, 24576, 240, 917)
    assert dict(info.compute.macs_by_op) == {"Conv": conv, "ConvTranspose": convt,
                                             "Gemm": gemm, "MatMul": matmul}
    assert list(info.compute.macs_by_op) == ["Conv", "ConvTranspose", "MatMul", "Gemm"]
    assert info.compute.macs == conv + convt + gemm + matmul
    assert info.flops == 2 * (conv + convt + gemm + matmul)
    assert not info.compute.uncounted and info.compute.complete
    js = info.to_json()["compute"]
    assert js["flops"] == 2 * js["macs"] == 2 * 99461


def test_einsum_macs(tmp_path):
    """Two operands: one MAC per point of the joint index space; one operand: no MACs."""
    nodes = [h.make_node("Einsum", ["a", "b"], ["ab"], equation="bij,bjk->bik"),
             h.make_node("Einsum", ["e", "f"], ["ef"], equation="...ij, jk -> ...ik"),
             h.make_node("Einsum", ["a"], ["at"], equation="bij->bji")]
    path = _save(tmp_path, nodes,
                 [_vi("a", [2, 3, 4]), _vi("b", [2, 4, 5]), _vi("e", [6, 2, 3, 4]),
                  _vi("f", [4, 5])],
                 [_vi("ab", [2, 3, 5]), _vi("ef", [6, 2, 3, 5]), _vi("at", [2, 4, 3])])
    info = inspect_model(path)
    assert dict(info.compute.macs_by_op) == {"Einsum": 2 * 3 * 4 * 5 + (6 * 2) * 3 * 4 * 5}
    assert not info.compute.uncounted


def test_recurrent_macs_and_lowered_by_edgec(tmp_path):
    """LSTM and GRU count their gate matmuls and are edgec's to lower, not unsupported."""
    nodes = [
        # seq 5, batch 2, input 3, hidden 4, one direction, 4 gates
        h.make_node("LSTM", ["x", "w", "r"], ["y", "yh"], name="lstm0", hidden_size=4),
        # layout=1: X is (batch 2, seq 5, input 3); bidirectional GRU, 3 gates
        h.make_node("GRU", ["xb", "gw", "gr"], ["gy", "gyh"], name="gru0", hidden_size=4,
                    direction="bidirectional", layout=1),
    ]
    inits = [_init("w", np.zeros((1, 16, 3), np.float32)),
             _init("r", np.zeros((1, 16, 4), np.float32)),
             _init("gw", np.zeros((2, 12, 3), np.float32)),
             _init("gr", np.zeros((2, 12, 4), np.float32))]
    path = _save(tmp_path, nodes, [_vi("x", [5, 2, 3]), _vi("xb", [2, 5, 3])],
                 [_vi("y", [5, 1, 2, 4]), _vi("yh", [1, 2, 4]), _vi("gy", [2, 5, 2, 4]),
                  _vi("gyh", [2, 2, 4])], inits)
    info = inspect_model(path)
    # seq * batch * dirs * gates*hidden * (input + hidden)
    assert dict(info.compute.macs_by_op) == {"GRU": 5 * 2 * 2 * 12 * 7, "LSTM": 5 * 2 * 16 * 7}
    assert {"LSTM", "GRU"}.isdisjoint(tvm_onnx_ops())
    assert info.unsupported == ()
    lowered = {u.op: (u.count, u.first_node, u.static) for u in info.lowered_by_edgec}
    assert lowered == {"LSTM": (1, "lstm0", True), "GRU": (1, "gru0", True)}
    js = info.to_json()
    assert js["lowered_by_edgec"][0]["pass"] == "lower-rnn"
    assert "lower-rnn" in _render(info)


def test_lstm_with_dynamic_seq_is_flagged_not_static(tmp_path):
    nodes = [h.make_node("LSTM", ["x", "w", "r"], ["y"], name="l", hidden_size=4)]
    inits = [_init("w", np.zeros((1, 16, 3), np.float32)),
             _init("r", np.zeros((1, 16, 4), np.float32))]
    path = _save(tmp_path, nodes, [_vi("x", ["seq", 1, 3])], [_vi("y", ["seq", 1, 1, 4])],
                 inits)
    info = inspect_model(path)
    assert [(u.op, u.static) for u in info.lowered_by_edgec] == [("LSTM", False)]
    assert dict(info.compute.uncounted) == {"LSTM": 1}
    assert "needs static shapes" in _render(info)
    bound = inspect_model(path, bindings=Bindings(shapes={"x": (6, 1, 3)}))
    assert [(u.op, u.static) for u in bound.lowered_by_edgec] == [("LSTM", True)]
    assert bound.compute.macs == 6 * 1 * 16 * 7


def test_uncounted_matmul_when_shapes_unknown(tmp_path):
    """A custom op's output has no inferable shape: its MatMul is listed, not counted as 0."""
    nodes = [h.make_node("Foo", ["x"], ["f"], name="foo", domain="com.example"),
             h.make_node("MatMul", ["x", "f"], ["y"], name="mm"),
             h.make_node("MatMul", ["x", "w"], ["z"], name="mm_known")]
    path = _save(tmp_path, nodes, [_vi("x", [2, 3])], [_vi("y", [2, None]), _vi("z", [2, 5])],
                 [_init("w", np.zeros((3, 5), np.float32))], domains=["com.example"])
    info = inspect_model(path)
    assert dict(info.compute.uncounted) == {"MatMul": 1}
    assert dict(info.compute.macs_by_op) == {"MatMul": 2 * 3 * 5}
    assert not info.compute.complete
    assert info.to_json()["compute"]["uncounted"] == {"MatMul": 1}
    assert "1 node(s) uncounted" in _render(info)


# --------------------------------------------------------------------------- parameters


def test_params_count_initializers_and_constant_nodes_everywhere(tmp_path):
    then_branch = h.make_graph(
        [h.make_node("Constant", [], ["k"], value=_init("kt", np.ones((2, 2), np.float16))),
         h.make_node("Cast", ["k"], ["t"], to=T.FLOAT)], "then", [], [_vi("t", [2, 2])])
    else_branch = h.make_graph(
        [h.make_node("Identity", ["w2"], ["e"])], "else", [], [_vi("e", [2, 2])])
    nodes = [
        h.make_node("Constant", [], ["shape"], value=_init("sv", np.array([1, 576], np.int64))),
        h.make_node("Constant", [], ["fl"], value_floats=[1.0, 2.0]),
        h.make_node("Reshape", ["w", "shape"], ["wr"]),
        h.make_node("If", ["cond"], ["o"], then_branch=then_branch, else_branch=else_branch),
    ]
    inits = [_init("w", np.zeros((16, 4, 3, 3), np.float32)),
             _init("w2", np.zeros((2, 2), np.float32))]
    # IR 3 style: initializers also listed as graph inputs; they are not model inputs
    inputs = [_vi("cond", [], T.BOOL), _vi("w", [16, 4, 3, 3]), _vi("w2", [2, 2])]
    path = _save(tmp_path, nodes, inputs,
                 [_vi("wr", [1, 576]), _vi("o", [2, 2]), _vi("fl", [2])], inits)
    info = inspect_model(path)
    p = info.params
    # w 576 f32 + w2 4 f32 | Constant int64[2] + floats[2] + f16[2,2] in the If branch
    assert (p.initializers, p.constants) == (2, 3)
    assert p.count == 576 + 4 + 2 + 2 + 4
    assert p.bytes == 576 * 4 + 4 * 4 + 2 * 8 + 2 * 4 + 4 * 2
    assert p.generated_params == p.generated_tensors == 0
    assert [t.name for t in info.inputs] == ["cond"]
    assert info.inputs[0].dims == () and info.inputs[0].dtype == "bool"


def test_generated_params_from_constant_of_shape(tmp_path):
    nodes = [
        h.make_node("ConstantOfShape", ["s1"], ["g1"],
                    value=_init("v", np.array([0.5], np.float16))),
        h.make_node("Constant", [], ["s2"], value=_init("s2v", np.array([5], np.int64))),
        h.make_node("ConstantOfShape", ["s2"], ["g2"]),  # default value: float32 zeros
        h.make_node("ConstantOfShape", ["dyn"], ["g3"]),  # shape from an input: not constant
    ]
    path = _save(tmp_path, nodes, [_vi("dyn", [2], T.INT64)],
                 [_vi("g1", [2, 3, 4], T.FLOAT16), _vi("g2", [5]), _vi("g3", [None, None])],
                 [_init("s1", np.array([2, 3, 4], np.int64))])
    p = inspect_model(path).params
    assert (p.generated_params, p.generated_bytes, p.generated_tensors) == (24 + 5, 48 + 20, 2)
    assert (p.count, p.bytes) == (3 + 1, 3 * 8 + 1 * 8)  # only the stored shape tensors


# --------------------------------------------------------------------------- ops


def test_histogram_includes_if_branches_and_custom_domains(tmp_path):
    then_branch = h.make_graph(
        [h.make_node("Relu", ["x"], ["t1"]), h.make_node("Relu", ["t1"], ["t2"]),
         h.make_node("MatMul", ["t2", "m"], ["t"])], "then", [], [_vi("t", [2, 2])])
    else_branch = h.make_graph([h.make_node("Neg", ["x"], ["e"])], "else", [],
                               [_vi("e", [2, 2])])
    nodes = [h.make_node("Add", ["x", "x"], ["a"]),
             h.make_node("Relu", ["a"], ["r"]),
             h.make_node("If", ["cond"], ["o"], then_branch=then_branch,
                         else_branch=else_branch),
             h.make_node("Bar", ["r"], ["z"], domain="com.example")]
    path = _save(tmp_path, nodes, [_vi("x", [2, 2]), _vi("cond", [], T.BOOL)],
                 [_vi("o", [2, 2]), _vi("z", [2, 2])],
                 [_init("m", np.eye(2, dtype=np.float32))], domains=["com.example"])
    info = inspect_model(path)
    assert list(info.op_counts.items()) == [("Relu", 3), ("Add", 1), ("If", 1), ("MatMul", 1),
                                            ("Neg", 1), ("com.example::Bar", 1)]
    assert info.node_count == 8
    assert info.compute.macs == 2 * 2 * 2  # the MatMul inside the then-branch
    assert any("If branches" in n for n in info.compute.notes)
    assert info.to_json()["ops"]["com.example::Bar"] == 1
    assert info.opsets == {"ai.onnx": 17, "com.example": 1}


def test_unsupported_ops_name_their_first_node(tmp_path):
    known = tvm_onnx_ops()
    assert "Det" not in known and "Foo" not in known and "Relu" in known
    nodes = [h.make_node("Det", ["x"], ["d"], name="det_node"),
             h.make_node("Foo", ["x"], ["f1"], name="foo1", domain="com.example"),
             h.make_node("Foo", ["f1"], ["f2"], name="foo2", domain="com.example"),
             h.make_node("Relu", ["x"], ["r"], name="relu")]
    path = _save(tmp_path, nodes, [_vi("x", [2, 3, 3])],
                 [_vi("d", [2]), _vi("f2", [2, 3, 3]), _vi("r", [2, 3, 3])],
                 domains=["com.example"])
    info = inspect_model(path)
    assert [(u.op, u.count, u.first_node) for u in info.unsupported] == [
        ("com.example::Foo", 2, "foo1"), ("Det", 1, "det_node")]
    assert info.lowered_by_edgec == ()
    assert info.to_json()["unsupported"][1] == {"op": "Det", "count": 1,
                                                "first_node": "det_node"}
    text = _render(info)
    assert "det_node" in text and "com.example::Foo" in text and "exit 4" in text


def test_render_truncates_histogram_after_25_types(tmp_path):
    unary = ["Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Sqrt", "Ceil", "Floor", "Round",
             "Sin", "Cos", "Tan", "Atan", "Sinh", "Cosh", "Asinh", "Erf", "Sign", "Softsign",
             "Softplus", "Reciprocal", "Identity", "Elu", "Selu", "HardSigmoid", "LeakyRelu",
             "HardSwish", "Mish", "Celu"]
    nodes = [h.make_node(op, [f"v{i}"], [f"v{i + 1}"]) for i, op in enumerate(unary)]
    path = _save(tmp_path, nodes, [_vi("v0", [4])], [_vi(f"v{len(unary)}", [4])], opset=18)
    info = inspect_model(path)
    assert len(info.op_counts) == 30
    text = _render(info)
    assert "... 5 more" in text
    shown = [op for op in info.op_counts if f" {op} " in text]
    assert len(shown) == 25
    assert "0.00 GFLOP" in text


# --------------------------------------------------------------------------- shapes


@pytest.fixture
def dynamic_model(tmp_path):
    """x has a named dynamic dim ("batch"), u an unnamed one."""
    nodes = [h.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
             h.make_node("Identity", ["u"], ["uo"])]
    return _save(tmp_path, nodes, [_vi("x", ["batch", 3]), _vi("u", [None, 2], T.INT64)],
                 [_vi("y", ["batch", 4]), _vi("uo", [None, 2], T.INT64)],
                 [_init("w", np.zeros((3, 4), np.float32))])


def test_dynamic_dims_named_and_unnamed(dynamic_model):
    info = inspect_model(dynamic_model)
    ins = {t.name: t for t in info.inputs}
    assert ins["x"].dims == ("batch", 3) and ins["x"].dtype == "float32"
    assert ins["u"].dims == ("?", 2) and ins["u"].dtype == "int64"
    assert info.outputs[0].dims == ("batch", 4)
    assert info.dynamic_dims == ("batch", "?")
    assert [t.name for t in info.dynamic_inputs] == ["x", "u"]
    assert info.suggested_flags == "--input-shape x=1,3 --input-shape u=1,2"
    assert dict(info.compute.uncounted) == {"MatMul": 1}  # batch unknown: not counted as 0
    assert info.compute.macs == 0
    js = json.loads(json.dumps(info.to_json()))
    assert js["inputs"][0] == {"name": "x", "dtype": "float32", "dims": ["batch", 3]}
    assert js["dynamic"]["suggested_flags"] == info.suggested_flags
    assert js["bindings"] is None
    text = _render(info)
    assert "batch" in text and "--input-shape x=1,3" in text


def test_binding_batch_gives_static_shapes_and_counts(dynamic_model):
    info = inspect_model(dynamic_model, bindings=Bindings(shapes={"x": (4, 3), "u": (7, 2)}))
    ins = {t.name: t for t in info.inputs}
    assert ins["x"].dims == (4, 3) and ins["u"].dims == (7, 2)
    assert {t.name: t.dims for t in info.outputs} == {"y": (4, 4), "uo": (7, 2)}
    assert info.dynamic_inputs == () and info.dynamic_dims == () and info.suggested_flags == ""
    assert dict(info.compute.macs_by_op) == {"MatMul": 4 * 4 * 3}
    assert not info.compute.uncounted
    assert info.to_json()["bindings"]["input_shapes"] == {"x": [4, 3], "u": [7, 2]}
    assert "All input shapes are static" in _render(info)


def test_contradicting_bindings_raise_usage_error(tmp_path):
    path = _save(tmp_path, [h.make_node("Add", ["a", "b"], ["c"])],
                 [_vi("a", ["n", 3]), _vi("b", ["m", 3])], [_vi("c", [None, 3])])
    assert inspect_model(path).dynamic_dims == ("n", "m")
    with pytest.raises(UsageError, match="do not fit the model"):
        inspect_model(path, bindings=Bindings(shapes={"a": (4, 3), "b": (5, 3)}))


def test_model_own_inference_failure_is_a_warning_not_an_error(tmp_path):
    """Data propagation shows the declared output shape is wrong; that is not the user's
    binding's fault, so inspect still reports (compile would reject it later)."""
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Reshape", ["x", "s"], ["y"]),
             h.make_node("Relu", ["x"], ["t"]), h.make_node("MatMul", ["t", "w"], ["z"])]
    path = _save(tmp_path, nodes, [_vi("x", [2, 3])], [_vi("y", [3, 2]), _vi("z", [2, 4])],
                 [_init("w", np.zeros((3, 4), np.float32))])
    for bindings in (None, Bindings(shapes={"x": (2, 3)})):
        info = inspect_model(path, bindings=bindings)
        assert len(info.warnings) == 1 and "shapes are partial" in info.warnings[0]
        # t's shape comes only from the lenient re-run of inference
        assert info.compute.macs == 2 * 3 * 4 and info.compute.complete
    assert "warning" in _render(info)


def test_header_fields(macs_model):
    info = inspect_model(macs_model)
    js = info.to_json()
    assert js["path"] == str(macs_model)
    assert js["size_bytes"] == macs_model.stat().st_size
    assert len(js["sha256"]) == 64
    assert js["producer"] == {"name": "tests", "version": "1.0"}
    assert js["ir_version"] == onnx.load(macs_model).ir_version
    assert js["opsets"] == {"ai.onnx": 17}
    assert js["node_count"] == 6


# --------------------------------------------------------------------------- no TVM


def test_inspect_does_not_import_tvm(macs_model):
    code = (
        "import io, sys\n"
        "from rich.console import Console\n"
        "from edgec.model_info import inspect_model, render_model_info\n"
        f"info = inspect_model({str(macs_model)!r})\n"
        "render_model_info(info, Console(file=io.StringIO()))\n"
        "assert info.flops > 0\n"
        "leaked = sorted(m for m in sys.modules if m == 'tvm' or m.startswith('tvm.'))\n"
        "print('LEAKED', leaked)\n"
        "sys.exit(1 if leaked else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "LEAKED []" in proc.stdout


# --------------------------------------------------------------------------- real models


def _light(name: str) -> Path:
    path = LIGHT / f"light_{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} not shipped with this onnx")
    return path


def test_light_resnet50_is_8_18_gflop():
    """ResNet-50 at 224x224: 4.09 GMACs (torchvision's figure) = 8.18 GFLOP."""
    info = inspect_model(_light("resnet50"))
    assert info.flops == pytest.approx(8.18e9, rel=0.02)
    assert info.compute.macs_by_op["Gemm"] == 2048 * 1000
    assert not info.compute.uncounted and not info.unsupported
    # its 25.6 M weights (conv, fc, batch-norm incl. running stats) are all generated
    p = info.params
    assert p.generated_params == pytest.approx(25.6e6, rel=0.005)
    assert p.generated_tensors == info.op_counts["ConstantOfShape"] == 239
    assert [t.name for t in info.inputs] == ["gpu_0/data_0"]


@pytest.mark.parametrize("name, gflop, why", [
    # conv1 is 64 x 3x3/2: SqueezeNet 1.1, 0.35 GMACs (torchvision lists 0.35 "GFLOPS",
    # which are MACs); measured 0.6983 GFLOP
    ("squeezenet", 0.698e9, "SqueezeNet 1.1"),
    # ShuffleNet v1 1x, g=4: the paper's 133 M mult-adds keep the first stage-2 1x1
    # conv ungrouped; this export groups it (4x fewer MACs there, -6.3 M), so 124.7 M
    # MACs; measured 0.2493 GFLOP
    ("shufflenet", 0.2493e9, "ShuffleNet v1 g=4"),
])
def test_light_models_flops(name, gflop, why):
    info = inspect_model(_light(name))
    assert info.flops == pytest.approx(gflop, rel=0.01), why
    assert info.compute.complete


def _ppocr() -> Path:
    for path in (Path("/tmp/wheels/x/rapidocr_onnxruntime/models") / PPOCR_NAME,
                 *sorted((REPO / "models" / "real").rglob(PPOCR_NAME))):
        if path.exists():
            return path
    pytest.skip(f"{PPOCR_NAME} not available")


def test_ppocr_det_flops_after_binding():
    path = _ppocr()
    free = inspect_model(path)
    assert free.dynamic_inputs and free.compute.macs == 0
    assert dict(free.compute.uncounted) == {"Conv": 62, "ConvTranspose": 2}
    info = inspect_model(path, bindings=Bindings(shapes={"x": (1, 3, 640, 640)}))
    # measured 4.604 GFLOP (2.30 GMACs: 97% Conv, 3% ConvTranspose)
    assert info.flops == pytest.approx(4.6e9, rel=0.02)
    assert info.compute.complete and not info.dynamic_inputs
    assert info.outputs[0].dims == (1, 1, 640, 640)

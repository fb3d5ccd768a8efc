"""Edge values where TVM's lowering disagreed with ONNX (found by the node tests).

Each case is compared with onnxruntime on inputs chosen to hit the edge: shifts
by the type's width or more, Python's mod by an infinite divisor, Mish and tanh
near zero (cancellation), float16 models (computed in float32), the max of an
all -inf row (masked attention), and an Expand whose shape arrives at run time
(refused: TVM's importer does not broadcast it).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.errors import UnsupportedError

pytestmark = pytest.mark.compile


def _model(nodes, inputs, outputs, inits=(), opset=18):
    graph = helper.make_graph(nodes, "edge", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=9)


def _edgec(tmp_path, model, feeds):
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    got = edgec.compile(path, output=tmp_path / "m.edgec").run(feeds)
    return [got[o.name] for o in model.graph.output]


def _both(tmp_path, model, feeds):
    got = _edgec(tmp_path, model, feeds)
    ref = ort.InferenceSession(str(tmp_path / "m.onnx"),
                               providers=["CPUExecutionProvider"]).run(None, feeds)
    return got, ref


@pytest.mark.parametrize("dtype, direction", [
    (np.uint8, "LEFT"), (np.uint32, "RIGHT"), (np.uint64, "LEFT")])
def test_bitshift_by_width_or_more_is_zero(tmp_path, dtype, direction):
    ttype = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    bits = np.dtype(dtype).itemsize * 8
    model = _model([helper.make_node("BitShift", ["x", "s"], ["y"], direction=direction)],
                   [helper.make_tensor_value_info("x", ttype, [6]),
                    helper.make_tensor_value_info("s", ttype, [6])],
                   [helper.make_tensor_value_info("y", ttype, [6])], opset=11)
    x = np.array([1, 3, 255, 7, 128, 1], dtype)
    s = np.array([0, 1, bits - 1, bits, bits + 3, 2 * bits], dtype)
    (got,), (want,) = _both(tmp_path, model, {"x": x, "s": s})
    np.testing.assert_array_equal(got, want)
    assert (got[3:] == 0).all()


def test_python_mod_by_infinity(tmp_path):
    model = _model([helper.make_node("Mod", ["a", "b"], ["y"], fmod=0)],
                   [helper.make_tensor_value_info("a", TensorProto.FLOAT, [8]),
                    helper.make_tensor_value_info("b", TensorProto.FLOAT, [8])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8])])
    a = np.array([-3, 3, -1, 1, 0, 5.5, -2, 7], np.float32)
    b = np.array([np.inf, np.inf, -np.inf, -np.inf, np.inf, 2, 3, -4], np.float32)
    # onnxruntime takes a float Mod with fmod=0 only from opset 28: numpy is the reference
    (got,) = _edgec(tmp_path, model, {"a": a, "b": b})
    want = np.mod(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, want)  # [inf, 3, -1, -inf, 0, 1.5, 1, -1]


@pytest.mark.parametrize("op", ["Mish", "Softplus", "Tanh"])
def test_small_inputs_keep_float32_precision(tmp_path, op):
    model = _model([helper.make_node(op, ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [400])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [400])])
    mags = np.logspace(-7, 1.3, 200).astype(np.float32)
    x = np.concatenate([mags, -mags]) if op == "Tanh" else np.concatenate([-mags * 1.5,
                                                                          mags])
    (got,) = _edgec(tmp_path, model, {"x": x})
    x64 = x.astype(np.float64)
    softplus = np.log1p(np.exp(-np.abs(x64))) + np.maximum(x64, 0)
    exact = {"Mish": x64 * np.tanh(softplus), "Softplus": softplus, "Tanh": np.tanh(x64)}[op]
    # before: tanh lost 6e-8 / |x| relative near 0, softplus 6e-8 / exp(x) far below 0
    np.testing.assert_allclose(got, exact, rtol=2e-6, atol=1e-30)


def test_float16_model_computes_in_float32_and_keeps_its_casts(tmp_path):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((512, 64)).astype(np.float16), "w")
    model = _model([helper.make_node("MatMul", ["x", "w"], ["m"]),
                    helper.make_node("Softmax", ["m"], ["y"], axis=-1),
                    helper.make_node("Cast", ["m"], ["m32"], to=TensorProto.FLOAT),
                    helper.make_node("Mul", ["m32", "k"], ["big"]),
                    helper.make_node("Cast", ["big"], ["r"], to=TensorProto.FLOAT16)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [8, 512])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [8, 64]),
                    helper.make_tensor_value_info("r", TensorProto.FLOAT16, [8, 64])],
                   [w, numpy_helper.from_array(np.array(1 / 3, np.float32), "k")])
    x = (rng.standard_normal((8, 512)) * 0.05).astype(np.float16)
    y, r = _edgec(tmp_path, model, {"x": x})
    assert y.dtype == r.dtype == np.float16  # the artifact takes and returns float16
    m = x.astype(np.float64) @ numpy_helper.to_array(w).astype(np.float64)
    exact = np.exp(m - m.max(-1, keepdims=True))
    exact /= exact.sum(-1, keepdims=True)
    # one rounding to float16 at the output (half an ulp: 2^-11 relative); each op
    # rounded to float16, with float16 partial sums, was several ulp off
    np.testing.assert_allclose(y.astype(np.float64), exact, rtol=2 ** -11, atol=1e-7)
    # the model's explicit Cast of m to float32 still sees m rounded to float16
    want_r = (m.astype(np.float16).astype(np.float32) * np.float32(1 / 3)).astype(np.float16)
    np.testing.assert_array_equal(r, want_r)


def test_softmax_of_a_fully_masked_row_matches_onnxruntime(tmp_path):
    model = _model([helper.make_node("Softmax", ["x"], ["y"], axis=-1),
                    helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5]),
                    helper.make_tensor_value_info("m", TensorProto.FLOAT, [])])
    x = np.array([[0, 1, 2, 3, 4], [-np.inf] * 5, [1, -np.inf, 2, -np.inf, 0]], np.float32)
    got, want = _both(tmp_path, model, {"x": x})
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, equal_nan=True)
    assert got[1] == want[1] == 4


def test_expand_to_a_shape_known_only_at_run_time_is_refused(tmp_path):
    model = _model([helper.make_node("Expand", ["x", "shape"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 1]),
                    helper.make_tensor_value_info("shape", TensorProto.INT64, [3])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 6])])
    path = tmp_path / "expand.onnx"
    onnx.save(model, path)
    with pytest.raises(UnsupportedError, match=r"Expand.*--input-const"):
        edgec.compile(path, output=tmp_path / "expand.edgec")
    assert not (tmp_path / "expand.edgec").exists()
    # bound as a constant, the same model compiles and broadcasts as ONNX says
    art = edgec.compile(path, output=tmp_path / "bound.edgec",
                        input_consts={"shape": np.array([2, 1, 6], np.int64)})
    x = np.arange(3, dtype=np.float32).reshape(3, 1)
    np.testing.assert_array_equal(art.run({"x": x})["y"], np.broadcast_to(x, (2, 3, 6)))


@pytest.mark.parametrize("op, start", [("ReduceMax", -np.inf), ("ReduceMin", np.inf),
                                       ("ReduceSum", 0.0)])
def test_reductions_over_an_empty_axis(tmp_path, op, start):
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    model = _model([helper.make_node(op, ["x", "axes"], ["y"], keepdims=1)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 0, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 4])], [axes])
    # a zero-size input (numpy gives it zero strides, TVM wanted compact ones) and a
    # reduction over nothing (TVM's kernel skipped its init: garbage before)
    (got,), (want,) = _both(tmp_path, model, {"x": np.zeros((2, 0, 4), np.float32)})
    np.testing.assert_array_equal(got, np.full((2, 1, 4), start, np.float32))
    np.testing.assert_array_equal(got, want)

"""NaN in, NaN out, where onnxruntime propagates it.

TVM lowers Relu and Clip to max / min (LLVM's maxnum / minnum return the
other operand for a NaN), so an all-NaN input gave finite, confident outputs
where onnxruntime gives NaN. edgec's kernels and the ops left to TVM now
clamp with compares and blends. Max pools, ReduceMax / ReduceMin and
ArgMax / ArgMin on NaN are not defined by ONNX: onnxruntime keeps a NaN only
where it is the first element a window compares, and edgec may differ there
(README, Limitations).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec

pytestmark = pytest.mark.compile

SHAPE = [1, 32, 10, 10]


def _case(name: str):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((32, 32, 3, 3)).astype(np.float32) * 0.1,
                                "W")
    lo = numpy_helper.from_array(np.array(-1, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(2, np.float32), "hi")
    nodes = {
        "relu": [helper.make_node("Relu", ["x"], ["y"])],
        "clip": [helper.make_node("Clip", ["x", "lo", "hi"], ["y"])],
        "hardswish": [helper.make_node("HardSwish", ["x"], ["y"])],
        # conv chains: relu and clip run in edgec's kernels' epilogues (blocked data)
        "conv_relu_pool": [
            helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                             strides=[2, 2]),
            helper.make_node("Conv", ["p", "W"], ["c2"], pads=[1, 1, 1, 1]),
            helper.make_node("Clip", ["c2", "lo", "hi"], ["y"])],
    }[name]
    out = [1, 32, 5, 5] if name == "conv_relu_pool" else SHAPE
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, SHAPE)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, out)], [w, lo, hi])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("name", ["relu", "clip", "hardswish", "conv_relu_pool"])
def test_nan_propagates_like_onnxruntime(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    onnx.save(_case(name), path)
    art = edgec.compile(path, output=tmp_path / f"{name}.edgec")
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    if name != "conv_relu_pool":  # there one NaN pixel: a 3x3 patch after the conv, so
        x[0, 4] = np.nan  # pool windows mix NaN and numbers (a whole channel: all NaN)
    x[0, 9, 3, 3] = np.nan
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    got = art.run({"x": x})["y"]
    assert np.isnan(ref).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5, equal_nan=True)
    all_nan = art.run({"x": np.full(SHAPE, np.nan, np.float32)})["y"]
    assert np.isnan(all_nan).all()

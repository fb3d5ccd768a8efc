"""Whole int8 chains (qchains.py): an int8 layer and the float work after it in one kernel.

Each model is quantised by edgec (only conv and matmul inputs are quantised:
edgec/quantize/static.py) and compiled; onnxruntime runs the very QDQ model
edgec compiled (kept by --save-temps) as the reference. Where the only
quantised tensor is the graph input, the two differ by float rounding only
(edgec sums integers exactly and multiplies by x_scale * w_scale once;
onnxruntime runs a float conv on dequantised values): rtol 1e-4. Where a
chain writes a quantised tensor that the next layer reads, a value within
float rounding of a rounding boundary may land one step apart: then at
most 2% of the outputs may differ, and none by more than one step of that
tensor in every input of the last layer (x_scale * sum |w| of its worst
output channel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from int8_check import check_against_qdq, input_shape
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.quantize import QuantizeOptions

pytestmark = pytest.mark.compile


def _w(rng, name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _save(path: Path, nodes, inits, x_shape, y_shape) -> Path:
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, x_shape)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, y_shape)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), path)
    return path


def lcnet_block(path: Path) -> Path:
    """PP-LCNet's pattern: conv + HardSwish + per-channel affine, depthwise +
    HardSwish, 1x1 + Relu; 32 channels, so the layers pass channel blocks."""
    rng = np.random.default_rng(1)
    inits = [_w(rng, "w1", 32, 16, 3, 3, scale=0.15), _w(rng, "b1", 32, scale=0.1),
             _w(rng, "s1", 1, 32, 1, 1, scale=0.5), _w(rng, "t1", 1, 32, 1, 1, scale=0.2),
             _w(rng, "wd", 32, 1, 3, 3, scale=0.4), _w(rng, "bd", 32, scale=0.1),
             _w(rng, "w2", 48, 32, 1, 1, scale=0.2), _w(rng, "b2", 48, scale=0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("HardSigmoid", ["c1"], ["g1"], name="hsig1", alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["c1", "g1"], ["h1"], name="hswish1"),
        helper.make_node("Mul", ["h1", "s1"], ["a1"], name="affine_mul"),
        helper.make_node("Add", ["a1", "t1"], ["a2"], name="affine_add"),
        helper.make_node("Conv", ["a2", "wd", "bd"], ["cd"], name="dw", group=32,
                         pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("HardSigmoid", ["cd"], ["gd"], name="hsig2", alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["cd", "gd"], ["hd"], name="hswish2"),
        helper.make_node("Conv", ["hd", "w2", "b2"], ["c2"], name="pw"),
        helper.make_node("Relu", ["c2"], ["y"], name="relu"),
    ]
    return _save(path, nodes, inits, [1, 16, 20, 22], [1, 48, 10, 11])


def resnet_block(path: Path) -> Path:
    """A bottleneck: the residual is a quantised tensor (it also feeds a conv), added
    in the last conv's epilogue with the ReLU; then a strided conv reads the sum."""
    rng = np.random.default_rng(2)
    inits = [_w(rng, "w1", 32, 16, 1, 1, scale=0.3), _w(rng, "b1", 32, scale=0.1),
             _w(rng, "w2", 32, 32, 3, 3, scale=0.08), _w(rng, "b2", 32, scale=0.1),
             _w(rng, "w3", 32, 32, 1, 1, scale=0.2), _w(rng, "b3", 32, scale=0.1),
             _w(rng, "w4", 8, 32, 3, 3, scale=0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"),
        helper.make_node("Relu", ["c1"], ["a"], name="relu1"),
        helper.make_node("Conv", ["a", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["b"], name="relu2"),
        helper.make_node("Conv", ["b", "w3", "b3"], ["c3"], name="conv3"),
        helper.make_node("Add", ["c3", "a"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["d"], name="relu3"),
        helper.make_node("Conv", ["d", "w4"], ["y"], name="down", pads=[1, 1, 1, 1],
                         strides=[2, 2]),
    ]
    return _save(path, nodes, inits, [1, 16, 15, 15], [1, 8, 8, 8])


def mlp_block(path: Path) -> Path:
    """A transformer MLP: MatMul + bias + GELU, MatMul + bias, + the input."""
    rng = np.random.default_rng(3)
    inits = [_w(rng, "w1", 32, 64, scale=0.2), _w(rng, "b1", 64, scale=0.1),
             _w(rng, "w2", 64, 32, scale=0.15), _w(rng, "b2", 32, scale=0.1)]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
        helper.make_node("Add", ["m1", "b1"], ["h"], name="fc1_bias"),
        helper.make_node("Gelu", ["h"], ["g"], name="gelu", domain=""),
        helper.make_node("MatMul", ["g", "w2"], ["m2"], name="fc2"),
        helper.make_node("Add", ["m2", "b2"], ["o"], name="fc2_bias"),
        helper.make_node("Add", ["o", "x"], ["y"], name="residual"),
    ]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 10, 32])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 10, 32])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)],
                                ir_version=9), path)
    return path


def one_layer(path: Path) -> Path:
    """One quantised conv and float work after it (scale, shift, Sigmoid): the only
    rounding step is the input's, which edgec and onnxruntime take alike."""
    rng = np.random.default_rng(4)
    inits = [_w(rng, "w", 24, 8, 3, 3, scale=0.2), _w(rng, "b", 24, scale=0.1),
             _w(rng, "s", 1, 24, 1, 1), _w(rng, "t", 1, 24, 1, 1)]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "s"], ["m"], name="scale"),
        helper.make_node("Add", ["m", "t"], ["a"], name="shift"),
        helper.make_node("Sigmoid", ["a"], ["y"], name="sigmoid"),
    ]
    return _save(path, nodes, inits, [1, 8, 9, 13], [1, 24, 9, 13])


def det_head(path: Path) -> Path:
    """A detection head (PP-OCR det's): two branches joined by a Concat that the next
    conv reads quantised, then two 2x2 stride-2 ConvTransposes (the second to one
    channel) with BatchNorm + Relu and a Sigmoid."""
    rng = np.random.default_rng(6)
    inits = [_w(rng, "wa", 16, 8, 1, 1), _w(rng, "wb", 16, 8, 3, 3, scale=0.15),
             _w(rng, "wc", 24, 32, 3, 3, scale=0.08), _w(rng, "bc", 24, scale=0.1),
             _w(rng, "wt1", 24, 24, 2, 2, scale=0.2), _w(rng, "bt1", 24, scale=0.1),
             numpy_helper.from_array(rng.uniform(0.5, 1.5, 24).astype(np.float32), "g"),
             _w(rng, "beta", 24, scale=0.1), _w(rng, "mean", 24, scale=0.1),
             numpy_helper.from_array(rng.uniform(0.5, 1.5, 24).astype(np.float32), "var"),
             _w(rng, "wt2", 24, 1, 2, 2, scale=0.3), _w(rng, "bt2", 1, scale=0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["ca"], name="branch_a"),
        helper.make_node("Relu", ["ca"], ["ra"], name="relu_a"),
        helper.make_node("Conv", ["x", "wb"], ["cb"], name="branch_b", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["cb"], ["sb"], name="sigmoid_b"),
        helper.make_node("Concat", ["ra", "sb"], ["cat"], name="concat", axis=1),
        helper.make_node("Conv", ["cat", "wc", "bc"], ["cc"], name="fuse", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["cc"], ["rc"], name="relu_c"),
        helper.make_node("ConvTranspose", ["rc", "wt1", "bt1"], ["t1"], name="up1",
                         strides=[2, 2]),
        helper.make_node("BatchNormalization", ["t1", "g", "beta", "mean", "var"], ["bn"],
                         name="bn"),
        helper.make_node("Relu", ["bn"], ["rt"], name="relu_t"),
        helper.make_node("ConvTranspose", ["rt", "wt2", "bt2"], ["t2"], name="up2",
                         strides=[2, 2]),
        helper.make_node("Sigmoid", ["t2"], ["y"], name="prob"),
    ]
    return _save(path, nodes, inits, [1, 8, 12, 14], [1, 1, 48, 56])


MODELS = {"lcnet": lcnet_block, "resnet": resnet_block, "mlp": mlp_block,
          "one_layer": one_layer, "det_head": det_head}


def _samples(folder: Path, shape, n: int = 12, seed: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        np.savez(folder / f"{i:02d}.npz", x=rng.uniform(-1, 1, shape).astype(np.float32))
    return folder


def compile_int8(tmp: Path, name: str, target: str = "host"):
    tmp.mkdir(parents=True, exist_ok=True)
    model = MODELS[name](tmp / f"{name}.onnx")
    calib = _samples(tmp / "calib", input_shape(model))
    art = edgec.compile(model, target=target, output=tmp / f"{name}.edgec",
                        save_temps=tmp / "temps", quantize=QuantizeOptions(calibration=str(calib)))
    return model, art, tmp / "temps" / "quantized-qdq.onnx"


def _kernels(art) -> str:
    return " ".join(art.manifest["kernels"])


def test_lcnet_block_runs_as_three_fused_int8_kernels(tmp_path):
    model, art, qdq = compile_int8(tmp_path, "lcnet")
    names = _kernels(art)
    # conv + HardSwish + affine + quantize in one kernel writing blocks for the
    # depthwise conv, which reads them as uint8 and writes uint8 blocks too
    assert "edgec_qconv2d_bias_hardswish_affine_affine_q_avx512_vnni_nchw16c" in names \
        or "avx512" not in art.manifest["target"]["name"], names
    assert "edgec_qdwconv2d_bias_hardswish_q" in names, names
    assert art.manifest["quantization"]["integer_chains"] == 3
    check_against_qdq(art, model, qdq, exact=False)


def test_resnet_block_adds_the_quantised_residual_in_the_epilogue(tmp_path):
    model, art, qdq = compile_int8(tmp_path, "resnet")
    names = _kernels(art)
    assert "edgec_qconv2d_bias_add_relu_q" in names, names
    assert "fused_" not in names.replace("fused_quantize", ""), names  # no add kernel left
    check_against_qdq(art, model, qdq, exact=False)


def test_mlp_runs_on_the_int8_matmul_with_gelu_and_residual(tmp_path):
    model, art, qdq = compile_int8(tmp_path, "mlp")
    names = _kernels(art)
    assert "edgec_qmatmul_bias_gelu_q" in names and "edgec_qmatmul_bias_add" in names, names
    check_against_qdq(art, model, qdq, exact=False)


def test_one_layer_differs_by_float_rounding_only(tmp_path):
    model, art, qdq = compile_int8(tmp_path, "one_layer")
    assert "edgec_qconv2d_bias_scale_bias_sigmoid" in _kernels(art), _kernels(art)
    check_against_qdq(art, model, qdq, exact=True)


def test_det_head_concat_and_conv_transposes_run_in_int8(tmp_path):
    model, art, qdq = compile_int8(tmp_path, "det_head")
    names = _kernels(art)
    # the concat writes the quantised tensor the conv reads; both ConvTransposes are
    # int8 convs writing their output pixel-shuffled (the first one quantised)
    assert "edgec_concat_q" in names, names
    assert "edgec_qconv2d_transpose_bias_relu_q" in names, names  # BatchNorm folded
    assert "edgec_qconv2d_transpose_bias_sigmoid" in names, names
    check_against_qdq(art, model, qdq, exact=False)


@pytest.mark.parametrize("name", ["lcnet", "resnet"])
def test_avx2_blocks_of_eight(tmp_path, name):
    """The AVX2 target (vpmaddwd on int16, 8-channel blocks), run here."""
    model, art, qdq = compile_int8(tmp_path, name, target="x86/x86-64-v3")
    assert "_avx2_nchw8c" in _kernels(art), _kernels(art)
    check_against_qdq(art, model, qdq, exact=False)


@pytest.mark.cross
@pytest.mark.parametrize("target", ["arm/cortex-a76-dotprod", "arm/raspberry-pi-4"])
def test_int8_chains_under_emulated_arm(tmp_path, target):
    for name in ("lcnet", "resnet"):
        model, art, qdq = compile_int8(tmp_path / name, name, target=target)
        assert "_nchw4c" in _kernels(art), _kernels(art)
        check_against_qdq(art, model, qdq, exact=False, emulate=True)


def test_profile_reports_int8_op_rates(tmp_path):
    """edgec profile's GOP/s: the manifest records each edgec kernel's ops per call
    (2 x its multiply-adds: 2 x 32 x 16 x 9 per output pixel for conv1), the profile
    divides by the measured time per call."""
    from edgec.runtime.profiler import profile

    _model, art, _qdq = compile_int8(tmp_path, "lcnet")
    kernels = art.manifest["kernels"]
    conv1 = next(k for k in kernels if k.startswith("edgec_qconv2d_bias_hardswish"))
    assert kernels[conv1]["arith"] == "int8"
    assert kernels[conv1]["ops_per_call"] == 2 * 32 * 16 * 9 * 20 * 22
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 20, 22)).astype(np.float32)
    rows = {r.name: r for r in profile(art.session(), {"x": x}, repeat=5).rows}
    row = rows[conv1]
    assert row.gops_per_s == pytest.approx(row.ops_per_call / (row.us_per_call * 1e3))
    assert row.to_json(1.0)["gops_per_s"] > 0

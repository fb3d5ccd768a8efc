"""Models that arrive quantised compile and compute what onnxruntime computes for them.

Three producers of quantised ONNX are covered, each run on small float models
built here (a Conv+Relu+Conv CNN with odd channel counts and a stride-2 conv,
and a MatMul+Add MLP) with onnxruntime's own quantiser and a seeded
calibration reader: ``quantize_static`` in QDQ format (standard ops only), in
QOperator format (``QLinearConv``/``QLinearMatMul`` plus ``com.microsoft``
contrib ops, which edgec's ``lower-qlinear`` pass rewrites) and
``quantize_dynamic`` (``DynamicQuantizeLinear``, ``MatMulInteger``,
``ConvInteger``); then single-node ``QLinearConv``/``QLinearMatMul``/
``ConvInteger`` models. The reference is onnxruntime running the same
quantised file. Integer outputs must be within one LSB (and rarely differ at
all); float outputs of a dequantised graph within one step of the output's
quantisation scale. Contrib ops edgec does not implement, and QLinear ops with
computed scales, are refused at compile time in one line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import edgec
from edgec.backend.tvm.coverage import LOWERED_BY_EDGEC, LOWERED_CONTRIB_BY_EDGEC
from edgec.errors import EXIT_UNSUPPORTED, UnsupportedError
from edgec.passes import PIPELINES, run_pipeline
from edgec.passes.lower_qlinear import LOWERED_CONTRIB, LOWERED_STANDARD

pytestmark = pytest.mark.compile

EDGEC = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "edgec"
SEEDS = (11, 12, 13)
# Integer outputs: at most this share of elements may be one LSB off onnxruntime.
MAX_OFF_BY_ONE = 0.05


# --------------------------------------------------------------------------- float models


def _model(nodes, inputs, outputs, inits, opset=17, domains=()) -> onnx.ModelProto:
    g = h.make_graph(nodes, "m", inputs, outputs, inits)
    ops = [h.make_opsetid("", opset), *(h.make_opsetid(d, 1) for d in domains)]
    return h.make_model(g, opset_imports=ops, ir_version=8)


def cnn() -> onnx.ModelProto:
    """x[1,3,17,17] -> Conv(5, 3x3, stride 2) -> Relu -> Conv(7, 3x3) -> y[1,7,9,9]."""
    rng = np.random.default_rng(0)
    inits = [nh.from_array(rng.normal(0, .3, (5, 3, 3, 3)).astype(np.float32), "w1"),
             nh.from_array(rng.normal(0, .1, 5).astype(np.float32), "b1"),
             nh.from_array(rng.normal(0, .3, (7, 5, 3, 3)).astype(np.float32), "w2"),
             nh.from_array(rng.normal(0, .1, 7).astype(np.float32), "b2")]
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1] * 4,
                         strides=[2, 2]),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="conv2", pads=[1] * 4)]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 17, 17])],
                  [h.make_tensor_value_info("y", T.FLOAT, [1, 7, 9, 9])], inits)


def mlp() -> onnx.ModelProto:
    """x[4,10] -> MatMul(13) + b -> Relu -> MatMul(6) + b -> y[4,6]."""
    rng = np.random.default_rng(1)
    inits = [nh.from_array(rng.normal(0, .3, (10, 13)).astype(np.float32), "w1"),
             nh.from_array(rng.normal(0, .1, 13).astype(np.float32), "b1"),
             nh.from_array(rng.normal(0, .3, (13, 6)).astype(np.float32), "w2"),
             nh.from_array(rng.normal(0, .1, 6).astype(np.float32), "b2")]
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"], name="mm1"),
             h.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
             h.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             h.make_node("MatMul", ["r1", "w2"], ["m2"], name="mm2"),
             h.make_node("Add", ["m2", "b2"], ["y"], name="add2")]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, [4, 10])],
                  [h.make_tensor_value_info("y", T.FLOAT, [4, 6])], inits)


def residual() -> onnx.ModelProto:
    """Conv, Add (residual), Sigmoid, Concat, GlobalAveragePool: QOperator writes
    com.microsoft QLinearAdd/QLinearSigmoid/QLinearConcat/QLinearGlobalAveragePool."""
    rng = np.random.default_rng(2)
    inits = [nh.from_array(rng.normal(0, .3, (4, 4, 3, 3)).astype(np.float32), "w1")]
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1] * 4),
             h.make_node("Add", ["c1", "x"], ["a"], name="add"),
             h.make_node("Sigmoid", ["a"], ["s"], name="sig"),
             h.make_node("Concat", ["s", "a"], ["cat"], name="cat", axis=1),
             h.make_node("GlobalAveragePool", ["cat"], ["y"], name="gap")]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, [1, 4, 8, 8])],
                  [h.make_tensor_value_info("y", T.FLOAT, [1, 8, 1, 1])], inits)


FLOAT_MODELS = {"cnn": cnn, "mlp": mlp, "residual": residual}


def _feeds(model: onnx.ModelProto, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            out[vi.name] = rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
        else:
            out[vi.name] = rng.normal(0, 1, shape).astype(dtype)
    return out


class _Reader:
    """A seeded CalibrationDataReader: 8 normal samples."""

    def __init__(self, model: onnx.ModelProto):
        self.samples = iter([_feeds(model, 100 + i) for i in range(8)])

    def get_next(self):
        return next(self.samples, None)


@pytest.fixture(scope="module")
def quantised(tmp_path_factory) -> dict[str, Path]:
    """Every quantised variant, by '<model>-<format>'."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        quantize_dynamic,
        quantize_static,
    )

    class Reader(_Reader, CalibrationDataReader):
        pass

    d = tmp_path_factory.mktemp("prequantized")
    out = {}
    for name, make in FLOAT_MODELS.items():
        model = make()
        src = d / f"{name}.onnx"
        onnx.save(model, src)
        if name != "residual":
            out[f"{name}-qdq"] = d / f"{name}-qdq.onnx"
            quantize_static(src, out[f"{name}-qdq"], Reader(model), quant_format=QuantFormat.QDQ,
                            per_channel=True)
            out[f"{name}-dynamic"] = d / f"{name}-dynamic.onnx"
            quantize_dynamic(src, out[f"{name}-dynamic"], op_types_to_quantize=["Conv", "MatMul"])
        out[f"{name}-qop"] = d / f"{name}-qop.onnx"
        quantize_static(src, out[f"{name}-qop"], Reader(model),
                        quant_format=QuantFormat.QOperator, per_channel=name != "residual")
    return out


# --------------------------------------------------------------------------- comparing


def _ops(path_or_model) -> set[str]:
    m = onnx.load(path_or_model) if isinstance(path_or_model, Path) else path_or_model
    return {n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
            for n in m.graph.node}


def _output_scale(model: onnx.ModelProto, output: str) -> float:
    """The scale of the DequantizeLinear that produces ``output``."""
    inits = {i.name: nh.to_array(i) for i in model.graph.initializer}
    node = next(n for n in model.graph.node if output in n.output)
    assert node.op_type == "DequantizeLinear", node.op_type
    return float(inits[node.input[1]].reshape(()))


def _compile_and_compare(path: Path, tmp_path: Path) -> dict[str, tuple[float, float, str]]:
    """Compile ``path``, run it and onnxruntime on seeded inputs:
    {output: (max |diff|, fraction of elements that differ, dtype)}."""
    model = onnx.load(path)
    art = edgec.compile(path, output=tmp_path / f"{path.stem}.edgec")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    worst: dict[str, tuple[float, float, str]] = {}
    for seed in SEEDS:
        feeds = _feeds(model, seed)
        ref = dict(zip(names, sess.run(None, feeds), strict=True))
        got = art.run(feeds)
        for name in names:
            assert got[name].dtype == ref[name].dtype and got[name].shape == ref[name].shape
            diff = np.abs(got[name].astype(np.float64) - ref[name].astype(np.float64))
            frac = float((diff > 0).mean())
            prev = worst.get(name, (0.0, 0.0, ""))
            worst[name] = (max(prev[0], float(diff.max())), max(prev[1], frac),
                           str(ref[name].dtype))
    return worst


def _check_dequantised(path: Path, tmp_path: Path) -> None:
    model = onnx.load(path)
    for name, (maxdiff, frac, _) in _compile_and_compare(path, tmp_path).items():
        step = _output_scale(model, name)
        print(f"{path.stem}:{name} max|diff| {maxdiff:.3g} ({maxdiff / step:.2f} steps of "
              f"{step:.3g}), {frac:.1%} of elements differ")
        assert maxdiff <= step * 1.0001, (name, maxdiff, step)


def _check_integer(path: Path, tmp_path: Path, max_frac: float = MAX_OFF_BY_ONE) -> None:
    for name, (maxdiff, frac, dtype) in _compile_and_compare(path, tmp_path).items():
        print(f"{path.stem}:{name} ({dtype}) max|diff| {maxdiff:g}, {frac:.1%} differ")
        assert maxdiff <= 1, (name, maxdiff)
        assert frac <= max_frac, (name, frac)


# --------------------------------------------------------------------------- quantisers


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_qdq_static(quantised, tmp_path, name):
    path = quantised[f"{name}-qdq"]
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(path)
    _check_dequantised(path, tmp_path)


@pytest.mark.parametrize("name,expect", [
    ("cnn", {"QLinearConv"}),
    ("mlp", {"QLinearMatMul", "com.microsoft::QLinearAdd"}),
    ("residual", {"QLinearConv", "com.microsoft::QLinearAdd", "com.microsoft::QLinearSigmoid",
                  "com.microsoft::QLinearConcat", "com.microsoft::QLinearGlobalAveragePool"}),
])
def test_qoperator_static(quantised, tmp_path, name, expect):
    path = quantised[f"{name}-qop"]
    assert expect <= _ops(path)
    _check_dequantised(path, tmp_path)


@pytest.mark.parametrize("name,expect", [
    ("cnn", {"ConvInteger", "DynamicQuantizeLinear"}),
    ("mlp", {"MatMulInteger", "DynamicQuantizeLinear"}),
])
def test_dynamic(quantised, tmp_path, name, expect):
    path = quantised[f"{name}-dynamic"]
    assert expect <= _ops(path)
    for out, (maxdiff, frac, _) in _compile_and_compare(path, tmp_path).items():
        ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, _feeds(onnx.load(path), SEEDS[0]))[0]
        tol = 1e-4 * float(np.abs(ref).max())
        print(f"{path.stem}:{out} max|diff| {maxdiff:.3g} (tolerance {tol:.3g}), "
              f"{frac:.1%} differ")
        assert maxdiff <= tol, (out, maxdiff, tol)


# --------------------------------------------------------------------------- single nodes


def _c(name: str, value, dtype) -> onnx.TensorProto:
    return nh.from_array(np.asarray(value, dtype=dtype), name)


def qlinear_conv(*, per_channel: bool, w_dtype, bias: bool, group: int = 1, strides=(2, 2),
                 dilations=(1, 1), x_scale_input: bool = False) -> onnx.ModelProto:
    """x uint8[1,6,11,11] -> QLinearConv(9 channels, 3x3) -> y uint8."""
    rng = np.random.default_rng(3)
    cin, cout = 6, 9
    if w_dtype == np.int8:
        w = rng.integers(-127, 128, (cout, cin // group, 3, 3))
        wz = np.zeros(cout if per_channel else (), np.int8)
    else:
        w = rng.integers(0, 256, (cout, cin // group, 3, 3))
        wz = rng.integers(100, 156, cout if per_channel else ()).astype(np.uint8)
    ws = rng.uniform(0.002, 0.01, cout if per_channel else ()).astype(np.float32)
    xs, xz, ys, yz = np.float32(0.02), np.uint8(120), np.float32(0.35), np.uint8(131)
    inits = [_c("xz", xz, np.uint8), _c("w", w, w_dtype), _c("ws", ws, np.float32),
             _c("wz", wz, w_dtype), _c("ys", ys, np.float32), _c("yz", yz, np.uint8)]
    inputs = [h.make_tensor_value_info("x", T.UINT8, [1, cin, 11, 11])]
    if x_scale_input:
        inputs.append(h.make_tensor_value_info("xs", T.FLOAT, []))
    else:
        inits.append(_c("xs", xs, np.float32))
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    if bias:
        inits.append(_c("B", rng.integers(-3000, 3000, cout), np.int32))
        names.append("B")
    node = h.make_node("QLinearConv", names, ["y"], name="qconv", pads=[1] * 4, group=group,
                       strides=list(strides), dilations=list(dilations))
    side = (11 + 2 - (2 * dilations[0] + 1)) // strides[0] + 1
    return _model([node], inputs, [h.make_tensor_value_info("y", T.UINT8, [1, cout, side, side])],
                  inits)


def qlinear_matmul(*, a_shape, per_column: bool, b_dtype, out_dtype) -> onnx.ModelProto:
    """a[..., M, 10] x b[10, 7] -> QLinearMatMul -> y; a and y of ``out_dtype`` (onnxruntime
    implements only those combinations)."""
    rng = np.random.default_rng(4)
    k, n = a_shape[-1], 7
    if b_dtype == np.int8:
        b = rng.integers(-127, 128, (k, n))
        bz = np.zeros(n if per_column else (), np.int8)
    else:
        b = rng.integers(0, 256, (k, n))
        bz = np.asarray(rng.integers(90, 160, n if per_column else ()), np.uint8)
    bs = rng.uniform(0.003, 0.02, n if per_column else ()).astype(np.float32)
    yz = np.int8(-5) if out_dtype == np.int8 else np.uint8(128)
    az = np.int8(-7) if out_dtype == np.int8 else np.uint8(118)
    inits = [_c("as", 0.03, np.float32), _c("az", az, out_dtype), _c("b", b, b_dtype),
             _c("bs", bs, np.float32), _c("bz", bz, b_dtype), _c("ys", 0.4, np.float32),
             _c("yz", yz, out_dtype)]
    node = h.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"],
                       name="qmatmul")
    elem = T.INT8 if out_dtype == np.int8 else T.UINT8
    return _model([node], [h.make_tensor_value_info("a", elem, list(a_shape))],
                  [h.make_tensor_value_info("y", elem, [*a_shape[:-1], n])], inits)


def conv_integer(*, x_zp: bool) -> onnx.ModelProto:
    """x uint8[1,5,10,10] -> ConvInteger(7 channels, 3x3, stride 2, uint8 w) -> y int32."""
    rng = np.random.default_rng(5)
    inits = [_c("w", rng.integers(0, 256, (7, 5, 3, 3)), np.uint8), _c("wz", 131, np.uint8)]
    names = ["x", "w", "", "wz"]
    if x_zp:
        inits.append(_c("xz", 97, np.uint8))
        names[2] = "xz"
    node = h.make_node("ConvInteger", names, ["y"], name="convint", strides=[2, 2],
                       pads=[1] * 4)
    return _model([node], [h.make_tensor_value_info("x", T.UINT8, [1, 5, 10, 10])],
                  [h.make_tensor_value_info("y", T.INT32, [1, 7, 5, 5])], inits)


@pytest.mark.parametrize("kw", [
    dict(per_channel=True, w_dtype=np.int8, bias=True),
    dict(per_channel=False, w_dtype=np.uint8, bias=False, group=3, strides=(1, 1),
         dilations=(2, 2)),
    dict(per_channel=True, w_dtype=np.uint8, bias=True, group=3),
], ids=["int8-per-channel-bias", "uint8-grouped-dilated", "uint8-per-channel-zp"])
def test_qlinearconv(tmp_path, kw):
    path = tmp_path / "qconv.onnx"
    onnx.save(qlinear_conv(**kw), path)
    _check_integer(path, tmp_path)


@pytest.mark.parametrize("kw", [
    dict(a_shape=(5, 10), per_column=True, b_dtype=np.int8, out_dtype=np.int8),
    dict(a_shape=(2, 3, 10), per_column=False, b_dtype=np.uint8, out_dtype=np.uint8),
], ids=["per-column-int8", "batched-uint8"])
def test_qlinearmatmul(tmp_path, kw):
    path = tmp_path / "qmatmul.onnx"
    onnx.save(qlinear_matmul(**kw), path)
    _check_integer(path, tmp_path)


@pytest.mark.parametrize("x_zp", [True, False], ids=["x-zero-point", "no-x-zero-point"])
def test_convinteger(tmp_path, x_zp):
    path = tmp_path / "convint.onnx"
    onnx.save(conv_integer(x_zp=x_zp), path)
    for name, (maxdiff, frac, dtype) in _compile_and_compare(path, tmp_path).items():
        print(f"convint:{name} ({dtype}) max|diff| {maxdiff:g}, {frac:.1%} differ")
        assert dtype == "int32" and maxdiff == 0  # 45 products a sum: float32 is exact


# --------------------------------------------------------------------------- the rewrite itself


def _lowered(model: onnx.ModelProto) -> ir.Model:
    m = ir.serde.deserialize_model(model)
    run_pipeline(m, PIPELINES["O0"])
    return m


def test_rewrite_keeps_names_and_drops_contrib_opset(quantised):
    m = _lowered(onnx.load(quantised["residual-qop"]))
    nodes = {n.name: n for n in m.graph}
    assert "com.microsoft" not in m.opset_imports
    assert all(n.domain in ("", "ai.onnx") for n in m.graph)
    assert not {n.op_type for n in m.graph} & (LOWERED_STANDARD | LOWERED_CONTRIB)
    # the float op keeps the replaced node's name, the Q/DQ nodes are named after it
    assert nodes["conv1_quant"].op_type == "Conv"
    assert nodes["add_quant"].op_type == "Add"
    assert nodes["conv1_quant/w_dequantize"].op_type == "DequantizeLinear"
    assert nodes["add_quant/quantize"].op_type == "QuantizeLinear"
    assert [v.name for v in m.graph.outputs] == ["y"]


def test_rewrite_matches_quantize_static_qdq_form():
    m = _lowered(qlinear_conv(per_channel=True, w_dtype=np.int8, bias=True))
    by = {n.name: n for n in m.graph}
    w_dq, b_dq = by["qconv/w_dequantize"], by["qconv/B_dequantize"]
    assert w_dq.attributes.get_int("axis") == 0 and b_dq.attributes.get_int("axis") == 0
    scale = ir.convenience.get_const_tensor(b_dq.inputs[1]).numpy()
    ws = ir.convenience.get_const_tensor(w_dq.inputs[1]).numpy()
    np.testing.assert_array_equal(scale, np.float32(0.02) * ws)
    assert ir.convenience.get_const_tensor(b_dq.inputs[2]).numpy().dtype == np.int32
    assert [n.op_type for n in m.graph][-2:] == ["Conv", "QuantizeLinear"]


def test_coverage_tables_match_the_pass():
    assert {op for op, p in LOWERED_BY_EDGEC.items() if p == "lower-qlinear"} == LOWERED_STANDARD
    assert {op for (dom, op) in LOWERED_CONTRIB_BY_EDGEC} == LOWERED_CONTRIB
    assert all("lower-qlinear" in PIPELINES[p] for p in PIPELINES)


def test_per_channel_before_opset_13_is_refused():
    model = qlinear_conv(per_channel=True, w_dtype=np.int8, bias=False)
    model.opset_import[0].version = 11
    with pytest.raises(UnsupportedError, match=r"node 'qconv' \(QLinearConv\).*opset >= 13"):
        _lowered(model)


# --------------------------------------------------------------------------- refusals


def test_computed_scale_is_refused(tmp_path):
    path = tmp_path / "dynscale.onnx"
    onnx.save(qlinear_conv(per_channel=True, w_dtype=np.int8, bias=True, x_scale_input=True),
              path)
    out = tmp_path / "dynscale.edgec"
    with pytest.raises(UnsupportedError) as err:
        edgec.compile(path, output=out)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path))
    assert "node 'qconv' (QLinearConv)" in msg and "x_scale ('xs') is not a constant" in msg
    assert err.value.exit_code == EXIT_UNSUPPORTED and not out.exists()


def _contrib_model(op: str, name: str) -> onnx.ModelProto:
    node = h.make_node(op, ["x"], ["y"], name=name, domain="com.microsoft")
    return _model([node], [h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                  [h.make_tensor_value_info("y", T.FLOAT, [2, 3])], [],
                  domains=["com.microsoft"])


def test_contrib_op_refused_by_cli(tmp_path):
    path = tmp_path / "contrib.onnx"
    onnx.save(_contrib_model("QLinearSoftmax", "/head/Softmax_quant"), path)
    out = tmp_path / "contrib.edgec"
    proc = subprocess.run([str(EDGEC), "compile", str(path), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_UNSUPPORTED, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert (f"{path}: node '/head/Softmax_quant' (QLinearSoftmax, domain com.microsoft) is an "
            "onnxruntime contrib op edgec does not implement; ") in lines[0]
    assert "quant_format=QuantFormat.QDQ" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("op", ["Relu", "FusedConv", "DynamicQuantizeMatMul"])
def test_contrib_op_with_any_name_is_refused(tmp_path, op):
    """TVM's importer keys converters by op type alone: a com.microsoft 'Relu' must not
    be imported as the standard Relu."""
    path = tmp_path / "contrib.onnx"
    onnx.save(_contrib_model(op, "n0"), path)
    with pytest.raises(UnsupportedError, match=rf"node 'n0' \({op}, domain com.microsoft\) is "
                                               "an onnxruntime contrib op"):
        edgec.compile(path, output=tmp_path / "contrib.edgec")
    assert not (tmp_path / "contrib.edgec").exists()


def test_other_contrib_ops_lowered(tmp_path):
    """QLinearLeakyRelu -> QLinearAveragePool -> QLinearMul (by itself): what
    onnxruntime's QOperator format writes for those ops, on uint8 tensors.

    onnxruntime's QLinearMul multiplies the integer product by one folded
    float multiplier (sa * sb / sy), the QDQ form dequantises each side first:
    the float rounding differs, so about 5% of elements land one LSB apart
    (measured 5.3%; each op alone matches exactly)."""
    q = [("s0", 0.05), ("z0", 120), ("s1", 0.03), ("z1", 60), ("s2", 0.025), ("z2", 70),
         ("s3", 0.02), ("z3", 10)]
    inits = [_c(n, v, np.float32 if n[0] == "s" else np.uint8) for n, v in q]
    ms = dict(domain="com.microsoft")
    nodes = [h.make_node("QLinearLeakyRelu", ["x", "s0", "z0", "s1", "z1"], ["a"], name="lrelu",
                         alpha=0.1, **ms),
             h.make_node("QLinearAveragePool", ["a", "s1", "z1", "s2", "z2"], ["p"], name="pool",
                         kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4,
                         count_include_pad=1, **ms),
             h.make_node("QLinearMul", ["p", "s2", "z2", "p", "s2", "z2", "s3", "z3"], ["y"],
                         name="square", **ms)]
    model = _model(nodes, [h.make_tensor_value_info("x", T.UINT8, [1, 3, 9, 9])],
                   [h.make_tensor_value_info("y", T.UINT8, [1, 3, 5, 5])], inits,
                   domains=["com.microsoft"])
    path = tmp_path / "contrib-lowered.onnx"
    onnx.save(model, path)
    _check_integer(path, tmp_path, max_frac=0.15)


def test_inspect_reports_contrib_ops_as_compile_treats_them(tmp_path):
    """QLinearAdd (com.microsoft) is lowered by lower-qlinear; a com.microsoft op with a
    standard-looking name (Relu) is refused at compile time, so inspect lists it so."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="odd_relu", domain="com.microsoft")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.save(model, tmp_path / "m.onnx")
    info = edgec.inspect(tmp_path / "m.onnx")
    assert [u.op for u in info.unsupported] == ["com.microsoft::Relu"]
    assert not info.lowered_by_edgec

"""The Ethos-U path's TFLite form of an int8 QDQ partition (edgec.accel.plugins.ethos_u).

Each case builds a small float ONNX model, quantises it the way edgec's int8 flow
does (onnxruntime ``quantize_static``, QDQ, int8 activations asymmetric, int8
weights symmetric per channel), cuts the partition out (int8 tensors in and
out), writes it with ``write_tflite`` and compares LiteRT on the .tflite with
onnxruntime on the ONNX partition, on random int8 inputs (several draws):

- everywhere the int8 outputs differ by at most 1 (one quantisation step:
  TFLite's fixed-point requantisation rounds differently from onnxruntime's
  float one at exact ties and near them);
- at least 95% of the elements are equal, except at least 75% for outputs of
  Sigmoid, Tanh, Softmax, LeakyRelu and AveragePool, where LiteRT's int8 kernels
  round differently far more often: TFLite fixes the int8 output quantisation of
  LOGISTIC/SOFTMAX (1/256) and TANH (1/128), so the writer adds a QUANTIZE to the
  ONNX scale and values are rounded twice (measured 80-83% equal); LiteRT's
  LEAKY_RELU scales the negative side less exactly (94%); AVERAGE_POOL_2D rounds
  exact halves (a 2x2 window: a quarter of all sums) away from zero where
  onnxruntime rounds them to even (87%).

LiteRT runs its default kernels (XNNPACK), as the TFLite baseline does. Measured
on these cases (6 draws each): Conv, depthwise Conv, residual Add, MaxPool,
Gemm, MatMul, Mul, GlobalAveragePool, explicit PADs (stride-2 conv and depthwise
with pads 1, 3x3/2 MaxPool with pads 1 and with ceil_mode, AveragePool with
count_include_pad=1, a 7x7/2 stem with pads 3), grouped Conv and hard-swish all
100% equal, BatchNormalization 99.9%, HardSigmoid 98.9% (also standalone); Concat with requantised
inputs 98%; a 3x3 AveragePool 96%; never more than one step apart. The
hand-made standalone activations/reshapes run TFLite's reference kernels
(XNNPACK's int8 QUANTIZE rescales coarsely) and match exactly. Against the
reference kernels (the fixed-point rounding Vela follows) the cases stay within
two steps (test_reference_kernels_within_two_steps).

Vela (the real CLI, Ethos-U55-128) then compiles every written model; it must
exit 0, write ``<name>_vela.tflite`` and place every operator on the NPU.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.accel.graph import GraphView
from edgec.accel.plugins.ethos_u.patterns import check, window
from edgec.accel.plugins.ethos_u.tflite_writer import TfliteIO, write_tflite

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("ethosu.vela")

#: ops whose TFLite int8 kernels round differently from onnxruntime's float-then-
#: quantise far more often (see the module docstring): a lower floor of equal elements
ROUNDING_OPS = {"Sigmoid", "Tanh", "Softmax", "LeakyRelu", "AveragePool"}
EQUAL_FLOOR, ROUNDING_EQUAL_FLOOR = 0.95, 0.75
DRAWS = 6


# ------------------------------------------------------------------ model helpers

def _model(nodes, inputs, outputs, inits, opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "m",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _quantize(model: onnx.ModelProto, tmp: Path, op_types=None) -> onnx.ModelProto:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
                      for i in model.graph.input}
            self.data = iter([{n: rng.standard_normal(s).astype(np.float32)
                               for n, s in shapes.items()} for _ in range(8)])

        def get_next(self):
            return next(self.data, None)

    src, dst = tmp / "float.onnx", tmp / "qdq.onnx"
    onnx.save(model, src)
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True, op_types_to_quantize=op_types,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    return onnx.load(dst)


def _partition(qdq: onnx.ModelProto) -> onnx.ModelProto:
    """The QDQ model without its input QuantizeLinear and output DequantizeLinear:
    int8 tensors in and out, as the partitioner hands them to the plugin."""
    g = qdq.graph
    ins = {i.name for i in g.input}
    outs = {o.name for o in g.output}
    first = [n.output[0] for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] in ins]
    last = [n.input[0] for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] in outs]
    inferred = onnx.shape_inference.infer_shapes(qdq)
    return onnx.utils.Extractor(inferred).extract_model(first, last)


def _sub_model(model, tmp, op_types=None) -> onnx.ModelProto:
    return _partition(_quantize(model, tmp, op_types))


def _compare(sub: onnx.ModelProto, path: Path, io: TfliteIO, kernels: str = "default"
             ) -> dict[str, tuple[int, float]]:
    """Output name -> (largest |difference|, share of equal elements) over DRAWS inputs."""
    from edgec.baselines.litert import run_tflite

    sess = ort.InferenceSession(sub.SerializeToString(), providers=["CPUExecutionProvider"])
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
              for i in sub.graph.input}
    names = [o.name for o in sub.graph.output]
    assert [t.name for t in io.outputs] == names
    assert [t.name for t in io.inputs] == [i.name for i in sub.graph.input]
    rng = np.random.default_rng(1)
    diffs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for _ in range(DRAWS):
        feeds = {n: rng.integers(-128, 128, s).astype(np.int8) for n, s in shapes.items()}
        want = sess.run(names, feeds)
        got = run_tflite(path, [np.transpose(feeds[t.name], t.perm) if t.perm else feeds[t.name]
                                for t in io.inputs], kernels=kernels)
        for t, w, g in zip(io.outputs, want, got, strict=True):
            assert g.dtype == np.int8 and tuple(g.shape) == t.shape
            back = np.transpose(g, np.argsort(t.perm)) if t.perm else g
            diffs[t.name].append(np.abs(w.astype(np.int32) - back.astype(np.int32)).ravel())
    out = {}
    for name, parts in diffs.items():
        d = np.concatenate(parts)
        out[name] = (int(d.max()), float((d == 0).mean()))
    return out


def _vela(path: Path, out_dir: Path) -> list[dict[str, str]]:
    """Run the Vela CLI; the per-layer rows of its report."""
    import ethosu

    vela = Path(sys.executable).parent / "vela"
    if not vela.exists():
        pytest.skip("no vela executable next to the interpreter")
    config = Path(ethosu.__path__[0]) / "config_files" / "Arm" / "vela.ini"
    res = subprocess.run(
        [str(vela), str(path), "--accelerator-config", "ethos-u55-128", "--config", str(config),
         "--system-config", "Ethos_U55_High_End_Embedded", "--memory-mode", "Shared_Sram",
         "--output-dir", str(out_dir), "--verbose-performance"],
        capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (out_dir / f"{path.stem}_vela.tflite").exists()
    layers = out_dir / f"{path.stem}_per-layer.csv"
    assert layers.exists(), sorted(p.name for p in out_dir.iterdir())
    with layers.open() as f:
        return list(csv.DictReader(f))


def _w(rng, *shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------ cases

def case_conv_relu(rng):
    return _model([helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["c"], ["y"])],
                  [("x", [1, 3, 16, 16])], ["y"], {"W": _w(rng, 8, 3, 3, 3), "B": _w(rng, 8)})


def case_depthwise(rng):
    # stride 2 with TF-SAME padding (extra pad at the end), then stride 1 VALID, no bias
    return _model([helper.make_node("Conv", ["x", "D1"], ["d1"], group=8, strides=[2, 2],
                                    pads=[0, 0, 1, 1]),
                   helper.make_node("Conv", ["d1", "D2", "B"], ["y"], group=8)],
                  [("x", [1, 8, 16, 16])], ["y"],
                  {"D1": _w(rng, 8, 1, 3, 3), "D2": _w(rng, 8, 1, 3, 3), "B": _w(rng, 8)})


def case_residual(rng):
    return _model([helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["c1"], ["r1"]),
                   helper.make_node("Conv", ["r1", "W2", "B2"], ["c2"], pads=[1, 1, 1, 1]),
                   helper.make_node("Add", ["x", "c2"], ["a"]),
                   helper.make_node("Relu", ["a"], ["y"])],
                  [("x", [1, 8, 12, 12])], ["y"],
                  {"W1": _w(rng, 8, 8, 3, 3, scale=0.2), "B1": _w(rng, 8),
                   "W2": _w(rng, 8, 8, 3, 3, scale=0.2), "B2": _w(rng, 8)})


def case_pools(rng):
    # onnxruntime quantises pools only behind a quantised op: a Conv first
    return _model([helper.make_node("Conv", ["i", "W", "B"], ["x"], pads=[1, 1, 1, 1]),
                   helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
                   helper.make_node("AveragePool", ["m"], ["y1"], kernel_shape=[3, 3],
                                    pads=[1, 1, 1, 1]),
                   helper.make_node("MaxPool", ["x"], ["y2"], kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[0, 0, 1, 1]),
                   helper.make_node("AveragePool", ["x"], ["y3"], kernel_shape=[2, 2],
                                    strides=[2, 2])],
                  [("i", [1, 3, 16, 16])], ["y1", "y2", "y3"],
                  {"W": _w(rng, 6, 3, 3, 3), "B": _w(rng, 6)})


def case_gap_gemm(rng):
    return _model([helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("GlobalAveragePool", ["c"], ["g"]),
                   helper.make_node("Flatten", ["g"], ["f"]),
                   helper.make_node("Gemm", ["f", "G", "GB"], ["y"], transB=1)],
                  [("x", [1, 4, 10, 10])], ["y"],
                  {"W": _w(rng, 16, 4, 3, 3), "B": _w(rng, 16), "G": _w(rng, 24, 16),
                   "GB": _w(rng, 24)})


def case_concat(rng):
    # inputs of three different scales: the writer requantises them to the output's
    return _model([helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
                   helper.make_node("Conv", ["x", "W2"], ["c2"]),
                   helper.make_node("Concat", ["c1", "c2", "x"], ["y"], axis=1)],
                  [("x", [1, 4, 8, 8])], ["y"],
                  {"W1": _w(rng, 6, 4, 3, 3), "B1": _w(rng, 6), "W2": _w(rng, 5, 4, 1, 1, scale=2)})


def case_sigmoid_swish(rng):
    return _model([helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Sigmoid", ["c"], ["s"]),
                   helper.make_node("Mul", ["c", "s"], ["y"]),
                   helper.make_node("Sigmoid", ["y"], ["y2"])],
                  [("x", [1, 3, 8, 8])], ["y", "y2"], {"W": _w(rng, 8, 3, 3, 3), "B": _w(rng, 8)})


def case_activations(rng):
    # side by side, not chained: a one-step difference going into Tanh comes out
    # as up to three (its slope x input scale / output scale)
    return _model([helper.make_node("LeakyRelu", ["x"], ["l"], alpha=0.1),
                   helper.make_node("Tanh", ["x"], ["t"]),
                   helper.make_node("Softmax", ["x"], ["s"], axis=1),
                   helper.make_node("Mul", ["x", "K"], ["k"])],
                  [("x", [1, 8, 6, 6])], ["l", "t", "s", "k"],
                  {"K": _w(rng, 8, 1, 1, scale=1.0)})


def case_matmul(rng):
    return _model([helper.make_node("MatMul", ["x", "M"], ["m"]),
                   helper.make_node("Add", ["m", "z"], ["y"]),
                   helper.make_node("Reshape", ["y", "shape"], ["r"]),
                   helper.make_node("Sigmoid", ["r"], ["y2"])],
                  [("x", [1, 32]), ("z", [1, 16])], ["y", "y2"],
                  {"M": _w(rng, 32, 16, scale=0.2), "shape": np.array([1, 16, 1, 1])})


def case_explicit_pads(rng):
    # ONNX pads no TFLite SAME/VALID matches: a PAD operator, then the op with VALID
    # padding (MaxPool: the Relu output's zero point is -128, the int8 minimum)
    return _model([helper.make_node("Conv", ["x", "W", "B"], ["c"], strides=[2, 2],
                                    pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["c"], ["r"]),
                   helper.make_node("MaxPool", ["r"], ["y1"], kernel_shape=[3, 3],
                                    strides=[2, 2], pads=[1, 1, 1, 1]),
                   helper.make_node("Conv", ["r", "D", "DB"], ["y2"], group=8, strides=[2, 2],
                                    pads=[1, 1, 1, 1]),
                   helper.make_node("AveragePool", ["r"], ["y3"], kernel_shape=[3, 3],
                                    pads=[1, 1, 1, 1], count_include_pad=1),
                   helper.make_node("Conv", ["r", "W2"], ["y4"], pads=[0, 0, 1, 1]),
                   helper.make_node("MaxPool", ["r"], ["y5"], kernel_shape=[3, 3],
                                    strides=[2, 2], ceil_mode=1)],
                  [("x", [1, 3, 16, 16])], ["y1", "y2", "y3", "y4", "y5"],
                  {"W": _w(rng, 8, 3, 3, 3), "B": _w(rng, 8), "D": _w(rng, 8, 1, 3, 3),
                   "DB": _w(rng, 8), "W2": _w(rng, 4, 8, 3, 3, scale=0.2)})


def case_pad_stem(rng):
    # a ResNet-like stem: 7x7 stride-2 conv with pads 3, Relu, 3x3 stride-2 MaxPool
    # with pads 1, then a depthwise conv with pads 2 (a dilated 3x3)
    return _model([helper.make_node("Conv", ["x", "W", "B"], ["c"], strides=[2, 2],
                                    pads=[3, 3, 3, 3]),
                   helper.make_node("Relu", ["c"], ["r"]),
                   helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[3, 3],
                                    strides=[2, 2], pads=[1, 1, 1, 1]),
                   helper.make_node("Conv", ["m", "D", "DB"], ["y"], group=8,
                                    dilations=[2, 2], pads=[2, 2, 2, 2])],
                  [("x", [1, 3, 32, 32])], ["y"],
                  {"W": _w(rng, 8, 3, 7, 7, scale=0.1), "B": _w(rng, 8),
                   "D": _w(rng, 8, 1, 3, 3), "DB": _w(rng, 8)})


def case_batchnorm(rng):
    # a BatchNormalization after a residual Add (nothing to fold it into) becomes
    # a 1x1 DEPTHWISE_CONV_2D; one channel with a negative scale
    gamma = rng.uniform(0.5, 2.0, 8).astype(np.float32)
    gamma[3] = -1.0
    return _model([helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Add", ["x", "c"], ["a"]),
                   helper.make_node("BatchNormalization", ["a", "g", "b", "mu", "var"], ["y"],
                                    epsilon=1e-5)],
                  [("x", [1, 8, 8, 8])], ["y"],
                  {"W": _w(rng, 8, 8, 3, 3, scale=0.2), "B": _w(rng, 8), "g": gamma,
                   "b": _w(rng, 8), "mu": _w(rng, 8), "var": rng.uniform(0.5, 2, 8).astype(
                       np.float32)})


def case_hardsigmoid(rng):
    # MobileNetV3 / PP-OCR: hard-swish as x * HardSigmoid(x), and a squeeze-excite
    # gate; HardSigmoid becomes a 1x1 DEPTHWISE_CONV_2D saturating at its int8 range
    return _model([helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("HardSigmoid", ["c"], ["h"], alpha=1 / 6, beta=0.5),
                   helper.make_node("Mul", ["c", "h"], ["s"]),
                   helper.make_node("GlobalAveragePool", ["s"], ["g"]),
                   helper.make_node("Conv", ["g", "W2", "B2"], ["e"]),
                   helper.make_node("HardSigmoid", ["e"], ["eh"], alpha=0.2, beta=0.5),
                   helper.make_node("Mul", ["s", "eh"], ["y"])],
                  [("x", [1, 3, 8, 8])], ["h", "s", "eh", "y"],
                  {"W": _w(rng, 8, 3, 3, 3), "B": _w(rng, 8), "W2": _w(rng, 8, 8, 1, 1),
                   "B2": _w(rng, 8)})


def case_grouped(rng):
    # ShuffleNet-style grouped convs: 1x1 with 4 groups, 3x3 stride 2 pads 1 with 2
    return _model([helper.make_node("Conv", ["x", "W1", "B1"], ["c"], group=4),
                   helper.make_node("Relu", ["c"], ["r"]),
                   helper.make_node("Conv", ["r", "W2", "B2"], ["y"], group=2, strides=[2, 2],
                                    pads=[1, 1, 1, 1])],
                  [("x", [1, 8, 8, 8])], ["y"],
                  {"W1": _w(rng, 12, 2, 1, 1), "B1": _w(rng, 12),
                   "W2": _w(rng, 6, 6, 3, 3, scale=0.2), "B2": _w(rng, 6)})


CASES = {
    "grouped": (case_grouped, None),
    "hardsigmoid": (case_hardsigmoid, None),
    "batchnorm": (case_batchnorm, None),
    "explicit_pads": (case_explicit_pads, None),
    "pad_stem": (case_pad_stem, None),
    "conv_relu": (case_conv_relu, None),
    "depthwise": (case_depthwise, None),
    "residual": (case_residual, None),
    "pools": (case_pools, None),
    "gap_gemm": (case_gap_gemm, None),
    "concat": (case_concat, None),
    "sigmoid_swish": (case_sigmoid_swish, None),
    "activations": (case_activations, ["LeakyRelu", "Tanh", "Softmax", "Mul"]),
    "matmul": (case_matmul, ["MatMul", "Add", "Reshape", "Sigmoid"]),
}
MEASURED: dict[str, dict[str, tuple[int, float]]] = {}
#: "Original Operator" of Vela's per-layer report -> the ONNX ops it may come from
VELA_OPS = {"Conv2D": {"Conv"},
            "DepthwiseConv2D": {"Conv", "BatchNormalization", "HardSigmoid"},
            "FullyConnected": {"Gemm", "MatMul"},
            "Add": {"Add"}, "Mul": {"Mul"}, "MaxPool": {"MaxPool"}, "AvgPool": {"AveragePool"},
            "Mean": {"GlobalAveragePool"}, "Sigmoid": {"Sigmoid"}, "Tanh": {"Tanh"},
            "Softmax": {"Softmax"}, "LeakyRelu": {"LeakyRelu"}, "Concat": {"Concat"},
            "Relu": {"Relu", "Clip"}, "Relu6": {"Clip"}, "ReluN1To1": {"Clip"},
            "Reshape": {"Reshape", "Flatten", "Squeeze", "Unsqueeze"},
            "Pad": {"Conv", "MaxPool", "AveragePool"}, "Split": {"Conv"}}


@pytest.mark.parametrize("name", sorted(CASES))
def test_litert_matches_onnxruntime_and_vela_takes_it(name, tmp_path):
    build, op_types = CASES[name]
    sub = _sub_model(build(np.random.default_rng(0)), tmp_path, op_types)
    graph = GraphView(sub)
    compute = [n for n in graph.nodes if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    assert compute, "quantisation left no compute node"
    for node in compute:
        assert check(node, graph) is None, (node.op_type, check(node, graph))

    path = tmp_path / f"{name}.tflite"
    io = write_tflite(sub, path)
    assert TfliteIO.from_json(io.to_json()) == io
    for t in io.inputs + io.outputs:
        assert t.perm == ((0, 2, 3, 1) if len(t.shape) == 4 else None)
    results = _compare(sub, path, io)
    MEASURED[name] = results
    for out, (worst, equal) in results.items():
        producer = graph.producer(graph.producer(out).input[0]).op_type
        floor = ROUNDING_EQUAL_FLOOR if producer in ROUNDING_OPS else EQUAL_FLOOR
        assert worst <= 1, f"{name}/{out}: differs by {worst} steps"
        assert equal >= floor, f"{name}/{out}: only {equal:.1%} equal"

    rows = _vela(path, tmp_path / "vela")
    assert rows, "Vela reported no layers"
    assert {r["Target"] for r in rows} == {"NPU"}, [(r["Name"], r["Target"]) for r in rows]
    # every layer Vela reports is named after a tensor the writer maps to an ONNX node
    names = {n.name or f"{n.op_type}_{i}": n.op_type for i, n in enumerate(graph.nodes)
             if n.op_type not in ("QuantizeLinear", "DequantizeLinear")}
    assert set(io.layers.values()) == set(names)
    for r in rows:
        node = io.node_for(r["Name"])
        assert node is not None, r["Name"]
        # a requantisation serves any op; a grouped Conv ends in a CONCATENATION;
        # an op feeding a CONCATENATION is reported
        # under the concatenation's output, one feeding a PAD under the PAD's output
        # (``<output>/pad``): Vela makes it write there directly
        if r["Original Operator"] != "Quantize" and not r["Name"].endswith("/pad"):
            assert names[node] in VELA_OPS[r["Original Operator"]] | {"Concat"} or (
                r["Original Operator"] == "Concat" and names[node] == "Conv"), (r, node)


#: cases whose chains amplify a step: HardSigmoid's slope (alpha x input scale /
#: output scale, ~2 here) turns the conv's one-step fixed-point rounding into two,
#: and the hard-swish Mul after it adds one (measured 3; standalone it is exact,
#: see STANDALONE["hardsigmoid_alone"])
REF_STEPS = {"hardsigmoid": 3}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_kernels_within_two_steps(name, tmp_path):
    """TFLite's reference kernels (the fixed-point rounding TFLite Micro runs and
    Vela follows, so the closest stand-in for the NPU here) against onnxruntime:
    rescaling in fixed point rounds differently from onnxruntime's float, and
    chains of such ops (conv -> conv -> add) reach two steps. Measured: at most 2
    steps; 87-100% equal."""
    build, op_types = CASES[name]
    sub = _sub_model(build(np.random.default_rng(0)), tmp_path, op_types)
    path = tmp_path / f"{name}.tflite"
    results = _compare(sub, path, write_tflite(sub, path), kernels="reference")
    MEASURED[f"{name} (ref)"] = results
    for out, (worst, _) in results.items():
        assert worst <= REF_STEPS.get(name, 2), f"{name}/{out}: differs by {worst} steps"


# ------------------------------------------------------------------ refusals

def _conv_sub(tmp, *, group=1, pads=(1, 1, 1, 1), cin=6, cout=6, size=8, strides=(1, 1)):
    rng = np.random.default_rng(0)
    m = _model([helper.make_node("Conv", ["x", "W", "B"], ["y"], group=group, pads=list(pads),
                                 strides=list(strides))],
               [("x", [1, cin, size, size])], ["y"],
               {"W": _w(rng, cout, cin // group, 3, 3), "B": _w(rng, cout)})
    sub = _sub_model(m, tmp)
    node = next(n for n in sub.graph.node if n.op_type == "Conv")
    return sub, node


def test_grouped_conv_is_split(tmp_path):
    sub, node = _conv_sub(tmp_path, group=3)
    assert check(node, GraphView(sub)) is None
    write_tflite(sub, tmp_path / "g.tflite")
    assert _operators(tmp_path / "g.tflite") == ["SPLIT", "CONV_2D", "CONV_2D", "CONV_2D",
                                                 "CONCATENATION"]


def test_asymmetric_pads_take_a_pad(tmp_path):
    sub, node = _conv_sub(tmp_path, pads=(0, 0, 1, 1))
    graph = GraphView(sub)
    assert check(node, graph) is None
    assert window(node, graph, (3, 3))[0] == "PAD"
    io = write_tflite(sub, tmp_path / "p.tflite")
    assert _operators(tmp_path / "p.tflite") == ["PAD", "CONV_2D"]
    # the PAD's output serves the Conv's: Vela's layer for it maps back to the node
    assert io.node_for(f"{node.output[0]}_quantized/pad") == node.name or io.node_for(
        next(k for k in io.layers if k.endswith("/pad"))) == io.layers[sub.graph.output[0].name]
    # the same pads with stride 2 are exactly TFLite SAME (the extra row/column at the end)
    sub, node = _conv_sub(tmp_path, pads=(0, 0, 1, 1), strides=(2, 2))
    assert window(node, GraphView(sub), (3, 3))[0] == "SAME"


def _pool_sub(tmp, op, relu, **attrs):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1])]
    if relu:
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
    nodes.append(helper.make_node(op, ["r" if relu else "c"], ["y"], kernel_shape=[3, 3],
                                  strides=[2, 2], pads=[1, 1, 1, 1], **attrs))
    sub = _sub_model(_model(nodes, [("x", [1, 3, 8, 8])], ["y"],
                            {"W": _w(rng, 4, 3, 3, 3), "B": _w(rng, 4)}), tmp)
    return GraphView(sub), next(n for n in sub.graph.node if n.op_type == op)


def test_explicit_pads_that_would_change_the_result_are_refused(tmp_path):
    # PAD fills with the zero point: a max over it is exact only when that is -128
    graph, node = _pool_sub(tmp_path, "MaxPool", relu=True)
    assert check(node, graph) is None
    graph, node = _pool_sub(tmp_path, "MaxPool", relu=False)
    assert check(node, graph).startswith("MaxPool: pads [1,1,1,1] need an explicit PAD, "
                                         "which fills with the input zero point")
    # TFLite SAME leaves the padding out of the average, an explicit PAD does not
    graph, node = _pool_sub(tmp_path, "AveragePool", relu=True, count_include_pad=1)
    assert check(node, graph) is None
    graph, node = _pool_sub(tmp_path, "AveragePool", relu=True)
    assert check(node, graph) == ("AveragePool: pads [1,1,1,1] not expressible as TFLite "
                                  "SAME/VALID (count_include_pad=0 leaves an explicit PAD "
                                  "out of the count)")


def test_depthwise_multiplier_and_wide_stride_are_refused(tmp_path):
    sub, node = _conv_sub(tmp_path, group=6, cin=6, cout=12)
    assert check(node, GraphView(sub)).startswith("Conv: depthwise channel multiplier 2")
    sub, node = _conv_sub(tmp_path, pads=(0, 0, 0, 0), strides=(4, 4), size=13)
    assert check(node, GraphView(sub)) == "Conv: stride 4x4 outside Vela's range 1..3"


def test_layout_changing_flatten_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    m = _model([helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
                helper.make_node("Flatten", ["c"], ["f"]),
                helper.make_node("Gemm", ["f", "G"], ["y"], transB=1)],
               [("x", [1, 3, 4, 4])], ["y"], {"W": _w(rng, 4, 3, 3, 3), "G": _w(rng, 5, 64)})
    sub = _sub_model(m, tmp_path)
    graph = GraphView(sub)
    flatten = next(n for n in sub.graph.node if n.op_type == "Flatten")
    assert check(flatten, graph) == "Flatten: flattens a 4-D feature map with H*W>1 (layout change)"
    gemm = next(n for n in sub.graph.node if n.op_type == "Gemm")
    assert check(gemm, graph) is None


def test_non_qdq_and_unknown_ops_are_refused():
    m = _model([helper.make_node("Add", ["x", "x"], ["a"]),
                helper.make_node("Erf", ["a"], ["y"])], [("x", [1, 4])], ["y"], {})
    graph = GraphView(m)
    add, erf = graph.nodes
    assert check(add, graph) == "Add: input x is not dequantised from per-tensor int8"
    assert check(erf, graph) == "Erf: not supported by the Ethos-U path"


def test_float_output_is_refused(tmp_path):
    """An op whose output is not quantised again (here: the DequantizeLinear'd
    input feeds a float Add whose result leaves the graph as float)."""
    sub, _ = _conv_sub(tmp_path)
    g = sub.graph
    dq = next(n for n in g.node if n.op_type == "DequantizeLinear"
              and n.input[0] == g.input[0].name)
    g.node.append(helper.make_node("Add", [dq.output[0], dq.output[0]], ["float_out"]))
    g.output.append(helper.make_tensor_value_info("float_out", TensorProto.FLOAT, None))
    graph = GraphView(sub)
    add = next(n for n in graph.nodes if n.op_type == "Add")
    assert check(add, graph) == "Add: output not quantised to int8"
    with pytest.raises(ValueError, match="Add: output not quantised to int8"):
        write_tflite(sub, tmp_path / "f.tflite")


# ------------------------------------------------------------------ hand-made QDQ

def _qdq(op: str, in_shape, out_shape, in_q, out_q, params=None, **attrs) -> onnx.ModelProto:
    """One float op between a DequantizeLinear of int8 input ``x`` and a
    QuantizeLinear to int8 output ``y`` (the standalone activations onnxruntime
    keeps only in symmetric-activation graphs); ``params``: extra constant inputs."""
    params = params or {}
    inits = {"xs": np.float32(in_q[0]), "xz": np.int8(in_q[1]),
             "ys": np.float32(out_q[0]), "yz": np.int8(out_q[1]), **params}
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
         helper.make_node(op, ["xf", *params], ["yf"], name=f"/{op}", **attrs),
         helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])],
        "qdq", [helper.make_tensor_value_info("x", TensorProto.INT8, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.INT8, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


STANDALONE = {
    # name: (model, TFLite operators written)
    "relu": (lambda: _qdq("Relu", [1, 4, 6, 6], [1, 4, 6, 6], (0.05, 10), (0.03, -128)),
             ["RELU"]),
    "relu6": (lambda: _qdq("Clip", [1, 4, 6, 6], [1, 4, 6, 6], (0.05, 10), (0.025, -128),
                           {"lo": np.float32(0), "hi": np.float32(6)}), ["RELU6"]),
    "relu_n1_to_1": (lambda: _qdq("Clip", [1, 32], [1, 32], (0.02, 3), (2 / 255, 0),
                                  {"lo": np.float32(-1), "hi": np.float32(1)}),
                     ["RELU_N1_TO_1"]),
    # the clip range holds the whole output range: quantising does the clipping
    "wide_clip": (lambda: _qdq("Clip", [1, 4, 6, 6], [1, 4, 6, 6], (0.05, 10), (0.03, -5),
                               {"lo": np.float32(-20), "hi": np.float32(20)}), ["QUANTIZE"]),
    # calibration-like input scale: with 0.05 an eighth of the values land on exact
    # halves (beta / output scale = 127.5), rounded up by TFLite and to even by onnxruntime
    "hardsigmoid_alone": (lambda: _qdq("HardSigmoid", [1, 4, 6, 6], [1, 4, 6, 6],
                                       (0.0473, 10), (1 / 255, -128), alpha=1 / 6, beta=0.5),
                          ["DEPTHWISE_CONV_2D"]),
    "unsqueeze": (lambda: _qdq("Unsqueeze", [1, 16], [1, 16, 1, 1], (0.05, 10), (0.05, 10),
                               {"axes": np.array([2, 3])}), ["RESHAPE"]),
    # calibration-like scales: with a ratio such as 5/4 a quarter of the values sit
    # on exact halves, which TFLite rounds up and onnxruntime to even
    "squeeze_requant": (lambda: _qdq("Squeeze", [1, 16, 1, 1], [1, 16], (0.0473, 10),
                                     (0.0391, 0), {"axes": np.array([2, 3])}),
                        ["RESHAPE", "QUANTIZE"]),
}


def _operators(path: Path) -> list[str]:
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model

    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    model = Model.GetRootAs(path.read_bytes(), 0)
    assert model.Version() == 3 and model.SubgraphsLength() == 1
    assert model.Buffers(0).DataLength() == 0
    codes = [model.OperatorCodes(i).BuiltinCode() for i in range(model.OperatorCodesLength())]
    sg = model.Subgraphs(0)
    return [names[codes[sg.Operators(i).OpcodeIndex()]] for i in range(sg.OperatorsLength())]


@pytest.mark.parametrize("name", sorted(STANDALONE))
def test_standalone_activations_and_reshapes(name, tmp_path):
    build, want_ops = STANDALONE[name]
    sub = build()
    graph = GraphView(sub)
    node = next(n for n in graph.nodes if n.name.startswith("/"))
    assert check(node, graph) is None
    path = tmp_path / f"{name}.tflite"
    io = write_tflite(sub, path)
    assert _operators(path) == want_ops
    # reference kernels: XNNPACK's int8 QUANTIZE rescales with a coarse multiplier
    # (~5% one step off on the squeeze below), TFLite's reference one exactly
    results = _compare(sub, path, io, kernels="reference")
    MEASURED[name] = results
    (worst, equal), = results.values()
    assert worst <= 1 and equal >= EQUAL_FLOOR, results
    rows = _vela(path, tmp_path / "vela")
    assert {r["Target"] for r in rows} <= {"NPU"}


def test_narrow_clip_is_refused():
    sub = _qdq("Clip", [1, 8], [1, 8], (0.05, 0), (0.002, -128),
               {"lo": np.float32(0.5), "hi": np.float32(0.9)})
    graph = GraphView(sub)
    node = next(n for n in graph.nodes if n.op_type == "Clip")
    assert check(node, graph) == ("Clip: range [0.5, 0.9] is no TFLite RELU form and narrower "
                                  "than the output range")


def test_measured_tolerances_are_reported():
    """Print what the comparison measured (pytest -s shows it); runs after the cases."""
    for name, outputs in sorted(MEASURED.items()):
        for out, (worst, equal) in outputs.items():
            print(f"{name:14s} {out:40s} max |diff| {worst}  equal {equal:.2%}")

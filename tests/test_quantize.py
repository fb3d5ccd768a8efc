"""int8 quantisation: calibration data, the QDQ graph, integer lowering, verify and bad input.

The integer chains are checked against onnxruntime running the very QDQ
model edgec compiled (kept with --save-temps), with the tolerances
int8_check.py states. Against the float model the check is SQNR, the
measure verify uses for quantised artifacts.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from int8_check import check_against_qdq
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.errors import UsageError
from edgec.quantize import QuantizeOptions, load_calibration
from edgec.verification import sqnr_db

pytestmark = pytest.mark.compile
EDGEC = [sys.executable, "-m", "edgec"]


def cnn(path: Path, seed: int = 0) -> Path:
    """Stem conv (stride 2, odd channels) + Relu, depthwise 3x3 + Clip(0, 6), 1x1 conv
    with a residual Add, MaxPool, global pool, Gemm: the shapes int8 lowering meets."""
    rng = np.random.default_rng(seed)

    def w(name, *shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32),
                                       name)

    inits = [w("w1", 12, 3, 3, 3), w("b1", 12, scale=0.1), w("wd", 12, 1, 3, 3),
             w("bd", 12, scale=0.1), w("w2", 12, 12, 1, 1), w("wg", 5, 12), w("bg", 5),
             numpy_helper.from_array(np.array(0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6, np.float32), "hi")]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="stem", strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="stem_relu"),
        helper.make_node("Conv", ["r1", "wd", "bd"], ["c2"], name="dw", group=12,
                         pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"], name="dw_relu6"),
        helper.make_node("Conv", ["r2", "w2"], ["c3"], name="pw"),
        helper.make_node("Add", ["c3", "r1"], ["s"], name="residual"),
        helper.make_node("MaxPool", ["s"], ["p"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], name="head", transB=1),
    ]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 17, 19])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return path


def samples(folder: Path, n: int, seed: int = 1, shape=(1, 3, 17, 19)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        np.savez(folder / f"s{i:03d}.npz", x=rng.uniform(-1, 1, shape).astype(np.float32))
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quant")
    model = cnn(tmp / "cnn.onnx")
    calib = samples(tmp / "calib", 12)
    art = edgec.compile(model, output=tmp / "cnn.int8.edgec", save_temps=tmp / "temps",
                        quantize=QuantizeOptions(calibration=str(calib)))
    return tmp, model, art


def test_integer_chains_match_onnxruntime_on_the_same_qdq_model(built):
    tmp, _model, art = built
    q = art.manifest["quantization"]
    assert q["quantized_ops"] == 4 and q["integer_chains"] == 4, q  # 3 convs and the Gemm
    kernels = " ".join(art.manifest["kernels"])
    # stem and 1x1 on the int8 conv template, the Gemm on the int8 matmul one, the
    # depthwise conv on the float template reading uint8 (exact integer-valued float32)
    assert kernels.count("edgec_qconv") == 2 and "edgec_qdwconv" in kernels and \
        "edgec_qmatmul" in kernels, kernels
    check_against_qdq(art, _model, tmp / "temps" / "quantized-qdq.onnx", exact=False,
                      seed=7, runs=5)


def test_int8_stays_close_to_float(built):
    _tmp, model, art = built
    x = np.random.default_rng(9).uniform(-1, 1, (1, 3, 17, 19)).astype(np.float32)
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    db = sqnr_db(art.run({"x": x})["y"], ref)
    assert db >= 25.0, f"SQNR {db:.1f} dB"


def test_manifest_and_inspect_record_the_quantisation(built):
    tmp, _model, art = built
    q = art.manifest["quantization"]
    assert q["mode"] == "int8" and q["method"] == "minmax"
    assert q["calibration"] == {"source": str(tmp / "calib"), "kind": "npz", "samples": 12,
                                "random": False}
    assert len(q["scales_sha256"]) == 64 and q["kept_float"] == []
    assert "label" not in q  # real data: not labelled a smoke test
    res = subprocess.run([*EDGEC, "inspect", str(art.path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "int8, minmax calibration on 12 npz sample(s)" in text
    assert "4 run on integer kernels" in text


def test_verify_judges_int8_by_sqnr(built):
    """On data like the calibration's (random normal data, outside its range,
    measured 11 dB here: verify says to give real inputs)."""
    tmp, model, art = built
    x = tmp / "x.npy"
    np.save(x, np.random.default_rng(5).uniform(-1, 1, (1, 3, 17, 19)).astype(np.float32))
    res = subprocess.run([*EDGEC, "verify", str(art.path), "--model", str(model), "--input",
                          f"x={x}", "--repeat", "0", "--json", str(art.path) + ".json"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SQNR" in res.stdout and "reach the SQNR floor" in " ".join(res.stdout.split())
    report = json.loads(Path(str(art.path) + ".json").read_text())
    check = report["outputs"][0]
    assert check["min_sqnr_db"] == 20 and check["sqnr_db"] >= 20, check
    assert report["quantization"]["mode"] == "int8"
    res = subprocess.run([*EDGEC, "verify", str(art.path), "--model", str(model), "--input",
                          f"x={x}", "--repeat", "0", "--min-sqnr", "200"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "below the SQNR floor" in res.stderr


def test_options_change_the_ranges(tmp_path, built):
    """Each calibration option reaches onnxruntime: the scales differ."""
    tmp, model, art = built
    base = art.manifest["quantization"]["scales_sha256"]
    digests = {}
    for name, opts in {"entropy": dict(method="entropy"),
                       "percentile": dict(method="percentile", percentile=99.0),
                       "per-tensor": dict(per_channel=False),
                       "symmetric": dict(symmetric_activations=True),
                       "fewer": dict(samples=3)}.items():
        a = edgec.compile(model, output=tmp_path / f"{name}.edgec", quantize=QuantizeOptions(
            calibration=str(tmp / "calib"), **opts))
        q = a.manifest["quantization"]
        digests[name] = q["scales_sha256"]
        assert q["integer_chains"] == 4, (name, q)
        x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 17, 19)).astype(np.float32)
        ref = ort.InferenceSession(str(model)).run(None, {"x": x})[0]
        assert sqnr_db(a.run({"x": x})["y"], ref) >= 20.0, name
    assert base not in digests.values() and len(set(digests.values())) == len(digests)


def test_keep_float_leaves_the_node_in_float(tmp_path, built):
    tmp, model, _art = built
    a = edgec.compile(model, output=tmp_path / "kf.edgec", quantize=QuantizeOptions(
        calibration=str(tmp / "calib"), keep_float=("pw", "Gemm")))
    q = a.manifest["quantization"]
    assert sorted(q["kept_float"]) == ["head", "pw"] and q["integer_chains"] == 2, q


def test_random_calibration_is_labelled(tmp_path, built):
    _tmp, model, _art = built
    a = edgec.compile(model, output=tmp_path / "r.edgec",
                      quantize=QuantizeOptions(calibration="random"))
    q = a.manifest["quantization"]
    assert q["calibration"]["random"] and "smoke test" in q["label"]
    res = subprocess.run([*EDGEC, "verify", str(a.path), "--model", str(model), "--repeat", "0"],
                         capture_output=True, text=True)
    assert "smoke test" in " ".join(res.stdout.split())


def _refused(tmp_path: Path, model: Path, *args: str) -> str:
    out = tmp_path / "never.edgec"
    res = subprocess.run([*EDGEC, "compile", str(model), "-o", str(out), *args],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert not out.exists()
    return lines[0]


def test_bad_calibration_data_is_one_clear_line(tmp_path, built):
    _tmp, model, _art = built
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no samples found" in _refused(tmp_path, model, "--quantize", "int8",
                                          "--calibration", str(empty))
    wrong = tmp_path / "wrong-name"
    wrong.mkdir()
    np.savez(wrong / "a.npz", image=np.zeros((1, 3, 17, 19), np.float32))
    msg = _refused(tmp_path, model, "--quantize", "int8", "--calibration", str(wrong))
    assert "a.npz" in msg and "no array for input(s) x" in msg and "image" in msg
    shape = tmp_path / "shape"
    shape.mkdir()
    np.savez(shape / "a.npz", x=np.zeros((1, 3, 16, 16), np.float32))
    assert "compiled for 1x3x17x19" in _refused(tmp_path, model, "--quantize", "int8",
                                                "--calibration", str(shape))
    dtype = tmp_path / "dtype"
    dtype.mkdir()
    np.savez(dtype / "a.npz", x=np.zeros((1, 3, 17, 19), np.int64))
    assert "is int64; the model takes float32" in _refused(
        tmp_path, model, "--quantize", "int8", "--calibration", str(dtype))
    nan = tmp_path / "nan"
    nan.mkdir()
    bad = np.zeros((1, 3, 17, 19), np.float32)
    bad[0, 0, 0, :2] = [np.nan, np.inf]
    np.savez(nan / "a.npz", x=bad)
    assert "2 NaN/Inf value(s)" in _refused(tmp_path, model, "--quantize", "int8",
                                           "--calibration", str(nan))


def test_bad_quantisation_options_are_one_clear_line(tmp_path, built):
    tmp, model, _art = built
    msg = _refused(tmp_path, model, "--quantize", "int8", "--calibration", str(tmp / "calib"),
                   "--keep-float", "no_such_node")
    assert "--keep-float no_such_node" in msg and "'stem'" in msg
    assert "needs --calibration" in _refused(tmp_path, model, "--quantize", "int8")
    assert "only apply with --quantize" in _refused(tmp_path, model, "--calibration", "random")
    assert "has no float16 arithmetic" in _refused(tmp_path, model, "--quantize", "fp16",
                                                   "-t", "x86/x86-64-v3")
    assert "no such folder" in _refused(tmp_path, model, "--quantize", "int8", "--calibration",
                                        str(tmp_path / "missing"))


def test_calibration_folder_layouts(tmp_path):
    """.npy per sample, DIR/<input>/*.npy, and images with --preprocess."""
    from PIL import Image

    from edgec.artifact import TensorSpec
    from edgec.quantize import Preprocess

    spec = [TensorSpec("x", (1, 3, 8, 8), "float32")]
    npy = tmp_path / "npy"
    npy.mkdir()
    for i in range(3):
        np.save(npy / f"{i}.npy", np.full((3, 8, 8), i, np.float32))  # batch dim left out
    cal = load_calibration(QuantizeOptions(calibration=str(npy)), spec)
    assert cal.kind == "npy" and [s["x"][0, 0, 0, 0] for s in cal.samples] == [0, 1, 2]
    per = tmp_path / "per"
    for name in ("a", "b"):
        (per / name).mkdir(parents=True)
        for i in range(2):
            np.save(per / name / f"{i}.npy", np.ones((2,), np.float32) * i)
    two = [TensorSpec("a", (2,), "float32"), TensorSpec("b", (2,), "float32")]
    assert len(load_calibration(QuantizeOptions(calibration=str(per)), two).samples) == 2
    img = tmp_path / "img"
    img.mkdir()
    Image.new("RGB", (20, 10), (255, 0, 51)).save(img / "red.png")
    pre = Preprocess.parse(["mean=0.5", "std=0.5", "bgr"])
    cal = load_calibration(QuantizeOptions(calibration=str(img), preprocess=pre), spec)
    x = cal.samples[0]["x"]
    assert x.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(x[0, :, 4, 4], [(51 / 255 - .5) / .5, -1.0, 1.0], atol=1e-6)
    with pytest.raises(UsageError, match="size=4x4: the model is compiled for 8x8"):
        load_calibration(QuantizeOptions(calibration=str(img),
                                         preprocess=Preprocess.parse(["size=4x4"])), spec)


def test_quant_report_keeps_the_most_sensitive_layers_float(tmp_path, built):
    tmp, model, _art = built
    js, png = tmp_path / "r.json", tmp_path / "r.png"
    res = subprocess.run([*EDGEC, "quant-report", str(model), "--calibration", str(tmp / "calib"),
                          "--max-drop", "60", "--json", str(js), "--plot", str(png)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rep = json.loads(js.read_text())
    assert [la["node"] for la in rep["layers"]] == ["stem", "dw", "pw", "head"]
    assert rep["calibration_samples"] == 9 and rep["eval_samples"] == 3  # disjoint split
    def db(v):
        return float(v)  # "inf" when a layer alone changes nothing

    # the most noise per MAC goes first
    first = max(rep["layers"], key=lambda la: 10 ** (-db(la["sensitivity_db"]) / 10)
                / max(la["macs"], 1))["node"]
    assert rep["kept_float"][0] == first
    out_now = rep["outputs"][0]["sqnr_db"]
    out_int8 = rep["outputs_all_int8"][0]["sqnr_db"]
    assert out_now == "inf" or out_now > out_int8
    assert rep["budget_met"] == (out_now == "inf" or out_now >= 60)
    assert png.read_bytes()[:4] == b"\x89PNG"
    res = subprocess.run([*EDGEC, "quant-report", str(model), "--calibration", str(tmp / "calib"),
                          "--eval", str(tmp_path / "missing")], capture_output=True, text=True)
    assert res.returncode == 2 and "--eval" in res.stderr


def test_weights_generated_in_the_graph_are_quantised_as_weights(tmp_path):
    """A conv whose weights come from ConstantOfShape (ONNX's light models):
    folded before calibration, so they get int8 per-channel scales and the
    template, not uint8 activation-style quantisation."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 10, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 10, 10])
    shape = numpy_helper.from_array(np.array([16, 8, 3, 3], np.int64), "wshape")
    nodes = [helper.make_node("ConstantOfShape", ["wshape"], ["w"], name="gen",
                              value=numpy_helper.from_array(np.array([0.05], np.float32))),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [shape]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, tmp_path / "gen.onnx")
    art = edgec.compile(tmp_path / "gen.onnx", output=tmp_path / "gen.edgec",
                        quantize=QuantizeOptions(calibration="random", samples=4))
    assert art.manifest["quantization"]["integer_chains"] == 1
    assert any("edgec_qconv" in k for k in art.manifest["kernels"]), art.manifest["kernels"]


def _int8_convs(art, isa: str) -> list[str]:
    """The artifact's int8 conv kernels for ``isa`` (names end in the ISA, then a
    number when there are several: 'neon' must not match 'neon_dot')."""
    return [k for k in art.manifest["kernels"]
            if re.fullmatch(rf"edgec_qconv2d\w*_{isa}(_nchw\d+c)?\d*", k)]


@pytest.mark.parametrize("target", ["x86/x86-64-v3", "x86/zen3-avx2"])
def test_int8_on_the_avx2_instruction_set(tmp_path, built, target):
    """The vpmaddwd path (AVX2 machines), run here: this CPU has AVX2 too."""
    tmp, model, _art = built
    art = edgec.compile(model, target=target, output=tmp_path / "avx2.edgec",
                        save_temps=tmp_path / "t",
                        quantize=QuantizeOptions(calibration=str(tmp / "calib")))
    assert _int8_convs(art, "avx2"), art.manifest["kernels"]
    check_against_qdq(art, model, tmp_path / "t" / "quantized-qdq.onnx", exact=False, seed=11)


@pytest.mark.cross
@pytest.mark.parametrize("target,isa", [("arm/raspberry-pi-4", "neon"),
                                        ("arm/cortex-a76-dotprod", "neon_dot")])
def test_int8_under_emulated_arm(tmp_path, built, target, isa):
    """NEON widening multiplies (Cortex-A72) and sdot (A76), run under qemu-user."""
    tmp, model, _art = built
    art = edgec.compile(model, target=target, output=tmp_path / "arm.edgec",
                        save_temps=tmp_path / "t",
                        quantize=QuantizeOptions(calibration=str(tmp / "calib")))
    assert _int8_convs(art, isa), art.manifest["kernels"]
    check_against_qdq(art, model, tmp_path / "t" / "quantized-qdq.onnx", exact=False, seed=11,
                      emulate=True)


@pytest.mark.cross
def test_fp16_under_emulated_arm(tmp_path, built):
    """--quantize fp16 on the ARMv8.2 fp16 target: float16 arithmetic, close to float."""
    _tmp, model, _art = built
    art = edgec.compile(model, target="arm/cortex-a76-dotprod", output=tmp_path / "h.edgec",
                        quantize=QuantizeOptions(mode="fp16"))
    assert art.manifest["quantization"]["mode"] == "fp16"
    x = np.random.default_rng(4).uniform(-1, 1, (1, 3, 17, 19)).astype(np.float32)
    ref = ort.InferenceSession(str(model)).run(None, {"x": x})[0]
    got = art.run({"x": x}, emulate=True)["y"]
    db = sqnr_db(got, ref)
    assert 40.0 <= db < 120.0, f"{db:.1f} dB (inf would mean float32 arithmetic)"


def test_bench_adds_int8_rows(tmp_path, built):
    """edgec int8 and onnxruntime int8 (onnxruntime's own quantize_static flow on the
    same calibration data), timed with the fp32 rows, on a calibration sample, each
    with its SQNR against onnxruntime fp32."""
    tmp, model, _art = built
    js = tmp_path / "b.json"
    res = subprocess.run([*EDGEC, "bench", str(model), "--quantize", "int8", "--calibration",
                          str(tmp / "calib"), "--baseline", "onnxruntime", "--budget", "1",
                          "--repeat", "10", "--json", str(js)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    rep = json.loads(js.read_text())
    rows = {(e["engine"], e["precision"]): e for e in rep["engines"]}
    assert set(rows) == {("edgec", "fp32"), ("onnxruntime", "fp32"), ("edgec", "int8"),
                         ("onnxruntime", "int8")}
    assert rep["feeds_from"] == "calibration sample s011.npz"
    for key in (("edgec", "int8"), ("onnxruntime", "int8")):
        assert rows[key]["status"] == "ok" and rows[key]["sqnr_db"] >= 25, rows[key]
        assert rows[key]["stats"]["runs"] >= 5
    # sizes are recorded (on this tiny model the int8 kernels outweigh its weights)
    assert rows[("edgec", "int8")]["artifact_bytes"] > 0 < rows[("edgec", "fp32")]["artifact_bytes"]
    assert "int8" in " ".join(res.stdout.split())



def test_entropy_keeps_probabilities_at_their_full_range():
    """KL thresholds clip a tensor's tail; a Softmax's tail is its answer: PP-OCRv4 rec's
    output was clipped to 0.063 on the rendered-text calibration set and every character
    tied (exact match 93.7% -> 0%). Softmax/Sigmoid outputs and graph outputs get their
    histogram's full range back; one-sided data stays one-sided."""
    from onnxruntime.quantization.calibrate import TensorData, TensorsData

    from edgec.quantize.static import widen_to_full_range

    f32 = np.float32
    hist = np.ones(8, np.int64)
    ranges = TensorsData("Entropy", {
        "probs": TensorData(lowest=f32(0.0), highest=f32(0.063), hist=hist,
                            bins=np.linspace(-1, 1, 9, dtype=f32)),
        "logits": TensorData(lowest=f32(-3.0), highest=f32(3.0), hist=hist,
                             bins=np.linspace(-9, 9, 9, dtype=f32)),
        "hidden": TensorData(lowest=f32(-2.0), highest=f32(2.0), hist=hist,
                             bins=np.linspace(-9, 9, 9, dtype=f32))})
    widen_to_full_range(ranges, {"probs", "logits"})
    assert ranges.data["probs"].range_value == (0.0, 1.0)
    assert tuple(map(float, ranges.data["logits"].range_value)) == (-9.0, 9.0)
    assert tuple(map(float, ranges.data["hidden"].range_value)) == (-2.0, 2.0)

"""Ethos-U targets end to end: compile with the real Vela, run and verify here with the
partitions in their reference form (LiteRT on the int8 TFLite Vela compiled), against
onnxruntime. Calibration is random (placement and Vela's estimates do not depend on
the ranges); accuracy on real data is the int8 issue's (make accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.accel.plugins.ethos_u import patterns
from edgec.quantize.options import QuantizeOptions

MODELS = Path(__file__).resolve().parents[1] / "models"
RANDOM = QuantizeOptions(calibration="random")
pytestmark = pytest.mark.compile


@pytest.fixture(scope="module")
def u55_artifact(tmp_path_factory) -> edgec.Artifact:
    out = tmp_path_factory.mktemp("u55") / "tiny.edgec"
    return edgec.compile(MODELS / "tiny_cnn.onnx", target="ethos-u55-128", output=out,
                         quantize=RANDOM)


def _custom_codes(tflite: bytes) -> list[str]:
    from ethosu.vela.tflite.Model import Model

    m = Model.GetRootAs(tflite, 0)
    return [(m.OperatorCodes(i).CustomCode() or b"").decode()
            for i in range(m.OperatorCodesLength())]


def test_u55_artifact_carries_vela_command_streams_and_the_split(u55_artifact, tmp_path):
    off = u55_artifact.offload
    assert off["plugin"] == "ethos-u" and off["precision"] == "int8"
    assert off["config"] == {"accelerator": "ethos-u55-128",
                             "system_config": "Ethos_U55_High_End_Embedded",
                             "memory_mode": "Shared_Sram", "optimise": "Performance"}
    assert off["versions"] == {"ethos-u-vela": "5.2.0"}
    parts = [s for s in off["steps"] if s["device"] != "cpu"]
    assert parts and all(s["device"].startswith("npu-") for s in parts)
    assert off["summary"]["partitions"] == len(parts)
    assert 0 < off["summary"]["macs_offloaded"] <= off["summary"]["macs"]
    for s in parts:
        assert set(s["files"]) == {"tflite", "vela.tflite"}
        est = s["estimate"]
        assert est["seconds"] > 0
        assert est["label"] == ("Vela 5.2.0 estimate for ethos-u55-128, "
                                "Ethos_U55_High_End_Embedded, Shared_Sram")
        vela = s["record"]["vela"]
        assert vela["ok"] and vela["cycles"] > 0 and all(x["on_npu"] for x in vela["layers"])
    # every compute node is placed; the ones on the CPU say why
    for p in off["placements"]:
        assert p["device"] == "cpu" or p["device"].startswith("npu-")
        assert (p["device"] == "cpu") == bool(p.get("reason"))
    # the command stream is Vela's: one custom 'ethos-u' operator
    import tarfile

    with tarfile.open(u55_artifact.path) as tar:
        stream = tar.extractfile(f"{parts[0]['device']}.vela.tflite").read()
    assert "ethos-u" in _custom_codes(stream)
    assert u55_artifact.manifest["quantization"]["activations"] == "int8 asymmetric"


def test_u55_artifact_verifies_against_onnxruntime(u55_artifact):
    """End to end: SQNR floor against float32; each partition: LiteRT on its TFLite vs
    onnxruntime on its QDQ sub-model, same int8 inputs, at most one step apart."""
    report = edgec.verify(MODELS / "tiny_cnn.onnx", u55_artifact)
    assert report.ok, report.to_json()
    assert report.partitions and {p.partition for p in report.partitions} == {
        s["device"] for s in u55_artifact.offload["steps"] if s["device"] != "cpu"}
    nodes = {s["device"]: s["nodes"] for s in u55_artifact.offload["steps"]}
    for p in report.partitions:
        assert p.ops == len(nodes[p.partition]) > 0  # every op alone, on onnxruntime's inputs
        assert p.op_max_err <= 1 and p.rule == "each op alone: |diff| <= 1 step"
        assert p.max_abs_err <= 1 and p.exact_share >= 0.8  # tiny_cnn's partitions are shallow
        assert p.runs_as.startswith("LiteRT's int8 kernels on the int8 TFLite given to Vela")


def test_run_labels_measured_and_estimated_latency(u55_artifact, cli):
    res = cli("run", u55_artifact.path, "--random", "--repeat", "3")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    i = next(i for i, x in enumerate(lines) if x.startswith("latency: "))
    assert "CPU steps median" in lines[i] and "(measured here)" in lines[i]
    assert lines[i + 1].startswith("  accelerator steps ")
    assert "Vela 5.2.0 estimate for ethos-u55-128" in lines[i + 1]
    assert lines[i + 1].endswith("(an estimate, not a measurement)")
    assert lines[i + 2].startswith("  partitions ran as: LiteRT's int8 kernels on the int8")
    assert lines[i + 2].endswith("(reference form: no Ethos-U here)")


def test_int8_is_required_and_said_so(tmp_path, cli):
    res = cli("compile", MODELS / "tiny_cnn.onnx", "-t", "ethos-u55-128", "-o",
              tmp_path / "x.edgec")
    assert res.code == 2
    assert "target 'npu/ethos-u55-128' offloads int8 graphs only (ethos-u); add --quantize " \
           "int8 --calibration DIR" in res.err
    assert not (tmp_path / "x.edgec").exists()


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256"])
def test_inspect_offload_for_each_ethos_u(cli, target):
    res = cli("inspect", MODELS / "tiny_cnn.onnx", "-t", target, "--offload", "--json")
    assert res.code == 0, res.err
    r = json.loads(res.out)
    s = r["summary"]
    assert s["partitions"] >= 1 and s["estimated_accelerator_seconds"] > 0
    assert s["estimate"].startswith(f"Vela 5.2.0 estimate for {target},")
    assert r["quantization"]["calibration"]["random"] is True
    res = cli("inspect", MODELS / "tiny_cnn.onnx", "-t", target, "--offload")
    assert res.code == 0
    assert "(an estimate, not a measurement)" in res.out
    assert "random ranges: placement and estimates do not depend on them" in res.out


def _stride5_model() -> onnx.ModelProto:
    """conv 3x3 -> relu -> conv 5x5 stride 5 (pads 1,1,2,2: TFLite SAME) -> y."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 8, 5, 5)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["y"], strides=[5, 5],
                              pads=[1, 1, 2, 2], name="conv_s5")]
    g = helper.make_graph(nodes, "s5",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 24, 24])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 5, 5])],
                          [w1, w2])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_what_vela_keeps_on_the_cpu_goes_back_with_velas_reason(tmp_path, monkeypatch):
    """Widen edgec's stride rule so the stride-5 SAME conv reaches Vela: Vela places it on
    the CPU, and the partitioner moves it to edgec's CPU side with Vela's reason."""
    monkeypatch.setattr(patterns, "STRIDE_RANGE", (1, 8))
    model = tmp_path / "s5.onnx"
    onnx.save(_stride5_model(), model)
    report = edgec.offload_report(model, "ethos-u55-128", quantize=RANDOM)
    placed = {p["node"]: p for p in report["placements"]}
    assert placed["conv1"]["device"] == "npu-0"
    assert placed["conv_s5"]["device"] == "cpu"
    assert placed["conv_s5"]["reason"].startswith("Conv: Vela places it on the CPU (")
    assert "stride" in placed["conv_s5"]["reason"].lower()
    assert report["rounds"] == 2
    art = edgec.compile(model, target="ethos-u55-128", output=tmp_path / "s5.edgec",
                        quantize=RANDOM)
    assert edgec.verify(model, art).ok


def test_the_stride_rule_itself_names_the_op(tmp_path):
    model = tmp_path / "s5.onnx"
    onnx.save(_stride5_model(), model)
    report = edgec.offload_report(model, "ethos-u55-128", quantize=RANDOM)
    placed = {p["node"]: p for p in report["placements"]}
    assert placed["conv_s5"]["reason"] == "Conv: stride 5x5 outside Vela's range 1..3"
    assert report["rounds"] == 1


def test_a_wrong_reference_form_fails_verify(u55_artifact, monkeypatch):
    """The op-by-op check can fail: a reference form one step further off than allowed
    on one element is caught and named."""
    from edgec.accel.plugins import ethos_u

    real = ethos_u.EthosUPlugin.reference

    def off_by_two(self, model, workdir, config):
        run = real(self, model, workdir, config)

        def wrong(feeds):
            out = run(feeds)
            for v in out.values():
                v.flat[0] = np.int8(np.clip(int(v.flat[0]) + 2 if v.flat[0] < 0 else
                                            int(v.flat[0]) - 2, -128, 127))
            return out
        return wrong

    monkeypatch.setattr(ethos_u.EthosUPlugin, "reference", off_by_two)
    report = edgec.verify(MODELS / "tiny_cnn.onnx", u55_artifact)
    assert not report.ok and all(not p.ok and p.op_max_err == 2 for p in report.partitions)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "shapes", "whole"), [
    # on random inputs the light ShuffleNet's float output is a flat 0.001 per class,
    # which the int8 softmax output (scale 1/255) rounds to 0: only its partitions count
    ("light_shufflenet", {}, False),
    ("ch_ppocr_mobile_v2.0_cls_infer", {"x": (1, 3, 48, 192)}, True),
])
def test_real_models_split_and_verify(tmp_path, name, shapes, whole):
    """Real CNNs on the U55: nearly all MACs on the NPU (grouped convs, padded strided
    convs, hard-swish), every op of every partition within one step of onnxruntime
    on the same inputs and, where the output says anything on random inputs, the
    model within the int8 SQNR floor of float32 (a smoke test, not accuracy)."""
    model = MODELS / "real" / f"{name}.onnx"
    if not model.exists():
        pytest.skip(f"{model} not fetched (make models)")
    art = edgec.compile(model, target="ethos-u55-128", output=tmp_path / "m.edgec",
                        quantize=RANDOM, input_shapes=shapes)
    assert art.offload["summary"]["macs_share_offloaded"] >= 0.99, art.offload["summary"]
    report = edgec.verify(model, art)
    assert report.partitions and all(p.ok and p.ops > 0 and p.op_max_err <= 1
                                     for p in report.partitions), report.to_json()
    if whole:
        assert report.ok, report.to_json()


def test_a_partition_vela_fails_on_stays_on_the_cpu_with_the_error(tmp_path, monkeypatch):
    """Vela failing outright (a crash, a timeout) is no compile failure: the partition's
    ops go to the CPU with Vela's one-line error, and the artifact still verifies."""
    from types import SimpleNamespace

    from edgec.accel.plugins import ethos_u

    monkeypatch.setattr(ethos_u, "compile_tflite", lambda *a, **k: SimpleNamespace(
        ok=False, error="Vela crashed (SIGSEGV)"))
    model = MODELS / "tiny_cnn.onnx"
    art = edgec.compile(model, target="ethos-u55-128", output=tmp_path / "t.edgec",
                        quantize=RANDOM)
    off = art.offload
    assert off["summary"]["partitions"] == 0 and off["summary"]["macs_offloaded"] == 0
    assert off["notes"] and "ethos-u compiler failed on this partition: Vela crashed " \
        "(SIGSEGV)" in off["notes"][0]
    assert all(p["device"] == "cpu" for p in off["placements"])
    assert any("Vela crashed (SIGSEGV)" in p["reason"] for p in off["placements"])
    assert edgec.verify(model, art).ok

"""Accelerator offload, plugin-independent: the partitioner, plugin discovery, target
files with an [accelerator] table, and a second plugin (tests/plugins/c_conv: float32
Conv partitions as generated C) that plugs in from outside edgec, through
EDGEC_PLUGIN_PATH and EDGEC_TARGET_PATH, with no change to edgec's code."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.accel import registry
from edgec.accel.graph import GraphView
from edgec.accel.partition import CPU, split
from edgec.accel.plugin import AcceleratorPlugin
from edgec.errors import UsageError
from edgec.target_registry import parse_target_file, resolve_target

PLUGINS = Path(__file__).resolve().parent / "plugins"
MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture
def c_conv(monkeypatch):
    """The c-conv plugin and its target file, found the way a vendor's would be."""
    monkeypatch.setenv("EDGEC_PLUGIN_PATH", str(PLUGINS))
    monkeypatch.setenv("EDGEC_TARGET_PATH", str(PLUGINS / "targets"))
    return "test/c-conv"


def _branchy_model(seed: int = 0) -> onnx.ModelProto:
    """Convs, a residual Add, a Concat and a pool: enough structure for a split to cut
    across branches (a wrong cut changes the result or fails to run)."""
    rng = np.random.default_rng(seed)

    def w(name, shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32),
                                       name)

    inits = [w("w1", (8, 3, 3, 3)), w("w2", (8, 8, 3, 3)), w("w3", (8, 8, 1, 1)),
             w("w4", (4, 16, 3, 3)), w("b4", (4,))]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Conv", ["r1", "w3"], ["c3"], name="conv3"),
        helper.make_node("Add", ["c2", "c3"], ["a"], name="add"),
        helper.make_node("Sigmoid", ["a"], ["s"], name="sigmoid"),
        helper.make_node("Concat", ["s", "r1"], ["cat"], axis=1, name="concat"),
        helper.make_node("Conv", ["cat", "w4", "b4"], ["c4"], strides=[2, 2],
                         pads=[1, 1, 1, 1], name="conv4"),
        helper.make_node("MaxPool", ["c4"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool"),
    ]
    g = helper.make_graph(nodes, "branchy",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return onnx.shape_inference.infer_shapes(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


class _Subset(AcceleratorPlugin):
    """A plugin taking exactly the given nodes (by name), for splitting only."""

    name, precision = "subset", "float32"

    def __init__(self, nodes: set[str]):
        self.nodes = nodes

    def check(self, node, graph, config):
        return None if node.name in self.nodes else f"{node.op_type}: not in the subset"


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    """Unoptimised: every node computed alone, so fused and cut graphs round alike."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _run_split(s, feeds):
    env = dict(feeds)
    for step in s.steps:
        sess = _session(step.model)
        names = [o.name for o in sess.get_outputs()]
        env.update(zip(names, sess.run(names, {i.name: env[i.name]
                                              for i in sess.get_inputs()}), strict=True))
    return env


@pytest.mark.parametrize("seed", range(12))
def test_any_split_runs_step_by_step_to_the_models_result(tmp_path, seed):
    """Whatever subset the device takes, the steps (each its own ONNX model, run in
    order) compute exactly what the whole model does, and every node runs once."""
    model = _branchy_model()
    names = [n.name for n in model.graph.node]
    rng = np.random.default_rng(seed)
    chosen = {n for n in names if rng.random() < 0.5}
    s = split(model, _Subset(chosen), {}, tmp_path, compile_partitions=False)
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    want = _session(model).run(["y"], {"x": x})[0]
    got = _run_split(s, {"x": x})["y"]
    np.testing.assert_array_equal(got, want)
    placed = [n for st in s.steps for n in st.nodes]
    assert sorted(placed) == sorted(names)
    for st in s.steps:  # each step is all on one side, and sides alternate
        assert all((n in chosen) == (st.device != CPU) for n in st.nodes)
    sides = [st.device == CPU for st in s.steps]
    assert all(a != b for a, b in itertools.pairwise(sides))
    assert {p.node for p in s.placements if p.device == CPU} == set(names) - chosen
    assert all(p.reason.endswith("not in the subset") for p in s.placements
               if p.device == CPU)


class _Int8Subset(_Subset):
    name, precision = "subset8", "int8"


def _quantised(model: onnx.ModelProto, tmp_path: Path) -> onnx.ModelProto:
    """``model`` as accelerators get it: every tensor int8 (onnxruntime's QDQ)."""
    from edgec.quantize.calibration import Calibration
    from edgec.quantize.static import quantize_int8

    rng = np.random.default_rng(0)
    cal = Calibration([{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)}
                       for _ in range(4)], "random", "random", [])
    q, _ = quantize_int8(model, edgec.QuantizeOptions(calibration="random"), cal,
                         source="branchy", scheme="onnxruntime", activations="int8")
    return q


@pytest.mark.parametrize("seed", range(12))
def test_any_int8_split_keeps_integer_edges_and_the_result(tmp_path, seed):
    """In a QDQ graph every partition's edge is an integer tensor (each node takes its
    dequantisation and quantisation along), and the steps still compute exactly
    what the whole quantised model does."""
    q = _quantised(_branchy_model(), tmp_path)
    names = [n.name for n in q.graph.node  # onnxruntime folded relu1 into conv1's range
             if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    rng = np.random.default_rng(100 + seed)
    chosen = {n for n in names if rng.random() < 0.5}
    s = split(q, _Int8Subset(chosen), {}, tmp_path, compile_partitions=False)
    for st in s.partitions:
        g = GraphView(st.model)
        for t in (*g.inputs, *g.outputs):
            assert g.dtype(t) == np.int8, (st.device, t, g.dtype(t))
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    want = _session(q).run(["y"], {"x": x})[0]
    np.testing.assert_array_equal(_run_split(s, {"x": x})["y"], want)
    assert {p.node for p in s.placements if p.device != CPU} == chosen


def test_graph_view_reads_qdq_parameters():
    x = helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4])
    y = helper.make_tensor_value_info("q", TensorProto.INT8, [1, 4])
    inits = [numpy_helper.from_array(np.array(0.5, np.float32), "s"),
             numpy_helper.from_array(np.array(3, np.int8), "z")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["f"]),
             helper.make_node("Relu", ["f"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "s", "z"], ["q"])]
    g = GraphView(helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits)))
    dq = g.dequantized("f")
    assert dq.tensor == "x" and float(dq.scale) == 0.5 and int(dq.zero_point) == 3
    assert dq.dtype == np.int8 and not dq.per_channel
    q = g.quantized("r")
    assert q.tensor == "q" and g.quantized("f") is None  # f feeds Relu, not a Q
    assert g.shape("f") == (1, 4) and g.dtype("x") == np.int8


def test_second_plugin_plugs_in_without_edgec_changes(c_conv, tmp_path, cli):
    """The c-conv plugin (outside edgec) takes the group-1 Convs, generated C runs them,
    and the artifact matches onnxruntime; the depthwise Conv stays on the CPU with the
    plugin's reason."""
    assert "c-conv" in registry.available()
    target = resolve_target(c_conv)
    assert target.accelerator == {"plugin": "c-conv", "cc": "gcc"}
    assert target.cpu_target.startswith("host (")
    art = edgec.compile(MODELS / "tiny_cnn.onnx", target=c_conv, output=tmp_path / "t.edgec")
    off = art.offload
    assert off["plugin"] == "c-conv"
    placed = {p["node"]: p for p in off["placements"]}
    assert placed["/conv1/Conv"]["device"].startswith("acc-")
    assert placed["/conv2/Conv"]["device"].startswith("acc-")
    assert placed["/dw/Conv"]["device"] == "cpu"
    assert placed["/dw/Conv"]["reason"] == "Conv: groups=16 unsupported (only 1)"
    assert off["summary"]["macs_offloaded"] == placed["/conv1/Conv"]["macs"] + \
        placed["/conv2/Conv"]["macs"] > 0
    members = set(art.manifest["members"])
    assert {"acc-0.c", "acc-0.so", "acc-0.onnx"} <= members and "model.so" not in members
    report = edgec.verify(MODELS / "tiny_cnn.onnx", art)
    assert report.ok, report.to_json()
    assert [p.partition for p in report.partitions] == ["acc-0", "acc-1"]
    assert all(p.runs_as.startswith("generated C") for p in report.partitions)
    assert all(p.ops == 0 and p.rule == "whole partition within float tolerances"
               for p in report.partitions)  # c-conv has no reference form for single ops
    res = cli("run", tmp_path / "t.edgec", "--random", "--repeat", "3")
    assert res.code == 0, res.err
    assert "CPU and accelerator steps median" in res.out  # generated C is the device: timed
    res = cli("inspect", tmp_path / "t.edgec")
    assert res.code == 0 and "ops left on the CPU, and why:" in res.out
    assert "/dw/Conv: Conv: groups=16 unsupported (only 1)" in res.out


def test_inspect_offload_reports_the_split(c_conv, tmp_path, cli):
    chart = tmp_path / "split.png"
    res = cli("inspect", MODELS / "tiny_cnn.onnx", "-t", c_conv, "--offload", "--json",
              "--chart", chart)
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert report["summary"]["partitions"] == 2 and report["summary"]["nodes_offloaded"] == 2
    assert [s["device"] for s in report["steps"]] == ["acc-0", "cpu", "acc-1", "cpu"]
    assert chart.stat().st_size > 1000 and chart.read_bytes()[:4] == b"\x89PNG"
    res = cli("inspect", MODELS / "tiny_cnn.onnx", "-t", c_conv)
    assert res.code == 2 and "-t: only with --offload" in res.err
    res = cli("inspect", MODELS / "tiny_cnn.onnx", "--offload")
    assert res.code == 2 and "--offload needs -t TARGET" in res.err
    res = cli("inspect", MODELS / "tiny_cnn.onnx", "-t", "host", "--offload")
    assert res.code == 2 and "has no accelerator" in res.err


def test_commands_that_cannot_take_an_offload_artifact_say_so(c_conv, tmp_path, cli):
    out = tmp_path / "t.edgec"
    edgec.compile(MODELS / "tiny_cnn.onnx", target=c_conv, output=out)
    for args in (("profile", out), ("bundle", out, "-o", tmp_path / "b")):
        res = cli(*args)
        assert res.code == 4, (args, res.err)
        assert "does not take accelerator artifacts yet" in res.err
        assert "\n" not in res.err.strip() and "Traceback" not in res.err
    res = cli("bench", MODELS / "tiny_cnn.onnx", "-t", c_conv)
    assert res.code == 4 and "cannot be timed on this machine" in res.err


def _target_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "npu" / "x.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_target_files_with_an_accelerator_are_checked(tmp_path):
    ok = _target_file(tmp_path, 'description = "d"\ncpu = "host"\n'
                                '[accelerator]\nplugin = "ethos-u"\n')
    t = parse_target_file(ok, "npu/x")
    assert t.accelerator == {"plugin": "ethos-u"} and not t.resolved
    both = _target_file(tmp_path, 'description = "d"\ncpu = "host"\n[tvm]\nkind = "llvm"\n'
                                  '[accelerator]\nplugin = "ethos-u"\n')
    with pytest.raises(UsageError, match=r"x\.toml: \[tvm\] comes from the CPU target"):
        parse_target_file(both, "npu/x")
    no_table = _target_file(tmp_path, 'description = "d"\ncpu = "host"\n')
    with pytest.raises(UsageError, match="it needs an \\[accelerator\\] table"):
        parse_target_file(no_table, "npu/x")
    no_plugin = _target_file(tmp_path, 'description = "d"\ncpu = "host"\n[accelerator]\n')
    with pytest.raises(UsageError, match="with 'plugin'"):
        parse_target_file(no_plugin, "npu/x")


@pytest.mark.parametrize(("plugin", "message"), [
    ("tensorrt", "accelerator 'tensorrt' is not supported: TVM 0.27's wheel ships its "
                 "pattern table but no codegen"),
    ("nnapi", "accelerator 'nnapi' is not supported"),
    ("coreml", "accelerator 'coreml' is not supported"),
    ("clml", "accelerator 'clml' is not supported"),
    ("acme-npu", "no accelerator plugin 'acme-npu'"),
])
def test_accelerators_without_a_codegen_are_refused(tmp_path, monkeypatch, cli, plugin,
                                                    message):
    path = _target_file(tmp_path, f'description = "d"\ncpu = "host"\n'
                                  f'[accelerator]\nplugin = "{plugin}"\n')
    monkeypatch.setenv("EDGEC_TARGET_PATH", str(tmp_path))
    res = cli("compile", MODELS / "tiny_cnn.onnx", "-t", "npu/x", "-o", tmp_path / "o.edgec")
    assert res.code == 2, res.err
    assert message in res.err and str(path) in res.err
    assert not (tmp_path / "o.edgec").exists()


def test_a_plugin_key_the_plugin_does_not_read_is_an_error(c_conv, tmp_path, monkeypatch,
                                                           cli):
    path = _target_file(tmp_path, 'description = "d"\ncpu = "host"\n'
                                  '[accelerator]\nplugin = "c-conv"\nopt = 3\n')
    monkeypatch.setenv("EDGEC_TARGET_PATH", str(tmp_path))
    res = cli("compile", MODELS / "tiny_cnn.onnx", "-t", "npu/x", "-o", tmp_path / "o.edgec")
    assert res.code == 2
    assert f"{path}: [accelerator] key(s) ['opt'] are not read by the 'c-conv' plugin" in res.err


def _with_manifest(src: Path, dst: Path, edit) -> Path:
    """A copy of artifact ``src`` whose manifest ``edit`` changed (members untouched)."""
    import io
    import tarfile

    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            if m.name == "manifest.json":
                manifest = json.loads(data)
                edit(manifest)
                data = json.dumps(manifest).encode()
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data))
    return dst


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["offload"]["steps"][1].update(library="nope.so"),
     "manifest offload.steps[1] names 'nope.so', which is not a member"),
    (lambda m: m["offload"]["steps"][1]["inputs"][0].update(name="ghost"),
     "manifest offload.steps[1].inputs[0] reads 'ghost', which no earlier step writes"),
    (lambda m: m["offload"].update(steps=[]), "manifest offload.steps is empty"),
    (lambda m: m["offload"]["steps"][0].pop("files"), "manifest offload.steps[0] has no 'files'"),
    (lambda m: m["offload"]["steps"].pop(), "manifest outputs[0] 'probs' is written by no step"),
])
def test_a_tampered_offload_manifest_is_refused(c_conv, tmp_path, cli, edit, message):
    good = tmp_path / "t.edgec"
    edgec.compile(MODELS / "tiny_cnn.onnx", target=c_conv, output=good)
    bad = _with_manifest(good, tmp_path / "bad.edgec", edit)
    res = cli("run", bad, "--random")
    assert res.code == 7, res.err
    assert message in res.err and "Traceback" not in res.err


def test_a_plugin_that_does_not_import_is_named(tmp_path, monkeypatch, cli):
    broken = tmp_path / "plugins" / "broken"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("import no_such_module_anywhere\n")
    monkeypatch.setenv("EDGEC_PLUGIN_PATH", str(tmp_path / "plugins"))
    res = cli("compile", MODELS / "tiny_cnn.onnx", "-t", "ethos-u55-128", "--quantize", "int8",
              "--calibration", "random", "-o", tmp_path / "o.edgec")
    assert res.code == 2, res.err
    assert f"{broken}: the accelerator plugin does not import (ModuleNotFoundError" in res.err
    assert "Traceback" not in res.err and not (tmp_path / "o.edgec").exists()

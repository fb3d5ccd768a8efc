"""edgec profile: per-kernel times from the VM instrument, provenance from the manifest.

The kernels the VM really calls are found independently (a bare instrument
that only records symbols), so a profile that drops, renames or miscounts
a kernel fails here; provenance is checked against the ONNX graph that
--save-temps shows TVM imported.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import REPO, save
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.artifact import LIBRARY, MANIFEST, write_artifact
from edgec.errors import EXIT_UNSUPPORTED
from edgec.runtime.profiler import COVERAGE_TOLERANCE, profile
from edgec.tensors import random_inputs

pytestmark = pytest.mark.compile


def _feeds(art) -> dict[str, np.ndarray]:
    return random_inputs(art.inputs, seed=0, int_bounds=art.input_bounds)


def _vm_calls(art, feeds) -> Counter:
    """Symbol -> calls in one run, seen by an instrument that only records."""
    session = art.session()
    seen: Counter = Counter()

    def spy(func, symbol, before, ret, *args):
        if before:
            seen[str(symbol)] += 1
        return 0

    session.vm.set_instrument(spy)
    try:
        session.run(feeds)
    finally:
        session.vm.set_instrument(None)
    return seen


def _imported_graph(temps: Path) -> onnx.ModelProto:
    """The model after edgec's passes, i.e. what TVM imported: the last NN-*.onnx."""
    return onnx.load(str(sorted(temps.glob("[0-9][0-9]-*.onnx"))[-1]))


@pytest.fixture(scope="module")
def tiny_cnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-cnn")
    art = edgec.compile(REPO / "models" / "tiny_cnn.onnx", target="host",
                        output=folder / "cnn.edgec", save_temps=folder / "temps")
    return art, folder / "temps"


def test_profile_lists_every_kernel_the_vm_calls(tiny_cnn):
    art, _ = tiny_cnn
    feeds = _feeds(art)
    called = _vm_calls(art, feeds)
    prof = profile(art.session(), feeds, repeat=5)
    rows = {r.name: r for r in prof.rows}
    assert {n: r.calls for n, r in rows.items()} == dict(called)
    kernels = [n for n in called if not n.startswith("vm.")]
    assert len(kernels) >= 5 and all(rows[n].kind == "kernel" for n in kernels)
    # The names the compiler recorded are the names the VM calls.
    assert set(kernels) == set(art.manifest["kernels"])
    assert all(r.ms > 0 for r in prof.rows)
    assert prof.rows == sorted(prof.rows, key=lambda r: -r.ms)
    assert prof.calls_per_run == sum(called.values())
    shares = [k["share"] for k in prof.to_json()["kernels"]]
    assert sum(shares) == pytest.approx(1.0, abs=0.01)
    # Still a normal VM afterwards: the instrument is removed.
    assert _vm_calls(art, feeds) == called


def test_provenance_names_the_imported_onnx_nodes(tiny_cnn):
    art, temps = tiny_cnn
    graph = _imported_graph(temps).graph
    op_of = {n.name: n.op_type for n in graph.node}
    kernels = art.manifest["kernels"]
    for name, entry in kernels.items():
        assert entry["onnx_nodes"], f"{name} has no nodes"
        assert [op_of[n] for n in entry["onnx_nodes"]] == entry["ops"], name
    convs = {name: e for name, e in kernels.items() if "conv2d" in name}
    assert len(convs) == 3
    assert all(e["ops"] == ["Conv", "Relu"] for e in convs.values()), convs
    named = {n for e in convs.values() for n in e["onnx_nodes"]}
    assert {"/conv2/Conv", "/dw/Conv", "/relu1/Relu", "/relu2/Relu", "/relu3/Relu"} <= named
    # Every Conv TVM imported is in exactly one kernel.
    conv_nodes = sorted(n.name for n in graph.node if n.op_type == "Conv")
    assert sorted(n for e in convs.values() for n in e["onnx_nodes"]
                  if op_of[n] == "Conv") == conv_nodes
    # /bn1 was folded into /conv1/Conv: the node keeps the model's name and the
    # manifest says which rule rewrote it.
    (fused,) = [e for e in convs.values() if "rewritten_by" in e]
    assert fused["rewritten_by"] == {"/conv1/Conv": "FuseBatchNormIntoConv"}
    assert "/conv1/Conv" in fused["onnx_nodes"]
    assert kernels["max_pool2d"]["onnx_nodes"] == ["/pool/MaxPool"]
    # relax-before.py names each binding after its node, for humans.
    assert "onnx0_Conv" in (temps / "relax-before.py").read_text()


def test_lstm_kernels_shared_by_time_steps_name_every_step(tmp_path):
    """FuseOps reuses one fused function for identical time steps: each call
    site's nodes are recorded, not only the first one's."""
    art = edgec.compile(REPO / "models" / "tiny_lstm.onnx", target="host",
                        output=tmp_path / "lstm.edgec")
    feeds = _feeds(art)
    called = _vm_calls(art, feeds)
    prof = profile(art.session(), feeds, repeat=3)
    rows = {r.name: r for r in prof.rows}
    assert {n: r.calls for n, r in rows.items()} == dict(called)
    shared = 0
    for row in prof.rows:
        if row.kind != "kernel":
            continue
        assert row.onnx_nodes, row.name
        steps = {m.group(1) for n in row.onnx_nodes if (m := re.search(r"/t(\d+)/", n))}
        if steps:
            assert len(steps) == row.calls, (row.name, row.calls, sorted(steps))
            shared += row.calls > 1
    assert shared >= 2


def test_kernel_times_account_for_every_call(tmp_path):
    """The breakdown's arithmetic, on three 256x512x512 MatMul+Relu kernels: the
    rows add up to the per-run sum the coverage is computed from, every call of
    a run is a row's call, and the warning appears exactly when the coverage
    check fails. How close the coverage comes to 1 is a measurement (it moves
    with the machine's load), so it is printed here, never asserted: speed and
    timing ratios belong in benchmarks."""
    rng = np.random.default_rng(0)
    nodes, inits, last = [], [], "x"
    for i in range(3):
        w = (rng.standard_normal((512, 512)) * 0.05).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"W{i}"))
        nodes += [helper.make_node("MatMul", [last, f"W{i}"], [f"m{i}"], name=f"/fc{i}/MatMul"),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}"], name=f"/relu{i}/Relu")]
        last = f"r{i}"
    graph = helper.make_graph(
        nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 512])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, [256, 512])], inits)
    model = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                   ir_version=8), tmp_path / "mm.onnx")
    art = edgec.compile(model, target="host", output=tmp_path / "mm.edgec")
    out = tmp_path / "prof.json"
    res = subprocess.run([sys.executable, "-m", "edgec", "profile", str(art.path), "--repeat",
                          "20", "--json", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    print(f"coverage {data['coverage']} (measured, not asserted)")
    rows = data["kernels"]
    # rows are per-run means and kernel_sum the per-run sums of the same runs
    assert sum(r["ms"] for r in rows) == pytest.approx(data["kernel_sum"]["mean_ms"],
                                                       rel=1e-3, abs=len(rows) * 1e-4)
    assert sum(r["calls"] for r in rows) == data["calls_per_run"]
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=len(rows) * 1e-4)
    matmuls = [r for r in rows if r["kind"] == "kernel" and r["ops"] and "MatMul" in r["ops"]]
    assert sorted(n for r in matmuls for n in r["onnx_nodes"] if n.endswith("MatMul")) == [
        "/fc0/MatMul", "/fc1/MatMul", "/fc2/MatMul"]
    assert data["coverage"] == pytest.approx(data["kernel_sum"]["median_ms"]
                                             / data["latency"]["median_ms"], abs=2e-3)
    assert data["coverage_ok"] == (abs(data["coverage"] - 1) <= COVERAGE_TOLERANCE)
    assert ("outside" in res.stderr) == (not data["coverage_ok"])  # warned exactly then


def test_failed_coverage_check_is_reported(conv_artifact, tmp_path):
    _, path = conv_artifact
    art = edgec.load(path)
    prof = profile(art.session(), _feeds(art), repeat=5)
    print(f"conv 16x16: coverage {prof.coverage:.3f}, overhead {prof.overhead}")
    data = prof.to_json()
    assert data["coverage"] == pytest.approx(prof.coverage, abs=1e-3)
    assert data["coverage_tolerance"] == COVERAGE_TOLERANCE
    assert data["coverage_ok"] == (abs(prof.coverage - 1) <= COVERAGE_TOLERANCE)
    # Force the failing case: it must show up in warning() and in the JSON.
    prof.latency = type(prof.latency).from_seconds([prof.kernel_sum.median_ms / 1e3 / 2])
    assert not prof.coverage_ok and prof.to_json()["coverage_ok"] is False
    warning = prof.warning()
    assert warning and str(path) in warning and "200%" in warning


def test_trace_is_chrome_trace_event_format(tiny_cnn):
    art, _ = tiny_cnn
    prof = profile(art.session(), _feeds(art), repeat=2)
    trace = json.loads(json.dumps(prof.trace()))
    events = trace["traceEvents"]
    meta = {e["name"] for e in events if e["ph"] == "M"}
    assert {"process_name", "thread_name"} <= meta
    (run,) = [e for e in events if e["ph"] == "X" and e["cat"] == "run"]
    calls = [e for e in events if e["ph"] == "X" and e["cat"] != "run"]
    assert len(calls) == prof.calls_per_run
    for e in calls:
        assert isinstance(e["ts"], float | int) and isinstance(e["dur"], float | int)
        assert e["ts"] >= 0 and e["dur"] >= 0 and e["pid"] == run["pid"] and e["tid"] == run["tid"]
        assert e["ts"] + e["dur"] <= run["dur"] + 1e-3
    assert [e["ts"] for e in calls] == sorted(e["ts"] for e in calls)
    kernels = {r.name for r in prof.rows if r.kind == "kernel"}
    assert {e["name"] for e in calls if e["cat"] == "kernel"} == kernels
    conv = next(e for e in calls if "/conv2/Conv" in e.get("args", {}).get("onnx_nodes", []))
    assert conv["args"]["onnx_nodes"] == ["/conv2/Conv", "/relu2/Relu"]
    assert conv["name"].startswith("edgec_conv2d_bias_relu")  # edgec's own kernel


def test_cli_profile_prints_table_and_writes_files(cli, tiny_cnn, tmp_path):
    art, _ = tiny_cnn
    trace, out = tmp_path / "t" / "trace.json", tmp_path / "prof.json"
    res = cli("profile", art.path, "--repeat", "3", "--trace", trace, "--json", out)
    assert res.code == 0, res.err
    assert "µs/call" in res.out and "ONNX nodes" in res.out
    assert "edgec_conv2d_bias_relu" in res.out and "/conv2/Conv" in res.out
    assert "VM builtins" in res.out and "latency (no instrumentation): median" in res.out
    data = json.loads(out.read_text())
    assert data["provenance"] == "manifest" and data["latency"]["runs"] == 3
    assert ("FAILED" in res.out) == (not data["coverage_ok"]) == ("warning" in res.err)
    assert json.loads(trace.read_text())["traceEvents"]
    assert not list(tmp_path.glob("**/.*.tmp"))  # atomic writes leave nothing behind


def test_artifact_without_provenance_still_profiles(cli, conv_artifact, tmp_path):
    """Artifacts compiled before the manifest had 'kernels' show nodes as unknown."""
    _, path = conv_artifact
    with tarfile.open(path) as t:
        manifest = json.load(t.extractfile(MANIFEST))
        (tmp_path / LIBRARY).write_bytes(t.extractfile(LIBRARY).read())
    assert manifest.pop("kernels")
    old = tmp_path / "old.edgec"
    write_artifact(old, manifest, {LIBRARY: tmp_path / LIBRARY})
    with tarfile.open(old) as t:
        assert "kernels" not in json.load(io.BytesIO(t.extractfile(MANIFEST).read()))
    out = tmp_path / "p.json"
    res = cli("profile", old, "--repeat", "2", "--json", out)
    assert res.code == 0, res.err
    assert "unknown" in res.out and "recompile" in res.out
    data = json.loads(out.read_text())
    assert data["provenance"] == "unknown"
    kernels = [k for k in data["kernels"] if k["kind"] == "kernel"]
    assert kernels and all(k["onnx_nodes"] is None for k in kernels)


@pytest.mark.cross
def test_arm_artifact_is_refused_like_run(cli, conv_onnx, tmp_path):
    art = tmp_path / "arm.edgec"
    assert cli("compile", conv_onnx, "-t", "arm", "-o", art).code == 0
    res = cli("profile", art, "--trace", tmp_path / "t.json")
    assert res.code == EXIT_UNSUPPORTED, res.err
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgec: error: ") and str(art) in lines[0]
    assert "cannot run here" in lines[0] and "Traceback" not in res.err
    assert not (tmp_path / "t.json").exists()

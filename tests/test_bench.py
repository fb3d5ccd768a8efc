"""The benchmark machinery: runs on a small model, its report has the documented
fields with plausible values, TFLite layouts map back, failures become rows.
Timings themselves are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from edgec.artifact import TensorSpec
from edgec.baselines import tflite, tflite_venv
from edgec.bench import BenchOptions, run_bench
from edgec.bench.render import geomean, markdown_table, plot, ratio_to_best_peer
from edgec.errors import EXIT_UNSUPPORTED

TINY = REPO / "models" / "tiny_cnn.onnx"
QUICK = {"warmup": 1, "repeat": 6, "budget_s": 0.5}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    """One real bench: an empty cache, so TFLite converts for real, with the converter
    venv that make setup built (it lives in the real cache)."""
    with pytest.MonkeyPatch.context() as mp:
        py = tflite.converter_python()
        if py is not None:
            mp.setenv(tflite_venv.PYTHON_ENV, str(py))
        mp.setenv("EDGEC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield run_bench(TINY, BenchOptions(threads=2, **QUICK))


def stats_are_plausible(s: dict) -> None:
    assert 6 >= s["runs"] >= 5
    assert 0 < s["min_ms"] <= s["median_ms"] <= s["p90_ms"] <= s["p99_ms"]
    assert s["mean_ms"] > 0 and s["stdev_ms"] >= 0


@pytest.mark.compile
def test_report_fields(tiny_report):
    d = json.loads(json.dumps(tiny_report.to_json()))  # JSON-clean
    assert d["format"] == "edgec-bench" and d["threads"] == 2
    assert d["flops"] == 2 * 553_120 and d["flops_complete"]  # 552,960 conv + 160 gemm MACs
    assert d["machine"]["cores"] >= 1 and d["machine"]["cpu"]
    assert {"edgec", "apache-tvm", "onnxruntime", "tflite"} <= set(d["versions"])
    engines = {e["engine"]: e for e in d["engines"]}
    assert list(engines) == ["edgec", "onnxruntime", "tflite"]
    for name, e in engines.items():
        assert e["status"] == "ok", (name, e["reason"])
        stats_are_plausible(e["stats"])
        assert e["gflops_per_s"] == pytest.approx(
            d["flops"] / (e["stats"]["median_ms"] * 1e-3) / 1e9, rel=1e-2)
        assert e["threads"] >= 1
    assert engines["onnxruntime"]["max_abs_err"] == 0
    for name in ("edgec", "tflite"):
        assert engines[name]["within_tolerance"], engines[name]
        assert 0 <= engines[name]["max_abs_err"] < 1e-4
    assert engines["edgec"]["prepare_s"] > 0 and engines["tflite"]["prepare_s"] > 0


def test_tflite_converter_is_installed():
    """make setup builds the converter venv; tests never build it, so without it the
    TFLite rows here could only fail."""
    assert tflite.converter_python() is not None, \
        f"run 'make setup' (builds the TFLite converter venv in {tflite_venv.venv_dir()})"


FAKE_PYTHON = "#!/bin/sh\necho 1.29.24 2.19.0\n"  # answers the version query, nothing else


def _make_fake_venv(staging, final):
    """A build step: the venv's python appears in the temp folder, never at the final path."""
    code = ("import os, sys; staging, final = sys.argv[1:]\n"
            "if os.path.exists(final): sys.exit('the final path exists mid-build')\n"
            "os.makedirs(staging + '/bin')\n"
            f"open(staging + '/bin/python', 'w').write({FAKE_PYTHON!r})\n"
            "os.chmod(staging + '/bin/python', 0o755)")
    return ("python -m venv", [sys.executable, "-c", code, str(staging), str(final)])


@pytest.fixture
def lazy_venv(tmp_path, monkeypatch):
    """The venv edgec would build, in an empty cache, downloads allowed: tests replace
    the build's steps, so nothing is fetched."""
    monkeypatch.setenv("EDGEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(tflite_venv.PYTHON_ENV, raising=False)
    monkeypatch.delenv("EDGEC_NO_DOWNLOAD", raising=False)
    return tflite_venv.venv_dir()


def test_converter_venv_is_built_on_first_need_then_reused(lazy_venv, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    abandoned = lazy_venv.with_name(f".{lazy_venv.name}.partial-{dead.pid}")  # a killed build
    (abandoned / "bin").mkdir(parents=True)
    (abandoned / "bin" / "python").write_text(FAKE_PYTHON)
    assert tflite.converter_python() is None  # a half-built venv is never taken for one
    assert "converter not built yet" in tflite.versions()
    monkeypatch.setattr(tflite_venv, "_install_steps",
                        lambda staging: [_make_fake_venv(staging, lazy_venv)])
    lines: list[str] = []
    py, conv_version = tflite._converter(build=True, progress=lines.append)
    assert py == lazy_venv / "bin" / "python" and conv_version == "1.29.24 2.19.0"
    assert len(lines) == 2
    assert "onnx2tf==1.29.24" in lines[0] and "2.6 GB on disk" in lines[0]
    assert str(lazy_venv) in lines[0] and "ready" in lines[1]
    assert sorted(p.name for p in lazy_venv.parent.iterdir()) == [lazy_venv.name]
    assert tflite.converter_python() == py
    assert tflite.versions().startswith("onnx2tf 1.29.24, tensorflow 2.19.0, ")

    def no_second_build(staging):
        raise AssertionError("built twice")

    monkeypatch.setattr(tflite_venv, "_install_steps", no_second_build)
    lines.clear()
    assert tflite_venv.ensure(lines.append) == py and lines == []


def test_failed_venv_build_is_the_tflite_reason_and_leaves_nothing(lazy_venv, monkeypatch,
                                                                   capsys):
    pip = ("pip install onnx2tf==1.29.24",
           [sys.executable, "-c", "import sys; sys.exit('ERROR: No matching distribution "
                                  "found for onnx2tf==1.29.24')"])
    monkeypatch.setattr(tflite_venv, "_install_steps",
                        lambda staging: [_make_fake_venv(staging, lazy_venv), pip])
    with pytest.raises(tflite.TfliteUnavailable) as info:
        tflite.convert(b"not reached")
    assert str(info.value) == ("converter venv could not be built: 'pip install "
                               "onnx2tf==1.29.24' failed: ERROR: No matching distribution "
                               "found for onnx2tf==1.29.24")
    assert "tflite: building the converter venv" in capsys.readouterr().err  # stderr default
    assert list(lazy_venv.parent.iterdir()) == []  # the temp folder went with the failure
    assert tflite.converter_python() is None


def test_no_download_never_builds_the_venv(lazy_venv, monkeypatch):
    monkeypatch.setenv("EDGEC_NO_DOWNLOAD", "1")

    def build(staging):
        raise AssertionError("built despite EDGEC_NO_DOWNLOAD=1")

    monkeypatch.setattr(tflite_venv, "_install_steps", build)
    with pytest.raises(tflite.TfliteUnavailable, match=r"EDGEC_NO_DOWNLOAD=1 forbids building "
                                                       r"it: run 'make setup'"):
        tflite.convert(b"not reached")
    monkeypatch.setenv(tflite_venv.PYTHON_ENV, str(lazy_venv / "missing" / "python"))
    with pytest.raises(tflite.TfliteUnavailable, match=r"EDGEC_TFLITE_PYTHON=.* does not exist"):
        tflite.convert(b"not reached")


@pytest.mark.compile
def test_renderers(tiny_report, tmp_path):
    ratio = ratio_to_best_peer(tiny_report)
    edgec = tiny_report.result("edgec").stats.median_ms
    best = min(tiny_report.result(n).stats.median_ms for n in ("onnxruntime", "tflite"))
    assert ratio == pytest.approx(edgec / best)
    md = markdown_table([tiny_report, tiny_report])
    assert "| tiny_cnn.onnx |" in md and "Geometric mean" in md
    assert f"**{ratio:.2f}x**" in md
    plot([tiny_report], tmp_path / "c.png")
    data = (tmp_path / "c.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_geomean():
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert geomean([None, 0.0]) is None


def test_layout_mapping_both_ways():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    nhwc = tflite._to_tflite_layout(x, (2, 4, 5, 3), "x")
    assert nhwc.shape == (2, 4, 5, 3) and nhwc[1, 2, 3, 0] == x[1, 0, 2, 3]
    back = tflite._to_onnx_layout(nhwc, TensorSpec("y", (2, 3, 4, 5), "float32"))
    np.testing.assert_array_equal(back, x)
    assert tflite._to_tflite_layout(x, (2, 3, 4, 5), "x") is x
    with pytest.raises(tflite.TfliteUnavailable, match="no permutation"):
        tflite._to_tflite_layout(x, (5, 4, 3, 7), "x")
    # silero's state: onnx2tf returns [2,1,128] as [1,2,128] (only a size-1 dim moves)
    state = np.arange(2 * 128, dtype=np.float32).reshape(1, 2, 128)
    back = tflite._to_onnx_layout(state, TensorSpec("stateN", (2, 1, 128), "float32"))
    np.testing.assert_array_equal(back, state.reshape(2, 1, 128))
    # a real transpose among equal dims is ambiguous unless it is channels-last
    square = np.arange(16, dtype=np.float32).reshape(1, 2, 2, 4)
    with pytest.raises(tflite.TfliteUnavailable, match="cannot tell"):
        tflite._to_onnx_layout(square, TensorSpec("y", (1, 2, 4, 2), "float32"))


def test_conversion_failure_reason_from_onnx2tf_log():
    log = ("\x1b[31mERROR:\x1b[0m The trace log is below.\n"
           "ValueError: Exception encountered when calling layer \"tf.nn.softmax\".\n"
           "\x1b[31mERROR:\x1b[0m onnx_op_name: Softmax@0\n"
           "\x1b[31mERROR:\x1b[0m Read this and deal with it.\n")
    reason = tflite._failure_reason(log)
    assert reason.startswith("at Softmax@0 ValueError: Exception encountered")


def test_int8_calibration_files_have_plain_names(monkeypatch):
    """onnx2tf reads each input's calibration array from a file in its working folder:
    input names such as ResNet-50's 'gpu_0/data_0' must not become paths."""
    seen = {}

    def capture(static_onnx, args, files, product, timeout_s, progress):
        seen.update(args=args, files=files, product=product)
        return product

    monkeypatch.setattr(tflite, "_convert", capture)
    sample = {"gpu_0/data_0": np.zeros((1, 3, 4, 4), np.float32),
              "ids:0": np.zeros((1, 5), np.float32)}
    tflite.convert_int8(b"model", [sample, sample])
    assert sorted(seen["files"]) == ["calib-0.npy", "calib-1.npy"]
    assert seen["files"]["calib-0.npy"].shape == (2, 4, 4, 3)  # channels last, stacked
    i = seen["args"].index("gpu_0/data_0")
    assert seen["args"][i - 1] == "-cind" and seen["args"][i + 1] == "calib-0.npy"


@pytest.mark.compile
def test_failed_conversion_is_a_row_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEC_CACHE_DIR", str(tmp_path))

    def refuse(data: bytes, **_):
        raise tflite.TfliteUnavailable("conversion failed: at Foo@0 ValueError: nope")

    monkeypatch.setattr(tflite, "convert", refuse)
    report = run_bench(TINY, BenchOptions(threads=1, **QUICK))
    row = report.result("tflite")
    assert row.status == "failed" and row.stats is None
    assert row.reason == "conversion failed: at Foo@0 ValueError: nope"
    assert report.result("edgec").status == "ok"
    assert "conversion failed" in markdown_table([report])


@pytest.mark.compile
def test_cli_bench(cli, tmp_path):
    res = cli("bench", TINY, "--threads", "1", "--baseline", "onnxruntime", "--repeat", "5",
              "--budget", "0.2", "--json", tmp_path / "r.json", "--plot", tmp_path / "r.png")
    assert res.code == 0, res.err
    assert "edgec (fp32)" in res.out and "onnxruntime (fp32)" in res.out
    assert "tflite (fp32)" not in res.out
    d = json.loads((tmp_path / "r.json").read_text())
    assert [e["engine"] for e in d["engines"]] == ["edgec", "onnxruntime"]
    assert (tmp_path / "r.png").exists()
    res = cli("bench", TINY, "--baseline", "pytorch")
    assert res.code == 2 and "pytorch" in res.err


@pytest.mark.compile
def test_bench_refuses_a_target_this_machine_cannot_run(cli):
    res = cli("bench", TINY, "--target", "arm")
    assert res.code == EXIT_UNSUPPORTED and "bench runs engines on this machine" in res.err


@pytest.mark.slow
@pytest.mark.compile
def test_real_failed_conversion_ppocr_cls():
    """onnx2tf cannot convert the PP-OCR classifier (FIELD-NOTES); the row says why."""
    model = REPO / "models" / "real" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    report = run_bench(model, BenchOptions(input_shapes={"x": (1, 3, 48, 192)}, threads=2,
                                           **QUICK))
    row = report.result("tflite")
    assert row.status == "failed" and row.reason.startswith("conversion failed: ")
    assert report.result("edgec").within_tolerance


def test_engines_are_timed_in_their_own_processes(monkeypatch, tmp_path):
    """Each engine lives in a worker process (isolated.py) and the timed runs
    go round-robin: the bench process's own TVM thread setting is left as it
    was, a model onnxruntime cannot load is one clear error from the child,
    and every worker gets its planned runs."""
    from edgec.bench import isolated
    from edgec.bench.isolated import EngineFailed, EngineWorker, time_interleaved

    monkeypatch.setenv("TVM_NUM_THREADS", "7")
    x = np.ones((1, 3, 32, 32), np.float32)
    with pytest.raises(EngineFailed) as info:
        EngineWorker("onnxruntime", tmp_path / "missing.onnx", {"image": x}, threads=1,
                     warmup=0)
    assert info.value.kind == "model" and "missing.onnx" in str(info.value)
    calls: list[tuple[int, int]] = []
    with EngineWorker("onnxruntime", TINY, {"image": x}, threads=1, warmup=1) as a, \
            EngineWorker("onnxruntime", TINY, {"image": x}, threads=1, warmup=1) as b:
        assert set(a.outputs) == {"probs"}
        for i, w in enumerate((a, b)):
            real = w.samples
            monkeypatch.setattr(w, "samples", lambda n, real=real, i=i:
                                calls.append((i, n)) or real(n))
        stats = time_interleaved([a, b], repeat=10, budget_s=60)
    assert [s.runs for s in stats] == [10, 10]
    assert [i for i, _ in calls] == [0, 1] * isolated.ROUNDS  # turns, every round
    assert os.environ["TVM_NUM_THREADS"] == "7"

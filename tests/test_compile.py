"""Compile tier: real TVM builds of small models for x86, ARM and GPU targets,
run here and compared with onnxruntime; the CLI end to end."""

from __future__ import annotations

import json
import shlex
import tarfile

import numpy as np
import onnxruntime as ort
import pytest
from conftest import conv_model, elf_machine, save

import edgec
from edgec.artifact import LIBRARY
from edgec.errors import EXIT_MISMATCH, EXIT_UNSUPPORTED, EXIT_USAGE

pytestmark = pytest.mark.compile

ELF_MACHINE = {"x86_64": 62, "aarch64": 183}


def test_cli_compile_run_verify(cli, conv_onnx, tmp_path):
    art = tmp_path / "conv.edgec"
    res = cli("compile", conv_onnx, "--target", "x86", "-o", art)
    assert res.code == 0, res.err
    assert "inputs:  x float32[1,3,16,16]" in res.out and "passes (O2)" in res.out
    assert elf_machine(art) == ELF_MACHINE["x86_64"]

    x = np.random.default_rng(7).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = cli("run", art, "--input", f"x={tmp_path / 'x.npy'}", "-o", tmp_path / "y.npz",
              "--repeat", "3")
    assert res.code == 0, res.err
    assert "latency: median" in res.out and "over 3 runs" in res.out
    y = np.load(tmp_path / "y.npz")["y"]
    ref = ort.InferenceSession(str(conv_onnx), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)

    res = cli("verify", art, "--model", conv_onnx, "--json", tmp_path / "v.json")
    assert res.code == 0, res.err
    assert "verified" in res.out and "max abs err" in res.out
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["ok"] and report["outputs"][0]["max_abs_err"] < 1e-4


def test_run_requires_inputs_or_random(cli, conv_artifact):
    _, art = conv_artifact
    res = cli("run", art)
    assert res.code == EXIT_USAGE and "--random" in res.err


def test_verify_onnx_directly_and_with_zero_tolerance(cli, conv_onnx, tmp_path):
    res = cli("verify", conv_onnx, "--target", "host", "-o", tmp_path / "kept.edgec")
    assert res.code == 0, res.out + res.err
    assert (tmp_path / "kept.edgec").exists()
    # TVM and onnxruntime sum the 27 products of each conv output in different
    # orders, so bit-exact agreement is not expected: tolerance 0 must fail.
    res = cli("verify", tmp_path / "kept.edgec", "--model", conv_onnx, "--rtol", "0", "--atol",
              "0")
    assert res.code == EXIT_MISMATCH, res.out
    assert "MISMATCH" in res.out and "beyond tolerance" in res.err


def test_verify_against_a_different_model_is_refused(cli, conv_artifact, tmp_path):
    _, art = conv_artifact
    other = save(conv_model(seed=9), tmp_path / "other.onnx")
    res = cli("verify", art, "--model", other)
    assert res.code == EXIT_USAGE and "not the model" in res.err


def test_dynamic_batch_binding(tmp_path):
    model = save(conv_model(batch="batch"), tmp_path / "dyn.onnx")
    art = edgec.compile(model, target="host", output=tmp_path / "dyn.edgec",
                        input_shapes={"x": (3, 3, 16, 16)})
    assert art.inputs[0].shape == (3, 3, 16, 16) and art.outputs[0].shape == (3, 8, 16, 16)
    report = edgec.verify(model, art)
    assert report.ok and report.checks[0].shape == (3, 8, 16, 16)


@pytest.mark.cross
@pytest.mark.parametrize("target,arch", [("arm", "aarch64"), ("arm-dotprod", "aarch64"),
                                         ("zen4", "x86_64")])
def test_cross_compile_produces_target_machine_code(cli, conv_onnx, tmp_path, target, arch):
    art = tmp_path / f"{target}.edgec"
    res = cli("compile", conv_onnx, "-t", target, "-o", art)
    assert res.code == 0, res.err
    assert elf_machine(art) == ELF_MACHINE[arch]
    manifest = edgec.load(art).manifest
    assert manifest["target"]["arch"] == arch
    ok, _ = edgec.resolve_target(target).runs_on_host()
    if not ok:
        res = cli("run", art, "--random")
        assert res.code == EXIT_UNSUPPORTED and "cannot run here" in res.err


@pytest.mark.cross
def test_arm_disassembly_uses_neon(conv_onnx, tmp_path):
    """The aarch64 library holds vector (NEON) code, not only scalar code."""
    import re
    import shutil
    import subprocess

    objdump = shutil.which("aarch64-linux-gnu-objdump")  # binutils of the cross toolchain
    assert objdump, "make setup installs gcc-aarch64-linux-gnu, which brings objdump"
    art = edgec.compile(conv_onnx, target="arm", output=tmp_path / "a.edgec")
    with tarfile.open(art.path) as t:
        (tmp_path / "lib.so").write_bytes(t.extractfile(LIBRARY).read())
    asm = subprocess.run([objdump, "-d", str(tmp_path / "lib.so")], capture_output=True,
                         text=True, check=True).stdout
    assert re.search(r"\bfmla\s+v\d+\.4s", asm), "no 4-lane NEON fused multiply-add"


@pytest.mark.parametrize("target,module", [("orin", "cuda"), ("a100", "cuda"),
                                           ("mali", "opencl")])
def test_gpu_targets_compile_here_and_refuse_to_run(cli, conv_onnx, tmp_path, target, module):
    art = tmp_path / f"{target}.edgec"
    res = cli("compile", conv_onnx, "-t", target, "-o", art)
    assert res.code == 0, res.err
    manifest = edgec.load(art).manifest
    assert module in manifest["target"]["device_modules"]
    res = cli("run", art, "--random")
    assert res.code == EXIT_UNSUPPORTED
    assert "cannot run here" in res.err


def test_save_temps_and_reproducer(cli, conv_onnx, tmp_path):
    temps = tmp_path / "temps"
    art = tmp_path / "a.edgec"
    res = cli("compile", conv_onnx, "-t", "x86", "-O1", "--save-temps", temps, "-o", art)
    assert res.code == 0, res.err
    names = sorted(p.name for p in temps.iterdir())
    passes = [p["name"] for p in edgec.load(art).manifest["passes"]]
    for i, p in enumerate(passes):
        assert f"{i + 1:02d}-{p}.onnx" in names
    for f in ("00-bound.onnx", "relax-before.py", "relax-kernels.py", "relax-after.py",
              "target.json", "reproduce.sh", "compile-report.json"):
        assert f in names
    assert "R.nn.conv2d" in (temps / "relax-before.py").read_text()
    # Conv+bias+Relu went to an edgec kernel, visible before TVM's lowering and after it
    assert "R.call_tir(cls.edgec_conv2d_bias_relu" in (temps / "relax-kernels.py").read_text()
    assert "def edgec_conv2d_bias_relu" in (temps / "relax-after.py").read_text()
    assert json.loads((temps / "target.json").read_text())["name"] == "x86/x86-64-v3"
    cmd = shlex.split((temps / "reproduce.sh").read_text().splitlines()[-1])
    assert cmd[:2] == ["edgec", "compile"] and "O1" in cmd
    again = tmp_path / "again.edgec"
    cmd[cmd.index("-o") + 1] = str(again)
    assert cli(*cmd[1:]).code == 0
    a, b = edgec.load(art).manifest, edgec.load(again).manifest
    assert [p["name"] for p in a["passes"]] == [p["name"] for p in b["passes"]]
    assert a["target"]["tvm"] == b["target"]["tvm"] and a["inputs"] == b["inputs"]


def test_opt_levels_choose_pipelines(cli, conv_onnx, tmp_path):
    for level in ("0", "3"):
        res = cli("compile", conv_onnx, "-t", "x86", f"-O{level}", "-o", tmp_path / f"{level}.e")
        assert res.code == 0, res.err
        assert edgec.load(tmp_path / f"{level}.e").manifest["pipeline"] == f"O{level}"
    res = cli("compile", conv_onnx, "-t", "x86", "--pipeline", "canonicalize,shape-inference",
              "-o", tmp_path / "c.e")
    assert res.code == 0, res.err
    assert [p["name"] for p in edgec.load(tmp_path / "c.e").manifest["passes"]] == [
        "canonicalize", "shape-inference"]
    res = cli("compile", conv_onnx, "-O1", "--pipeline", "O2", "-o", tmp_path / "x.e")
    assert res.code == EXIT_USAGE and "not both" in res.err
    res = cli("compile", conv_onnx, "-O7", "-o", tmp_path / "x.e")
    assert res.code == EXIT_USAGE


def test_targets_and_passes_commands(cli):
    res = cli("targets")
    assert res.code == 0
    for name in ("x86/x86-64-v3", "arm/raspberry-pi-4", "gpu/jetson-orin", "gpu/mali-opencl"):
        assert name in res.out
    assert "host" in res.out
    res = cli("passes")
    assert res.code == 0 and "lower-rnn" in res.out and "O3" in res.out

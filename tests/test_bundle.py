"""edgec bundle: the C/C++ app folder, built natively and cross-built for
aarch64, run (under qemu-user for ARM) and compared with onnxruntime; the C
API's misuse cases; bad input to the command; run --emulate and verify of
ARM artifacts.

Every build here is real (cmake, gcc, aarch64-linux-gnu-g++) and every
number is checked against onnxruntime on x86. The aarch64 runtime libraries
come from the wheel cache `make setup` fills; nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import REPO
from test_bad_input import assert_one_line_error

import edgec
from edgec.errors import EXIT_BAD_ARTIFACT, EXIT_TOOLCHAIN, EXIT_UNSUPPORTED, EXIT_USAGE

pytestmark = pytest.mark.compile

MODEL = REPO / "models" / "tiny_cnn.onnx"  # image float32[1,3,32,32] -> probs float32[1,10]
QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
ELF_X86_64, ELF_AARCH64 = 62, 183
RTOL, ATOL = 1e-3, 1e-5  # fp32, a few reassociated sums apart


def _elf(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", path
    return int.from_bytes(head[18:20], "little")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bundle-art")
    return {t: edgec.compile(MODEL, target=t, output=folder / f"{t}.edgec").path
            for t in ("x86", "arm")}


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """An input .npy and onnxruntime's output for it."""
    x = np.random.default_rng(7).standard_normal((1, 3, 32, 32)).astype(np.float32)
    path = tmp_path_factory.mktemp("bundle-in") / "image.npy"
    np.save(path, x)
    ref = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(
        None, {"image": x})[0]
    return path, ref


def _bundle(cli, artifact: Path, out: Path, *extra: str):
    res = cli("bundle", artifact, "-o", out, "--build", *extra)
    assert res.code == 0, res.err
    return res


def _run_program(cmd: list[str], out_dir: Path, inp: Path) -> np.ndarray:
    out_dir.mkdir(exist_ok=True)
    res = subprocess.run([*cmd, str(out_dir), str(inp)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("output 0 probs float32[1,10] -> "), res.stdout
    return np.load(out_dir / "output_0.npy")


def test_x86_bundle_builds_runs_and_matches_onnxruntime(cli, artifacts, image, tmp_path):
    app = tmp_path / "app"
    res = _bundle(cli, artifacts["x86"], app)
    assert "runtime footprint:" in res.out and "largest: libtvm_runtime.so" in res.out
    for f in ("README.md", "CMakeLists.txt", "cmake/aarch64-linux-gnu.cmake",
              "include/edgec_model.h", "src/edgec_model.cc", "examples/edgec_run.c",
              "model/model.so", "model/model.io", "model/manifest.json",
              "runtime/lib/libtvm_runtime.so", "runtime/lib/libtvm_ffi.so",
              "runtime/include/tvm/ffi/extra/module.h", "bundle.json"):
        assert (app / f).is_file(), f
    readme = (app / "README.md").read_text()
    assert "{{" not in readme and "tiny_cnn.onnx" in readme and "android.toolchain.cmake" in readme
    info = json.loads((app / "bundle.json").read_text())
    assert info["arch"] == "x86_64" and info["target"] == "x86/x86-64-v3"
    sizes = info["footprint_bytes"]
    assert set(sizes) == {"model/model.so", "runtime/lib/libtvm_runtime.so",
                          "runtime/lib/libtvm_ffi.so"}
    assert all(sizes[f] == (app / f).stat().st_size for f in sizes)
    assert (app / "model/model.io").read_text() == \
        "input\timage\tfloat32\t1,3,32,32\noutput\tprobs\tfloat32\t1,10\n"

    x, ref = image
    got = _run_program([str(app / "build" / "edgec_run"), str(app / "model" / "model.so")],
                       tmp_path / "out", x)
    assert got.dtype == np.float32 and got.shape == (1, 10)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)

    # Installed and moved elsewhere, the program still finds its libraries ($ORIGIN RPATH).
    subprocess.run(["cmake", "--install", str(app / "build"), "--prefix", str(tmp_path / "inst")],
                   check=True, capture_output=True)
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "inst", moved)
    shutil.rmtree(app)
    got = _run_program([str(moved / "bin" / "edgec_run"), str(moved / "model" / "model.so")],
                       tmp_path / "out2", x)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


def test_header_is_plain_c(tmp_path):
    header = REPO / "edgec" / "bundle" / "templates" / "include" / "edgec_model.h"
    for std in ("c99", "c11"):
        subprocess.run(["gcc", "-x", "c", f"-std={std}", "-Wall", "-Wextra", "-pedantic",
                        "-Werror", "-fsyntax-only", str(header)], check=True)
    subprocess.run(["g++", "-x", "c++", "-std=c++11", "-Wall", "-Werror", "-fsyntax-only",
                    str(header)], check=True)


def _misuse(cli, artifacts, tmp_path, arch: str) -> str:
    """Build tests/c/api_misuse.c against a bundle for ``arch`` and run it there."""
    foreign = "x86" if arch == "aarch64" else "arm"
    app = tmp_path / "app"
    _bundle(cli, artifacts["arm" if arch == "aarch64" else "x86"], app)
    cc = "aarch64-linux-gnu-gcc" if arch == "aarch64" else "gcc"
    prog = tmp_path / "api_misuse"
    subprocess.run([cc, "-Wall", "-Wextra", "-Werror", str(REPO / "tests" / "c" / "api_misuse.c"),
                    "-I", str(app / "include"), "-L", str(app / "build"), "-ledgec_model",
                    f"-Wl,-rpath,{app / 'build'}:{app / 'runtime' / 'lib'}", "-o", str(prog)],
                   check=True)
    assert _elf(prog) == (ELF_AARCH64 if arch == "aarch64" else ELF_X86_64)
    not_lib = tmp_path / "notes.so"
    not_lib.write_text("not a library\n" * 10)
    foreign_lib = tmp_path / "foreign.so"
    import tarfile

    with tarfile.open(artifacts[foreign]) as t:
        foreign_lib.write_bytes(t.extractfile("model.so").read())
    cmd = [str(prog), str(app / "model" / "model.so"), str(not_lib), str(foreign_lib)]
    res = subprocess.run((QEMU if arch == "aarch64" else []) + cmd, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0 and "FAIL" not in res.stdout, res.stdout + res.stderr
    return res.stdout


def test_c_api_misuse_gets_statuses_and_messages(cli, artifacts, tmp_path):
    out = _misuse(cli, artifacts, tmp_path, "x86_64")
    assert "ok wrong shape: input 'image' was compiled for shape [1,3,32,32], got [1,3,16,16]" \
        in out
    assert "built for aarch64, this program runs on x86_64" in out


@pytest.mark.cross
def test_c_api_misuse_on_emulated_aarch64(cli, artifacts, tmp_path):
    out = _misuse(cli, artifacts, tmp_path, "aarch64")
    assert "built for x86_64, this program runs on aarch64" in out


@pytest.mark.cross
def test_arm_bundle_cross_builds_and_matches_onnxruntime_under_qemu(cli, artifacts, image,
                                                                   tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # -o relative, as in the README (CMake got a relative path)
    app = tmp_path / "app"
    res = _bundle(cli, artifacts["arm"], Path("app"))
    assert "bundle for aarch64" in res.out
    for f in ("build/edgec_run", "build/libedgec_model.so", "model/model.so",
              "runtime/lib/libtvm_runtime.so", "runtime/lib/libtvm_ffi.so"):
        assert _elf(app / f) == ELF_AARCH64, f
    info = json.loads((app / "bundle.json").read_text())
    assert info["arch"] == "aarch64" and info["runtime"]["from"] == "PyPI wheels"
    x, ref = image
    got = _run_program([*QEMU, str(app / "build" / "edgec_run"), str(app / "model" / "model.so")],
                       tmp_path / "out", x)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.cross
def test_run_emulate_and_verify_target_arm(cli, artifacts, image, tmp_path):
    x, ref = image
    out = tmp_path / "o.npz"
    res = cli("run", artifacts["arm"], "--emulate", "--input", f"image={x}", "-o", out)
    assert res.code == 0, res.err
    assert "qemu-user: no latency" in res.out
    np.testing.assert_allclose(np.load(out)["probs"], ref, rtol=RTOL, atol=ATOL)

    res = cli("verify", MODEL, "--target", "arm", "--json", tmp_path / "v.json")
    assert res.code == 0, res.err
    assert "under qemu-user" in res.out
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["ok"] and report["emulated"]


def test_run_emulate_refuses_host_artifacts(cli, artifacts):
    res = cli("run", artifacts["x86"], "--emulate", "--random")
    assert_one_line_error(res, EXIT_UNSUPPORTED, "x86.edgec", "aarch64")


# --- bad input to `edgec bundle` ---------------------------------------------------------

def test_output_folder_not_empty(cli, artifacts, tmp_path):
    out = tmp_path / "app"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    res = cli("bundle", artifacts["x86"], "-o", out)
    assert_one_line_error(res, EXIT_USAGE, str(out), "not empty")
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


@pytest.mark.cross
def test_failed_build_shows_cmakes_error_and_leaves_nothing(cli, artifacts, tmp_path,
                                                            monkeypatch):
    """The real CMake line reaches the user, and the folder goes, so a rerun can work."""
    from edgec.bundle import builder

    monkeypatch.setitem(builder.TOOLCHAIN_FILES, "aarch64", "cmake/no-such-toolchain.cmake")
    res = cli("bundle", artifacts["arm"], "-o", tmp_path / "app", "--build")
    assert_one_line_error(res, EXIT_TOOLCHAIN, "app", "configuring with CMake failed",
                          "CMake Error", "Could not find toolchain file",
                          "no-such-toolchain.cmake")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder the user made stays, empty
    res = cli("bundle", artifacts["arm"], "-o", empty, "--build")
    assert res.code == EXIT_TOOLCHAIN and empty.is_dir() and not any(empty.iterdir())


def test_first_error_picks_the_tools_own_line():
    from edgec.bundle.builder import first_error

    cmake_log = ("-- The C compiler identification is GNU 12.2.0\n"
                 "CMake Error at CMakeLists.txt:12 (find_library):\n"
                 "  Could not find TVM_RUNTIME using the following names: tvm_runtime\n"
                 "\n-- Configuring incomplete, errors occurred!\n")
    assert first_error(cmake_log) == ("CMake Error at CMakeLists.txt:12 (find_library): Could "
                                      "not find TVM_RUNTIME using the following names: "
                                      "tvm_runtime")
    gcc_log = ("[ 50%] Building C object\nsrc/a.c:3:1: error: unknown type name 'x'\n"
               "gmake[2]: *** [Makefile:76: a.o] Error 1\n")
    assert first_error(gcc_log) == "src/a.c:3:1: error: unknown type name 'x'"


def test_runtime_dir_for_the_wrong_architecture(cli, artifacts, tmp_path):
    wrong = tmp_path / "x86-libs"
    wrong.mkdir()
    from edgec.bundle.runtime_libs import runtime_libraries

    for name, path in runtime_libraries("x86_64").items():
        shutil.copy(path, wrong / name)
    res = cli("bundle", artifacts["arm"], "-o", tmp_path / "app", "--runtime-dir", wrong)
    assert_one_line_error(res, EXIT_USAGE, "libtvm_", "built for x86_64", "needs aarch64",
                          "--runtime-dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x86-libs"]


def test_runtime_dir_missing_a_library(cli, artifacts, tmp_path):
    partial = tmp_path / "libs"
    partial.mkdir()
    (partial / "libtvm_runtime.so").write_bytes(b"\x7fELF")
    res = cli("bundle", artifacts["arm"], "-o", tmp_path / "app", "--runtime-dir", partial)
    assert_one_line_error(res, EXIT_USAGE, "libtvm_ffi.so is missing")


def test_runtime_wheel_that_cannot_be_had(monkeypatch, tmp_path):
    from edgec.bundle.runtime_libs import runtime_libraries
    from edgec.errors import UnsupportedError

    monkeypatch.setenv("EDGEC_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("EDGEC_NO_DOWNLOAD", "1")
    with pytest.raises(UnsupportedError, match="--runtime-dir"):
        runtime_libraries("aarch64")
    with pytest.raises(UnsupportedError, match=r"PyPI has no TVM runtime wheels for riscv64.*"
                                               r"--runtime-dir"):
        runtime_libraries("riscv64")


def test_missing_and_truncated_artifacts(cli, artifacts, tmp_path):
    res = cli("bundle", tmp_path / "nope.edgec", "-o", tmp_path / "app")
    assert_one_line_error(res, EXIT_USAGE, "nope.edgec", "no such artifact")
    cut = tmp_path / "cut.edgec"
    data = artifacts["x86"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    res = cli("bundle", cut, "-o", tmp_path / "app")
    assert_one_line_error(res, EXIT_BAD_ARTIFACT, "cut.edgec")
    assert not (tmp_path / "app").exists()


def test_gpu_artifact_is_refused(cli, conv_onnx, tmp_path):
    art = tmp_path / "orin.edgec"
    assert cli("compile", conv_onnx, "-t", "orin", "-o", art).code == 0
    res = cli("bundle", art, "-o", tmp_path / "app")
    assert_one_line_error(res, EXIT_UNSUPPORTED, "orin.edgec", "GPU")
    assert not (tmp_path / "app").exists()


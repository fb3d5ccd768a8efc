"""The artifact file: manifest contents, integrity checks before loading, atomic writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import edgec
from edgec.artifact import LIBRARY, MANIFEST, read_verified, sha256_file, write_artifact
from edgec.errors import ArtifactError, UnsupportedError


def _fake(tmp_path: Path, lib: bytes = b"\x7fELF not really") -> Path:
    src = tmp_path / "lib.bin"
    src.write_bytes(lib)
    out = tmp_path / "fake.edgec"
    write_artifact(out, {"inputs": [], "outputs": [], "target": {}}, {LIBRARY: src})
    return out


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a tar member by member, letting ``edit(name, data) -> data|None`` change it."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = edit(m.name, tin.extractfile(m).read())
            if data is None:
                continue
            m.size = len(data)
            import io

            tout.addfile(m, io.BytesIO(data))
    return dst


def test_manifest_hashes_every_member(tmp_path):
    art = _fake(tmp_path)
    m = read_verified(art)
    assert m["format"] == "edgec-artifact" and m["format_version"] == 1
    assert m["members"][LIBRARY]["sha256"] == sha256_file(tmp_path / "lib.bin")


def test_tampered_member_is_refused(tmp_path):
    art = _rewrite(_fake(tmp_path), tmp_path / "t.edgec",
                   lambda n, d: d.replace(b"really", b"REALLY") if n == LIBRARY else d)
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        read_verified(art)


def test_member_sizes_are_bounded_before_reading(tmp_path):
    """A manifest declaring a 64 GiB library is refused before a byte of it is read
    (it was read whole into memory), as is a tar header that does not match."""
    def huge(name, data):
        if name != MANIFEST:
            return data
        m = json.loads(data)
        m["members"][LIBRARY]["bytes"] = 64 << 30
        return json.dumps(m).encode()

    art = _rewrite(_fake(tmp_path), tmp_path / "h.edgec", huge)
    with pytest.raises(ArtifactError, match="the manifest says 68719476736"):
        read_verified(art)
    big = tmp_path / "m.edgec"  # a manifest member over the bound
    with tarfile.open(big, "w") as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size = 17 << 20
        tar.addfile(info, __import__("io").BytesIO(b" " * info.size))
    with pytest.raises(ArtifactError, match="over the 16 MiB"):
        read_verified(big)


def test_a_refused_artifact_leaves_no_extracted_member(tmp_path):
    art = _rewrite(_fake(tmp_path), tmp_path / "t.edgec",
                   lambda n, d: d.replace(b"really", b"REALLY") if n == LIBRARY else d)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArtifactError):
        read_verified(art, extract_to=out)
    assert list(out.iterdir()) == []


def test_extra_member_is_refused(tmp_path):
    def add(name, data):
        return data

    art = _rewrite(_fake(tmp_path), tmp_path / "x.edgec", add)
    with tarfile.open(art, "a") as t:
        import io

        info = tarfile.TarInfo("evil.so")
        info.size = 3
        t.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(ArtifactError, match="unexpected member"):
        read_verified(art)


def test_missing_member_and_bad_manifest(tmp_path):
    art = _rewrite(_fake(tmp_path), tmp_path / "m.edgec",
                   lambda n, d: None if n == LIBRARY else d)
    with pytest.raises(ArtifactError, match="missing"):
        read_verified(art)
    art = _rewrite(_fake(tmp_path), tmp_path / "j.edgec",
                   lambda n, d: b"{not json" if n == MANIFEST else d)
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_verified(art)
    art = _rewrite(_fake(tmp_path), tmp_path / "v.edgec",
                   lambda n, d: json.dumps({**json.loads(d), "format_version": 99}).encode()
                   if n == MANIFEST else d)
    with pytest.raises(ArtifactError, match="version 99"):
        read_verified(art)


@pytest.mark.parametrize("where", ["manifest-header", "manifest-data", "library-header",
                                   "library-data", "library-last-byte"])
def test_truncated_artifact_is_refused(tmp_path, where):
    art = _fake(tmp_path, lib=bytes(range(256)) * 64)
    with tarfile.open(art) as t:
        members = {m.name: m for m in t.getmembers()}
    man, lib = members[MANIFEST], members[LIBRARY]
    cut_at = {"manifest-header": man.offset + 100, "manifest-data": man.offset_data + 10,
              "library-header": lib.offset + 10, "library-data": lib.offset_data + lib.size // 2,
              "library-last-byte": lib.offset_data + lib.size - 1}[where]
    cut = tmp_path / "cut.edgec"
    cut.write_bytes(art.read_bytes()[:cut_at])
    with pytest.raises(ArtifactError):
        read_verified(cut)


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "out" / "a.edgec"
    out.parent.mkdir()
    with pytest.raises(FileNotFoundError):
        write_artifact(out, {}, {LIBRARY: tmp_path / "does-not-exist.so"})
    assert list(out.parent.iterdir()) == []


def test_existing_artifact_survives_a_failed_rewrite(tmp_path):
    art = _fake(tmp_path)
    before = art.read_bytes()
    with pytest.raises(FileNotFoundError):
        write_artifact(art, {}, {LIBRARY: tmp_path / "missing.so"})
    assert art.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.edgec", "lib.bin"]


@pytest.mark.compile
def test_manifest_of_a_real_compile(conv_artifact):
    model, path = conv_artifact
    m = edgec.load(path).manifest
    assert m["source_model"]["sha256"] == sha256_file(model)
    assert m["tvm_version"].startswith("0.27")
    assert m["edgec_version"] == edgec.__version__
    assert m["inputs"] == [{"name": "x", "shape": [1, 3, 16, 16], "dtype": "float32"}]
    assert m["outputs"] == [{"name": "y", "shape": [1, 8, 16, 16], "dtype": "float32"}]
    assert m["target"]["tvm"]["kind"] == "llvm" and m["target"]["name"]
    assert m["target"]["tvm_resolved"]["mtriple"]
    assert next(p["name"] for p in m["passes"]) == "canonicalize"
    assert all({"nodes_before", "nodes_after", "modified"} <= set(p) for p in m["passes"])
    assert set(m["members"]) == {LIBRARY}


@pytest.mark.compile
def test_tampered_library_is_never_loaded(conv_artifact, tmp_path):
    _, path = conv_artifact
    bad = _rewrite(path, tmp_path / "bad.edgec",
                   lambda n, d: d[:-16] + b"\x00" * 16 if n == LIBRARY else d)
    with pytest.raises(ArtifactError, match="tampered"):
        edgec.load(bad)


@pytest.mark.compile
@pytest.mark.parametrize("field,value", [("dtype", "bool"), ("shape", [3, 3])])
def test_outputs_that_contradict_the_manifest_are_refused(conv_artifact, tmp_path, field,
                                                          value):
    """What the library returns is checked against the manifest (a bool returned as
    float32, or another shape, was passed on silently)."""
    _, path = conv_artifact

    def edit(name, data):
        if name != MANIFEST:
            return data
        m = json.loads(data)
        m["outputs"][0][field] = value
        return json.dumps(m).encode()

    art = edgec.load(_rewrite(path, tmp_path / "o.edgec", edit))
    x = np.zeros(art.inputs[0].shape, np.float32)
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        art.run({art.inputs[0].name: x})


@pytest.mark.compile
def test_api_run_matches_onnxruntime(conv_artifact):
    import onnxruntime as ort

    model, path = conv_artifact
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    got = edgec.load(path).run({"x": x})["y"]
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert got.max() > 0 and (got >= 0).all()  # Relu output, not all zeros


@pytest.mark.compile
def test_session_rejects_wrong_inputs(conv_artifact):
    from edgec.errors import UsageError

    _, path = conv_artifact
    art = edgec.load(path)
    with pytest.raises(UsageError, match=r"the artifact takes \[1, 3, 16, 16\]"):
        art.run({"x": np.zeros((1, 3, 8, 8), np.float32)})
    with pytest.raises(UsageError, match="missing"):
        art.run({})
    with pytest.raises(UsageError, match="no input named"):
        art.run({"x": np.zeros((1, 3, 16, 16), np.float32), "z": np.zeros(1)})


@pytest.mark.compile
def test_artifact_for_other_cpu_features_is_refused(conv_artifact, tmp_path):
    _, path = conv_artifact
    # Claim a CPU feature no machine has; the hashes stay valid (the manifest is the
    # authority on the target), and the host check must refuse before loading code.
    def edit(name, data):
        if name != MANIFEST:
            return data
        m = json.loads(data)
        m["target"]["cpu_flags"] = [*m["target"]["cpu_flags"], "edgec_test_feature"]
        return json.dumps(m).encode()

    bad = _rewrite(path, tmp_path / "isa.edgec", edit)
    with pytest.raises(UnsupportedError, match="edgec_test_feature"):
        edgec.load(bad).run({"x": np.zeros((1, 3, 16, 16), np.float32)})


def test_aligned_copy():
    from edgec.runtime.session import ALIGNMENT, aligned_copy

    raw = np.zeros(4 * 100 + 4, np.uint8)[4:].view(np.float32)  # deliberately misaligned
    raw[:] = np.arange(100)
    for arr in (raw, raw.reshape(10, 10).T, np.arange(7, dtype=np.int64)):
        out = aligned_copy(arr)
        assert out.ctypes.data % ALIGNMENT == 0 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, arr)


@pytest.mark.compile
def test_misaligned_inputs_run_correctly(conv_artifact):
    """TVM kernels assume 64-byte aligned data; inputs at odd addresses must still work."""
    import onnxruntime as ort

    model, path = conv_artifact
    session = edgec.load(path).session()
    ref_sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    for shift in range(1, 16):
        buf = np.zeros(3 * 16 * 16 * 4 + shift * 4, np.uint8)
        x = buf[shift * 4:].view(np.float32).reshape(1, 3, 16, 16)
        x[...] = rng.standard_normal((1, 3, 16, 16))
        got = session.run({"x": x})["y"]
        np.testing.assert_allclose(got, ref_sess.run(None, {"x": np.ascontiguousarray(x)})[0],
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.compile
def test_load_and_run_need_only_the_runtime(conv_artifact):
    """An app that only runs artifacts loads neither the compiler nor the tvm package."""
    import subprocess
    import sys

    _, path = conv_artifact
    code = ("import sys, time, numpy as np\n"
            "t0 = time.perf_counter()\n"
            "import edgec\n"
            f"out = edgec.load({str(path)!r}).run({{'x': np.ones((1, 3, 16, 16), np.float32)}})\n"
            "dt = time.perf_counter() - t0\n"
            "heavy = [m for m in ('tvm', 'tvm.relax', 'onnx', 'onnx_ir', 'onnxscript',\n"
            "         'onnxruntime', 'edgec.compiler', 'edgec.passes') if m in sys.modules]\n"
            "print(heavy, out['y'].shape, round(dt, 3))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    # The time is printed for humans (about 0.3 s here against 1.4 s for `import tvm`
    # alone); only what got imported is asserted.
    assert res.stdout.startswith("[] (1, 8, 16, 16)"), res.stdout


def test_runtime_uses_every_cpu_unless_told(conv_artifact, tmp_path):
    """TVM alone starts half as many workers as CPUs (one on a 2-CPU machine);
    edgec's runtime asks for every CPU it may use, and TVM_NUM_THREADS wins."""
    _, path = conv_artifact
    code = ("import sys, edgec, numpy as np; s = edgec.load(sys.argv[1]).session(); "
            "s.run({'x': np.zeros((1, 3, 16, 16), np.float32)}); print(s.threads)")
    env = {k: v for k, v in os.environ.items() if k != "TVM_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, env=env, check=True).stdout
    assert int(out) == len(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, env={**env, "TVM_NUM_THREADS": "1"}, check=True).stdout
    assert int(out) == 1

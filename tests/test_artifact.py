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


# ------------------------------------------------------------------ manifest schema
# A manifest edited by hand (hashes recomputed) used to reach the runtime and fail
# there as an internal error (exit 70): every field a reader uses is checked on load.


def _real_manifest() -> dict:
    """A manifest shaped like a compile's (the fields readers rely on)."""
    return {"edgec_version": "0.1.0", "tvm_version": "0.27", "created": "now",
            "source_model": {"file": "m.onnx", "sha256": "0" * 64, "opset": 17, "bytes": 1,
                             "inputs": {"x": [1, 3, "h", None]}},
            "target": {"name": "x86/generic", "arch": "x86_64", "cpu_flags": ["avx2"],
                       "tvm": {"kind": "llvm"}},
            "inputs": [{"name": "x", "shape": [1, 3, 16, 16], "dtype": "float32"},
                       {"name": "ids", "shape": [4], "dtype": "int64",
                        "index_extents": [10], "valid_range": [0, 10]}],
            "outputs": [{"name": "y", "shape": [1, 8], "dtype": "float32"}],
            "bindings": {"input_consts": {}}, "pipeline": "O2", "passes": [],
            "kernels": {}, "tuning": None}


def _edit(path: str, value):
    def apply(m: dict) -> None:
        keys = path.split("/")
        obj = m
        for k in keys[:-1]:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        last = keys[-1]
        if value is _DROP:
            del obj[int(last) if isinstance(obj, list) else last]
        elif isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value
    return apply


_DROP = object()
SCHEMA_CASES = {
    "manifest-list": (lambda m: None, "not a JSON object"),
    "no-inputs": (_edit("inputs", _DROP), "has no 'inputs'"),
    "inputs-string": (_edit("inputs", "image"), "inputs is 'image', not a list"),
    "input-not-object": (_edit("inputs/0", 3), "inputs[0] is 3, not an object"),
    "input-name-missing": (_edit("inputs/0/name", _DROP), "inputs[0].name"),
    "input-name-empty": (_edit("inputs/0/name", ""), "inputs[0].name"),
    "input-name-repeated": (_edit("inputs/1/name", "x"), "repeats 'x'"),
    "dtype-object": (_edit("inputs/0/dtype", "object"), "inputs[0].dtype is 'object'"),
    "dtype-bogus": (_edit("inputs/0/dtype", "float1024"), "'float1024', not one of"),
    "dtype-number": (_edit("inputs/0/dtype", 7), "inputs[0].dtype is 7, not a string"),
    "dtype-bfloat16": (_edit("outputs/0/dtype", "bfloat16"), "outputs[0].dtype"),
    "shape-negative": (_edit("inputs/0/shape", [-1, 3, 16, 16]), "shape[0] is -1"),
    "shape-float": (_edit("inputs/0/shape", [1.0, 3, 16, 16]), "shape[0] is 1.0"),
    "shape-bool": (_edit("inputs/0/shape", [True, 3]), "shape[0] is True"),
    "shape-symbolic": (_edit("inputs/0/shape", ["n", 3]), "shape[0] is 'n'"),
    "shape-string": (_edit("inputs/0/shape", "1,3"), "shape is '1,3', not a list"),
    "shape-huge": (_edit("inputs/0/shape", [1, 3, 1 << 20, 1 << 20]), "12 TiB tensor"),
    "shape-overflow": (_edit("inputs/0/shape", [1 << 40] * 4), "2^162-byte tensor"),
    "shape-beyond-int64": (_edit("inputs/0/shape", [1 << 70]), "shape[0]"),
    "rank-100": (_edit("inputs/0/shape", [1] * 100), "100 dims"),
    "extents-negative": (_edit("inputs/1/index_extents", [-5]), "index_extents"),
    "valid-range-bad": (_edit("inputs/1/valid_range", "0..10"), "valid_range"),
    "extents-without-range": (_edit("inputs/1/valid_range", _DROP), "but no valid_range"),
    "no-target": (_edit("target", _DROP), "has no 'target'"),
    "target-number": (_edit("target", 7), "target is 7, not an object"),
    "target-name-number": (_edit("target/name", 3), "target.name is 3"),
    "cpu-flags-string": (_edit("target/cpu_flags", "avx2"), "target.cpu_flags"),
    "tvm-not-object": (_edit("target/tvm", "llvm"), "target.tvm"),
    "source-model-list": (_edit("source_model", []), "source_model"),
    "declared-dims-bad": (_edit("source_model/inputs/x", "1,3"), "source_model.inputs"),
    "members-not-object": (_edit("members", []), "members is [], not an object"),
    "bindings-list": (_edit("bindings", []), "bindings"),
    "kernels-list": (_edit("kernels", []), "kernels"),
}


def _with_manifest(tmp_path: Path, manifest) -> Path:
    """An artifact whose manifest is ``manifest`` (members re-hashed: only the schema
    check can refuse it)."""
    lib = tmp_path / "lib.bin"
    lib.write_bytes(b"\x7fELF not really")
    if isinstance(manifest, dict):
        manifest = {"format": "edgec-artifact", "format_version": 1,
                    "members": {LIBRARY: {"sha256": sha256_file(lib), "bytes": 15}},
                    **manifest}
    data = json.dumps(manifest).encode()
    out = tmp_path / "s.edgec"
    import io

    with tarfile.open(out, "w") as tar:
        for name, blob in ((MANIFEST, data), (LIBRARY, lib.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return out


@pytest.mark.parametrize("case", list(SCHEMA_CASES))
def test_manifest_schema_is_checked_on_load(tmp_path, case):
    edit, needle = SCHEMA_CASES[case]
    manifest = _real_manifest()
    if case == "manifest-list":
        manifest = [1, 2]
    else:
        edit(manifest)
    art = _with_manifest(tmp_path, manifest)
    with pytest.raises(ArtifactError) as exc:
        edgec.load(art)
    assert needle in str(exc.value), str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_well_formed_manifest_passes_the_schema(tmp_path):
    m = _real_manifest()
    art = edgec.load(_with_manifest(tmp_path, m))
    assert [s.name for s in art.inputs] == ["x", "ids"] and art.signature is None
    for field in ("name", "arch", "cpu_flags", "tvm"):  # what a run needs of the target
        m2 = _real_manifest()
        del m2["target"][field]
        read_verified(_with_manifest(tmp_path, m2))  # the archive layer does not need it
        with pytest.raises(ArtifactError, match=f"target has no '{field}'"):
            edgec.load(_with_manifest(tmp_path, m2))


def test_format_version_of_another_type_is_named_as_it_is(tmp_path):
    m = {**_real_manifest(), "format_version": "1"}
    lib = tmp_path / "lib.bin"
    lib.write_bytes(b"x")
    out = tmp_path / "v.edgec"
    write_artifact(out, {}, {LIBRARY: lib})
    edited = _rewrite(out, tmp_path / "v2.edgec", lambda n, d: json.dumps(
        {**json.loads(d), **m}).encode() if n == MANIFEST else d)
    with pytest.raises(ArtifactError, match="format version '1' is not supported"):
        read_verified(edited)


def test_random_inputs_refuse_what_cannot_be_allocated():
    from edgec.tensors import random_inputs

    huge = edgec.TensorSpec("x", (1, 1 << 40), "float32")
    with pytest.raises(UnsupportedError, match=r"random input x float32\[1,1099511627776\]"):
        random_inputs([huge])


def test_library_that_is_not_elf_or_truncated_is_refused_before_dlopen(tmp_path):
    from edgec.runtime.session import check_elf

    so = tmp_path / "model.so"
    so.write_bytes(b"not a shared library\n")
    with pytest.raises(ArtifactError, match="not an ELF shared library"):
        check_elf(tmp_path / "a.edgec", so)
    real = Path(sys.executable).resolve()  # any ELF of this machine
    data = real.read_bytes()
    so.write_bytes(data[:4096])
    with pytest.raises(ArtifactError, match=r"truncated|not a shared library"):
        check_elf(tmp_path / "a.edgec", so)


@pytest.mark.compile
def test_library_checks_on_a_real_artifact(conv_artifact, tmp_path):
    """A truncated library (hash recomputed) died of SIGBUS inside dlopen; text
    failed in dlopen as an internal error; both are one-line ArtifactErrors now."""
    from edgec.runtime.session import check_elf

    _, path = conv_artifact
    with tarfile.open(path) as t:
        lib = t.extractfile(LIBRARY).read()
    so = tmp_path / "model.so"
    so.write_bytes(lib)
    check_elf(path, so)  # the real one passes
    for cut in (64, 4096, len(lib) // 2, len(lib) - 1):
        so.write_bytes(lib[:cut])
        with pytest.raises(ArtifactError, match=r"truncated|outside the file"):
            check_elf(path, so)
    arm = bytearray(lib)
    arm[18:20] = (183).to_bytes(2, "little")  # e_machine: aarch64
    so.write_bytes(bytes(arm))
    with pytest.raises(ArtifactError, match="ELF machine 183"):
        check_elf(path, so)


def _manifest_edit(field: str, value):
    def edit(name, data):
        if name != MANIFEST:
            return data
        m = json.loads(data)
        m["inputs"][0][field] = value
        return json.dumps(m).encode()
    return edit


@pytest.mark.compile
@pytest.mark.parametrize("field,value,needle", [
    ("dtype", "int64", r"'x' is int64\[1,3,16,16\] in the manifest, the library takes "
                       r"float32\[1,3,16,16\]"),
    ("shape", [1, 3, 32, 32], r"'x' is float32\[1,3,32,32\] in the manifest, the library "
                              r"takes float32\[1,3,16,16\]"),
    ("shape", [1, 3, 16], r"float32\[1,3,16\] in the manifest")])
def test_manifest_inputs_are_checked_against_the_library(conv_artifact, tmp_path, field,
                                                         value, needle):
    """The manifest's inputs against what the library's main checks its arguments
    against (read from the executable, before anything runs): a TVM VM error at the
    first call before (exit 70)."""
    _, path = conv_artifact
    art = edgec.load(_rewrite(path, tmp_path / "i.edgec", _manifest_edit(field, value)))
    with pytest.raises(ArtifactError, match=needle):
        art.session()


@pytest.mark.compile
def test_input_count_is_checked_against_the_library(conv_artifact, tmp_path):
    _, path = conv_artifact

    def edit(name, data):
        if name != MANIFEST:
            return data
        m = json.loads(data)
        m["inputs"].append(dict(m["inputs"][0], name="x2"))
        return json.dumps(m).encode()

    art = edgec.load(_rewrite(path, tmp_path / "n.edgec", edit))
    with pytest.raises(ArtifactError, match=r"main takes 1 input\(s\), the manifest lists 2"):
        art.session()


@pytest.mark.compile
def test_vm_argument_errors_become_artifact_errors(conv_artifact, tmp_path):
    """Where the executable does not state a parameter (another TVM), the VM's own
    check at the call is turned into the same one-line error, naming the input."""
    _, path = conv_artifact
    art = edgec.load(_rewrite(path, tmp_path / "f.edgec", _manifest_edit("dtype", "int64")))
    from edgec.runtime import session as session_mod

    real = session_mod.library_params
    session_mod.library_params = lambda module: {}
    try:
        s = art.session()
    finally:
        session_mod.library_params = real
    with pytest.raises(ArtifactError, match=r"input 'x': the library takes float32\[1,3,16,16\]"):
        s.run({"x": np.zeros((1, 3, 16, 16), np.int64)})
    with pytest.raises(ArtifactError, match="input 'x'"):
        s.time({"x": np.zeros((1, 3, 16, 16), np.int64)}, repeat=1)


def test_artifact_fuzz_target_replays_its_seeds(tmp_path):
    """benchmarks/fuzz_loader (make fuzz-loader): the seeds, and the input that found
    an entry with index_extents but no valid_range (a KeyError in the run's input
    checks), go through the artifact target without a finding."""
    import importlib.util

    here = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_loader"

    def module(name: str):
        spec = importlib.util.spec_from_file_location(f"edgec_fuzz_loader_{name}",
                                                      here / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    sys.path.insert(0, str(here))  # fuzz_artifact imports its findings.py
    try:
        fuzz, seeds = module("fuzz_artifact"), module("seeds")
    finally:
        sys.path.remove(str(here))
    seeds.artifact_seeds(tmp_path / "seeds")
    target = fuzz.Target(instrument=False)
    inputs = sorted((tmp_path / "seeds").iterdir())
    assert len(inputs) >= 6
    found = json.loads((tmp_path / "seeds" / "manifest-full").read_bytes()[1:])
    del found["inputs"][1]["valid_range"]
    regression = seeds.MANIFEST_ONLY + json.dumps(found).encode()
    for data in [*(p.read_bytes() for p in inputs), regression]:
        target.one_input(data)  # raises on a finding

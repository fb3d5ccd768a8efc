"""Every kind of bad input gets one line naming the file, a documented exit code,
no traceback and no output file. Runs the real CLI entry point in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import conv_model, save
from onnx import TensorProto, helper, numpy_helper

from edgec.errors import (
    EXIT_BAD_ARTIFACT,
    EXIT_BAD_MODEL,
    EXIT_TOOLCHAIN,
    EXIT_UNSUPPORTED,
    EXIT_USAGE,
)


def assert_one_line_error(res, code: int, *needles: str) -> None:
    assert res.code == code, (res.code, res.err)
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, res.err
    assert lines[0].startswith("edgec: error: "), lines[0]
    assert "Traceback" not in res.err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def assert_nothing_written(folder: Path, *expected: str) -> None:
    """Only the files the test itself created are in ``folder``."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)


def test_missing_file(cli, tmp_path):
    res = cli("compile", tmp_path / "nope.onnx", "-t", "x86", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_USAGE, "nope.onnx", "no such file")
    assert_nothing_written(tmp_path)


def test_not_onnx(cli, tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is a text file, not a model\n" * 20)
    res = cli("compile", bad, "-t", "x86", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_BAD_MODEL, "notes.onnx")
    assert_nothing_written(tmp_path, "notes.onnx")


def test_empty_file(cli, tmp_path):
    bad = tmp_path / "empty.onnx"
    bad.write_bytes(b"")
    assert_one_line_error(cli("inspect", bad), EXIT_BAD_MODEL, "empty.onnx", "empty")


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.9])
def test_truncated_protobuf(cli, tmp_path, cut):
    data = conv_model(size=32).SerializeToString()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: int(len(data) * cut)])
    res = cli("compile", bad, "-t", "x86", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_BAD_MODEL, "cut.onnx")
    assert_nothing_written(tmp_path, "cut.onnx")


def test_corrupted_protobuf(cli, tmp_path):
    data = bytearray(conv_model(size=32).SerializeToString())
    rng = np.random.default_rng(1)
    # Scribble over the graph structure (not only weight bytes, which would still parse).
    for i in rng.integers(0, 200, size=40):
        data[i] = 0xFF
    bad = tmp_path / "bits.onnx"
    bad.write_bytes(bytes(data))
    res = cli("compile", bad, "-t", "x86", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_BAD_MODEL, "bits.onnx")
    assert_nothing_written(tmp_path, "bits.onnx")


@pytest.mark.parametrize("command", ["compile", "inspect"])
def test_names_that_are_not_utf8_are_a_model_error(cli, tmp_path, command):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["QQQQ", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["QQQQ", 3])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    bad = tmp_path / "utf8.onnx"  # a dim name of bytes that are not UTF-8 (found by atheris)
    bad.write_bytes(data.SerializeToString().replace(b"QQQQ", b"\xff\xfe\xfd\xfc"))
    args = ["-t", "x86", "-o", tmp_path / "o.edgec"] if command == "compile" else []
    assert_one_line_error(cli(command, bad, *args), EXIT_BAD_MODEL, "utf8.onnx",
                          "cannot be read")
    assert_nothing_written(tmp_path, "utf8.onnx")


def test_invalid_model_fails_checker(cli, tmp_path):
    m = conv_model()
    m.graph.node[1].input[0] = "does_not_exist"
    bad = save(m, tmp_path / "dangling.onnx")
    assert_one_line_error(cli("compile", bad, "-t", "x86", "-o", tmp_path / "o.edgec"),
                          EXIT_BAD_MODEL, "dangling.onnx", "invalid ONNX model")


def test_unknown_target_lists_close_names(cli, conv_onnx, tmp_path):
    res = cli("compile", conv_onnx, "-t", "armm", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_USAGE, "unknown target 'armm'", "arm")
    assert_nothing_written(tmp_path, "conv.onnx")


@pytest.mark.parametrize("spec", ["x=1,a,16,16", "x", "=1,3", "x=1,,3", "x=0,3,16,16", "x=-1,3"])
def test_malformed_input_shape(cli, conv_onnx, tmp_path, spec):
    res = cli("compile", conv_onnx, "-t", "x86", "--input-shape", spec,
              "-o", tmp_path / "o.edgec")
    # a letter is taken for a placeholder pasted from edgec's own hint
    assert_one_line_error(res, EXIT_USAGE, "--input-shape",
                          "a is a placeholder" if "a" in spec else "NAME=D1,D2")
    assert_nothing_written(tmp_path, "conv.onnx")


def test_shape_contradicting_model(cli, conv_onnx, tmp_path):
    res = cli("compile", conv_onnx, "-t", "x86", "--input-shape", "x=1,4,16,16",
              "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_USAGE, "conv.onnx", "contradicts the model", "dim 1")
    res = cli("compile", conv_onnx, "-t", "x86", "--input-shape", "x=1,3,16",
              "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_USAGE, "conv.onnx", "rank 4")
    res = cli("compile", conv_onnx, "-t", "x86", "--input-shape", "image=1,3,16,16",
              "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_USAGE, "no input named 'image'", "x")
    assert_nothing_written(tmp_path, "conv.onnx")


def test_binding_that_breaks_shape_inference(cli, tmp_path):
    # Reshape to a fixed [4, 64] works only for 256 elements.
    shape = numpy_helper.from_array(np.array([4, 64], np.int64), "shape")
    g = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="/Reshape")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 64])], [shape])
    m = save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
             tmp_path / "reshape.onnx")
    res = cli("compile", m, "-t", "x86", "--input-shape", "x=3,64", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_USAGE, "do not fit the model", "/Reshape", "--input-shape")
    assert_nothing_written(tmp_path, "reshape.onnx")


def test_unbound_dynamic_dim_suggests_flag(cli, tmp_path):
    m = save(conv_model(batch="batch"), tmp_path / "dyn.onnx")
    res = cli("compile", m, "-t", "x86", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_USAGE, "dyn.onnx", "dynamic", "--input-shape x=1,3,16,16")
    assert_nothing_written(tmp_path, "dyn.onnx")


def _det_model() -> onnx.ModelProto:
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="/pre/Relu"),
         helper.make_node("Det", ["r"], ["d"], name="/head/Det")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.compile
def test_op_tvm_cannot_import_names_node(cli, tmp_path):
    m = save(_det_model(), tmp_path / "det.onnx")
    res = cli("compile", m, "-t", "x86", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_UNSUPPORTED, "det.onnx", "'/head/Det' (Det)",
                          "cannot be imported by TVM")
    assert_nothing_written(tmp_path, "det.onnx")


def _external_model(tmp_path: Path, location: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    m = conv_model()
    w = m.graph.initializer[0]
    raw = numpy_helper.to_array(w).tobytes()
    w.ClearField("float_data")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    path = folder / "ext.onnx"
    onnx.save(m, str(path))
    return path, raw


def test_external_data_parent_dir(cli, tmp_path):
    path, raw = _external_model(tmp_path, "../secret.bin")
    (tmp_path / "secret.bin").write_bytes(raw)
    res = cli("compile", path, "-t", "x86", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_BAD_MODEL, "ext.onnx", "../secret.bin", "outside")
    assert not (tmp_path / "o.edgec").exists()


def test_external_data_absolute_path(cli, tmp_path):
    target = tmp_path / "abs.bin"
    path, raw = _external_model(tmp_path, str(target))
    target.write_bytes(raw)
    res = cli("inspect", path)
    assert_one_line_error(res, EXIT_BAD_MODEL, "ext.onnx", "outside")


def test_external_data_symlink_out(cli, tmp_path):
    outside = tmp_path / "outside.bin"
    path, raw = _external_model(tmp_path, "weights.bin")
    outside.write_bytes(raw)
    os.symlink(outside, path.parent / "weights.bin")
    res = cli("compile", path, "-t", "x86", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_BAD_MODEL, "ext.onnx", "symlink")
    assert not (tmp_path / "o.edgec").exists()


def test_external_data_missing_or_short(cli, tmp_path):
    path, raw = _external_model(tmp_path, "weights.bin")
    assert_one_line_error(cli("inspect", path), EXIT_BAD_MODEL, "does not exist")
    (path.parent / "weights.bin").write_bytes(raw[:10])
    assert_one_line_error(cli("inspect", path), EXIT_BAD_MODEL, "truncated")


def test_external_data_inside_folder_is_accepted(cli, tmp_path):
    path, raw = _external_model(tmp_path, "weights.bin")
    (path.parent / "weights.bin").write_bytes(raw)
    res = cli("inspect", path, "--json")
    assert res.code == 0, res.err
    assert '"param_count"' in res.out or "params" in res.out


def test_model_over_size_limit(cli, conv_onnx, tmp_path):
    res = cli("compile", conv_onnx, "-t", "x86", "--max-model-size", "100",
              "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_BAD_MODEL, "conv.onnx", "over the limit",
                          "--max-model-size")
    assert_nothing_written(tmp_path, "conv.onnx")
    assert_one_line_error(cli("compile", conv_onnx, "--max-model-size", "lots"), EXIT_USAGE,
                          "--max-model-size")


def test_missing_cross_compiler_names_package(cli, conv_onnx, tmp_path, monkeypatch):
    tdir = tmp_path / "targets"
    tdir.mkdir()
    (tdir / "board.toml").write_text(
        'description = "test board with a missing compiler"\n'
        '[tvm]\nkind = "llvm"\nmtriple = "aarch64-linux-gnu"\nmcpu = "cortex-a53"\n'
        '[device]\narch = "aarch64"\ncpu_flags = ["asimd"]\n'
        '[toolchain]\ncc = "edgec-test-no-such-gcc"\npackage = "gcc-edgec-test"\n')
    monkeypatch.setenv("EDGEC_TARGET_PATH", str(tdir))
    res = cli("compile", conv_onnx, "-t", "board", "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_TOOLCHAIN, "edgec-test-no-such-gcc",
                          "apt-get install gcc-edgec-test")
    assert not (tmp_path / "o.edgec").exists()


def test_bad_target_file_is_named(cli, conv_onnx, tmp_path, monkeypatch):
    tdir = tmp_path / "targets"
    tdir.mkdir()
    (tdir / "typo.toml").write_text('description = "x"\n[tvm]\nkind = "llvm"\n'
                                    'mtriple = "x86_64-linux-gnu"\n[device]\narch = "x86_64"\n'
                                    '[toolchain]\ncc = "gcc"\n[tvmm]\n')
    monkeypatch.setenv("EDGEC_TARGET_PATH", str(tdir))
    assert_one_line_error(cli("targets"), EXIT_USAGE, "typo.toml", "unknown key")


def test_artifact_errors(cli, tmp_path):
    missing = tmp_path / "none.edgec"  # a missing file is a usage error, as the README says
    for cmd in (("run", missing, "--random"), ("profile", missing), ("verify", missing,
                "--model", tmp_path / "m.onnx"), ("bundle", missing, "-o", tmp_path / "app")):
        assert_one_line_error(cli(*cmd), EXIT_USAGE, "none.edgec", "no such artifact")
    assert_one_line_error(cli("run", tmp_path, "--random"), EXIT_USAGE, "is a folder")
    junk = tmp_path / "junk.edgec"
    junk.write_bytes(b"\x00garbage" * 100)
    assert_one_line_error(cli("run", junk, "--random"), EXIT_BAD_ARTIFACT, "junk.edgec")


def test_bare_traceback_never_reaches_user_without_debug(tmp_path):
    """The installed entry point, as a user runs it, for a failing command."""
    res = subprocess.run([sys.executable, "-m", "edgec.cli", "compile", str(tmp_path / "x.onnx")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == EXIT_USAGE
    assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
    dbg = subprocess.run([sys.executable, "-m", "edgec.cli", "--debug", "compile",
                          str(tmp_path / "x.onnx")], capture_output=True, text=True, timeout=120)
    assert dbg.returncode != 0 and "Traceback" in dbg.stderr


def test_foreign_arch_names_emulation():
    """An aarch64 artifact on x86 says how to run it here (qemu), not only "copy it"."""
    from edgec.target_registry import host_arch, host_compatibility

    if host_arch() != "x86_64":
        pytest.skip("emulation is offered on x86_64 hosts")
    ok, why = host_compatibility("arm/raspberry-pi-4", "llvm", "aarch64", ["asimd"])
    assert not ok and "--emulate" in why and "copy it to the device" in why
    ok, why = host_compatibility("gpu/jetson-orin", "cuda", "aarch64", ["asimd"])
    assert not ok and "--emulate" not in why  # a GPU artifact cannot be emulated


@pytest.fixture(scope="module")
def static_and_dynamic(tmp_path_factory) -> dict[str, Path]:
    """conv_model compiled twice: declared static, and with a dynamic batch bound to 1."""
    import edgec

    d = tmp_path_factory.mktemp("shapes")
    static = save(conv_model(), d / "static.onnx")
    dynamic = save(conv_model(batch="batch"), d / "dynamic.onnx")
    return {"static": edgec.compile(static, target="host", output=d / "static.edgec").path,
            "dynamic": edgec.compile(dynamic, target="host", output=d / "dynamic.edgec",
                                     input_shapes={"x": (1, 3, 16, 16)}).path}


@pytest.mark.compile
def test_wrong_shape_input_says_what_can_change(cli, static_and_dynamic, tmp_path):
    """Recompiling helps only where the model's dims are dynamic; a static model
    needs data of its shape, and the message says which case it is."""
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((2, 3, 16, 16), np.float32))
    res = cli("run", static_and_dynamic["static"], "--input", f"x={big}")
    assert_one_line_error(res, EXIT_USAGE, "input 'x' has shape [2, 3, 16, 16]",
                          "the model itself fixes it to [1,3,16,16]",
                          "give an array of shape [1, 3, 16, 16]")
    assert "recompile" not in res.err
    res = cli("run", static_and_dynamic["dynamic"], "--input", f"x={big}")
    assert_one_line_error(res, EXIT_USAGE, "recompile with --input-shape x=2,3,16,16")
    wide = tmp_path / "wide.npy"  # channels are fixed even in the dynamic-batch model
    np.save(wide, np.zeros((1, 4, 16, 16), np.float32))
    res = cli("run", static_and_dynamic["dynamic"], "--input", f"x={wide}")
    assert_one_line_error(res, EXIT_USAGE, "fixes it to [?,3,16,16] ('?': dynamic)")


@pytest.mark.compile
def test_input_files_that_are_not_arrays(cli, static_and_dynamic, tmp_path):
    art = static_and_dynamic["static"]
    text = tmp_path / "x.txt"
    text.write_text("1 2 3\n")
    res = cli("run", art, "--input", f"x={text}")
    assert_one_line_error(res, EXIT_USAGE, "x.txt is not a .npy or .npz file", "numpy.save")
    assert "pickle" not in res.err
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    objz = tmp_path / "obj.npz"
    np.savez(objz, x=np.array([{"a": 1}], dtype=object))
    for f in (f"x={obj}", str(objz)):
        assert_one_line_error(cli("run", art, "--input", f), EXIT_USAGE,
                              "holds Python objects", "never loads")
    cut = tmp_path / "cut.npy"
    np.save(cut, np.zeros((1, 3, 16, 16), np.float32))
    cut.write_bytes(cut.read_bytes()[:100])
    assert_one_line_error(cli("run", art, "--input", f"x={cut}"), EXIT_USAGE,
                          "cut.npy is a damaged .npy/.npz file")
    badzip = tmp_path / "bad.npz"
    badzip.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    assert_one_line_error(cli("run", art, "--input", str(badzip)), EXIT_USAGE,
                          "bad.npz is a damaged")


def test_input_const_files_get_the_same_checks_as_inputs(cli, conv_onnx, tmp_path):
    """--input-const x=F.npy reads F through the loader --input uses: no pickles,
    and a file that is not .npy says so instead of numpy's allow_pickle advice."""
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    fake = tmp_path / "fake.npy"
    fake.write_text("0.5\n")
    for f, needle in ((obj, "holds Python objects"), (fake, "is not a .npy or .npz file"),
                      (tmp_path / "none.npy", "does not exist")):
        res = cli("compile", conv_onnx, "--input-const", f"x={f}", "-o", tmp_path / "o.edgec")
        assert_one_line_error(res, EXIT_USAGE, "--input-const x", needle)
        assert "allow_pickle" not in res.err
    assert not (tmp_path / "o.edgec").exists()


@pytest.mark.parametrize("bad", ["same", "device", "file-parent", "folder"])
def test_bad_output_path_is_refused_before_compiling(cli, conv_onnx, tmp_path, bad):
    """Checked before any work: the user's model is never overwritten, a device node
    never replaced by a rename, and nothing is created."""
    before = conv_onnx.read_bytes()
    out = {"same": conv_onnx, "device": Path("/dev/null"),
           "file-parent": conv_onnx / "x.edgec", "folder": tmp_path}[bad]
    res = cli("compile", conv_onnx, "-o", out)
    assert_one_line_error(res, EXIT_USAGE)
    assert conv_onnx.read_bytes() == before
    assert Path("/dev/null").is_char_device()
    assert_nothing_written(tmp_path, "conv.onnx")


def test_run_output_on_the_artifact_itself_is_refused(cli, conv_onnx, tmp_path):
    art = tmp_path / "c.edgec"
    assert cli("compile", conv_onnx, "-o", art).code == 0
    before = art.read_bytes()
    res = cli("run", art, "--random", "-o", art, "--repeat", "0")
    assert_one_line_error(res, EXIT_USAGE, "is the input file itself")
    assert art.read_bytes() == before


def test_names_with_markup_and_escape_sequences_are_shown_inert(cli, tmp_path):
    """Names come from the model: '[/]' is not rich markup (it crashed as an internal
    error), and a terminal escape sequence is shown as \\x1b, never sent raw."""
    name = "in[/]put\x1b[2J\x1b]0;pwned\x07"
    model = conv_model()
    model.graph.input[0].name = name
    model.graph.node[0].input[0] = name
    model.graph.node[0].name = "[bold]conv\x1b[31m"
    path = save(model, tmp_path / "we[ir]d.onnx")
    for args in (("inspect", path), ("compile", path, "-o", tmp_path / "w.edgec"),
                 ("run", tmp_path / "w.edgec", "--random", "--repeat", "0"),
                 ("profile", tmp_path / "w.edgec", "--repeat", "1")):
        res = cli(*args)
        assert res.code == 0, (args, res.err)
        assert "\x1b" not in res.out + res.err, args
    assert "in[/]put\\x1b[2J" in cli("compile", path, "-o", tmp_path / "w2.edgec").out


def _types_model(path: Path, nodes, inputs, outputs) -> Path:
    graph = helper.make_graph(nodes, "types", inputs, outputs)
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)],
                                  ir_version=10), path)


@pytest.mark.parametrize("dtype", ["FLOAT8E4M3FN", "FLOAT8E5M2", "INT4", "UINT4", "BFLOAT16"])
def test_types_edgec_cannot_run_are_refused_at_compile_time(cli, tmp_path, dtype):
    """They compiled and then failed inside DLPack at run time."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    path = _types_model(tmp_path / "c.onnx", [
        helper.make_node("Cast", ["x"], ["c"], name="narrow", to=getattr(TensorProto, dtype)),
        helper.make_node("Cast", ["c"], ["y"], name="back", to=TensorProto.FLOAT)], [x], [y])
    res = cli("compile", path, "-o", tmp_path / "c.edgec")
    assert_one_line_error(res, EXIT_UNSUPPORTED, "node 'narrow' (Cast) casts to",
                          dtype.lower())
    assert_nothing_written(tmp_path, "c.onnx")


@pytest.mark.parametrize("where", ["optional input", "sequence output"])
def test_non_tensor_graph_inputs_and_outputs_are_refused(cli, tmp_path, where):
    """An optional input raised a KeyError; a sequence output was refused only when run."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    tensor = helper.make_tensor_type_proto(TensorProto.FLOAT, [4])
    if where == "optional input":
        ins = [helper.make_value_info("x", helper.make_optional_type_proto(tensor))]
        outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])]
        nodes = [helper.make_node("OptionalGetElement", ["x"], ["y"])]
        needle = "graph input 'x' is an optional"
    else:
        ins, nodes = [x], [helper.make_node("SequenceConstruct", ["x"], ["s"])]
        outs = [helper.make_value_info("s", helper.make_sequence_type_proto(tensor))]
        needle = "graph output 's' is a sequence"
    path = _types_model(tmp_path / "t.onnx", nodes, ins, outs)
    assert_one_line_error(cli("compile", path, "-o", tmp_path / "t.edgec"), EXIT_UNSUPPORTED,
                          needle)


def test_external_data_hard_link_is_refused(cli, tmp_path):
    """A hard link can make any file of the disk look like it is in the model's folder
    (onnx's own loader calls it a hardlink attack; it was an internal error here)."""
    path, raw = _external_model(tmp_path, "w.bin")
    (tmp_path / "outside.bin").write_bytes(raw)
    os.link(tmp_path / "outside.bin", path.parent / "w.bin")
    res = cli("compile", path, "-o", tmp_path / "o.edgec")
    assert_one_line_error(res, EXIT_BAD_MODEL, "'w.bin'", "2 hard links")
    assert not (tmp_path / "o.edgec").exists()


@pytest.mark.parametrize("key,value,needle", [("offset", "-8", "non-negative"),
                                              ("length", "-4", "non-negative"),
                                              ("offset", str(1 << 40), "only")])
def test_external_data_offsets_and_lengths_are_checked(cli, tmp_path, key, value, needle):
    path, raw = _external_model(tmp_path, "w.bin")
    (path.parent / "w.bin").write_bytes(raw)
    m = onnx.load(str(path), load_external_data=False)
    for entry in m.graph.initializer[0].external_data:
        if entry.key == key:
            entry.value = value
    onnx.save(m, str(path))
    assert_one_line_error(cli("inspect", path), EXIT_BAD_MODEL, "'W'", needle)


def test_models_with_too_many_nodes_are_refused_at_load(cli, tmp_path):
    """A 10^5-node chain compiled for over five minutes; the limit is a clear line,
    checked before anything else, and --max-nodes raises it."""
    nodes = [helper.make_node("Relu", ["x" if i == 0 else f"t{i - 1}"], [f"t{i}"])
             for i in range(60_000)]
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("t59999", TensorProto.FLOAT, [1, 4])])
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  ir_version=8), tmp_path / "long.onnx")
    for cmd in ("inspect", "compile"):
        res = cli(cmd, path, "-o" if cmd == "compile" else "--json",
                  *([tmp_path / "l.edgec"] if cmd == "compile" else []))
        assert_one_line_error(res, EXIT_BAD_MODEL, "60000 nodes", "limit of 50000",
                              "--max-nodes")
    assert cli("inspect", path, "--max-nodes", "60000", "--json").code == 0

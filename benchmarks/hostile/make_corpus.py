"""Generate the hostile-input corpus: broken models, unsafe paths, tampered artifacts, bad data.

Each case is a folder of small files plus an entry in ``cases.json`` saying what
to run (``edgec`` arguments, relative to a scratch copy of the folder), what the
runner must set up first (links, FIFOs, device nodes, read-only folders, sparse
files: things git and copies do not keep) and which exit codes count as the
right outcome (README, "Exit codes and errors"; 0 where the input is valid).
run_hostile.py runs them. Deterministic (seeded) except the compiled fixtures'
timestamps; the 10^6-node model is only written with ``--huge``.

    python benchmarks/hostile/make_corpus.py [--out DIR] [--huge] [--only REGEX]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_OUT = HERE / "corpus"
SEED = 20261206
F = TensorProto.FLOAT
I64 = TensorProto.INT64
GIB = 1 << 30

# exit codes, as the README's table has them
OK, USAGE, BAD_MODEL, UNSUPPORTED, TOOLCHAIN, COMPILE, BAD_ARTIFACT = 0, 2, 3, 4, 5, 6, 7

Writer = Callable[[Path, dict[str, Path]], None]


@dataclass
class Case:
    """One hostile input: how to make its files, what to run, what counts as right."""

    name: str
    klass: str
    why: str
    commands: list[list[str]]
    exit: list[int]
    make: Writer | None = None
    fixtures: tuple[str, ...] = ()  # compiled artifacts the files are made from
    setup: list[list] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # paths a successful run may create
    checks: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
    huge: bool = False

    def to_json(self) -> dict:
        outcome = ("ok" if self.exit == [OK] else "clear error" if OK not in self.exit
                   else "ok or clear error")
        return {"name": self.name, "class": self.klass, "why": self.why,
                "commands": self.commands, "expect": {"outcome": outcome, "exit": self.exit},
                "setup": self.setup, "outputs": self.outputs, "checks": self.checks,
                "limits": self.limits, "huge": self.huge}


# ---------------------------------------------------------------- models


def vi(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def mk(nodes, inputs, outputs, inits=(), *, opset: int = 17, ir: int = 8,
       extra_opsets=()) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(inits))
    ops = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in extra_opsets)]
    return helper.make_model(graph, opset_imports=ops, ir_version=ir)


def conv_model(seed: int = 0) -> onnx.ModelProto:
    """x[1,3,16,16] -> Conv(8, 3x3) + bias -> Relu: the bad-input tests' model."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "B")
    return mk([helper.make_node("Conv", ["x", "W", "B"], ["c"], name="/conv/Conv",
                                pads=[1, 1, 1, 1]),
               helper.make_node("Relu", ["c"], ["y"], name="/relu/Relu")],
              [vi("x", F, [1, 3, 16, 16])], [vi("y", F, [1, 8, 16, 16])], [w, b])


def relu_model(in_name: str = "x", out_name: str = "y", node_name: str = "/Relu",
               shape=(1, 4)) -> onnx.ModelProto:
    return mk([helper.make_node("Relu", [in_name], [out_name], name=node_name)],
              [vi(in_name, F, list(shape))], [vi(out_name, F, list(shape))])


def det_model(node_name: str = "/head/Det") -> onnx.ModelProto:
    """A Det node, which TVM cannot import: compile fails with exit 4 after loading."""
    return mk([helper.make_node("Relu", ["x"], ["r"], name="/pre/Relu"),
               helper.make_node("Det", ["r"], ["d"], name=node_name)],
              [vi("x", F, [3, 3])], [vi("d", F, [])])


def indexing_model() -> onnx.ModelProto:
    """Gather, an embedding lookup, GatherElements and ScatterND, each indexed by an input."""
    rng = np.random.default_rng(SEED)
    t = numpy_helper.from_array(rng.standard_normal((10, 4)).astype(np.float32), "table")
    e = numpy_helper.from_array(rng.standard_normal((1000, 16)).astype(np.float32), "embed")
    d = numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "data")
    s = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "sdata")
    u = numpy_helper.from_array(rng.standard_normal((2, 4)).astype(np.float32), "updates")
    return mk([helper.make_node("Gather", ["table", "ids"], ["g"], name="/Gather", axis=0),
               helper.make_node("Gather", ["embed", "tok"], ["e"], name="/embed/Gather", axis=0),
               helper.make_node("GatherElements", ["data", "gidx"], ["ge"], name="/GE", axis=1),
               helper.make_node("ScatterND", ["sdata", "sidx", "updates"], ["sn"], name="/SND")],
              [vi("ids", I64, [3]), vi("tok", TensorProto.INT32, [1, 8]),
               vi("gidx", I64, [3, 4]), vi("sidx", I64, [2, 1])],
              [vi("g", F, [3, 4]), vi("e", F, [1, 8, 16]), vi("ge", F, [3, 4]),
               vi("sn", F, [4, 4])], [t, e, d, s, u])


def valid_indices() -> dict[str, np.ndarray]:
    return {"ids": np.array([0, 9, -1], np.int64), "tok": np.arange(8, dtype=np.int32)[None],
            "gidx": np.array([[0, 1, 2, 3], [3, 2, 1, 0], [-1, 0, 0, 1]], np.int64),
            "sidx": np.array([[0], [3]], np.int64)}


def chain_model(n: int) -> onnx.ModelProto:
    """x -> (Add c, Mul d) repeated: n nodes no pass can shorten."""
    nodes, prev = [], "x"
    for i in range(n):
        op, k = ("Add", "c") if i % 2 == 0 else ("Mul", "d")
        out = "y" if i == n - 1 else f"t{i}"
        nodes.append(helper.make_node(op, [prev, k], [out], name=f"n{i}"))
        prev = out
    inits = [numpy_helper.from_array(np.array(1e-3, np.float32), "c"),
             numpy_helper.from_array(np.array(0.999, np.float32), "d")]
    return mk(nodes, [vi("x", F, [1, 16])], [vi("y", F, [1, 16])], inits)


def nested_if_model(depth: int) -> onnx.ModelProto:
    """If inside If ``depth`` deep (in the then-branches), each on a runtime condition."""
    def leaf(d: int, op: str) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node(op, ["x"], [f"o{d}{op}"])], f"b{d}{op}", [],
                                 [vi(f"o{d}{op}", F, [4])])

    def level(d: int) -> onnx.GraphProto:
        if d == depth:
            return leaf(d, "Relu")
        node = helper.make_node("If", ["c"], [f"o{d}"], name=f"if{d}", then_branch=level(d + 1),
                                else_branch=leaf(d, "Neg"))
        return helper.make_graph([node], f"b{d}", [], [vi(f"o{d}", F, [4])])
    return mk([helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
               helper.make_node("Greater", ["s", "z"], ["c"]),
               helper.make_node("If", ["c"], ["y"], name="if0", then_branch=level(1),
                                else_branch=level(1))],
              [vi("x", F, [4])], [vi("y", F, [4])],
              [numpy_helper.from_array(np.array(0, np.float32), "z")])


def cast_model(to: int, opset: int) -> onnx.ModelProto:
    """float32 -> ``to`` -> float32, at the first opset that has the type."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["n"], to=to, name="/Cast/narrow"),
         helper.make_node("Cast", ["n"], ["y"], to=F, name="/Cast/back")],
        "g", [vi("x", F, [2, 8])], [vi("y", F, [2, 8])])
    return helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", opset)])


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def deep_nesting(levels: int) -> bytes:
    """A ModelProto whose graph nests node -> attribute -> graph ``levels`` deep."""
    payload = b""
    for i in range(levels):
        tag = (0x0A, 0x2A, 0x32)[(levels - 1 - i) % 3]  # Graph.node, Node.attribute, Attr.g
        payload = bytes([tag]) + varint(len(payload)) + payload
    return b"\x08\x08\x3a" + varint(len(payload)) + payload


def folded_scalar_model() -> onnx.ModelProto:
    """Shape -> Cast -> ReduceSum folds to a scalar that onnxscript emits as a Constant node."""
    return mk([helper.make_node("Shape", ["x"], ["s"]),
               helper.make_node("Cast", ["s"], ["sf"], to=F),
               helper.make_node("ReduceSum", ["sf"], ["n"], keepdims=0),
               helper.make_node("Div", ["x", "n"], ["y"])],
              [vi("x", F, [4])], [vi("y", F, [4])])


def if_const_branches_model() -> onnx.ModelProto:
    """If on a condition that only folds with -O1+, branches holding Constant(value_float)."""
    def branch(tag: str) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("Constant", [], [f"k{tag}"], value_float=2.0),
             helper.make_node("Add", ["x", f"k{tag}"], [f"o{tag}"])],
            tag, [], [vi(f"o{tag}", F, [4])])
    return mk([helper.make_node("Shape", ["x"], ["s"]),
               helper.make_node("ReduceSum", ["s"], ["n"], keepdims=0),
               helper.make_node("Equal", ["n", "four"], ["c"]),
               helper.make_node("If", ["c"], ["y"], then_branch=branch("t"),
                                else_branch=branch("e"))],
              [vi("x", F, [4])], [vi("y", F, [4])],
              [numpy_helper.from_array(np.array(4, np.int64), "four")])


def external_model(folder: Path, location: str, *, offset=0, length=None,
                   data: bytes | None = None, name: str = "ext.onnx") -> bytes:
    """conv_model with W stored as external data at ``location`` (the raw bytes returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    m = conv_model()
    w = m.graph.initializer[0]
    raw = numpy_helper.to_array(w).tobytes()
    w.ClearField("float_data")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entries = [("location", location), ("offset", str(offset)),
               ("length", str(len(raw) if length is None else length))]
    for k, v in entries:
        e = w.external_data.add()
        e.key, e.value = k, v
    (folder / name).write_bytes(m.SerializeToString())
    if data is not None:
        (folder / "weights.bin").write_bytes(data)
    return raw


# ---------------------------------------------------------------- file helpers


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def npy(path: Path, arr: np.ndarray, allow_pickle: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr, allow_pickle=allow_pickle)
    return path


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A .npy v1 header declaring ``shape`` (followed by whatever data the caller adds)."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    text += " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def read_tar(path: Path) -> tuple[dict, dict[str, bytes]]:
    with tarfile.open(path) as t:
        manifest = json.loads(t.extractfile("manifest.json").read())
        blobs = {m.name: t.extractfile(m).read() for m in t.getmembers()
                 if m.isfile() and m.name != "manifest.json"}
    return manifest, blobs


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(buf.getvalue())
    return path


def member(name: str, data: bytes = b"", **kw) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


def retar(src: Path, dst: Path, *, manifest_edit=None, blobs_edit=None,
          rehash: bool = True, extra=()) -> Path:
    """Rewrite an artifact: edit the manifest and members, recomputing hashes if asked."""
    import hashlib

    manifest, blobs = read_tar(src)
    if blobs_edit:
        blobs_edit(blobs)
    if rehash:
        manifest["members"] = {n: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)}
                               for n, b in blobs.items()}
    if manifest_edit:
        manifest_edit(manifest)
    data = json.dumps(manifest, indent=2).encode()
    return write_tar(dst, [member("manifest.json", data),
                           *(member(n, b, mode=0o755) for n, b in blobs.items()), *extra])


# ---------------------------------------------------------------- the cases


def _edit(path: str, value) -> Callable[[dict], None]:
    """Set manifest[path] ('/'-separated; list indices as numbers) to value."""
    def apply(m: dict) -> None:
        keys = path.split("/")
        obj = m
        for k in keys[:-1]:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        last = keys[-1]
        if isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value
    return apply


def model_cases() -> list[Case]:
    cases: list[Case] = []
    rng = np.random.default_rng(SEED)
    good = conv_model().SerializeToString()
    out = ["out/o.edgec"]

    def compile_case(name, klass, why, writer, exit_, extra=(), model="in/m.onnx", **kw):
        cases.append(Case(name, klass, why,
                          [["compile", model, "-t", "host", "-o", "out/o.edgec", *extra]],
                          exit_, make=writer, outputs=out, **kw))

    def inspect_case(name, klass, why, writer, exit_, model="in/m.onnx", **kw):
        cases.append(Case(name, klass, why, [["inspect", model]], exit_, make=writer, **kw))

    # --- truncated and bit-flipped protobufs
    for cut in (0.1, 0.5, 0.9, 0.999):
        data = good[: int(len(good) * cut)]
        compile_case(f"pb-truncated-{int(cut * 1000):03d}", "protobuf",
                     f"the first {cut:.1%} of a valid model",
                     lambda d, f, data=data: put(d / "in/m.onnx", data), [BAD_MODEL])
    for i, (lo, hi, count) in enumerate([(0, 120, 1), (0, 200, 8), (0, len(good), 64)]):
        data = bytearray(good)
        for pos in rng.integers(lo, hi, size=count):
            data[pos] ^= 1 << int(rng.integers(0, 8))
        compile_case(f"pb-bitflip-{i}", "protobuf",
                     f"{count} seeded bit flips in bytes {lo}..{hi}: parses or not, either way "
                     "one clear line", lambda d, f, data=bytes(data): put(d / "in/m.onnx", data),
                     [OK, USAGE, BAD_MODEL, UNSUPPORTED])
    weights_at = good.find(numpy_helper.from_array(
        numpy_helper.to_array(conv_model().graph.initializer[0])).raw_data[:16])
    data = bytearray(good)
    for pos in rng.integers(weights_at, weights_at + 800, size=16):
        data[pos] ^= 0x40
    cases.append(Case("pb-bitflip-weights", "protobuf",
                      "bit flips inside the weights only: still a valid model, must compile and "
                      "match onnxruntime", [["verify", "in/m.onnx", "-t", "host"]], [OK],
                      make=lambda d, f, data=bytes(data): put(d / "in/m.onnx", data)))
    deep = deep_nesting(3000)
    compile_case("pb-deep-nesting", "protobuf", "graph -> node -> attribute -> graph nested "
                 "3000 levels, past protobuf's recursion limit",
                 lambda d, f: put(d / "in/m.onnx", deep), [BAD_MODEL])

    # --- wrong magic: other formats named .onnx, and the other way round
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("model.onnx", good)
    magics = {
        "zip": zbuf.getvalue(), "gzip": gzip.compress(good, mtime=0),
        "elf": b"\x7fELF\x02\x01\x01" + bytes(57) + bytes(rng.integers(0, 256, 2000,
                                                                      dtype=np.uint8)),
        "npy": npy_header((3,)) + np.zeros(3, np.float32).tobytes(),
        "pickle": pickle.dumps({"graph": [1, 2, 3]}, protocol=4),
        "tflite": b"\x1c\x00\x00\x00TFL3" + bytes(200),
        "text": b"this is a text file, not a model\n" * 20, "json": b'{"graph": {"node": []}}\n',
        "zeros": bytes(4096), "random": bytes(rng.integers(0, 256, 4096, dtype=np.uint8)),
        "one-byte": b"\x08",
    }
    for kind, data in magics.items():
        compile_case(f"magic-{kind}", "wrong magic", f"a {kind} file named .onnx",
                     lambda d, f, data=data: put(d / "in/m.onnx", data), [BAD_MODEL])
    compile_case("magic-empty", "wrong magic", "an empty file",
                 lambda d, f: put(d / "in/m.onnx", b""), [BAD_MODEL])
    compile_case("magic-artifact-as-model", "wrong magic", "an .edgec artifact given to compile",
                 lambda d, f: put(d / "in/m.onnx", f["tiny_cnn.edgec"].read_bytes()),
                 [USAGE, BAD_MODEL], fixtures=("tiny_cnn.edgec",))
    compile_case("magic-no-graph", "wrong magic", "a ModelProto with no graph and no opset",
                 lambda d, f: put(d / "in/m.onnx", onnx.ModelProto(ir_version=8)
                                  .SerializeToString()), [BAD_MODEL])

    # --- graph structure: cycles, dangling names, duplicates
    def graph_case(name, why, nodes, ins, outs, inits=(), exit_=(BAD_MODEL,), command="compile"):
        m = mk(nodes, ins, outs, inits)
        def writer(d, f, m=m):
            save(m, d / "in/m.onnx")
        if command == "compile":
            compile_case(name, "graph", why, writer, list(exit_))
        else:
            inspect_case(name, "graph", why, writer, list(exit_))

    add = helper.make_node
    graph_case("graph-cycle", "two Adds feeding each other",
               [add("Add", ["x", "b"], ["a"], name="A"), add("Add", ["x", "a"], ["b"], name="B")],
               [vi("x", F, [4])], [vi("a", F, [4])])
    graph_case("graph-self-loop", "a node consuming its own output",
               [add("Add", ["x", "a"], ["a"], name="A")], [vi("x", F, [4])], [vi("a", F, [4])])
    graph_case("graph-cycle-inspect", "a cycle, through inspect",
               [add("Add", ["x", "b"], ["a"], name="A"), add("Add", ["x", "a"], ["b"], name="B")],
               [vi("x", F, [4])], [vi("a", F, [4])], command="inspect")
    graph_case("graph-dangling-input", "a node input nothing produces",
               [add("Add", ["x", "ghost"], ["y"])], [vi("x", F, [4])], [vi("y", F, [4])])
    graph_case("graph-dangling-output", "a graph output nothing produces",
               [add("Relu", ["x"], ["r"])], [vi("x", F, [4])], [vi("y", F, [4])])
    graph_case("graph-no-outputs", "a graph with no outputs",
               [add("Relu", ["x"], ["r"])], [vi("x", F, [4])], [],
               exit_=(OK, BAD_MODEL, UNSUPPORTED))
    graph_case("graph-duplicate-output-name", "two nodes writing the same name (not SSA)",
               [add("Relu", ["x"], ["y"]), add("Neg", ["x"], ["y"])],
               [vi("x", F, [4])], [vi("y", F, [4])])
    graph_case("graph-duplicate-initializer", "two initializers with one name",
               [add("Add", ["x", "w"], ["y"])], [vi("x", F, [4])], [vi("y", F, [4])],
               [numpy_helper.from_array(np.ones(4, np.float32), "w"),
                numpy_helper.from_array(np.zeros(4, np.float32), "w")])
    graph_case("graph-empty-name-output", "a node output named ''",
               [add("Relu", ["x"], [""])], [vi("x", F, [4])], [vi("", F, [4])])
    cases.append(Case("graph-no-nodes", "graph", "an output that is the input itself: valid",
                      [["verify", "in/m.onnx", "-t", "host"]], [OK, UNSUPPORTED],
                      make=lambda d, f: save(mk([], [vi("x", F, [4])], [vi("x", F, [4])]),
                                             d / "in/m.onnx")))
    compile_case("graph-if-nested-20", "graph", "If nested 20 deep on runtime conditions",
                 lambda d, f: save(nested_if_model(20), d / "in/m.onnx"), [OK, UNSUPPORTED])

    # --- dims: negative, zero and huge
    def dims_case(name, why, shape, exit_, extra=()):
        compile_case(name, "dims", why, lambda d, f: save(relu_model(shape=shape),
                                                          d / "in/m.onnx"), exit_, extra)

    dims_case("dims-negative-input", "input dims [1, -3]", (1, -3), [USAGE, BAD_MODEL])
    dims_case("dims-huge-input-2^40", "input dims [1, 2^40] (4 TiB of float32)",
              (1, 1 << 40), [OK, USAGE, BAD_MODEL, UNSUPPORTED])
    dims_case("dims-int64-max", "input dim 2^63-1", (1, (1 << 63) - 1),
              [USAGE, BAD_MODEL, UNSUPPORTED])
    dims_case("dims-product-overflow", "dims whose product overflows int64",
              (1 << 32, 1 << 32), [USAGE, BAD_MODEL, UNSUPPORTED])
    dims_case("dims-zero", "a zero dim: an empty tensor, valid", (0, 4),
              [OK, USAGE, UNSUPPORTED])
    cases.append(Case("dims-huge-run", "dims", "compile [1, 2^34] float32 (64 GiB) then run "
                      "--random: refused, never an allocation that dies",
                      [["compile", "in/m.onnx", "-t", "host", "-o", "out/o.edgec"],
                       ["run", "out/o.edgec", "--random", "-o", "out/y.npz", "--repeat", "0"]],
                      [USAGE, BAD_MODEL, UNSUPPORTED, BAD_ARTIFACT],
                      make=lambda d, f: save(relu_model(shape=(1, 1 << 34)), d / "in/m.onnx"),
                      outputs=["out/o.edgec", "out/y.npz"]))
    neg_init = onnx.TensorProto(name="w", data_type=F, dims=[-1, 4])
    compile_case("dims-negative-initializer", "dims", "an initializer with dims [-1, 4]",
                 lambda d, f: save(mk([add("Add", ["x", "w"], ["y"])], [vi("x", F, [4])],
                                      [vi("y", F, [4])], [neg_init]), d / "in/m.onnx"),
                 [BAD_MODEL])
    huge_init = onnx.TensorProto(name="w", data_type=F, dims=[1 << 31, 1 << 31])
    compile_case("dims-huge-initializer-no-data", "dims",
                 "an initializer claiming [2^31, 2^31] with no data",
                 lambda d, f: save(mk([add("Add", ["x", "w"], ["y"])], [vi("x", F, [4])],
                                      [vi("y", F, [4])], [huge_init]), d / "in/m.onnx"),
                 [BAD_MODEL])
    shp = numpy_helper.from_array(np.array([-2, 8], np.int64), "shape")
    compile_case("dims-reshape-negative", "dims", "Reshape to [-2, 8]",
                 lambda d, f: save(mk([add("Reshape", ["x", "shape"], ["y"])],
                                      [vi("x", F, [4, 4])], [vi("y", F, [2, 8])], [shp]),
                                   d / "in/m.onnx"), [USAGE, BAD_MODEL, UNSUPPORTED])
    for level, flag in (("O2", "-O2"), ("O3", "-O3")):
        cos = numpy_helper.from_array(np.array([1 << 16, 1 << 16, 16], np.int64), "shape")
        m = mk([add("ConstantOfShape", ["shape"], ["big"],
                    value=numpy_helper.from_array(np.ones(1, np.float32))),
                add("ReduceSum", ["big"], ["s"], keepdims=0), add("Add", ["x", "s"], ["y"])],
               [vi("x", F, [4])], [vi("y", F, [4])], [cos])
        compile_case(f"dims-constantofshape-2^36-{level}", "dims",
                     f"ConstantOfShape of 2^36 elements (256 GiB) reduced to a scalar, {flag}: "
                     "folding must not materialise it", lambda d, f, m=m: save(m, d / "in/m.onnx"),
                     [OK, BAD_MODEL, UNSUPPORTED], extra=(flag,))

    # --- tensors whose data contradicts their shape or type
    def tensor_case(name, why, tensor, exit_=(BAD_MODEL,), const_node=False, extra=()):
        if const_node:
            nodes = [add("Constant", [], ["w"], value=tensor), add("Add", ["x", "w"], ["y"])]
            inits = []
        else:
            nodes, inits = [add("Add", ["x", "w"], ["y"])], [tensor]
        m = mk(nodes, [vi("x", F, [2, 3])], [vi("y", F, [2, 3])], inits)
        compile_case(name, "tensor data", why, lambda d, f, m=m: save(m, d / "in/m.onnx"),
                     list(exit_), extra)

    t = onnx.TensorProto(name="w", data_type=F, dims=[2, 3], raw_data=b"\x00" * 12)
    tensor_case("tensor-raw-too-short", "[2,3] float32 with 12 bytes of raw_data (24 needed)", t)
    t = onnx.TensorProto(name="w", data_type=F, dims=[2, 3], raw_data=b"\x00" * 4000)
    tensor_case("tensor-raw-too-long", "[2,3] float32 with 4000 bytes of raw_data", t)
    tensor_case("tensor-raw-too-long-O0", "the same at -O0: TVM's importer reads it", t,
                extra=("-O0",))
    t = onnx.TensorProto(name="w", data_type=F, dims=[2, 3], float_data=[1.0] * 5)
    tensor_case("tensor-float-data-count", "[2,3] float32 with 5 float_data values", t)
    t = onnx.TensorProto(name="w", data_type=F, dims=[2, 3], raw_data=b"\x00" * 10)
    tensor_case("tensor-constant-node-short", "a Constant node's [2,3] tensor with 10 bytes",
                t, const_node=True)
    t = onnx.TensorProto(name="w", data_type=F, dims=[2, 3], raw_data=b"\x00" * 24,
                         float_data=[1.0] * 6)
    tensor_case("tensor-raw-and-typed", "both raw_data and float_data", t)
    t = onnx.TensorProto(name="w", data_type=0, dims=[2, 3], raw_data=b"\x00" * 24)
    tensor_case("tensor-dtype-undefined", "data_type UNDEFINED", t)
    t = onnx.TensorProto(name="w", data_type=999, dims=[2, 3], raw_data=b"\x00" * 24)
    tensor_case("tensor-dtype-999", "data_type 999", t)
    t = onnx.TensorProto(name="w", data_type=TensorProto.STRING, dims=[2, 3],
                         string_data=[b"a"] * 6)
    tensor_case("tensor-string-in-add", "a string initializer fed to Add", t,
                exit_=(BAD_MODEL, UNSUPPORTED))
    t = onnx.TensorProto(name="w", data_type=TensorProto.INT64, dims=[2, 3], int64_data=[1] * 4)
    tensor_case("tensor-int64-data-count", "[2,3] int64 initializer of an Add on floats, "
                "4 values", t)

    # --- size: 10^5 nodes (10^6 with --huge)
    for n, huge in ((100_000, False), (1_000_000, True)):
        tag = f"1e{len(str(n)) - 1}"
        def writer(d, f, n=n):
            save(chain_model(n), d / "in/m.onnx")
        inspect_case(f"size-chain-{tag}-inspect", "size", f"a chain of {n} Add/Mul nodes: "
                     "described, or a clear refusal, in bounded time", writer,
                     [OK, BAD_MODEL, UNSUPPORTED], huge=huge)
        compile_case(f"size-chain-{tag}-compile", "size",
                     f"a chain of {n} Add/Mul nodes: compiles, or a clear refusal, in bounded "
                     "time", writer, [OK, BAD_MODEL, UNSUPPORTED], huge=huge)

    # --- opsets and domains
    def opset_case(name, why, model, exit_):
        compile_case(name, "opset/domain", why, lambda d, f, m=model: save(m, d / "in/m.onnx"),
                     exit_)

    relu = [add("Relu", ["x"], ["y"])]
    io_ = ([vi("x", F, [4])], [vi("y", F, [4])])
    opset_case("opset-future", "default opset 99", mk(relu, *io_, opset=99), [BAD_MODEL])
    opset_case("opset-ir-future", "IR version 99", mk(relu, *io_, ir=99), [BAD_MODEL])
    opset_case("opset-ancient", "default opset 1", mk(relu, *io_, opset=1),
               [BAD_MODEL, UNSUPPORTED])
    opset_case("opset-domain-future", "a node of ai.onnx.ml at opset 99",
               mk([add("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm="MAX")], *io_,
                  extra_opsets=[("ai.onnx.ml", 99)]), [BAD_MODEL, UNSUPPORTED])
    opset_case("domain-unknown", "op Frob of domain org.evil (imported at opset 1)",
               mk([add("Frob", ["x"], ["y"], domain="org.evil")], *io_,
                  extra_opsets=[("org.evil", 1)]), [BAD_MODEL, UNSUPPORTED])
    opset_case("domain-not-imported", "a node of a domain missing from opset_import",
               mk([add("Frob", ["x"], ["y"], domain="org.evil")], *io_), [BAD_MODEL, UNSUPPORTED])
    opset_case("domain-unknown-default-op", "op NotAnOp in the default domain",
               mk([add("NotAnOp", ["x"], ["y"])], *io_), [BAD_MODEL, UNSUPPORTED])
    opset_case("domain-contrib", "com.microsoft FusedConv (an onnxruntime contrib op)",
               mk([add("FusedConv", ["x", "W"], ["y"], domain="com.microsoft")],
                  [vi("x", F, [1, 3, 8, 8])], [vi("y", F, [1, 8, 6, 6])],
                  [numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "W")],
                  extra_opsets=[("com.microsoft", 1)]), [BAD_MODEL, UNSUPPORTED])

    # --- types edgec or TVM may not handle
    def types_case(name, why, model, exit_, command=("compile",)):
        if command[0] == "verify":
            cases.append(Case(name, "types", why, [["verify", "in/m.onnx", "-t", "host"]],
                              exit_, make=lambda d, f, m=model: save(m, d / "in/m.onnx")))
        else:
            compile_case(name, "types", why, lambda d, f, m=model: save(m, d / "in/m.onnx"),
                         exit_)

    opt_in = helper.make_value_info("x", helper.make_optional_type_proto(
        helper.make_tensor_type_proto(F, [4])))
    types_case("types-optional-input", "an optional(tensor) input",
               mk([add("OptionalGetElement", ["x"], ["y"])], [opt_in], [vi("y", F, [4])],
                  opset=18), [BAD_MODEL, UNSUPPORTED])
    seq_in = helper.make_value_info("x", helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(F, [4])))
    types_case("types-sequence-input", "a sequence(tensor) input",
               mk([add("SequenceAt", ["x", "i"], ["y"])], [seq_in], [vi("y", F, [4])],
                  [numpy_helper.from_array(np.array(0, np.int64), "i")]), [BAD_MODEL, UNSUPPORTED])
    seq_out = helper.make_value_info("s", helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(F, [4])))
    seq_model = mk([add("SequenceConstruct", ["x", "x"], ["s"])], [vi("x", F, [4])], [seq_out])
    types_case("types-sequence-output-compile", "a sequence output: refused at compile, not at "
               "run time", seq_model, [UNSUPPORTED])
    types_case("types-sequence-output-verify", "a sequence output through verify", seq_model,
               [OK, UNSUPPORTED], command=("verify",))
    types_case("types-string-input", "a string input",
               mk([add("Identity", ["x"], ["y"])], [vi("x", TensorProto.STRING, [4])],
                  [vi("y", TensorProto.STRING, [4])]), [BAD_MODEL, UNSUPPORTED])
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w"),
        numpy_helper.from_array(np.array([0, 3], np.int64), "w_idx"), [4])
    sp = mk([add("Add", ["x", "w"], ["y"])], [vi("x", F, [4])], [vi("y", F, [4])])
    sp.graph.sparse_initializer.append(sparse)
    types_case("types-sparse-initializer", "a sparse initializer", sp,
               [OK, BAD_MODEL, UNSUPPORTED], command=("verify",))
    casts = [("bfloat16", TensorProto.BFLOAT16, 13), ("float8e4m3fn", TensorProto.FLOAT8E4M3FN, 19),
             ("float8e4m3fnuz", TensorProto.FLOAT8E4M3FNUZ, 19),
             ("float8e5m2", TensorProto.FLOAT8E5M2, 19),
             ("float8e5m2fnuz", TensorProto.FLOAT8E5M2FNUZ, 19),
             ("int4", TensorProto.INT4, 21), ("uint4", TensorProto.UINT4, 21),
             ("float4e2m1", TensorProto.FLOAT4E2M1, 23)]
    for tname in ("INT2", "UINT2"):
        if hasattr(TensorProto, tname) and onnx.defs.onnx_opset_version() >= 25:
            casts.append((tname.lower(), getattr(TensorProto, tname), 25))
    for tname, code, opset in casts:
        types_case(f"types-cast-{tname}", f"Cast float32 -> {tname} -> float32 (opset {opset}): "
                   "compiles and matches onnxruntime, or is refused at compile",
                   cast_model(code, opset), [OK, UNSUPPORTED], command=("verify",))

    # --- edgec's constant folding and TVM's importer
    cases.append(Case("fold-constant-node-emitted", "folding",
                      "--pipeline fold-constants folds Shape->ReduceSum into a Constant node "
                      "TVM's importer must read", [["compile", "in/m.onnx", "-t", "host",
                                                    "--pipeline", "fold-constants", "-o",
                                                    "out/o.edgec"]], [OK],
                      make=lambda d, f: save(folded_scalar_model(), d / "in/m.onnx"),
                      outputs=out))
    cases.append(Case("fold-if-constant-branches-O0", "folding",
                      "an If left to TVM at -O0 whose branches hold Constant(value_float)",
                      [["compile", "in/m.onnx", "-t", "host", "-O0", "-o", "out/o.edgec"]],
                      [OK, UNSUPPORTED],
                      make=lambda d, f: save(if_const_branches_model(), d / "in/m.onnx"),
                      outputs=out))
    zero = mk([add("Slice", ["x", "s", "e"], ["y"])], [vi("x", F, [2, 4])], [vi("y", F, [0, 4])],
              [numpy_helper.from_array(np.array([0], np.int64), "s"),
               numpy_helper.from_array(np.array([0], np.int64), "e")])
    cases.append(Case("output-zero-elements-run", "types", "an output of shape [0, 4]: compile "
                      "and run (the run prints statistics of it)",
                      [["compile", "in/m.onnx", "-t", "host", "-o", "out/o.edgec"],
                       ["run", "out/o.edgec", "--random", "-o", "out/y.npz"]], [OK],
                      make=lambda d, f: save(zero, d / "in/m.onnx"),
                      outputs=["out/o.edgec", "out/y.npz"]))
    types_case("output-zero-elements-verify", "an output of shape [0, 4] through verify", zero,
               [OK], command=("verify",))
    return cases


def name_cases() -> list[Case]:
    """File, node and tensor names with markup brackets, escapes and newlines."""
    cases: list[Case] = []
    esc = "\x1b]0;pwned\x07\x1b[2J"
    out = ["out/o.edgec"]

    def c(name, why, commands, exit_, writer, outputs=(), checks=None):
        cases.append(Case(name, "names", why, commands, exit_, make=writer,
                          outputs=list(outputs), checks=checks or {}))

    c("name-file-markup-compile", "a model in folder '[' / 'b]' (path holds '[/b]'): compiles and "
      "prints the path as it is", [["compile", "in/[/b]/m.onnx", "-t", "host", "-o",
                                    "out/o.edgec"]], [OK],
      lambda d, f: save(relu_model(), d / "in/[/b]/m.onnx"), out,
      {"stdout_contains": ["in/[/b]/m.onnx"]})
    c("name-file-markup-style", "a model named m[red].onnx: the name printed intact",
      [["compile", "in/m[red].onnx", "-t", "host", "-o", "out/o.edgec"]], [OK],
      lambda d, f: save(relu_model(), d / "in/m[red].onnx"), out,
      {"stdout_contains": ["m[red].onnx"]})
    c("name-file-markup-error", "a missing file whose path holds '[/]'",
      [["inspect", "in/[/]x.onnx"]], [USAGE], lambda d, f: (d / "in/[").mkdir(parents=True))
    c("name-input-markup-inspect", "an input named 'x[/]'", [["inspect", "in/m.onnx"]], [OK],
      lambda d, f: save(relu_model("x[/]"), d / "in/m.onnx"),
      checks={"stdout_contains": ["x[/]"]})
    c("name-input-markup-compile", "an input named 'x[/]' through compile",
      [["compile", "in/m.onnx", "-t", "host", "-o", "out/o.edgec"]], [OK],
      lambda d, f: save(relu_model("x[/]", "y[bold]"), d / "in/m.onnx"), out,
      {"stdout_contains": ["x[/]", "y[bold]"]})
    c("name-node-markup-error", "an unsupported node named '[/]' in the error line",
      [["compile", "in/m.onnx", "-t", "host", "-o", "out/o.edgec"]], [UNSUPPORTED],
      lambda d, f: save(det_model("[/]"), d / "in/m.onnx"), out)
    c("name-node-escape-error", "an unsupported node whose name holds terminal escapes",
      [["compile", "in/m.onnx", "-t", "host", "-o", "out/o.edgec"]], [UNSUPPORTED],
      lambda d, f: save(det_model(esc + "/head/Det"), d / "in/m.onnx"), out)
    c("name-node-newline-error", "an unsupported node whose name holds a newline and a fake "
      "error line", [["compile", "in/m.onnx", "-t", "host", "-o", "out/o.edgec"]], [UNSUPPORTED],
      lambda d, f: save(det_model("/head\nedgec: error: fake"), d / "in/m.onnx"), out)
    c("name-input-escape-inspect", "an input name with terminal escapes (stdout must not carry "
      "them raw)", [["inspect", "in/m.onnx"]], [OK],
      lambda d, f: save(relu_model("x" + esc), d / "in/m.onnx"))
    c("name-input-escape-compile", "an input name with terminal escapes through compile",
      [["compile", "in/m.onnx", "-t", "host", "-o", "out/o.edgec"]], [OK],
      lambda d, f: save(relu_model("x" + esc), d / "in/m.onnx"), out)
    c("name-file-escape-missing", "a missing file whose name holds terminal escapes",
      [["inspect", "in/" + esc + ".onnx"]], [USAGE], lambda d, f: (d / "in").mkdir())
    c("name-file-newline-missing", "a missing file whose name holds a newline",
      [["inspect", "in/a\nedgec: error: b.onnx"]], [USAGE], lambda d, f: (d / "in").mkdir())
    c("name-file-escape-compile", "a model file whose name holds terminal escapes",
      [["compile", "in/m" + esc + ".onnx", "-t", "host", "-o", "out/o.edgec"]], [OK],
      lambda d, f: save(relu_model(), d / ("in/m" + esc + ".onnx")), out)
    long = "n" * 100_000
    c("name-100k-chars", "tensor and node names of 100 000 characters",
      [["compile", "in/m.onnx", "-t", "host", "-o", "out/o.edgec"]], [OK],
      lambda d, f: save(relu_model(long, long + "y", long + "z"), d / "in/m.onnx"), out)
    bad = relu_model()
    bad.graph.node[0].name = "ok"
    raw = bad.SerializeToString().replace(b"\x12\x02ok", b"\x12\x02\xff\xfe")
    c("name-invalid-utf8", "a node name that is not UTF-8",
      [["compile", "in/m.onnx", "-t", "host", "-o", "out/o.edgec"]], [OK, BAD_MODEL],
      lambda d, f: put(d / "in/m.onnx", raw), out)
    return cases


def external_cases() -> list[Case]:
    cases: list[Case] = []
    out = ["out/o.edgec"]

    def c(name, why, writer, exit_, setup=(), command="compile"):
        cmd = (["compile", "in/model/ext.onnx", "-t", "host", "-o", "out/o.edgec"]
               if command == "compile" else ["inspect", "in/model/ext.onnx"])
        cases.append(Case(name, "external data", why, [cmd], exit_, make=writer,
                          setup=list(setup), outputs=out if command == "compile" else []))

    def ext(location, **kw):
        def writer(d, f):
            raw = external_model(d / "in/model", location, **kw)
            put(d / "in/secret.bin", raw)  # outside the model's folder
            if kw.get("data") is None and "length" not in kw:
                put(d / "in/model/inside.bin", raw)
        return writer

    c("ext-parent-dir", "location ../secret.bin", ext("../secret.bin"), [BAD_MODEL])
    c("ext-parent-dir-deep", "location a/../../secret.bin", ext("a/../../secret.bin"), [BAD_MODEL])
    c("ext-absolute", "location /etc/passwd", ext("/etc/passwd"), [BAD_MODEL])
    c("ext-absolute-inspect", "location /etc/passwd, through inspect", ext("/etc/passwd"),
      [BAD_MODEL], command="inspect")
    c("ext-url", "location file:///etc/passwd", ext("file:///etc/passwd"), [BAD_MODEL])
    c("ext-backslash", "location ..\\secret.bin", ext("..\\secret.bin"), [BAD_MODEL])
    c("ext-symlink-out", "weights.bin is a symlink to ../secret.bin", ext("weights.bin"),
      [BAD_MODEL], [["symlink", "../secret.bin", "in/model/weights.bin"]])
    c("ext-symlink-dir", "sub/ is a symlink to .. and location sub/secret.bin",
      ext("sub/secret.bin"), [BAD_MODEL], [["symlink", "..", "in/model/sub"]])
    c("ext-symlink-inside", "weights.bin is a symlink to inside.bin in the same folder",
      ext("weights.bin"), [OK, BAD_MODEL], [["symlink", "inside.bin", "in/model/weights.bin"]])
    c("ext-symlink-devzero", "weights.bin is a symlink to /dev/zero", ext("weights.bin"),
      [BAD_MODEL], [["symlink", "/dev/zero", "in/model/weights.bin"]])
    c("ext-hardlink-out", "weights.bin is a hard link to ../secret.bin", ext("weights.bin"),
      [OK, BAD_MODEL], [["hardlink", "in/secret.bin", "in/model/weights.bin"]])
    c("ext-hardlink-inside", "weights.bin is a hard link to inside.bin", ext("weights.bin"),
      [OK, BAD_MODEL], [["hardlink", "in/model/inside.bin", "in/model/weights.bin"]])
    c("ext-fifo", "weights.bin is a FIFO (a read would block forever)", ext("weights.bin"),
      [BAD_MODEL], [["fifo", "in/model/weights.bin"]])
    c("ext-directory", "location '.', the model's folder", ext("."), [BAD_MODEL])
    c("ext-missing", "location names no file", ext("nothing.bin"), [BAD_MODEL])
    c("ext-nul-byte", "a NUL byte in the location", ext("weights\x00.bin"), [BAD_MODEL])
    c("ext-long-location", "a 5000-character location", ext("w" * 5000 + ".bin"), [BAD_MODEL])
    c("ext-model-itself", "location is the model file itself", ext("ext.onnx", length=216 * 4),
      [OK, BAD_MODEL])

    def sized(**kw):
        def writer(d, f):
            raw = conv_model().graph.initializer[0]
            data = numpy_helper.to_array(raw).tobytes()
            external_model(d / "in/model", "weights.bin", data=data, **kw)
        return writer

    c("ext-offset-huge", "offset 2^62", sized(offset=1 << 62), [BAD_MODEL])
    c("ext-length-huge", "length 2^62", sized(length=1 << 62), [BAD_MODEL])
    c("ext-offset-negative", "offset -8", sized(offset=-8), [BAD_MODEL])
    c("ext-length-negative", "length -8", sized(length=-8), [BAD_MODEL])
    c("ext-offset-not-a-number", "offset 'abc'", sized(offset="abc"), [BAD_MODEL])
    c("ext-offset-at-end", "offset = file size, length 864", sized(offset=864), [BAD_MODEL])
    c("ext-length-contradicts-shape", "length 12 for a [8,3,3,3] float32 tensor",
      sized(length=12), [BAD_MODEL])
    c("ext-file-too-long", "length 864 but a 1 MiB data file: valid, the rest ignored",
      lambda d, f: external_model(d / "in/model", "weights.bin",
                                  data=numpy_helper.to_array(conv_model().graph.initializer[0])
                                  .tobytes() + bytes(1 << 20)), [OK, BAD_MODEL])
    return cases


def output_path_cases() -> list[Case]:
    cases: list[Case] = []

    def c(name, why, commands, exit_, writer, setup=(), outputs=(), fixtures=(), limits=None):
        cases.append(Case(name, "output path", why, commands, exit_, make=writer,
                          setup=list(setup), outputs=list(outputs), fixtures=tuple(fixtures),
                          limits=limits or {}))

    def relu(d, f):
        save(relu_model(), d / "in/m.onnx")

    def det(d, f):
        save(det_model(), d / "in/m.onnx")

    comp = ["compile", "in/m.onnx", "-t", "host", "-o"]
    c("out-same-as-input", "-o is the input model", [[*comp, "in/m.onnx"]], [USAGE], relu)
    c("out-same-as-input-alias", "-o is the input model, spelled in/../in/m.onnx",
      [[*comp, "in/../in/m.onnx"]], [USAGE], relu)
    c("out-symlink-to-input", "-o is a symlink to the input model (the model must survive)",
      [[*comp, "out/link.edgec"]], [OK, USAGE], relu,
      [["symlink", "../in/m.onnx", "out/link.edgec"]], ["out/link.edgec"])
    c("out-hardlink-to-input", "-o is a hard link to the input model",
      [[*comp, "out/link.edgec"]], [OK, USAGE], relu,
      [["hardlink", "in/m.onnx", "out/link.edgec"]], ["out/link.edgec"])
    c("out-device-node", "-o is a character device (a /dev/null made in the scratch folder): "
      "written through or refused, never replaced", [[*comp, "out/null"]], [OK, USAGE], relu,
      [["chardev_null", "out/null"]])
    c("out-fifo", "-o is a FIFO: refused or replaced-free, never a hang", [[*comp, "out/pipe"]],
      [OK, USAGE], relu, [["fifo", "out/pipe"]])
    c("out-readonly-dir", "-o in a read-only folder, for a model that fails only in TVM: the "
      "output path is checked first", [[*comp, "ro/o.edgec"]], [USAGE], det,
      [["mkdir", "ro"], ["chmod", "ro", 0o555]])
    c("out-readonly-dir-valid", "-o in a read-only folder, valid model",
      [[*comp, "ro/o.edgec"]], [USAGE], relu, [["mkdir", "ro"], ["chmod", "ro", 0o555]])
    c("out-file-as-parent", "-o below a regular file (in/m.onnx/o.edgec), model that fails in "
      "TVM: refused before compiling", [[*comp, "in/m.onnx/o.edgec"]], [USAGE], det)
    c("out-file-as-parent-valid", "-o below a regular file, valid model",
      [[*comp, "in/m.onnx/o.edgec"]], [USAGE], relu)
    c("out-empty-name", "-o ''", [[*comp, ""]], [USAGE], relu)
    c("out-existing-dir", "-o names an existing folder", [[*comp, "out"]], [USAGE], relu,
      [["mkdir", "out"]])
    c("out-trailing-slash", "-o out/new/ (a folder name)", [[*comp, "out/new/"]], [USAGE], relu)
    c("out-new-parents", "-o in folders that do not exist yet: created, or refused",
      [[*comp, "new/sub/o.edgec"]], [OK, USAGE], relu, outputs=["new/sub/o.edgec", "new/sub",
                                                                 "new"])
    c("out-save-temps-is-file", "--save-temps names a regular file",
      [["compile", "in/m.onnx", "-t", "host", "--save-temps", "in/m.onnx", "-o", "out/o.edgec"]],
      [USAGE], relu)
    c("out-file-size-limit", "RLIMIT_FSIZE lets the linker write tiny_cnn's model.so but not "
      "the artifact: a clear error and no partial file", [[*comp, "out/o.edgec"]],
      [USAGE, TOOLCHAIN], lambda d, f: shutil.copy(f["tiny_cnn.onnx"], put(d / "in/m.onnx", b"")),
      limits={"fsize_from_fixture": "tiny_cnn.edgec"}, fixtures=("tiny_cnn.edgec",
                                                                  "tiny_cnn.onnx"),
      outputs=["out/o.edgec"])
    def art(d, f):
        shutil.copy(f["tiny_cnn.edgec"], put(d / "in/a.edgec", b""))
        shutil.copy(f["tiny_cnn.onnx"], d / "in/m.onnx")

    c("out-run-onto-artifact", "run -o is the artifact itself",
      [["run", "in/a.edgec", "--random", "-o", "in/a.edgec"]], [USAGE], art,
      fixtures=("tiny_cnn.edgec", "tiny_cnn.onnx"))
    c("out-run-onto-input-data", "run -o is the --input .npy",
      [["run", "in/a.edgec", "--input", "image=in/x.npy", "-o", "in/x.npy"]], [USAGE],
      lambda d, f: (art(d, f), npy(d / "in/x.npy", np.zeros((1, 3, 32, 32), np.float32))),
      fixtures=("tiny_cnn.edgec", "tiny_cnn.onnx"))
    c("out-run-readonly-dir", "run -o in a read-only folder",
      [["run", "in/a.edgec", "--random", "-o", "ro/y.npz"]], [USAGE], art,
      [["mkdir", "ro"], ["chmod", "ro", 0o555]], fixtures=("tiny_cnn.edgec", "tiny_cnn.onnx"))
    c("out-verify-json-onto-model", "verify --json is the model",
      [["verify", "in/a.edgec", "--model", "in/m.onnx", "--json", "in/m.onnx"]], [USAGE], art,
      fixtures=("tiny_cnn.edgec", "tiny_cnn.onnx"))
    c("out-profile-trace-onto-artifact", "profile --trace is the artifact",
      [["profile", "in/a.edgec", "--repeat", "1", "--trace", "in/a.edgec"]], [USAGE], art,
      fixtures=("tiny_cnn.edgec", "tiny_cnn.onnx"))
    return cases


def artifact_cases() -> list[Case]:
    cases: list[Case] = []

    def c(name, why, writer, exit_=(BAD_ARTIFACT,), command=None, setup=(), checks=None):
        cmd = command or ["run", "in/a.edgec", "--random", "-o", "out/y.npz", "--repeat", "0"]
        cases.append(Case(name, "artifact", why, [cmd], list(exit_), make=writer,
                          fixtures=("tiny_cnn.edgec",), setup=list(setup),
                          outputs=["out/y.npz"], checks=checks or {}))

    def raw(fn):
        return lambda d, f: put(d / "in/a.edgec", fn(f["tiny_cnn.edgec"].read_bytes()))

    def edited(manifest_edit=None, blobs_edit=None, rehash=True, extra=()):
        return lambda d, f: retar(f["tiny_cnn.edgec"], d / "in/a.edgec",
                                  manifest_edit=manifest_edit, blobs_edit=blobs_edit,
                                  rehash=rehash, extra=extra)

    c("art-truncated-half", "the first half of an artifact", raw(lambda b: b[: len(b) // 2]))
    c("art-truncated-header", "the first 100 bytes", raw(lambda b: b[:100]))
    c("art-empty", "an empty .edgec", raw(lambda b: b""))
    c("art-gzip", "a gzipped artifact", raw(lambda b: gzip.compress(b, mtime=0)))
    c("art-random", "random bytes", raw(lambda b: bytes(np.random.default_rng(SEED)
                                                         .integers(0, 256, 4096, dtype=np.uint8))))
    c("art-onnx-as-artifact", "an ONNX model given to run",
      lambda d, f: save(conv_model(), d / "in/a.edgec"))

    def flip_so(b: bytes) -> bytes:
        i = b.find(b"\x7fELF") + 5000
        return b[:i] + bytes([b[i] ^ 0x10]) + b[i + 1:]
    c("art-bitflip-library", "one bit flipped inside model.so", raw(flip_so))
    c("art-bitflip-manifest", "manifest.json made invalid JSON",
      raw(lambda b: b.replace(b'"format"', b'"format\x00', 1)))
    c("art-extra-member", "an undeclared member evil.sh", edited(
        rehash=False, extra=[member("evil.sh", b"#!/bin/sh\nexit 0\n", mode=0o755)]))
    c("art-traversal-member", "an undeclared member ../../evil (must not be written)",
      edited(rehash=False, extra=[member("../../evil", b"owned")]))
    c("art-declared-traversal", "a member ../evil declared in the manifest with its hash",
      edited(blobs_edit=lambda bl: bl.update({"../evil": b"owned"})))
    c("art-symlink-member", "model.so is a tar symlink to /etc/passwd",
      lambda d, f: retar(f["tiny_cnn.edgec"], d / "in/a.edgec", rehash=False,
                         blobs_edit=lambda bl: bl.pop("model.so"),
                         extra=[member("model.so", type=tarfile.SYMTYPE,
                                       linkname="/etc/passwd")]))
    c("art-missing-library", "no model.so member",
      edited(blobs_edit=lambda bl: bl.pop("model.so"),
             manifest_edit=_edit("members", {"model.so": {"sha256": "0" * 64, "bytes": 1}})))
    c("art-missing-manifest", "no manifest.json member",
      lambda d, f: write_tar(d / "in/a.edgec", [member("model.so", read_tar(
          f["tiny_cnn.edgec"])[1]["model.so"])]))
    c("art-manifest-not-object", "manifest.json is a JSON list",
      lambda d, f: write_tar(d / "in/a.edgec", [member("manifest.json", b"[1, 2]")]))
    c("art-format-version-2", "format_version 2", edited(_edit("format_version", 2)))
    c("art-format-version-string", "format_version '1' (a string)",
      edited(_edit("format_version", "1")))
    c("art-no-inputs-key", "a manifest without inputs", edited(lambda m: m.pop("inputs")))
    c("art-no-target-key", "a manifest without target", edited(lambda m: m.pop("target")))
    c("art-inputs-not-list", "inputs is a string", edited(_edit("inputs", "image")))
    c("art-input-shape-changed", "the manifest says the input is [1,3,64,64] (the library "
      "takes [1,3,32,32])", edited(_edit("inputs/0/shape", [1, 3, 64, 64])))
    c("art-input-shape-negative", "input shape [-1,3,32,32]",
      edited(_edit("inputs/0/shape", [-1, 3, 32, 32])))
    c("art-input-shape-huge", "input shape [1,3,2^20,2^20] (12 TiB of random data)",
      edited(_edit("inputs/0/shape", [1, 3, 1 << 20, 1 << 20])))
    c("art-input-dtype-object", "input dtype 'object'", edited(_edit("inputs/0/dtype", "object")))
    c("art-input-dtype-bogus", "input dtype 'float1024'",
      edited(_edit("inputs/0/dtype", "float1024")))
    c("art-input-dtype-int64", "input dtype int64 (the library takes float32)",
      edited(_edit("inputs/0/dtype", "int64")))
    c("art-output-shape-changed", "the manifest says the output is [1,11] (the library makes "
      "[1,10])", edited(_edit("outputs/0/shape", [1, 11])))
    c("art-output-dtype-changed", "the manifest says the output is float64",
      edited(_edit("outputs/0/dtype", "float64")))
    c("art-output-extra", "the manifest lists two outputs, the library makes one",
      edited(lambda m: m["outputs"].append(dict(m["outputs"][0], name="extra"))),
      exit_=(UNSUPPORTED, BAD_ARTIFACT))
    c("art-output-name-markup", "an output named 'probs[/]': run prints it",
      edited(_edit("outputs/0/name", "probs[/]")), exit_=(OK, BAD_ARTIFACT),
      checks={"stdout_contains": ["probs[/]"]})
    c("art-output-name-escape", "an output name with terminal escapes: run prints it",
      edited(_edit("outputs/0/name", "probs\x1b]0;pwned\x07")), exit_=(OK, BAD_ARTIFACT))
    c("art-target-aarch64", "the manifest says aarch64: refused (or emulation offered)",
      edited(_edit("target/arch", "aarch64")), exit_=(UNSUPPORTED, BAD_ARTIFACT))
    c("art-target-not-object", "target is a number", edited(_edit("target", 7)))
    c("art-members-bytes-64gib", "members declares model.so as 64 GiB (its real size is "
      "small; the hash matches)", edited(_edit("members/model.so/bytes", 64 * GIB)),
      exit_=(OK, BAD_ARTIFACT))

    def so_replaced(data_fn):
        return edited(blobs_edit=lambda bl: bl.update({"model.so": data_fn(bl["model.so"])}))
    c("art-library-not-elf", "model.so is text (hash recomputed)",
      so_replaced(lambda b: b"not a shared library\n"), exit_=(UNSUPPORTED, BAD_ARTIFACT))
    c("art-library-truncated-elf", "model.so cut to 4096 bytes (hash recomputed)",
      so_replaced(lambda b: b[:4096]), exit_=(UNSUPPORTED, BAD_ARTIFACT))

    def big_member(d: Path, f: dict[str, Path]) -> None:
        """The manifest, then model.so's header only: the runner's sparse extension adds
        the 64 GiB of (zero) data and the end-of-archive blocks."""
        manifest, _ = read_tar(f["tiny_cnn.edgec"])
        mdata = json.dumps(manifest).encode()
        mi, si = tarfile.TarInfo("manifest.json"), tarfile.TarInfo("model.so")
        mi.size, mi.mode = len(mdata), 0o644
        si.size, si.mode = 64 * GIB, 0o755
        pad = b"\0" * (-len(mdata) % tarfile.BLOCKSIZE)
        put(d / "in/a.edgec", mi.tobuf(tarfile.GNU_FORMAT) + mdata + pad
            + si.tobuf(tarfile.GNU_FORMAT))
    c("art-member-64gib", "a tar header declaring model.so as 64 GiB (a sparse file): refused "
      "without reading it all into memory", big_member,
      setup=[["sparse", "in/a.edgec", "+", 64 * GIB + 2048]])
    c("art-verify-wrong-model", "verify an artifact against another model",
      lambda d, f: (shutil.copy(f["tiny_cnn.edgec"], put(d / "in/a.edgec", b"")),
                    save(conv_model(), d / "in/m.onnx")),
      exit_=(USAGE,), command=["verify", "in/a.edgec", "--model", "in/m.onnx"])
    c("art-verify-artifact-as-model", "verify with --model an artifact",
      lambda d, f: shutil.copy(f["tiny_cnn.edgec"], put(d / "in/a.edgec", b"")),
      exit_=(USAGE, BAD_MODEL), command=["verify", "in/a.edgec", "--model", "in/a.edgec"])
    return cases


def runtime_input_cases() -> list[Case]:
    """Bad data for run/verify: wrong shape or dtype, NaN/Inf, pickles, damaged files."""
    cases: list[Case] = []
    shape = (1, 3, 32, 32)
    fx = ("tiny_cnn.edgec", "tiny_cnn.onnx")

    def base(d: Path, f: dict[str, Path]) -> None:
        shutil.copy(f["tiny_cnn.edgec"], put(d / "in/a.edgec", b""))
        shutil.copy(f["tiny_cnn.onnx"], d / "in/m.onnx")

    def run_case(name, why, make_input, exit_, file="in/x.npy", spec=None, setup=(),
                 verify=False):
        def writer(d, f):
            base(d, f)
            if make_input is not None:
                make_input(d / file)
        arg = spec or f"image={file}"
        cmd = (["verify", "in/a.edgec", "--model", "in/m.onnx", "--input", arg, "--repeat", "0"]
               if verify else
               ["run", "in/a.edgec", "--input", arg, "-o", "out/y.npz", "--repeat", "0"])
        cases.append(Case(name, "runtime input", why, [cmd], exit_, make=writer, fixtures=fx,
                          setup=list(setup), outputs=[] if verify else ["out/y.npz"]))

    def arr(a):
        return lambda p: npy(p, a)

    z = np.zeros(shape, np.float32)
    run_case("in-wrong-shape", "[1,3,16,16] for [1,3,32,32]",
             arr(np.zeros((1, 3, 16, 16), np.float32)), [USAGE])
    run_case("in-wrong-rank", "[3,32,32] for [1,3,32,32]", arr(z[0]), [USAGE])
    run_case("in-scalar", "a 0-d array", arr(np.float32(1.0)), [USAGE])
    run_case("in-empty", "[0,3,32,32]", arr(np.zeros((0, 3, 32, 32), np.float32)), [USAGE])
    run_case("in-float64", "float64 data for float32: cast or refused", arr(z.astype(np.float64)),
             [OK, USAGE], verify=True)
    run_case("in-int64", "int64 data for float32", arr(z.astype(np.int64)), [OK, USAGE],
             verify=True)
    run_case("in-bool", "bool data for float32", arr(z.astype(bool)), [OK, USAGE], verify=True)
    run_case("in-complex", "complex64 data", arr(z.astype(np.complex64)), [USAGE])
    run_case("in-string", "a unicode string array", arr(np.full(shape, "a")), [USAGE])
    run_case("in-datetime", "datetime64 data", arr(np.zeros(shape, "datetime64[s]")), [USAGE])
    run_case("in-structured", "a structured (record) array",
             arr(np.zeros(shape, [("a", np.float32)])), [USAGE])
    run_case("in-big-endian", "big-endian float32, values that matter",
             arr(np.random.default_rng(SEED).standard_normal(shape).astype(">f4")), [OK, USAGE],
             verify=True)
    run_case("in-fortran-order", "Fortran-ordered data",
             arr(np.asfortranarray(np.random.default_rng(SEED).standard_normal(shape)
                                   .astype(np.float32))), [OK, USAGE], verify=True)
    run_case("in-object-npy", "a pickled object array in a .npy",
             lambda p: npy(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), [USAGE])
    run_case("in-object-npz", "a pickled object array in a .npz",
             lambda p: np.savez(put(p, b""), image=np.array([{"a": 1}], dtype=object)), [USAGE],
             file="in/x.npz", spec="in/x.npz")
    run_case("in-pickle-named-npy", "a bare pickle named .npy",
             lambda p: put(p, pickle.dumps(z, protocol=4)), [USAGE])
    run_case("in-npy-truncated", "a .npy cut after 100 bytes",
             lambda p: put(p, npy(p, z).read_bytes()[:100]), [USAGE])
    run_case("in-npy-header-huge", "a .npy header declaring 2^40 floats over 16 bytes of data",
             lambda p: put(p, npy_header((1 << 40,)) + bytes(16)), [USAGE])
    run_case("in-npy-header-bad-descr", "a .npy header with descr 'O' but no pickle flag",
             lambda p: put(p, npy_header((3,), "|O") + bytes(24)), [USAGE])
    run_case("in-npy-header-garbage", "a .npy header that is not a dict literal",
             lambda p: put(p, b"\x93NUMPY\x01\x00" + struct.pack("<H", 54)
                           + b"__import__('os').system('echo owned')".ljust(53) + b"\n"), [USAGE])

    def npz_huge(p: Path) -> None:
        with zipfile.ZipFile(put(p, b""), "w") as zf:
            zf.writestr("image.npy", npy_header((1 << 33,)) + bytes(64))
    run_case("in-npz-header-huge", "an .npz whose image.npy declares 2^33 floats (32 GiB)",
             npz_huge, [USAGE], file="in/x.npz", spec="in/x.npz")
    run_case("in-npz-unknown-name", "an .npz holding 'nope' instead of 'image'",
             lambda p: np.savez(put(p, b""), nope=z), [USAGE], file="in/x.npz", spec="in/x.npz")
    run_case("in-unknown-name", "--input nope=x.npy", arr(z), [USAGE], spec="nope=in/x.npy")
    run_case("in-fifo", "--input image=a FIFO (a read would block)", None, [USAGE],
             setup=[["fifo", "in/x.npy"]])
    run_case("in-devzero", "--input image=/dev/zero", None, [USAGE], spec="image=/dev/zero")
    run_case("in-directory", "--input image=a folder", lambda p: p.mkdir(parents=True), [USAGE])
    nan = np.full(shape, np.nan, np.float32)
    run_case("in-nan-all", "all-NaN input: NaN out where onnxruntime has NaN, or refused",
             arr(nan), [OK, USAGE], verify=True)
    one_nan = z.copy()
    one_nan[0, 1, 5, 7] = np.nan
    run_case("in-nan-one", "one NaN element", arr(one_nan), [OK, USAGE], verify=True)
    inf = np.random.default_rng(SEED).standard_normal(shape).astype(np.float32)
    inf[0, 0, :4, :4] = np.inf
    inf[0, 2, :4, :4] = -np.inf
    run_case("in-inf", "+Inf and -Inf elements", arr(inf), [OK, USAGE], verify=True)
    run_case("in-float-max", "every element 3e38", arr(np.full(shape, 3e38, np.float32)),
             [OK, USAGE], verify=True)
    run_case("in-nan-run", "all-NaN input through run", arr(nan), [OK, USAGE])
    return cases


def index_cases() -> list[Case]:
    """Out-of-range indices for Gather, embedding lookups, GatherElements, ScatterND."""
    cases: list[Case] = []
    fx = ("indexing.edgec", "indexing.onnx")

    def base(d, f):
        shutil.copy(f["indexing.edgec"], put(d / "in/a.edgec", b""))
        shutil.copy(f["indexing.onnx"], d / "in/m.onnx")

    def c(name, why, changes: dict, exit_=(USAGE,), verify=False):
        def writer(d, f):
            base(d, f)
            feeds = valid_indices()
            feeds.update(changes)
            np.savez(put(d / "in/x.npz", b""), **feeds)
        cmd = (["verify", "in/a.edgec", "--model", "in/m.onnx", "--input", "in/x.npz",
                "--repeat", "0"] if verify else
               ["run", "in/a.edgec", "--input", "in/x.npz", "-o", "out/y.npz", "--repeat", "0"])
        cases.append(Case(name, "indices", why, [cmd], list(exit_), make=writer, fixtures=fx,
                          outputs=[] if verify else ["out/y.npz"]))

    i64 = np.int64
    c("idx-valid", "in-range indices, negative ones included: match onnxruntime", {}, [OK],
      verify=True)
    cases.append(Case("idx-random", "indices", "verify with random inputs: they must be valid "
                      "indices for every indexing op, not only Gather (onnxruntime refuses "
                      "others)", [["verify", "in/a.edgec", "--model", "in/m.onnx", "--repeat",
                                   "0"]], [OK], make=lambda d, f: base(d, f), fixtures=fx))
    c("idx-gather-high", "Gather index 10 on a 10-row table",
      {"ids": np.array([0, 5, 10], i64)})
    c("idx-gather-far", "Gather index 1000000", {"ids": np.array([0, 5, 1_000_000], i64)})
    c("idx-gather-negative", "Gather index -11 on a 10-row table",
      {"ids": np.array([-11, 0, 1], i64)})
    c("idx-gather-int64-max", "Gather index 2^63-1", {"ids": np.array([0, 1, 2**63 - 1], i64)})
    c("idx-gather-int64-near-max", "Gather index 2^63-16",
      {"ids": np.array([0, 1, 2**63 - 16], i64)})
    c("idx-gather-int64-min", "Gather index -2^63", {"ids": np.array([0, 1, -2**63], i64)})
    c("idx-gather-uint64", "uint64 ids with 2^64-1 (wraps to -1 if cast blindly)",
      {"ids": np.array([0, 1, 2**64 - 1], np.uint64)})
    c("idx-gather-uint64-2^63", "uint64 ids with 2^63 (wraps to -2^63 if cast blindly)",
      {"ids": np.array([0, 1, 2**63], np.uint64)})
    c("idx-gather-verify", "Gather index 10 through verify (onnxruntime refuses it too)",
      {"ids": np.array([0, 5, 10], i64)}, verify=True)
    c("idx-embedding-high", "embedding token 1000 in a 1000-row table",
      {"tok": np.array([[0, 1, 2, 3, 4, 5, 6, 1000]], np.int32)})
    c("idx-embedding-int64-wrap", "int64 token ids 2^32+5 for an int32 input (wrap to 5 if "
      "cast blindly)", {"tok": np.array([[0, 1, 2, 3, 4, 5, 6, 2**32 + 5]], np.int64)})
    c("idx-gatherelements-high", "GatherElements index 4 on an axis of 4",
      {"gidx": np.array([[0, 1, 2, 4], [0, 0, 0, 0], [0, 0, 0, 0]], i64)})
    c("idx-gatherelements-negative", "GatherElements index -5 on an axis of 4",
      {"gidx": np.array([[0, 1, 2, -5], [0, 0, 0, 0], [0, 0, 0, 0]], i64)})
    c("idx-gatherelements-far", "GatherElements index 2^40",
      {"gidx": np.array([[0, 1, 2, 2**40], [0, 0, 0, 0], [0, 0, 0, 0]], i64)})
    c("idx-scatternd-high", "ScatterND index 4 on 4 rows", {"sidx": np.array([[1], [4]], i64)})
    c("idx-scatternd-negative", "ScatterND index -5 on 4 rows",
      {"sidx": np.array([[1], [-5]], i64)})
    c("idx-scatternd-far", "ScatterND index 2^40", {"sidx": np.array([[1], [2**40]], i64)})
    return cases


#: Left out of the CI-sized corpus (tests/test_hostile.py, ``--ci``): variants of a
#: mechanism another case already drives through the same code (one more cut point,
#: one more foreign format, one more narrow type, another spelling of a path outside
#: the model's folder), and the slowest compile-only variants. `make hostile` runs them.
NOT_IN_CI = frozenset({
    "pb-truncated-900", "pb-truncated-999", "pb-bitflip-1", "pb-bitflip-2", "magic-gzip",
    "magic-npy", "magic-tflite", "magic-json", "magic-zeros", "magic-one-byte",
    "magic-pickle", "graph-cycle-inspect", "graph-self-loop", "opset-ancient",
    "domain-not-imported", "dims-constantofshape-2^36-O3", "tensor-raw-too-long-O0",
    "types-cast-float8e4m3fnuz", "types-cast-float8e5m2", "types-cast-float8e5m2fnuz",
    "types-cast-uint4", "types-cast-float4e2m1", "types-cast-uint2", "name-file-markup-style",
    "name-input-escape-compile", "ext-parent-dir-deep", "ext-absolute-inspect", "ext-url",
    "ext-backslash", "ext-symlink-dir", "ext-symlink-inside", "ext-hardlink-inside",
    "ext-offset-at-end", "ext-length-huge", "ext-file-too-long", "ext-directory",
    "out-readonly-dir-valid", "out-file-as-parent-valid", "out-new-parents",
    "out-file-size-limit"
})


def all_cases(huge: bool = False, ci: bool = False) -> list[Case]:
    """Every case, the 10^6-node ones only with ``huge``; with ``ci``, those not in
    NOT_IN_CI (and never the huge ones)."""
    cases = (model_cases() + name_cases() + external_cases() + output_path_cases()
             + artifact_cases() + runtime_input_cases() + index_cases())
    names = [c.name for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, dupes
    unknown = NOT_IN_CI - set(names)
    assert not unknown, unknown
    if ci:
        return [c for c in cases if not c.huge and c.name not in NOT_IN_CI]
    return [c for c in cases if huge or not c.huge]


# ---------------------------------------------------------------- fixtures and writing


FIXTURE_MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "indexing.onnx": indexing_model,
}


def build_fixtures(folder: Path, names: set[str], python: str) -> dict[str, str]:
    """Compile the artifacts cases are made from; returns {name: error} for failures."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "models" / "tiny_cnn.onnx", folder / "tiny_cnn.onnx")
    for name, fn in FIXTURE_MODELS.items():
        save(fn(), folder / name)
    wanted = sorted({n for n in names if n.endswith(".edgec")})
    errors: dict[str, str] = {}

    def compile_one(art: str) -> None:
        model = folder / (art.removesuffix(".edgec") + ".onnx")
        # cwd: `python -m` puts it first on sys.path, so an edgec checkout there would win
        # over the one PYTHONPATH or the venv names (the one the cases then run)
        res = subprocess.run([python, "-m", "edgec", "compile", model.name, "-t", "host", "-o",
                              art, "--no-tuning-db"], capture_output=True, text=True,
                             timeout=600, cwd=folder, env=dict(os.environ, EDGEC_NO_DOWNLOAD="1"))
        if res.returncode != 0:
            errors[art] = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]

    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        list(pool.map(compile_one, wanted))
    return errors


def write_corpus(out: Path, *, huge: bool = False, only: str | None = None,
                 python: str = sys.executable, ci: bool = False) -> dict:
    """Write every case's files and ``cases.json`` into ``out`` (replacing what was there);
    ``ci``: the CI-sized subset (all_cases)."""
    cases = [c for c in all_cases(huge, ci) if only is None or re.search(only, c.name)]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shared = out / "_fixtures"
    fixture_errors = build_fixtures(shared, {f for c in cases for f in c.fixtures}, python)
    fixtures = {p.name: p for p in shared.iterdir()}
    entries = []
    for case in cases:
        d = out / case.name
        d.mkdir()
        entry = case.to_json()
        missing = [f for f in case.fixtures if f in fixture_errors or f not in fixtures]
        if missing:
            entry["setup_error"] = "; ".join(
                f"fixture {f} failed to compile: {fixture_errors.get(f, 'missing')}"
                for f in missing)
        else:
            if case.make is not None:
                case.make(d, fixtures)
            limit = case.limits.get("fsize_from_fixture")
            if limit:
                _, blobs = read_tar(fixtures[limit])
                so = len(blobs["model.so"])
                entry["limits"] = {"fsize": so + 4096}  # the library fits, the artifact not
        entry["files"] = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
        entries.append(entry)
    doc = {"format": "edgec-hostile-corpus", "version": 1, "seed": SEED, "huge": huge,
           "ci": ci, "only": only,
           "generator_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
           "fixture_errors": fixture_errors, "cases": entries}
    (out / "cases.json").write_text(json.dumps(doc, indent=1))
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus folder")
    parser.add_argument("--huge", action="store_true", help="also the 10^6-node models")
    parser.add_argument("--only", default=None, metavar="REGEX", help="cases whose name matches")
    parser.add_argument("--ci", action="store_true", help="the CI-sized subset (NOT_IN_CI)")
    parser.add_argument("--python", default=sys.executable,
                        help="the Python that runs edgec to compile the fixtures")
    args = parser.parse_args(argv)
    doc = write_corpus(args.out, huge=args.huge, only=args.only, python=args.python,
                       ci=args.ci)
    print(f"{len(doc['cases'])} cases in {args.out}")
    for name, err in doc["fixture_errors"].items():
        print(f"fixture {name} failed to compile: {err}", file=sys.stderr)
    return 1 if doc["fixture_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

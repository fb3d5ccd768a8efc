"""Seed corpora for the loader and artifact fuzz targets (`make fuzz-loader`).

    python benchmarks/fuzz_loader/seeds.py OUT_DIR

writes OUT_DIR/loader/ (the small models in models/ and a few generated ones:
an If subgraph, external-data references, a dynamic batch) and
OUT_DIR/artifact/ (artifacts with a compile's manifest and a stand-in
library, signed and unsigned, and manifest-only inputs for the target's
structured mode). Nothing is compiled: the fuzz targets never load a library.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
#: the first byte of an artifact-target input picks its mode (fuzz_artifact.py)
RAW, MANIFEST_ONLY, SIGNED_MANIFEST = b"\x00", b"\x01", b"\x02"


def _conv() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, 8, 8])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _if() -> onnx.ModelProto:
    def branch(name: str, value: float) -> onnx.GraphProto:
        c = numpy_helper.from_array(np.array([value], np.float32), f"c_{name}")
        return helper.make_graph([helper.make_node("Add", ["x", f"c_{name}"], [f"o_{name}"])],
                                 name, [], [helper.make_tensor_value_info(
                                     f"o_{name}", TensorProto.FLOAT, [2])], [c])
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=branch("then", 1.0),
                          else_branch=branch("else", -1.0))], "iff",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _external() -> onnx.ModelProto:
    m = _conv()
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    del t.float_data[:]
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "432")):
        t.external_data.add(key=k, value=v)
    return m


def _gather() -> onnx.ModelProto:
    table = numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(10, 4), "T")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["T", "ids"], ["y"], axis=0)], "gather",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])], [table])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def loader_seeds(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted((REPO / "models").glob("*.onnx")):
        if f.stat().st_size <= 64 << 10:
            (out / f.name).write_bytes(f.read_bytes())
    for name, model in (("conv-dynamic", _conv()), ("if", _if()), ("external", _external()),
                        ("gather", _gather())):
        (out / f"{name}.onnx").write_bytes(model.SerializeToString())


def _manifest() -> dict:
    """A manifest as a compile writes it (fields and types; values of a tiny model)."""
    return {
        "edgec_version": "0.1.0", "tvm_version": "0.27.0.post1",
        "created": "2026-01-01T00:00:00+00:00",
        "source_model": {"file": "m.onnx", "sha256": "ab" * 32, "opset": 17, "bytes": 1000,
                         "inputs": {"x": ["n", 3, 8, 8], "ids": [3]}},
        "target": {"name": "x86/generic", "arch": "x86_64", "cpu_flags": ["sse4_2", "avx2"],
                   "description": "", "tvm": {"kind": "llvm", "mtriple": "x86_64-linux-gnu"},
                   "tvm_resolved": {"kind": "llvm"}, "device_modules": []},
        "inputs": [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"},
                   {"name": "ids", "shape": [3], "dtype": "int64", "index_extents": [10],
                    "valid_range": [0, 10]}],
        "outputs": [{"name": "y", "shape": [1, 4, 8, 8], "dtype": "float32"}],
        "bindings": {"input_shapes": {"x": [1, 3, 8, 8]}, "input_consts": {}},
        "pipeline": "O2", "passes": [{"name": "canonicalize", "nodes_before": 2,
                                      "nodes_after": 2, "modified": False}],
        "compile_seconds": {"total": 1.0}, "build_host": "Linux x86_64",
        "kernels": {"fused_conv": {"onnx_nodes": ["/conv"], "ops": ["Conv"]}}, "tuning": None,
    }


def artifact_seeds(out: Path) -> None:
    sys.path.insert(0, str(REPO))
    from edgec.artifact import LIBRARY, write_artifact
    from edgec.signing import generate_key, load_private_key

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib.so"
        lib.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(57))
        priv, _, _ = generate_key(Path(tmp) / "seed")
        key = load_private_key(priv)
        for name, sign in (("plain", None), ("signed", key)):
            art = Path(tmp) / f"{name}.edgec"
            write_artifact(art, _manifest(), {LIBRARY: lib}, sign_key=sign)
            (out / f"raw-{name}").write_bytes(RAW + art.read_bytes())
        fake = Path(tmp) / "fake.edgec"
        write_artifact(fake, {"inputs": [], "outputs": [], "target": {}}, {LIBRARY: lib})
        (out / "raw-minimal").write_bytes(RAW + fake.read_bytes())
    (out / "manifest-full").write_bytes(MANIFEST_ONLY + json.dumps(_manifest()).encode())
    (out / "signed-manifest-full").write_bytes(SIGNED_MANIFEST
                                               + json.dumps(_manifest()).encode())
    small = {k: _manifest()[k] for k in ("inputs", "outputs", "target", "source_model")}
    (out / "manifest-small").write_bytes(MANIFEST_ONLY + json.dumps(small).encode())


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else REPO / "out" / "fuzz"
    loader_seeds(out / "loader-seeds")
    artifact_seeds(out / "artifact-seeds")
    print(f"seeds in {out}/loader-seeds and {out}/artifact-seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

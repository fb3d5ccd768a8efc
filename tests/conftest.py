"""Shared fixtures: small generated models, the catalog, and a CLI runner.

Models are built with onnx.helper into tmp dirs so each test states exactly
what it feeds edgec; the committed models in models/ are covered through the
catalog.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
# Tests never download: the aarch64 runtime wheels come from the cache `make setup` fills.
os.environ.setdefault("EDGEC_NO_DOWNLOAD", "1")
# Compiles in tests never pick up records from the user's own 'edgec tune' runs.
os.environ["EDGEC_TUNING_DB"] = tempfile.mkdtemp(prefix="edgec-test-tuning-")
CATALOG = REPO / "models" / "catalog.toml"


def conv_model(*, batch: int | str = 1, size: int = 16, seed: int = 0) -> onnx.ModelProto:
    """x[batch,3,size,size] -> Conv(8, 3x3, pad 1) + bias -> Relu -> y."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "W")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="/conv/Conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"], name="/relu/Relu")],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8, size, size])],
        [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


@pytest.fixture
def conv_onnx(tmp_path: Path) -> Path:
    return save(conv_model(), tmp_path / "conv.onnx")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the edgec CLI in-process: cli("compile", "m.onnx", ...) -> CliResult."""
    from edgec.cli import main

    monkeypatch.setenv("COLUMNS", "250")  # rich tables: no wrapped cells to match against

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def elf_machine(artifact: Path) -> int:
    """e_machine of the artifact's library: 62 x86-64, 183 aarch64."""
    import tarfile

    with tarfile.open(artifact) as t:
        head = t.extractfile("model.so").read(20)
    assert head[:4] == b"\x7fELF"
    return int.from_bytes(head[18:20], "little")


def catalog() -> list[dict]:
    return tomllib.loads(CATALOG.read_text())["model"]


def catalog_entry(name: str) -> dict:
    return next(m for m in catalog() if m["name"] == name)


def compile_kwargs(entry: dict) -> dict:
    """Catalog bindings -> edgec.compile keyword arguments."""
    return {"input_shapes": {k: tuple(v) for k, v in entry.get("input_shapes", {}).items()},
            "input_consts": dict(entry.get("input_consts", {}))}


@pytest.fixture(scope="session")
def conv_artifact(tmp_path_factory) -> tuple[Path, Path]:
    """(model, artifact) for conv_model() compiled for this machine; built once per run."""
    import edgec

    folder = tmp_path_factory.mktemp("conv-art")
    model = save(conv_model(), folder / "conv.onnx")
    art = edgec.compile(model, target="host", output=folder / "conv.edgec")
    return model, art.path

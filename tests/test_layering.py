"""The layering edgec keeps: only the backend (compiler) and the
runtime (loader) import TVM; only the baselines import TensorFlow, onnx2tf or LiteRT;
only the accelerator plugins import their vendors' toolchains (Vela)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgec"
RULES = {
    "tvm": ("backend", "runtime"),
    "tvm_ffi": ("backend", "runtime"),
    "tensorflow": ("baselines",),
    "onnx2tf": ("baselines",),
    "ai_edge_litert": ("baselines",),
    "tflite_runtime": ("baselines",),
    "ethosu": ("accel",),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", sorted(RULES))
def test_only_its_layers_import(module):
    allowed = RULES[module]
    offenders = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))
                 if module in _imports(p) and p.relative_to(PACKAGE).parts[0] not in allowed]
    assert not offenders, f"{module} imported outside {allowed}: {offenders}"

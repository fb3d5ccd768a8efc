"""Every model in models/catalog.toml compiles for x86 and for both ARM targets
and verifies against onnxruntime: natively on x86, and under qemu-aarch64
through the C bundle for ARM. Committed models run in the compile tier; the
real ones (fetched by 'make models') in the slow tier."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from conftest import REPO, catalog, compile_kwargs, elf_machine

import edgec

ELF_AARCH64 = 183


def _params(tier: str) -> list:
    marks = [pytest.mark.compile] + ([pytest.mark.slow] if tier == "slow" else [])
    return [pytest.param(m, id=m["name"], marks=marks) for m in catalog() if m["tier"] == tier]


def _model_path(entry: dict) -> Path:
    path = REPO / entry["path"]
    if not path.exists():
        pytest.fail(f"{path} is missing: run 'make models' (make test does)"
                    if entry["origin"] == "pypi" else f"{path} is missing from the checkout")
    return path


def with_logits_exposed(path: Path, tmp_path: Path) -> Path | None:
    """A copy whose final Softmax's input is also a graph output, or None.

    The onnx 'light' models generate every weight from one constant, so their
    Softmax output is uniform (0.001 everywhere) whatever edgec computes before
    it; comparing the logits makes the check bite on the whole network.
    """
    m = onnx.load(str(path))
    outputs = {o.name for o in m.graph.output}
    last = [n for n in m.graph.node if n.op_type == "Softmax" and n.output[0] in outputs]
    if not last:
        return None
    inferred = onnx.shape_inference.infer_shapes(m)
    info = {v.name: v for v in inferred.graph.value_info}
    logits = info.get(last[0].input[0])
    if logits is None or not logits.type.tensor_type.HasField("shape"):
        return None  # dynamic until bound (PP-OCR rec); its Softmax is not uniform anyway
    m.graph.output.append(logits)
    out = tmp_path / f"{path.stem}-logits.onnx"
    onnx.save(m, str(out))
    return out


def _check_x86(entry: dict, tmp_path: Path) -> None:
    model = _model_path(entry)
    kwargs = compile_kwargs(entry)
    art = edgec.compile(model, target="x86", output=tmp_path / "x86.edgec", **kwargs)
    report = edgec.verify(model, art, seed=0)
    assert report.ok, report.to_json()
    exposed = with_logits_exposed(model, tmp_path)
    if exposed is not None:
        art2 = edgec.compile(exposed, target="x86", output=tmp_path / "logits.edgec", **kwargs)
        report = edgec.verify(exposed, art2, seed=1)
        assert report.ok and len(report.checks) == len(art.outputs) + 1, report.to_json()


def _check_arm(entry: dict, target: str, tmp_path: Path) -> None:
    """Compiles for ``target`` and verifies under qemu-aarch64 through the C bundle.

    Models whose Softmax is uniform by construction are compiled with their
    logits exposed too (one compile: the copy has every original output)."""
    model = _model_path(entry)
    checked = with_logits_exposed(model, tmp_path) or model
    arm = edgec.compile(checked, target=target, output=tmp_path / "arm.edgec",
                        **compile_kwargs(entry))
    assert elf_machine(arm.path) == ELF_AARCH64
    report = edgec.verify(checked, arm, seed=2)
    assert report.emulated and report.ok, report.to_json()
    n_outputs = len(onnx.load(str(model), load_external_data=False).graph.output)
    assert len(report.checks) == n_outputs + (checked != model)


ARM_TARGETS = ["arm", "arm-dotprod"]


@pytest.mark.parametrize("entry", _params("fast"))
def test_committed_model(entry, tmp_path):
    _check_x86(entry, tmp_path)


@pytest.mark.cross
@pytest.mark.parametrize("target", ARM_TARGETS)
@pytest.mark.parametrize("entry", _params("fast"))
def test_committed_model_emulated_arm(entry, target, tmp_path):
    _check_arm(entry, target, tmp_path)


@pytest.mark.parametrize("entry", _params("slow"))
def test_real_model(entry, tmp_path):
    _check_x86(entry, tmp_path)


@pytest.mark.cross
@pytest.mark.parametrize("target", ARM_TARGETS)
@pytest.mark.parametrize("entry", _params("slow"))
def test_real_model_emulated_arm(entry, target, tmp_path):
    _check_arm(entry, target, tmp_path)

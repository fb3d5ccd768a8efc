"""The model catalog: names, hashes, reproducible generated models that run in
onnxruntime with their bindings, and the sr-switch branches really differ."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import REPO, catalog, catalog_entry

GENERATED = [m for m in catalog() if m["origin"] == "generated"]


def test_catalog_is_well_formed():
    names = [m["name"] for m in catalog()]
    assert len(names) == len(set(names))
    for m in catalog():
        assert {"name", "path", "origin", "tier", "sha256", "description"} <= set(m)
        assert m["origin"] in ("generated", "pypi") and m["tier"] in ("fast", "slow")
        if m["origin"] == "pypi":
            assert "==" in m["package"] and m["member"].endswith(".onnx")
            assert m["path"].startswith("models/real/")
    required = {"ppocr-det", "ppocr-rec", "ppocr-cls", "silero-vad", "resnet50-light",
                "squeezenet-light", "shufflenet-light"}
    assert required <= set(names)


@pytest.mark.parametrize("entry", catalog(), ids=lambda m: m["name"])
def test_present_models_match_their_hash(entry):
    path = REPO / entry["path"]
    if not path.exists():
        assert entry["origin"] == "pypi", f"{path} is committed and must exist"
        pytest.skip(f"{path} not fetched (make models)")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]


def test_make_small_reproduces_the_committed_bytes(tmp_path):
    subprocess.run([sys.executable, str(REPO / "models" / "make_small.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    for m in GENERATED:
        name = m["path"].rsplit("/", 1)[-1]
        assert (tmp_path / name).read_bytes() == (REPO / m["path"]).read_bytes(), name


def _feeds(session: ort.InferenceSession, entry: dict, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in session.get_inputs():
        if i.name in entry["input_consts"]:
            feeds[i.name] = np.array(entry["input_consts"][i.name], np.int64)
            continue
        shape = entry["input_shapes"].get(i.name, i.shape)
        assert all(isinstance(d, int) for d in shape), (entry["name"], i.name, shape)
        if i.type == "tensor(int64)":
            feeds[i.name] = rng.integers(0, 100, shape).astype(np.int64)
        else:
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("entry", GENERATED, ids=lambda m: m["name"])
def test_generated_models_are_valid_and_run(entry):
    path = REPO / entry["path"]
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, _feeds(sess, entry))
    for o in outs:
        assert np.isfinite(o).all() and o.size > 0 and float(np.std(o)) > 1e-3


def test_sr_switch_branches_differ():
    entry = catalog_entry("sr-switch")
    sess = ort.InferenceSession(str(REPO / entry["path"]), providers=["CPUExecutionProvider"])
    feeds = _feeds(sess, entry)
    at16k = sess.run(None, feeds)[0]
    at8k = sess.run(None, {**feeds, "sr": np.array(8000, np.int64)})[0]
    assert np.abs(at16k - at8k).max() > 0.05

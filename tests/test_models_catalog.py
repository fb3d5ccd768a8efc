"""The model catalog: names, hashes, reproducible generated models that run in
onnxruntime with their bindings, and the sr-switch branches really differ.
Fast and offline: real models are only hash-checked, and only if fetched."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "models" / "catalog.toml"
MODELS = tomllib.loads(CATALOG.read_text())["model"]
GENERATED = [m for m in MODELS if m["origin"] == "generated"]
REAL = {"ppocr-det", "ppocr-rec", "ppocr-cls", "silero-vad", "resnet50-light",
        "squeezenet-light", "shufflenet-light"}
ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64}


def _entry(name: str) -> dict:
    return next(m for m in MODELS if m["name"] == name)


def _session(entry: dict) -> ort.InferenceSession:
    return ort.InferenceSession(str(REPO / entry["path"]), providers=["CPUExecutionProvider"])


def test_catalog_is_well_formed():
    names = [m["name"] for m in MODELS]
    assert len(names) == len(set(names))
    assert len({m["path"] for m in MODELS}) == len(MODELS)
    assert set(names) >= REAL
    for m in MODELS:
        assert {"name", "path", "origin", "tier", "sha256", "description", "input_shapes",
                "input_consts"} <= set(m), m["name"]
        assert len(m["sha256"]) == 64 and int(m["sha256"], 16) >= 0, m["name"]
        assert all(isinstance(d, int) and d > 0
                   for dims in m["input_shapes"].values() for d in dims), m["name"]
        assert not set(m["input_shapes"]) & set(m["input_consts"]), m["name"]
        if m["origin"] == "pypi":
            assert m["tier"] == "slow" and m["path"].startswith("models/real/")
            assert "==" in m["package"] and m["member"].endswith(".onnx")
            assert m["path"].rsplit("/", 1)[1] == m["member"].rsplit("/", 1)[1]
        else:
            assert m["origin"] == "generated" and m["tier"] == "fast"
            assert m["path"].startswith("models/") and m["path"].count("/") == 1


@pytest.mark.parametrize("entry", MODELS, ids=lambda m: m["name"])
def test_present_models_match_their_hash(entry):
    path = REPO / entry["path"]
    if not path.exists():
        assert entry["origin"] == "pypi", f"{path} is committed and must exist"
        pytest.skip(f"{path} not fetched (python models/fetch_real.py)")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], (
        f"{path} drifted from catalog.toml")


def test_make_small_reproduces_the_committed_bytes(tmp_path):
    subprocess.run([sys.executable, str(REPO / "models" / "make_small.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    made = sorted(p.name for p in tmp_path.glob("*.onnx"))
    assert made == sorted(m["path"].rsplit("/", 1)[1] for m in GENERATED)
    for m in GENERATED:
        name = m["path"].rsplit("/", 1)[1]
        assert (tmp_path / name).read_bytes() == (REPO / m["path"]).read_bytes(), name


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value
            for d in value_info.type.tensor_type.shape.dim]


def _feeds(session: ort.InferenceSession, entry: dict, seed: int = 0,
           shapes: dict | None = None) -> dict:
    """Random inputs of each input's dtype with the catalog's bindings."""
    shapes = {**entry["input_shapes"], **(shapes or {})}
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in session.get_inputs():
        dtype = ONNX_DTYPES[i.type]
        if i.name in entry["input_consts"]:
            feeds[i.name] = np.array(entry["input_consts"][i.name], dtype)
            continue
        shape = shapes.get(i.name, i.shape)
        assert all(isinstance(d, int) for d in shape), f"{entry['name']}: {i.name} {shape} unbound"
        if dtype == np.int64:
            feeds[i.name] = rng.integers(0, 100, shape).astype(np.int64)
        else:
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _expected_shapes(model: onnx.ModelProto, feeds: dict) -> dict[str, tuple]:
    """Each graph output's declared shape with its named dims bound from the inputs."""
    bound: dict[str, int] = {}
    for i in model.graph.input:
        if i.name in feeds:
            for d, n in zip(_dims(i), feeds[i.name].shape, strict=True):
                if isinstance(d, str):
                    bound[d] = n
    return {o.name: tuple(bound[d] if isinstance(d, str) else d for d in _dims(o))
            for o in model.graph.output}


@pytest.mark.parametrize("entry", GENERATED, ids=lambda m: m["name"])
def test_generated_models_are_valid_and_run(entry):
    path = REPO / entry["path"]
    assert path.stat().st_size < 300_000
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8 and model.producer_name == "edgec models/make_small.py"
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert all(t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64)
               for t in model.graph.initializer)
    declared = {i.name for i in model.graph.input}
    assert set(entry["input_shapes"]) | set(entry["input_consts"]) <= declared
    # every dynamic dim is bound by the catalog
    for i in model.graph.input:
        if any(isinstance(d, str) for d in _dims(i)):
            assert i.name in entry["input_shapes"] or i.name in entry["input_consts"], i.name

    sess = _session(entry)
    feeds = _feeds(sess, entry)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))
    assert {k: v.shape for k, v in outs.items()} == _expected_shapes(model, feeds)
    for name, out in outs.items():
        assert out.dtype == np.float32, name
        assert np.isfinite(out).all() and float(np.std(out)) > 1e-3, name
        assert np.abs(out).max() < 100, f"{name}: activations should stay O(1)"


def test_dynamic_batch_needs_and_honours_its_binding():
    entry = _entry("dynamic-batch")
    model = onnx.load(str(REPO / entry["path"]))
    assert _dims(model.graph.input[0])[0] == "batch"
    assert entry["input_shapes"]["x"][0] > 1
    sess = _session(entry)
    single = _feeds(sess, entry, shapes={"x": [1, 3, 16, 16]})
    batched = {"x": np.concatenate([single["x"]] * 3)}
    y1, y3 = sess.run(None, single)[0], sess.run(None, batched)[0]
    assert y3.shape == (3, 5)
    np.testing.assert_allclose(y3, np.repeat(y1, 3, axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("samples", [64, 512])
def test_sr_switch_branches_differ(samples):
    """Folding the If onto the wrong branch (or both) must change the result."""
    entry = _entry("sr-switch")
    assert entry["input_consts"] == {"sr": 16000} and entry["input_shapes"]["audio"] == [1, 64]
    model = onnx.load(str(REPO / entry["path"]))
    assert [n.op_type for n in model.graph.node].count("If") == 1
    sess = _session(entry)
    feeds = _feeds(sess, entry, shapes={"audio": [1, samples]})
    at16k = sess.run(None, feeds)[0]
    at8k = sess.run(None, {**feeds, "sr": np.array(8000, np.int64)})[0]
    assert at16k.shape == at8k.shape == (1, 4)
    assert np.abs(at16k - at8k).max() > 0.05
    # any rate other than 16000 takes the else branch
    at44k = sess.run(None, {**feeds, "sr": np.array(44100, np.int64)})[0]
    np.testing.assert_array_equal(at8k, at44k)


def test_tiny_lstm_state_is_threaded_through():
    entry = _entry("tiny-lstm")
    sess = _session(entry)
    feeds = _feeds(sess, entry)
    zero = {**feeds, "h0": np.zeros_like(feeds["h0"]), "c0": np.zeros_like(feeds["c0"])}
    logits, hn, cn = sess.run(["logits", "hn", "cn"], feeds)
    logits0, _, _ = sess.run(["logits", "hn", "cn"], zero)
    assert not np.allclose(logits, logits0)  # the initial state matters
    np.testing.assert_allclose(np.exp(logits).sum(axis=-1), 1.0, rtol=1e-5)
    assert hn.shape == cn.shape == (1, 1, 32)

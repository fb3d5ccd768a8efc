"""Gather and scatter indices: in range, the model's answer; out of range, never a crash.

Index inputs are checked against the table they index before a run
(runtime/inputs.py: ONNX allows [-extent, extent)); indices the model
computes are clamped inside the kernels (backend/tvm/index_bounds.py), so
an out-of-range one cannot read or write outside a tensor. Before, a token id
past the table's end segfaulted the process.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.errors import UsageError

pytestmark = pytest.mark.compile


def _model(path):
    emb = numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(10, 4), "emb")
    nodes = [
        helper.make_node("Gather", ["emb", "ids"], ["g"], axis=0),
        helper.make_node("Add", ["ids", "shift"], ["ids2"]),  # computed indices
        helper.make_node("Gather", ["emb", "ids2"], ["g2"], axis=0),
        helper.make_node("GatherElements", ["d", "gi"], ["ge"], axis=1),
        helper.make_node("GatherND", ["d", "ni"], ["gn"]),
        helper.make_node("ScatterND", ["d", "si", "su"], ["sn"]),
    ]
    ins = [("ids", TensorProto.INT64, [3]), ("shift", TensorProto.INT64, [3]),
           ("d", TensorProto.FLOAT, [3, 4]), ("gi", TensorProto.INT64, [3, 2]),
           ("ni", TensorProto.INT64, [2, 2]), ("si", TensorProto.INT64, [2, 1]),
           ("su", TensorProto.FLOAT, [2, 4])]
    outs = [("g", [3, 4]), ("g2", [3, 4]), ("ge", [3, 2]), ("gn", [2]), ("sn", [3, 4])]
    graph = helper.make_graph(
        nodes, "idx", [helper.make_tensor_value_info(n, t, s) for n, t, s in ins],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outs], [emb])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("idx")
    model = _model(tmp / "idx.onnx")
    return model, edgec.compile(model, output=tmp / "idx.edgec")


def _feeds(**over):
    feeds = {"ids": np.array([0, -1, 8]), "shift": np.array([1, 0, 1]),
             "d": np.arange(12, dtype=np.float32).reshape(3, 4),
             "gi": np.array([[0, 3], [1, -1], [2, 0]]), "ni": np.array([[2, 3], [-1, -4]]),
             "si": np.array([[2], [-3]]), "su": np.ones((2, 4), np.float32)}
    feeds.update(over)
    return feeds


def test_in_range_indices_match_onnxruntime_negative_ones_too(built):
    model, art = built
    feeds = _feeds()
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = art.run(feeds)
    for (name, value), want in zip(got.items(), ref, strict=True):
        np.testing.assert_array_equal(value, want, err_msg=name)


def test_the_manifest_records_each_index_inputs_extents(built):
    _model, art = built
    entries = {d["name"]: d for d in art.manifest["inputs"]}
    assert entries["ids"]["index_extents"] == [10]
    assert entries["gi"]["index_extents"] == [4]
    assert entries["ni"]["index_extents"] == [3, 4]  # one per last-dim slot
    assert entries["si"]["index_extents"] == [3]
    assert "index_extents" not in entries["shift"]


@pytest.mark.parametrize("name,value,shown", [
    ("ids", np.array([0, 10, 1]), "index 10 at [1]"),
    ("ids", np.array([0, -11, 1]), "index -11 at [1]"),
    ("ids", np.array([2**63 - 1, 0, 0]), "index 9223372036854775807 at [0]"),
    ("gi", np.array([[0, 4], [1, 1], [2, 0]]), "index 4 at [0, 1]"),
    ("ni", np.array([[2, 3], [3, 0]]), "index 3 at [1, 0]"),  # slot 0 indexes 3 rows
    ("si", np.array([[2], [5]]), "index 5 at [1, 0]"),
])
def test_out_of_range_index_inputs_are_refused_before_running(built, name, value, shown):
    _model, art = built
    with pytest.raises(UsageError) as err:
        art.run(_feeds(**{name: value}))
    assert f"input '{name}'" in err.value.message and shown in err.value.message
    assert "outside the valid range" in err.value.message


def test_computed_out_of_range_indices_do_not_crash(built):
    """ids in range, ids + shift not: the kernel clamps instead of reading past the
    table (onnxruntime raises; the process here must simply survive)."""
    _model, art = built
    out = art.run(_feeds(shift=np.array([1 << 40, -(1 << 40), 5])))
    assert np.isfinite(out["g2"]).all() and out["g2"].min() >= 0 and out["g2"].max() <= 39


@pytest.mark.cross
def test_emulated_runs_refuse_out_of_range_indices_too(tmp_path):
    model = _model(tmp_path / "idx.onnx")
    art = edgec.compile(model, target="arm/cortex-a76-dotprod", output=tmp_path / "a.edgec")
    with pytest.raises(UsageError, match="outside the valid range"):
        art.run(_feeds(ids=np.array([0, 99, 1])), emulate=True)
    got = art.run(_feeds(), emulate=True)
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, _feeds())
    np.testing.assert_array_equal(got["g"], ref[0])

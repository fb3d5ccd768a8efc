"""Input binding: spec parsing, named dims shared across inputs, anonymous dims
kept apart, constants checked against declared shapes, and the suggested flag."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from edgec.errors import UsageError
from edgec.frontend import Bindings, bind_inputs, parse_const_spec, parse_shape_spec
from edgec.frontend.binding import binding_hint, suggest_binding, unbound_inputs


def model(*inputs) -> ir.Model:
    """Identity-ish model over the given (name, elem_type, dims) inputs."""
    vis = [helper.make_tensor_value_info(n, t, d) for n, t, d in inputs]
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"], name=f"/id_{n}")
             for n, _, _ in inputs]
    outs = [helper.make_tensor_value_info(f"{n}_out", t, None) for n, t, _ in inputs]
    return ir.serde.deserialize_model(helper.make_model(
        helper.make_graph(nodes, "g", vis, outs), opset_imports=[helper.make_opsetid("", 17)]))


def dims(m: ir.Model, name: str) -> list:
    v = next(v for v in m.graph.inputs if v.name == name)
    return [d if isinstance(d, int) else d.value for d in v.shape]


def test_parse_specs():
    assert parse_shape_spec("x=1,3,640,640") == ("x", (1, 3, 640, 640))
    assert parse_shape_spec("gpu_0/data_0=1,3,224,224") == ("gpu_0/data_0", (1, 3, 224, 224))
    assert parse_shape_spec("x=1x3x8x8") == ("x", (1, 3, 8, 8))
    name, value = parse_const_spec("sr=16000")
    assert name == "sr" and value.shape == () and value == 16000
    assert parse_const_spec("w=0.5,2")[1].tolist() == [0.5, 2.0]
    with pytest.raises(UsageError, match="not a number"):
        parse_const_spec("sr=fast")


def test_const_from_npy(tmp_path):
    np.save(tmp_path / "s.npy", np.ones((2, 1, 4), np.float32))
    name, value = parse_const_spec(f"state={tmp_path / 's.npy'}")
    assert name == "state" and value.shape == (2, 1, 4)


def test_named_dim_binds_every_input_that_shares_it():
    m = model(("input", TensorProto.FLOAT, ["batch", "sequence"]),
              ("state", TensorProto.FLOAT, [2, "batch", 128]))
    bind_inputs(m, Bindings({"input": (3, 512)}), "vad.onnx")
    assert dims(m, "input") == [3, 512] and dims(m, "state") == [2, 3, 128]
    assert unbound_inputs(m) == []


def test_conflicting_sizes_for_one_named_dim():
    m = model(("a", TensorProto.FLOAT, ["n", 4]), ("b", TensorProto.FLOAT, ["n", 5]))
    with pytest.raises(UsageError, match="'n' is bound to both 2 and 3"):
        bind_inputs(m, Bindings({"a": (2, 4), "b": (3, 5)}), "m.onnx")


def test_anonymous_dims_are_not_shared():
    # Paddle2ONNX writes '?' (and -1) for every unknown dim: height and width differ.
    m = model(("x", TensorProto.FLOAT, [-1, 3, "?", "?"]))
    bind_inputs(m, Bindings({"x": (1, 3, 48, 192)}), "cls.onnx")
    assert dims(m, "x") == [1, 3, 48, 192]
    m = model(("x", TensorProto.FLOAT, [-1, 3, "?", "?"]))
    assert [v.name for v in unbound_inputs(m)] == ["x"]


def test_const_binding_replaces_the_input():
    m = model(("audio", TensorProto.FLOAT, [1, "samples"]), ("sr", TensorProto.INT64, []))
    bind_inputs(m, Bindings({"audio": (1, 64)}, {"sr": np.array(8000)}), "m.onnx")
    assert [v.name for v in m.graph.inputs] == ["audio"]
    sr = m.graph.initializers["sr"]
    assert sr.const_value.numpy().dtype == np.int64 and sr.const_value.numpy() == 8000


def test_const_with_wrong_shape():
    m = model(("state", TensorProto.FLOAT, [2, "batch", 128]))
    with pytest.raises(UsageError, match=r"has shape \[2, 1, 64\]"):
        bind_inputs(m, Bindings(consts={"state": np.zeros((2, 1, 64))}), "m.onnx")


def test_suggested_flags():
    m = model(("input", TensorProto.FLOAT, ["batch", "sequence"]),
              ("state", TensorProto.FLOAT, [2, "batch", 128]),
              ("img", TensorProto.FLOAT, ["N", 3, "?", "W"]))
    assert suggest_binding(unbound_inputs(m)) == (
        "--input-shape input=1,SEQUENCE --input-shape state=2,1,128 "
        "--input-shape img=1,3,H,W")


def test_hint_explains_placeholders_in_words():
    """PP-OCR's exporter names its dims 'p2o.DynamicDimension.N': the hint must not
    paste those; it uses placeholders and says what each one is."""
    m = model(("x", TensorProto.FLOAT, ["p2o.DynamicDimension.0", 3, "p2o.DynamicDimension.1",
                                        "p2o.DynamicDimension.2"]),
              ("t", TensorProto.FLOAT, [1, "?", 7, "unk__3"]))
    hint = binding_hint(unbound_inputs(m))
    assert hint.startswith("--input-shape x=1,3,H,W --input-shape t=1,D1,7,D3 (replace each "
                           "placeholder with the size to compile for: ")
    assert "H = dim 2 of x, 'p2o.DynamicDimension.1' in the model" in hint
    assert "D1 = dim 1 of t, unnamed in the model" in hint
    assert "<" not in hint and "DynamicDimension.0" not in hint  # the batch dim is just 1
    with pytest.raises(UsageError, match=r"H, W are placeholders; replace each"):
        parse_shape_spec("x=1,3,H,W")
    assert parse_shape_spec("x=1,3,640,640") == ("x", (1, 3, 640, 640))

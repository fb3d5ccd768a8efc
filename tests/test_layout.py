"""The layout pass (edgec/backend/tvm/layout.py): conv outputs read only by
edgec conv kernels stay channel-blocked (NCHW[b]c); every other reader gets
NCHW. Checked on a ResNet-style block against onnxruntime, with the layout
each conv was given read from the artifact's kernel table.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec

pytestmark = pytest.mark.compile


def block_graph(*, c0=5, ch=32, h=9, w=11, c_is_output=False, tail="MaxPool",
                seed=0) -> onnx.ModelProto:
    """x -> A (3x3, relu) -> B (3x3, relu) -> C (1x1) + D(A) -> relu -> E (1x1)
    -> ``tail`` (MaxPool or Sigmoid) -> y; D is a 1x1 shortcut from A. With
    ``c_is_output`` C's result is a graph output too."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def conv(name, src, cin, cout, k, act=True):
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((cout, cin, k, k)) * (1.0 / np.sqrt(cin * k * k)))
            .astype(np.float32), f"{name}_w"))
        inits.append(numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32),
                                             f"{name}_b"))
        out = f"{name}_conv"
        nodes.append(helper.make_node("Conv", [src, f"{name}_w", f"{name}_b"], [out],
                                      name=f"/{name}/Conv", kernel_shape=[k, k],
                                      pads=[k // 2] * 4))
        if act:
            nodes.append(helper.make_node("Relu", [out], [name], name=f"/{name}/Relu"))
            return name
        return out

    a = conv("A", "x", c0, ch, 3)
    b = conv("B", a, ch, ch, 3)
    d = conv("D", a, ch, ch, 1, act=False)
    c = conv("C", b, ch, ch, 1, act=False)
    nodes.append(helper.make_node("Add", [c, d], ["C_add"], name="/C/Add"))
    nodes.append(helper.make_node("Relu", ["C_add"], ["C"], name="/C/Relu2"))
    e = conv("E", "C", ch, 16, 1)
    if tail == "MaxPool":
        nodes.append(helper.make_node("MaxPool", [e], ["y"], name="/pool/MaxPool",
                                      kernel_shape=[2, 2], strides=[2, 2]))
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                 [1, 16, h // 2, w // 2])]
    else:
        nodes.append(helper.make_node(tail, [e], ["y"], name=f"/tail/{tail}"))
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, h, w])]
    if c_is_output:
        outputs.append(helper.make_tensor_value_info("C", TensorProto.FLOAT, [1, ch, h, w]))
    graph = helper.make_graph(nodes, "block",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, c0, h, w])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _blocked_convs(art) -> set[str]:
    convs = set()
    for name, entry in art.manifest["kernels"].items():
        if "_nchw" in name:
            convs |= {n.split("/")[1] for n in entry.get("onnx_nodes", [])
                      if n.endswith("/Conv")}
    return convs


def _compile_and_verify(tmp_path, target, **params):
    model = tmp_path / "block.onnx"
    onnx.save(block_graph(**params), str(model))
    art = edgec.compile(model, target=target, output=tmp_path / "block.edgec")
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()
    return art


@pytest.mark.parametrize("target,block", [("x86", 8), ("x86-avx512", 16)])
def test_conv_to_conv_outputs_stay_blocked(target, block, tmp_path):
    """A, B, D feed convs and C feeds a conv (its residual D with it); E feeds a
    MaxPool, which pools the blocked data and converts its output back to
    NCHW for the graph output. Results match onnxruntime."""
    if target == "x86-avx512" and not edgec.resolve_target("x86-avx512").runs_on_host()[0]:
        pytest.skip("this machine has no AVX-512")
    art = _compile_and_verify(tmp_path, target)
    assert _blocked_convs(art) == {"A", "B", "C", "D", "E"}
    assert all(f"_nchw{block}c" in name for name in art.manifest["kernels"] if "_nchw" in name)


def test_an_op_without_a_blocked_form_reads_nchw(tmp_path):
    """E feeds a Sigmoid (TVM's kernel, NCHW only), so E writes NCHW."""
    art = _compile_and_verify(tmp_path, "x86", tail="Sigmoid")
    assert _blocked_convs(art) == {"A", "B", "C", "D"}


def test_a_graph_output_and_its_residual_stay_nchw(tmp_path):
    """C is also a graph output, so it writes NCHW; D, read only as C's
    residual, must then match C's layout and writes NCHW too."""
    art = _compile_and_verify(tmp_path, "x86", c_is_output=True)
    assert _blocked_convs(art) == {"A", "B", "E"}


def fire_graph(*, c0=16, squeeze=8, expand=16, h=13, w=13, seed=0) -> onnx.ModelProto:
    """SqueezeNet's fire module twice: S (1x1) -> E1 (1x1) | E3 (3x3) -> Concat,
    the second one's concat into a MaxPool."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def conv(name, src, cin, cout, k):
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32),
            f"{name}_w"))
        nodes.append(helper.make_node("Conv", [src, f"{name}_w"], [f"{name}_c"],
                                      name=f"/{name}/Conv", kernel_shape=[k, k],
                                      pads=[k // 2] * 4))
        nodes.append(helper.make_node("Relu", [f"{name}_c"], [name], name=f"/{name}/Relu"))
        return name

    src, cin = "x", c0
    for i in (1, 2):
        s_ = conv(f"S{i}", src, cin, squeeze, 1)
        e1, e3 = conv(f"E{i}a", s_, squeeze, expand, 1), conv(f"E{i}b", s_, squeeze, expand, 3)
        nodes.append(helper.make_node("Concat", [e1, e3], [f"cat{i}"], name=f"/cat{i}/Concat",
                                      axis=1))
        src, cin = f"cat{i}", 2 * expand
    nodes.append(helper.make_node("MaxPool", [src], ["y"], name="/pool/MaxPool",
                                  kernel_shape=[3, 3], strides=[2, 2]))
    graph = helper.make_graph(
        nodes, "fire", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c0, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       [1, cin, (h - 3) // 2 + 1, (w - 3) // 2 + 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_channel_concat_of_blocked_outputs_stays_blocked(tmp_path):
    """The expand convs write blocked, the concat joins whole blocks, the next
    squeeze conv reads them, and the final MaxPool converts back to NCHW."""
    model = tmp_path / "fire.onnx"
    onnx.save(fire_graph(), str(model))
    art = edgec.compile(model, target="x86", output=tmp_path / "fire.edgec")
    assert _blocked_convs(art) == {"S1", "E1a", "E1b", "S2", "E2a", "E2b"}
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


def test_channels_that_are_not_whole_blocks_stay_nchw(tmp_path):
    """20 channels are not whole 8-channel blocks: only E (16 channels, read
    from NCHW, written blocked for its MaxPool) is blocked."""
    art = _compile_and_verify(tmp_path, "x86", ch=20)
    assert _blocked_convs(art) == {"E"}


@pytest.mark.cross
@pytest.mark.parametrize("target", ["arm", "arm-dotprod"])
def test_blocked_layout_under_emulated_arm(target, tmp_path):
    """NEON's 4-lane blocks, run under qemu-aarch64 against onnxruntime."""
    art = _compile_and_verify(tmp_path, target)
    assert _blocked_convs(art) == {"A", "B", "C", "D", "E"}
    assert all("_nchw4c" in name for name in art.manifest["kernels"] if "_nchw" in name)


def mobile_graph(*, c0=8, ch=32, h=13, w=11, stride=2, seed=0) -> onnx.ModelProto:
    """MobileNet's blocks: P1 (1x1, relu) -> DW1 (3x3 depthwise, relu) -> P2 (1x1)
    + P1 -> DW2 (5x5 depthwise, ``stride``, relu) -> P3 (1x1) -> Sigmoid -> y."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def conv(name, src, cin, cout, k, group=1, stride=1, act="Relu"):
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((cout, cin // group, k, k)) / np.sqrt(cin // group * k * k))
            .astype(np.float32), f"{name}_w"))
        inits.append(numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32),
                                             f"{name}_b"))
        nodes.append(helper.make_node("Conv", [src, f"{name}_w", f"{name}_b"], [f"{name}_c"],
                                      name=f"/{name}/Conv", kernel_shape=[k, k], group=group,
                                      strides=[stride, stride], pads=[k // 2] * 4))
        if act is None:
            return f"{name}_c"
        nodes.append(helper.make_node(act, [f"{name}_c"], [name], name=f"/{name}/{act}"))
        return name

    p1 = conv("P1", "x", c0, ch, 1)
    d1 = conv("DW1", p1, ch, ch, 3, group=ch)
    p2 = conv("P2", d1, ch, ch, 1, act=None)
    nodes.append(helper.make_node("Add", [p2, p1], ["P2_add"], name="/P2/Add"))
    d2 = conv("DW2", "P2_add", ch, ch, 5, group=ch, stride=stride)
    conv("P3", d2, ch, 16, 1, act="Sigmoid")
    oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
    graph = helper.make_graph(
        nodes, "mobile", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c0, h, w])],
        [helper.make_tensor_value_info("P3", TensorProto.FLOAT, [1, 16, oh, ow])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("target,stride", [("x86", 2), ("x86", 1), ("x86-avx512", 2)])
def test_depthwise_convs_run_blocked_between_blocked_convs(target, stride, tmp_path):
    """DW1 and DW2 read and write blocks between the 1x1 convs; P3 feeds a
    Sigmoid (TVM's kernel) and writes NCHW. Results match onnxruntime
    (padding, stride 2, a 5x5 filter, the residual)."""
    if target == "x86-avx512" and not edgec.resolve_target("x86-avx512").runs_on_host()[0]:
        pytest.skip("this machine has no AVX-512")
    model = tmp_path / "mobile.onnx"
    onnx.save(mobile_graph(stride=stride), str(model))
    art = edgec.compile(model, target=target, output=tmp_path / "mobile.edgec")
    blocked = {n.split("/")[1] for name, e in art.manifest["kernels"].items() if "_nchw" in name
               for n in e.get("onnx_nodes", []) if n.endswith("/Conv")}
    assert blocked == {"P1", "DW1", "P2", "DW2"}
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


@pytest.mark.cross
def test_blocked_depthwise_under_emulated_arm(tmp_path):
    model = tmp_path / "mobile.onnx"
    onnx.save(mobile_graph(), str(model))
    art = edgec.compile(model, target="arm", output=tmp_path / "mobile.edgec")
    assert any(name.startswith("edgec_dw") and "_nchw4c" in name
               for name in art.manifest["kernels"])
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()

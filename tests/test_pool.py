"""Max and average pools on edgec's template (kernels/pool.py) against onnxruntime.

Each case is a small ONNX graph compiled by edgec: a conv writes blocked
(NCHW[b]c) data, the pool reads it. A pool whose windows reach into padding
must be an edgec kernel (by its name in the manifest) and match onnxruntime,
over what pools get wrong: padding (a max pool's never wins; an average
counts it only with count_include_pad), ceil_mode's extra windows, odd
sizes, asymmetric pads, dilation, batch > 1, a blocked or NCHW reader.
Pools without padding, and pools of NCHW data, stay TVM's (measured faster
there) and must match too.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.backend.tvm.kernels.pool import pool_of

pytestmark = pytest.mark.compile


def pool_graph(*, op="MaxPool", n=1, c=5, h=13, w=17, k=(3, 3), stride=(2, 2),
               pads=(1, 1, 1, 1), ceil=0, include_pad=0, dilation=None, conv_before=32,
               conv_after=0, seed=0) -> onnx.ModelProto:
    """x -> Relu (or a conv to ``conv_before`` channels + Relu) -> pool ->
    y, or -> a 1x1 conv to ``conv_after`` channels -> y. Inputs are signed,
    so a max over zero padding would show."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    cin = c
    if conv_before:
        w0 = rng.standard_normal((conv_before, c, 3, 3)).astype(np.float32) * 0.3
        inits.append(numpy_helper.from_array(w0, "w0"))
        nodes.append(helper.make_node("Conv", ["x", "w0"], ["a"], name="/conv0/Conv",
                                      pads=[1, 1, 1, 1]))
        c = conv_before
    else:
        nodes.append(helper.make_node("Neg", ["x"], ["a"], name="/neg/Neg"))
    attrs = dict(kernel_shape=list(k), strides=list(stride), pads=[pads[0], pads[1],
                 pads[2], pads[3]], ceil_mode=ceil)
    if op == "AveragePool":
        attrs["count_include_pad"] = include_pad
    if dilation is not None:
        attrs["dilations"] = list(dilation)
    nodes.append(helper.make_node(op, ["a"], ["p"], name="/pool/" + op, **attrs))
    out = "p"
    if conv_after:
        w1 = rng.standard_normal((conv_after, c, 1, 1)).astype(np.float32) * 0.3
        inits.append(numpy_helper.from_array(w1, "w1"))
        nodes.append(helper.make_node("Conv", ["p", "w1"], ["y"], name="/conv1/Conv"))
        out = "y"
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, cin, h, w])],
        [], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    model.graph.output.append(inferred[out])
    return model


CASES = {
    "max-3x3-s2-pad1": dict(),  # ResNet's stem pool, odd map
    "max-3x3-s2-ceil": dict(pads=(0, 0, 0, 0), ceil=1, h=14, w=16),  # SqueezeNet's
    "max-2x2-s2": dict(k=(2, 2), pads=(0, 0, 0, 0), h=12, w=15),
    "max-5x5-s1-pad2": dict(k=(5, 5), stride=(1, 1), pads=(2, 2, 2, 2), c=3),  # YOLO's SPPF
    "max-asym-pads-dilation": dict(pads=(0, 1, 2, 0), dilation=(2, 2), h=15, w=20),
    "max-batch2-stride3": dict(n=2, stride=(3, 3), k=(4, 4), pads=(1, 2, 1, 2)),
    "avg-3x3-s2-pad1": dict(op="AveragePool"),  # ShuffleNet's shortcut
    "avg-3x3-s2-pad1-include": dict(op="AveragePool", include_pad=1),
    "avg-ceil-include": dict(op="AveragePool", include_pad=1, ceil=1, h=14, w=14),
    "avg-ceil-exclude-asym": dict(op="AveragePool", ceil=1, pads=(1, 0, 0, 1), h=10, w=11),
    "avg-7x7-global-like": dict(op="AveragePool", k=(7, 7), stride=(1, 1), pads=(0, 0, 0, 0),
                                h=7, w=7, c=40),  # ResNet's head, as an AveragePool
    "max-blocked-both-sides": dict(conv_after=48, h=11, w=19),
    "avg-ceil-include-blocked-reader": dict(op="AveragePool", conv_after=16, ceil=1,
                                            include_pad=1, h=10, w=13),
}
#: TVM's pools: no padding (it needs no copy then), or NCHW data (Neg, not a conv)
TVM_CASES = {
    "max-2x2-s2": dict(k=(2, 2), pads=(0, 0, 0, 0), h=12, w=15),
    "avg-2x2-s2": dict(op="AveragePool", k=(2, 2), pads=(0, 0, 0, 0), h=16, w=16, n=2),
    "avg-7x7-global-like": CASES["avg-7x7-global-like"],
    "max-nchw": dict(conv_before=0, c=5),
    "avg-nchw-include": dict(op="AveragePool", conv_before=0, include_pad=1, n=2),
}
del CASES["max-2x2-s2"], CASES["avg-7x7-global-like"]


def _check(tmp_path, params, target="x86", ours=True):
    model = tmp_path / "pool.onnx"
    onnx.save(pool_graph(**params), str(model))
    art = edgec.compile(model, target=target, output=tmp_path / "pool.edgec")
    op = params.get("op", "MaxPool")
    kind = "maxpool" if op == "MaxPool" else "avgpool"
    pools = {k: v for k, v in art.manifest["kernels"].items() if k.startswith(f"edgec_{kind}")}
    assert len(pools) == int(ours), art.manifest["kernels"]
    if ours:
        (name, entry), = pools.items()
        assert entry["onnx_nodes"] == ["/pool/" + op]
        assert "_nchw" in name, name  # blocked
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


@pytest.mark.parametrize("name", list(CASES))
def test_pool_template_matches_onnxruntime(name, tmp_path):
    _check(tmp_path, CASES[name])


@pytest.mark.parametrize("name", list(TVM_CASES))
def test_pools_left_to_tvm_match_onnxruntime(name, tmp_path):
    _check(tmp_path, TVM_CASES[name], ours=False)


def test_pool_template_avx512_if_here(tmp_path):
    """16-channel blocks; runs only where the CPU has AVX-512."""
    if not edgec.resolve_target("x86-avx512").runs_on_host()[0]:
        pytest.skip("this machine has no AVX-512")
    _check(tmp_path, CASES["avg-ceil-exclude-asym"], "x86-avx512")


@pytest.mark.cross
@pytest.mark.parametrize("name", ["max-3x3-s2-pad1", "avg-3x3-s2-pad1-include"])
def test_pool_template_under_emulated_arm(name, tmp_path):
    _check(tmp_path, CASES[name], "arm")


def test_windows_reading_only_padding_are_left_to_tvm():
    """Padding as wide as the window: the first window reads no pixel. TVM
    keeps such a pool (its semantics there are the framework's business)."""
    assert pool_of("max", 1, 16, 8, 8, (5, 5), kernel=(2, 2), stride=(2, 2), dilation=(1, 1),
                   pad=(2, 2, 2, 2), count_include_pad=False) is None
    # Every window of the padded map is whole: counting the padding, the
    # divisor is the constant 9; not counting it, the real rows and columns.
    for include, counted in ((True, None), (False, ((1, 9), (1, 9)))):
        window, pool = pool_of("avg", 1, 16, 8, 8, (4, 4), kernel=(3, 3), stride=(2, 2),
                               dilation=(1, 1), pad=(1, 1, 0, 0), count_include_pad=include)
        assert window.pad == (1, 1, 0, 0) and pool.counted == counted

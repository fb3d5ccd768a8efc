"""Winograd F(2, 3) and F(4, 3) for 3x3 stride-1 convs between blocked convs
(edgec/backend/tvm/kernels/winograd.py): the transform matrices, the choice
of tile, and the kernel against onnxruntime over odd sizes, padding, batch,
residuals and the vector widths of AVX2, AVX-512 and NEON (emulated)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.backend.tvm.kernels import winograd
from edgec.backend.tvm.kernels.conv2d import ConvShape
from edgec.backend.tvm.kernels.vector_unit import VectorUnit


@pytest.mark.parametrize("m", [2, 4])
def test_transforms_compute_a_3_tap_correlation(m):
    """A^T [(G g) * (B^T d)] is the m outputs of correlating d with g."""
    bt, g, at = winograd.matrices(m)
    rng = np.random.default_rng(m)
    for _ in range(5):
        d, f = rng.standard_normal(m + 2), rng.standard_normal(3)
        want = np.array([d[i:i + 3] @ f for i in range(m)])
        np.testing.assert_allclose(at @ ((g @ f) * (bt @ d)), want, rtol=1e-12, atol=1e-12)


def test_packed_weights_transform_each_filter():
    """U[xi] = G g G^T per (output, input) channel pair, padded channels zero."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((20, 3, 3, 3)).astype(np.float32)
    u = winograd.pack_winograd_weights(w, 2, 16)  # [16, 2 blocks, C, 16]
    _, g, _ = winograd.matrices(2)
    want = g @ w[17, 2].astype(np.float64) @ g.T
    np.testing.assert_allclose(u[:, 1, 2, 1].reshape(4, 4), want, rtol=1e-6)
    assert not u[:, 1, :, 4:].any()


AVX512 = VectorUnit("avx512", 16, 32, 8)


@pytest.mark.parametrize("c,h,m", [(64, 56, 4), (128, 28, 4), (256, 14, 4), (512, 7, 2)])
def test_tile_choice_on_resnet_shapes(c, h, m):
    """ResNet-50's 3x3 stride-1 convs: F(4, 3) while the map is large enough,
    F(2, 3) at 7x7, where F(4, 3)'s weights (4x the direct conv's) outweigh it."""
    shape = ConvShape(1, c, h, h, c, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert winograd.choose_winograd(shape, AVX512).m == m


def test_direct_conv_kept_where_winograd_costs_more():
    """A 2x2 map with many channels: the transformed weights cost more than
    the multiplications saved."""
    shape = ConvShape(1, 512, 2, 2, 512, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert winograd.choose_winograd(shape, AVX512) is None


def test_applies_only_to_3x3_stride_1_convs_with_whole_channel_vectors():
    base = ConvShape(1, 32, 9, 9, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert winograd.applies(base, 16, 16, AVX512)
    assert winograd.applies(base, 0, 0, AVX512)  # NCHW in and out
    # NCHW input is transformed a register of channels at a time
    assert not winograd.applies(ConvShape(1, 24, 9, 9, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1),
                                          1), 0, 0, AVX512)
    assert winograd.applies(ConvShape(1, 24, 9, 9, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
                            8, 0, AVX512)
    assert not winograd.applies(ConvShape(1, 32, 9, 9, 32, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1),
                                          1), 16, 16, AVX512)
    assert not winograd.applies(ConvShape(1, 32, 9, 9, 32, 3, 3, (1, 1), (1, 1, 1, 1), (2, 2),
                                          1), 16, 16, AVX512)
    assert not winograd.applies(ConvShape(1, 32, 9, 9, 32, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1),
                                          1), 16, 16, AVX512)
    assert not winograd.applies(ConvShape(1, 32, 9, 9, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1),
                                          2), 16, 16, AVX512)


def sandwich_graph(*, n=1, c=32, o=48, h=13, w=11, pads=(1, 1, 1, 1), residual=False,
                   pre=True, post="conv", seed=0) -> onnx.ModelProto:
    """x -> P (1x1, relu) -> W (3x3 with ``pads``, bias, relu [+ P, relu]) ->
    Q (1x1) -> y: P and Q are convs, so W reads and writes blocks. Without
    ``pre`` W reads x (NCHW, c channels); with ``post="sigmoid"`` a Sigmoid
    reads W's output (NCHW)."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def conv(name, src, cin, cout, k, pad, act):
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32),
            f"{name}_w"))
        inits.append(numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32),
                                             f"{name}_b"))
        nodes.append(helper.make_node("Conv", [src, f"{name}_w", f"{name}_b"], [f"{name}_c"],
                                      name=f"/{name}/Conv", kernel_shape=[k, k],
                                      pads=list(pad)))
        if not act:
            return f"{name}_c"
        nodes.append(helper.make_node("Relu", [f"{name}_c"], [name], name=f"/{name}/Relu"))
        return name

    cin = 8 if pre else c
    p = conv("P", "x", cin, c, 1, (0, 0, 0, 0), True) if pre else "x"
    wout = conv("W", p, c, o, 3, pads, not residual)
    if residual:  # o == c: ResNet's identity shortcut
        nodes.append(helper.make_node("Add", [wout, p], ["W_add"], name="/W/Add"))
        nodes.append(helper.make_node("Relu", ["W_add"], ["W"], name="/W/Relu"))
        wout = "W"
    oh, ow = h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2
    if post == "conv":
        y, oc = conv("Q", wout, o, 16, 1, (0, 0, 0, 0), False), 16
    else:
        nodes.append(helper.make_node("Sigmoid", [wout], ["y"], name="/y/Sigmoid"))
        y, oc = "y", o
    graph = helper.make_graph(
        nodes, "sandwich", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, cin, h, w])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [n, oc, oh, ow])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _winograd_kernels(art) -> list[str]:
    return [name for name in art.manifest["kernels"] if "_winograd" in name]


def _check(tmp_path, monkeypatch, m, target="x86", **params):
    """Compile with only F(m, 3) allowed, and costs that count multiplications
    only (so small maps take it too); W must run it and match onnxruntime."""
    monkeypatch.setattr(winograd, "WINOGRAD_SIDES", (m,))
    monkeypatch.setattr(winograd, "WEIGHT_COST", 0)
    monkeypatch.setattr(winograd, "TRANSFORM_COST", 0)
    path = tmp_path / "sandwich.onnx"
    onnx.save(sandwich_graph(**params), str(path))
    art = edgec.compile(path, target=target, output=tmp_path / "sandwich.edgec")
    names = _winograd_kernels(art)
    assert len(names) == 1 and f"_winograd{m}" in names[0], list(art.manifest["kernels"])
    report = edgec.verify(path, art)
    assert report.ok, report.to_json()
    return names[0]


@pytest.mark.compile
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("params", [
    dict(h=13, w=11),  # sizes that are not whole tiles
    dict(h=8, w=16, c=48, o=32),  # whole tiles; channels not a multiple of the tile
    dict(h=9, w=7, pads=(0, 0, 0, 0)),  # no padding: the map shrinks
    dict(h=10, w=9, pads=(1, 0, 0, 1)),  # asymmetric padding
    dict(n=2, h=7, w=9, c=32, o=32, residual=True),  # batch 2, identity shortcut
], ids=["odd", "whole-tiles", "valid", "asymmetric", "batch2-residual"])
def test_winograd_matches_onnxruntime(m, params, tmp_path, monkeypatch):
    name = _check(tmp_path, monkeypatch, m, **params)
    assert name.endswith("_nchw8c")  # the x86 target: AVX2's 8-lane blocks


@pytest.mark.compile
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("params,blocked_out", [
    (dict(pre=False, c=16, o=24), True),  # NCHW graph input, blocked output
    (dict(post="sigmoid", o=24), False),  # blocked input, NCHW output
    (dict(pre=False, post="sigmoid", n=2, c=16, o=20, h=9, w=14), False),  # NCHW both
], ids=["nchw-in", "nchw-out", "nchw-both"])
def test_winograd_reads_and_writes_nchw(m, params, blocked_out, tmp_path, monkeypatch):
    """Where a neighbour is not an edgec conv (a graph input, a Sigmoid):
    NCHW input is transposed to channels last in the padded copy, NCHW
    output leaves through a channels-last buffer and one transpose."""
    name = _check(tmp_path, monkeypatch, m, **params)
    assert name.endswith("_nchw8c") == blocked_out, name


@pytest.mark.compile
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("params", [dict(h=13, w=11), dict(pre=False, post="sigmoid", n=2,
                                                             c=16, o=24, h=15, w=9)],
                         ids=["blocked", "nchw"])
def test_winograd_in_strips_matches_onnxruntime(m, params, tmp_path, monkeypatch):
    """Large maps run in strips of tile rows, a strip per thread; forced here
    to one tile row per strip, so the last strip has rows past the map."""
    monkeypatch.setattr(winograd, "STRIPS_FROM_BYTES", 0)
    monkeypatch.setattr(winograd, "STRIP_BYTES", 1)
    shape = ConvShape(1, 32, 13, 11, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert winograd.strip_rows(shape, m) == 1
    _check(tmp_path, monkeypatch, m, **params)


@pytest.mark.compile
def test_winograd_with_avx512_blocks(tmp_path, monkeypatch):
    if not edgec.resolve_target("x86-avx512").runs_on_host()[0]:
        pytest.skip("this machine has no AVX-512")
    name = _check(tmp_path, monkeypatch, 4, target="x86-avx512", h=15, w=13, c=32, o=64,
                  residual=False)
    assert name.endswith("_nchw16c")


@pytest.mark.cross
@pytest.mark.parametrize("m", [2, 4])
def test_winograd_under_emulated_arm(m, tmp_path, monkeypatch):
    """NEON's 4-lane blocks, run under qemu-aarch64 against onnxruntime."""
    name = _check(tmp_path, monkeypatch, m, target="arm", n=2, h=9, w=11, c=16, o=16,
                  residual=True)
    assert name.endswith("_nchw4c")


def deep_graph(*, blocks=4, c=64, h=28, seed=0) -> onnx.ModelProto:
    """x -> 1x1 -> ``blocks`` x (3x3 relu, 3x3 + shortcut relu) -> 1x1 -> y:
    ResNet's basic blocks, with weights scaled to keep activations O(1)."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def conv(name, src, cin, cout, k):
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((cout, cin, k, k)) * np.sqrt(1.0 / (cin * k * k)))
            .astype(np.float32), f"{name}_w"))
        inits.append(numpy_helper.from_array(
            (0.1 * rng.standard_normal(cout)).astype(np.float32), f"{name}_b"))
        nodes.append(helper.make_node("Conv", [src, f"{name}_w", f"{name}_b"], [f"{name}_c"],
                                      name=f"/{name}/Conv", kernel_shape=[k, k],
                                      pads=[k // 2] * 4))
        return f"{name}_c"

    def relu(name, src):
        nodes.append(helper.make_node("Relu", [src], [name], name=f"/{name}/Relu"))
        return name

    last = relu("P", conv("P", "x", 3, c, 1))
    for i in range(blocks):
        a = relu(f"A{i}", conv(f"A{i}", last, c, c, 3))
        b = conv(f"B{i}", a, c, c, 3)
        nodes.append(helper.make_node("Add", [b, last], [f"B{i}_add"], name=f"/B{i}/Add"))
        last = relu(f"B{i}", f"B{i}_add")
    conv("Q", last, c, 8, 1)
    graph = helper.make_graph(
        nodes, "deep", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, h])],
        [helper.make_tensor_value_info("Q_c", TensorProto.FLOAT, [1, 8, h, h])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.compile
def test_rounding_stays_within_tolerance_through_eight_layers(tmp_path):
    """Eight F(4, 3) convs in a row, chosen by the cost model as in ResNet-50
    (64 channels at 28x28), still match onnxruntime within the default
    float32 tolerance."""
    path = tmp_path / "deep.onnx"
    onnx.save(deep_graph(), str(path))
    art = edgec.compile(path, target="x86", output=tmp_path / "deep.edgec")
    convs = {n for name, entry in art.manifest["kernels"].items() if "_winograd4_" in name
             for n in entry.get("onnx_nodes", []) if n.endswith("/Conv")}
    assert len(convs) == 8, sorted(art.manifest["kernels"])
    report = edgec.verify(path, art)
    assert report.ok, report.to_json()
    print("max abs error", max(c.max_abs_err for c in report.checks))


@pytest.mark.cross
def test_winograd_nchw_in_strips_under_emulated_arm(tmp_path, monkeypatch):
    """NCHW in and out, one tile row per strip, NEON's 4 lanes, under qemu."""
    monkeypatch.setattr(winograd, "STRIPS_FROM_BYTES", 0)
    monkeypatch.setattr(winograd, "STRIP_BYTES", 1)
    name = _check(tmp_path, monkeypatch, 4, target="arm", pre=False, post="sigmoid", c=8, o=12,
                  h=11, w=10)
    assert "_nchw" not in name


@pytest.mark.compile
def test_random_winograd_shapes(tmp_path, monkeypatch):
    """Seeded random shapes, a property test in miniature: channels in whole
    8-lane vectors, any size, padding 0 or 1 per side, batch 1-2, blocked
    or NCHW neighbours, F(2, 3) and F(4, 3), sometimes in strips."""
    rng = np.random.default_rng(2026)
    for i in range(6):
        pads = tuple(int(p) for p in rng.integers(0, 2, 4))
        params = dict(n=int(rng.integers(1, 3)), c=8 * int(rng.integers(1, 5)),
                      o=int(rng.integers(1, 41)), h=int(rng.integers(3, 20)),
                      w=int(rng.integers(3, 20)), pads=pads, pre=bool(rng.integers(0, 2)),
                      post=["conv", "sigmoid"][int(rng.integers(0, 2))], seed=i)
        if not params["pre"]:  # the graph input has the conv's channels
            params["c"] = 8 * int(rng.integers(1, 3))
        strips = bool(rng.integers(0, 2))
        monkeypatch.setattr(winograd, "STRIPS_FROM_BYTES", 0 if strips else 4 << 20)
        monkeypatch.setattr(winograd, "STRIP_BYTES", 1 if strips else 512 << 10)
        folder = tmp_path / str(i)
        folder.mkdir()
        _check(folder, monkeypatch, [2, 4][i % 2], **params)

"""edgec's own kernels (edgec/backend/tvm/kernels: conv, depthwise, matmul) against
onnxruntime.

Each case is a small ONNX graph compiled by edgec; the test checks that the
chain was given to an edgec kernel (the manifest's kernel table) and that the
outputs match onnxruntime, over the shapes templates get wrong: odd sizes,
stride 2, asymmetric padding, dilation, groups, depthwise, channels that are
not a multiple of the vector width, batch > 1, fused epilogues. ARM cases run
under qemu-aarch64 through the C bundle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.backend.tvm.kernels.conv2d import ConvShape, ConvTile, choose_tile, pack_weights
from edgec.backend.tvm.kernels.vector_unit import vector_unit

pytestmark = pytest.mark.compile


def conv_graph(*, n=1, c=8, h=9, w=11, o=20, k=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1),
               dilation=(1, 1), group=1, bias=True, act=None, residual=False, affine=False,
               seed=0) -> onnx.ModelProto:
    """x -> Conv [+B] [* S + T, / 2] [-> act] [+ r -> Relu] -> y; pads in ONNX order
    (t, l, b, r). ``affine`` is BatchNorm as Paddle exports it: Mul and Add."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(
        (rng.standard_normal((o, c // group, *k)) * 0.3).astype(np.float32), "W")]
    conv_in = ["x", "W"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(o).astype(np.float32), "B"))
        conv_in.append("B")
    nodes = [helper.make_node("Conv", conv_in, ["c"], name="/conv/Conv", kernel_shape=list(k),
                              strides=list(stride), pads=[pads[0], pads[1], pads[2], pads[3]],
                              dilations=list(dilation), group=group)]
    last = "c"
    if affine:
        inits += [numpy_helper.from_array(rng.uniform(0.5, 2, (1, o, 1, 1)).astype(np.float32),
                                          "S"),
                  numpy_helper.from_array(rng.standard_normal((1, o, 1, 1)).astype(np.float32),
                                          "T"),
                  numpy_helper.from_array(np.array(2.0, np.float32), "two")]
        nodes += [helper.make_node("Mul", ["S", last], ["bn_s"], name="/bn/Mul"),
                  helper.make_node("Add", ["bn_s", "T"], ["bn_t"], name="/bn/Add"),
                  helper.make_node("Div", ["bn_t", "two"], ["bn"], name="/bn/Div")]
        last = "bn"
    if act == "relu":
        nodes.append(helper.make_node("Relu", [last], ["a"], name="/act/Relu"))
        last = "a"
    elif act == "clip":
        inits += [numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
                  numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
        nodes.append(helper.make_node("Clip", [last, "lo", "hi"], ["a"], name="/act/Clip"))
        last = "a"
    elif act is not None:
        nodes += activation_nodes(act, last, "a", inits)
        last = "a"
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w])]
    oh = (h + pads[0] + pads[2] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    if residual:
        inputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [n, o, oh, ow]))
        nodes += [helper.make_node("Add", [last, "r"], ["s"], name="/res/Add"),
                  helper.make_node("Relu", ["s"], ["y"], name="/res/Relu")]
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"], name="/out/Identity"))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, o, oh, ow])
    graph = helper.make_graph(nodes, "conv", inputs, [y], inits)
    opset, ir = (20, 9) if act == "gelu" else (17, 8)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=ir)


def activation_nodes(act: str, x: str, y: str, inits: list) -> list:
    """ONNX nodes computing activation ``act`` of ``x`` into ``y``: "sigmoid",
    "silu" (x * Sigmoid(x)), "gelu" (the Gelu op, opset 20), "gelu-erf" (x *
    (Erf(x / sqrt 2) + 1) * 0.5, as exported before it)."""
    if act == "sigmoid":
        return [helper.make_node("Sigmoid", [x], [y], name="/act/Sigmoid")]
    if act == "silu":
        return [helper.make_node("Sigmoid", [x], ["act_s"], name="/act/Sigmoid"),
                helper.make_node("Mul", [x, "act_s"], [y], name="/act/Mul")]
    if act == "gelu":
        return [helper.make_node("Gelu", [x], [y], name="/act/Gelu")]
    assert act == "gelu-erf"
    inits += [numpy_helper.from_array(np.array(v, np.float32), name)
              for name, v in (("sqrt2", 2 ** 0.5), ("one", 1.0), ("half", 0.5))]
    return [helper.make_node("Div", [x, "sqrt2"], ["act_d"], name="/act/Div"),
            helper.make_node("Erf", ["act_d"], ["act_e"], name="/act/Erf"),
            helper.make_node("Add", ["act_e", "one"], ["act_a"], name="/act/Add"),
            helper.make_node("Mul", [x, "act_a"], ["act_m"], name="/act/Mul"),
            helper.make_node("Mul", ["act_m", "half"], [y], name="/act/Mul_1")]


def save_with_tail(graph: onnx.ModelProto, nodes: list, inits: list, path: Path) -> Path:
    """``graph`` (from conv_graph) with its final Identity replaced by ``nodes``
    (which must produce "y"), saved to ``path``."""
    (ident,) = [n for n in graph.graph.node if n.op_type == "Identity"]
    graph.graph.node.remove(ident)
    graph.graph.initializer.extend(inits)
    graph.graph.node.extend(nodes)
    onnx.save(graph, str(path))
    return path


CASES = {
    "3x3-odd-channels": {},
    # on Zen 4's target: 3 x 8-lane vectors; 40 channels: 8-lane tiles, 5 blocks
    "24-channels-half-vectors": dict(c=16, o=24, h=12, w=21, act="relu", residual=True),
    "40-channels-half-vectors": dict(c=7, o=40, h=9, w=13, pads=(0, 1, 2, 1)),
    "1x1-no-pad": dict(k=(1, 1), pads=(0, 0, 0, 0), c=19, o=33),  # input read in place
    "1x1-large-plane": dict(k=(1, 1), pads=(0, 0, 0, 0), c=5, o=16, h=64, w=70),  # re-laid out
    "stride2-odd": dict(h=15, w=13, stride=(2, 2), o=24),
    "asymmetric-pad": dict(pads=(0, 1, 2, 0), o=17),
    "7x7-stride2-rgb": dict(c=3, h=32, w=30, k=(7, 7), stride=(2, 2), pads=(3, 3, 3, 3), o=16),
    "dilation2": dict(dilation=(2, 2), pads=(2, 2, 2, 2)),
    "rect-kernel": dict(k=(1, 5), pads=(0, 2, 0, 2), o=12),
    "batch3": dict(n=3, o=40),
    "no-bias": dict(bias=False, o=5),
    "grouped": dict(c=16, o=64, group=2, k=(1, 1), pads=(0, 0, 0, 0)),
    "affine-relu": dict(affine=True, act="relu", o=24),
    "dw-affine-residual": dict(c=16, o=16, group=16, affine=True, residual=True),
    "grouped-odd": dict(c=12, o=18, group=3, act="relu", residual=True),  # 6 ch per group
    "grouped-shufflenet": dict(c=240, o=60, group=3, k=(1, 1), pads=(0, 0, 0, 0), h=7, w=7),
    "relu": dict(act="relu"),
    # activations with a gate or a transcendental, fused into the write-back
    "sigmoid": dict(act="sigmoid", o=12),
    "silu-residual": dict(act="silu", residual=True, o=16),
    "gelu": dict(act="gelu", o=24, k=(1, 1), pads=(0, 0, 0, 0)),
    "gelu-erf": dict(act="gelu-erf", o=9, h=6, w=33),
    "dw-silu": dict(c=16, o=16, group=16, act="silu"),
    "clip-relu6": dict(act="clip", o=48),
    "residual-relu": dict(residual=True, o=32),
    "bias-relu-residual": dict(act="relu", residual=True, o=16, stride=(2, 2), h=12, w=12),
    "wide-output": dict(h=3, w=67, c=4, o=8),
    "single-pixel": dict(h=1, w=1, k=(1, 1), pads=(0, 0, 0, 0), c=32, o=10),
    # pixel tiles (reductions of at most PIXEL_MAX_K): stride phases, odd widths,
    # dilation, channels that are not a multiple of the tile's
    "pixels-stem-stride2": dict(c=3, h=33, w=31, stride=(2, 2), o=24, act="relu"),
    "pixels-dilated-stride2": dict(c=2, h=17, w=23, dilation=(2, 2), pads=(2, 1, 2, 0),
                                   stride=(2, 2), o=7),
    "pixels-1x1-residual": dict(c=16, o=20, h=7, w=19, k=(1, 1), pads=(0, 0, 0, 0),
                                act="relu", residual=True, affine=True),
    # depthwise (groups == channels): its own template
    "dw-3x3": dict(c=24, o=24, group=24, h=14, w=14, act="relu"),
    "dw-stride2-odd": dict(c=16, o=16, group=16, h=15, w=13, stride=(2, 2)),
    "dw-5x5-clip": dict(c=8, o=8, group=8, k=(5, 5), pads=(2, 2, 2, 2), act="clip", w=37),
    "dw-dilated-residual": dict(c=12, o=12, group=12, dilation=(2, 2), pads=(2, 2, 2, 2),
                                residual=True, bias=False),
    # stride phases in the padded plane, with dilation and uneven padding
    "dw-stride2-dilated": dict(c=8, o=8, group=8, h=17, w=23, stride=(2, 2), dilation=(2, 2),
                               pads=(2, 1, 1, 2), act="relu"),
    "dw-stride3-5x5-batch2": dict(c=4, o=4, group=4, n=2, h=19, w=29, k=(5, 5),
                                  stride=(3, 3), pads=(2, 2, 2, 2)),
}


def _kernels(art) -> dict:
    return {k: v for k, v in art.manifest["kernels"].items()
            if k.startswith(("edgec_conv2d", "edgec_dwconv2d"))}


def _assert_activation_fused(model: Path, entry: dict) -> None:
    """Every node of the activation (named /act/...) is in the kernel's write-back."""
    act = {n.name for n in onnx.load(str(model)).graph.node if n.name.startswith("/act/")}
    assert act <= set(entry["onnx_nodes"]), (act, entry["onnx_nodes"])


def _check(tmp_path: Path, params: dict, target: str, seed: int = 0) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(conv_graph(seed=seed, **params), str(model))
    art = edgec.compile(model, target=target, output=tmp_path / "m.edgec")
    ours = _kernels(art)
    assert len(ours) == 1, art.manifest["kernels"]  # the whole chain is one edgec kernel
    (entry,) = ours.values()
    assert entry["onnx_nodes"][0] == "/conv/Conv"
    if params.get("residual"):
        assert "/res/Add" in entry["onnx_nodes"] and "/res/Relu" in entry["onnx_nodes"]
    if params.get("affine"):
        assert {"/bn/Mul", "/bn/Add", "/bn/Div"} <= set(entry["onnx_nodes"])
    if params.get("act") == "clip":  # ReLU6, rewritten as 6 * HardSigmoid(x / 6) to fuse
        assert "/act/Clip" in entry["onnx_nodes"]
        assert len(art.manifest["kernels"]) == 1, art.manifest["kernels"]
    _assert_activation_fused(model, entry)
    report = edgec.verify(model, art, seed=seed)
    assert report.ok, report.to_json()


@pytest.mark.parametrize("name", list(CASES))
def test_conv_matches_onnxruntime_x86(name, tmp_path):
    _check(tmp_path, CASES[name], "x86")


@pytest.mark.parametrize("name", ["3x3-odd-channels", "stride2-odd", "residual-relu",
                                  "dw-stride2-odd", "24-channels-half-vectors",
                                  "40-channels-half-vectors", "pixels-stem-stride2",
                                  "pixels-dilated-stride2", "pixels-1x1-residual"])
def test_conv_matches_onnxruntime_avx512_if_here(name, tmp_path):
    """The 16-lane tiles; runs only where the CPU has AVX-512."""
    if not edgec.resolve_target("x86-avx512").runs_on_host()[0]:
        pytest.skip("this machine has no AVX-512")
    _check(tmp_path, CASES[name], "x86-avx512")


@pytest.mark.cross
@pytest.mark.parametrize("target", ["arm", "arm-dotprod"])
@pytest.mark.parametrize("name", ["3x3-odd-channels", "stride2-odd", "grouped-odd", "clip-relu6",
                                  "bias-relu-residual", "batch3", "dw-3x3", "dw-stride2-odd",
                                  "dw-stride2-dilated", "pixels-stem-stride2",
                                  "pixels-1x1-residual", "silu-residual", "dw-silu"])
def test_conv_matches_onnxruntime_emulated_arm(name, target, tmp_path):
    _check(tmp_path, CASES[name], target)


def test_random_conv_shapes(tmp_path):
    """Seeded random shapes, a property test in miniature: any legal conv matches."""
    rng = np.random.default_rng(2026)
    for i in range(6):
        k = int(rng.choice([1, 3, 5]))
        s = int(rng.integers(1, 3))
        params = dict(n=int(rng.integers(1, 3)), c=int(rng.integers(1, 24)),
                      h=int(rng.integers(k, 20)), w=int(rng.integers(k, 20)),
                      o=int(rng.integers(1, 40)), k=(k, k), stride=(s, s),
                      pads=tuple(int(p) for p in rng.integers(0, k // 2 + 1, 4)),
                      act=[None, "relu", "clip"][i % 3])
        folder = tmp_path / str(i)
        folder.mkdir()
        _check(folder, params, "x86", seed=i)


@pytest.mark.parametrize("arch,features,lanes", [
    ("x86_64", {"avx512f", "avx2"}, 16), ("x86_64", {"avx2", "fma"}, 8),
    ("aarch64", {"neon"}, 4)])
def test_tiles_follow_the_target(arch, features, lanes):
    unit = vector_unit(arch, features)
    assert unit.lanes == lanes
    for shape in (ConvShape(1, 64, 56, 56, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
                  ConvShape(1, 3, 224, 224, 64, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1), 1),
                  ConvShape(1, 96, 13, 13, 10, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1)):
        tile = choose_tile(shape, unit)
        assert not tile.pixels and tile.ob % lanes == 0
        assert (tile.ob // lanes) * tile.xt <= unit.accumulators  # no spills by design
    # short reductions: pixel tiles, vectors along the row
    for shape in (ConvShape(1, 3, 224, 224, 64, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),
                  ConvShape(1, 16, 55, 55, 64, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1)):
        tile = choose_tile(shape, unit)
        assert tile.pixels and tile.xt % lanes == 0
        assert tile.ob * (tile.xt // lanes) <= unit.accumulators


def test_pixel_tiles_cover_the_row_with_the_least_padding():
    """Zen 4: 8-lane vectors; a 55-wide row as 7 vectors (one padded pixel) by 2
    channels, a 13-wide one as 2 vectors by 8 channels."""
    zen4 = vector_unit("x86_64", {"avx512f"}, 256)
    row55 = ConvShape(1, 16, 55, 55, 64, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    assert choose_tile(row55, zen4) == ConvTile(2, 56, 8, pixels=True)
    row13 = ConvShape(1, 48, 13, 13, 192, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    assert choose_tile(row13, zen4) == ConvTile(8, 16, 8, pixels=True)


def test_half_width_vectors_where_the_fma_units_are_half_width():
    """Zen 4 ([device] fma_bits = 256): 24 channels as 3 x 8 lanes, unpadded;
    a full-width machine pads them to 32 instead; 64 channels keep full vectors."""
    shape = ConvShape(1, 96, 160, 160, 24, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert choose_tile(shape, vector_unit("x86_64", {"avx512f"}, 256)) == ConvTile(24, 4, 8)
    assert choose_tile(shape, vector_unit("x86_64", {"avx512f"})).lanes == 16
    wide = ConvShape(1, 96, 160, 160, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert choose_tile(wide, vector_unit("x86_64", {"avx512f"}, 256)).lanes == 16


def test_pack_weights_layout():
    w = np.arange(5 * 2 * 3 * 3, dtype=np.float32).reshape(5, 2, 3, 3)
    p = pack_weights(w, groups=1, ob=4)
    assert p.shape == (1, 2, 2, 3, 3, 4)
    assert p[0, 1, 1, 2, 0, 0] == w[4, 1, 2, 0] and (p[0, 1, :, :, :, 1:] == 0).all()
    g = pack_weights(np.ones((6, 1, 1, 1), np.float32), groups=3, ob=4)  # 2 ch per group
    assert g.shape == (3, 1, 1, 1, 1, 4) and g[:, 0, 0, 0, 0].tolist() == [[1, 1, 0, 0]] * 3


def matmul_graph(*, lead=(1, 7), k=19, n=33, gemm=False, bias=True, act=None,
                 residual=False, seed=0) -> onnx.ModelProto:
    """x[*lead, k] @ W[k, n] (or Gemm with transB) [+B] [-> act] [+ r] -> y."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((k, n)) * 0.3).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [*lead, k])]
    if gemm:  # ONNX Gemm: 2-D, weights stored [n, k] with transB=1
        inits = [numpy_helper.from_array(np.ascontiguousarray(w.T), "W"),
                 numpy_helper.from_array(b, "B")]
        nodes = [helper.make_node("Gemm", ["x", "W", "B"] if bias else ["x", "W"], ["c"],
                                  name="/fc/Gemm", transB=1)]
    else:
        inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
        nodes = [helper.make_node("MatMul", ["x", "W"], ["m"], name="/fc/MatMul")]
        if bias:
            nodes.append(helper.make_node("Add", ["m", "B"], ["c"], name="/fc/Add"))
        else:
            nodes.append(helper.make_node("Identity", ["m"], ["c"], name="/fc/Identity"))
    last = "c"
    if act == "relu":
        nodes.append(helper.make_node("Relu", [last], ["a"], name="/act/Relu"))
        last = "a"
    elif act is not None:
        nodes += activation_nodes(act, last, "a", inits)
        last = "a"
    if residual:
        inputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [*lead, n]))
        nodes.append(helper.make_node("Add", [last, "r"], ["s"], name="/res/Add"))
        last = "s"
    nodes.append(helper.make_node("Identity", [last], ["y"], name="/out/Identity"))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [*lead, n])
    graph = helper.make_graph(nodes, "mm", inputs, [y], inits)
    opset, ir = (20, 9) if act == "gelu" else (17, 8)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=ir)


MATMUL_CASES = {
    "3d-bias": {},
    "4d-bias-relu-residual": dict(lead=(2, 3, 5), act="relu", residual=True),
    "gemm-transB-row": dict(lead=(1,), gemm=True, k=64, n=10),
    "gemm-rows": dict(lead=(13,), gemm=True, k=40, n=48),
    "no-bias-wide": dict(lead=(4,), bias=False, n=130, k=7),
    # a transformer MLP's first layer: bias + GELU (both spellings)
    "gelu": dict(lead=(2, 9), act="gelu", k=32, n=64),
    "gelu-erf-residual": dict(lead=(11,), act="gelu-erf", k=24, n=40, residual=True),
    "single-column": dict(lead=(1, 9), n=1, k=16),
}


def _check_matmul(tmp_path: Path, params: dict, target: str, seed: int = 0) -> None:
    model = tmp_path / "mm.onnx"
    onnx.save(matmul_graph(seed=seed, **params), str(model))
    art = edgec.compile(model, target=target, output=tmp_path / "mm.edgec")
    ours = {k: v for k, v in art.manifest["kernels"].items() if k.startswith("edgec_matmul")}
    assert len(ours) == 1, art.manifest["kernels"]
    (entry,) = ours.values()
    assert entry["onnx_nodes"][0] in ("/fc/MatMul", "/fc/Gemm")
    _assert_activation_fused(model, entry)
    report = edgec.verify(model, art, seed=seed)
    assert report.ok, report.to_json()


@pytest.mark.parametrize("name", list(MATMUL_CASES))
def test_matmul_matches_onnxruntime_x86(name, tmp_path):
    _check_matmul(tmp_path, MATMUL_CASES[name], "x86")


@pytest.mark.cross
@pytest.mark.parametrize("name", ["4d-bias-relu-residual", "gemm-rows", "gelu-erf-residual"])
def test_matmul_matches_onnxruntime_emulated_arm(name, tmp_path):
    _check_matmul(tmp_path, MATMUL_CASES[name], "arm")


def conv_transpose_graph(*, c=6, o=5, h=7, w=9, k=2, bias=True, tail="Sigmoid", n=1,
                         seed=0) -> onnx.ModelProto:
    """x -> ConvTranspose (kernel = stride = k) -> ``tail`` -> y. ``tail``:
    "Sigmoid" (a detection head's), or "bn-relu-add" (BatchNormalization, Relu and an
    Add of the input upsampled by Resize: what the kernel's write-back absorbs)."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((c, o, k, k)) * 0.3)
                                     .astype(np.float32), "W")]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(o).astype(np.float32), "B"))
    nodes = [helper.make_node("ConvTranspose", ["x", "W", "B"] if bias else ["x", "W"], ["c"],
                              name="/up/ConvTranspose", kernel_shape=[k, k], strides=[k, k])]
    if tail == "Sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["c"], ["y"], name="/up/Sigmoid"))
    else:  # o == c
        inits += [numpy_helper.from_array(v.astype(np.float32), name) for name, v in (
            ("g", rng.uniform(0.5, 2, o)), ("b", rng.standard_normal(o)),
            ("mu", rng.standard_normal(o)), ("var", rng.uniform(0.5, 2, o)),
            ("scales", np.array([1, 1, k, k])))]
        nodes += [
            helper.make_node("BatchNormalization", ["c", "g", "b", "mu", "var"], ["bn"],
                             name="/up/BatchNormalization"),
            helper.make_node("Relu", ["bn"], ["r"], name="/up/Relu"),
            helper.make_node("Resize", ["x", "", "scales"], ["skip"], name="/skip/Resize",
                             mode="nearest"),
            helper.make_node("Add", ["r", "skip"], ["y"], name="/up/Add")]
    graph = helper.make_graph(
        nodes, "up", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, o, h * k, w * k])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _check_transpose(tmp_path, params, target, ops, opt_level=None):
    model = tmp_path / "up.onnx"
    onnx.save(conv_transpose_graph(**params), str(model))
    art = edgec.compile(model, target=target, output=tmp_path / "up.edgec", opt_level=opt_level)
    (name,) = [k for k in art.manifest["kernels"] if k.startswith("edgec_conv2d_transpose")]
    assert art.manifest["kernels"][name]["ops"] == ops, art.manifest["kernels"]
    # the pixel shuffle is the kernel's write-back, not a transpose pass of TVM's
    assert not any("transpose" in k for k in art.manifest["kernels"] if k != name)
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


@pytest.mark.parametrize("params,ops", [
    ({}, ["ConvTranspose", "Sigmoid"]),
    (dict(k=3, o=1, bias=False, c=24), ["ConvTranspose", "Sigmoid"]),
    # the BatchNorm is folded into the ConvTranspose's weights by edgec's passes
    (dict(c=8, o=8, h=5, w=11, n=2, tail="bn-relu-add"), ["ConvTranspose", "Relu", "Add"]),
    # a long reduction: pixel tiles anyway
    (dict(c=80, o=16, k=4, h=3, w=5), ["ConvTranspose", "Sigmoid"]),
], ids=["2x2", "3x3", "2x2-bn-relu-residual-batch2", "4x4-80ch"])
def test_conv_transpose_kernel_equal_stride(params, ops, tmp_path):
    """ConvTranspose with kernel == stride (upsampling heads) runs as a 1x1 conv
    whose kernel writes the pixel-shuffled output, with what follows it
    (bias, BatchNorm, ReLU, a residual) in its write-back."""
    _check_transpose(tmp_path, params, "x86", ops)


def test_conv_transpose_folds_a_batchnorm_the_passes_left(tmp_path):
    """At -O1 the BatchNorm reaches dispatch: its scale goes into the weights of
    each output channel's k x k pixels, its shift into their bias."""
    _check_transpose(tmp_path, dict(c=8, o=8, h=5, w=7, tail="bn-relu-add"), "x86",
                     ["ConvTranspose", "BatchNormalization", "Relu", "Add"], opt_level=1)


@pytest.mark.cross
def test_conv_transpose_under_emulated_arm(tmp_path):
    _check_transpose(tmp_path, dict(c=8, o=8, h=5, w=6, tail="bn-relu-add"), "arm",
                     ["ConvTranspose", "Relu", "Add"])


def test_batchnorm_left_by_the_onnx_passes_is_folded_into_the_kernel(tmp_path):
    """At -O1 (no fuse-batchnorm) TVM imports BatchNormalization as batch_norm;
    dispatch folds its scale into the packed weights and its shift into the bias."""
    rng = np.random.default_rng(3)
    graph = conv_graph(o=12, bias=False)
    bn = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in (
        ("g", rng.uniform(0.5, 2, 12)), ("b", rng.standard_normal(12)),
        ("mu", rng.standard_normal(12)), ("var", rng.uniform(0.5, 2, 12)))]
    model = save_with_tail(graph, [
        helper.make_node("BatchNormalization", ["c", "g", "b", "mu", "var"], ["n"],
                         name="/bn/BatchNormalization", epsilon=1e-3),
        helper.make_node("Relu", ["n"], ["y"], name="/bn/Relu")], bn, tmp_path / "bn.onnx")
    art = edgec.compile(model, target="x86", output=tmp_path / "bn.edgec", opt_level=1)
    (entry,) = _kernels(art).values()
    assert entry["ops"] == ["Conv", "BatchNormalization", "Relu"]
    assert edgec.verify(model, art).ok


def test_decomposed_hardswish_fuses_into_the_conv(tmp_path):
    """Conv -> Add 3 -> Clip(0, 6) -> Mul -> Div 6 (Paddle's HardSwish, opset 11)
    becomes one conv kernel with a hardswish write-back."""
    graph = conv_graph(o=20)
    graph.opset_import[0].version = 11
    model = save_with_tail(graph, [
        helper.make_node("Add", ["c", "three"], ["a"], name="/hs/Add"),
        helper.make_node("Clip", ["a", "zero", "six"], ["cl"], name="/hs/Clip"),
        helper.make_node("Mul", ["c", "cl"], ["m"], name="/hs/Mul"),
        helper.make_node("Div", ["m", "six"], ["y"], name="/hs/Div")],
        [numpy_helper.from_array(np.array(v, np.float32), n)
         for n, v in (("three", 3), ("zero", 0), ("six", 6))], tmp_path / "hs.onnx")
    art = edgec.compile(model, target="x86", output=tmp_path / "hs.edgec")
    (name,) = _kernels(art)
    assert name.startswith("edgec_conv2d_bias_hardswish")
    assert len(art.manifest["kernels"]) == 1  # nothing left for TVM
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


def test_affine_after_the_activation_is_fused(tmp_path):
    """PP-LCNet's learnable affine: Conv -> Relu -> Mul(s) -> Add(t), one kernel."""
    rng = np.random.default_rng(5)
    graph = conv_graph(o=10, act="relu")
    model = save_with_tail(graph, [
        helper.make_node("Mul", ["a", "ps"], ["m"], name="/aff/Mul"),
        helper.make_node("Add", ["m", "pt"], ["y"], name="/aff/Add")], [
        numpy_helper.from_array(rng.standard_normal((1, 10, 1, 1)).astype(np.float32), "ps"),
        numpy_helper.from_array(rng.standard_normal((1, 10, 1, 1)).astype(np.float32), "pt")],
        tmp_path / "aff.onnx")
    art = edgec.compile(model, target="x86", output=tmp_path / "aff.edgec")
    (entry,) = _kernels(art).values()
    assert entry["onnx_nodes"][-2:] == ["/aff/Mul", "/aff/Add"]
    assert edgec.verify(model, art).ok


@pytest.mark.parametrize("params", [
    dict(c=4, o=12, w=37, k=5, stride=1, pads=(2, 2), group=1),
    dict(c=16, o=16, w=64, k=3, stride=2, pads=(1, 0), group=16),  # depthwise
    dict(c=258, o=128, w=4, k=3, stride=1, pads=(1, 1), group=1, dilation=2),
], ids=["plain", "depthwise-stride2", "wide-dilated"])
def test_conv1d_runs_as_conv2d_of_height_one(params, tmp_path):
    """1-D convs (speech models: silero's STFT and encoder) take the conv kernels."""
    rng = np.random.default_rng(11)
    c, o, w, k, g = params["c"], params["o"], params["w"], params["k"], params["group"]
    d = params.get("dilation", 1)
    ow = (w + sum(params["pads"]) - d * (k - 1) - 1) // params["stride"] + 1
    inits = [numpy_helper.from_array((rng.standard_normal((o, c // g, k)) * 0.3)
                                     .astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal(o).astype(np.float32), "B")]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], name="/conv1d/Conv",
                              kernel_shape=[k], strides=[params["stride"]],
                              pads=list(params["pads"]), dilations=[d], group=g),
             helper.make_node("Relu", ["c"], ["y"], name="/conv1d/Relu")]
    graph = helper.make_graph(
        nodes, "c1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, c, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, o, ow])], inits)
    model = tmp_path / "c1d.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), str(model))
    art = edgec.compile(model, target="x86", output=tmp_path / "c1d.edgec")
    (entry,) = _kernels(art).values()
    assert entry["onnx_nodes"] == ["/conv1d/Conv", "/conv1d/Relu"]
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


def test_channel_shuffle_folds_into_the_grouped_conv(tmp_path):
    """ShuffleNet: grouped conv -> Relu -> Reshape/Transpose/Reshape (channel
    shuffle) is one kernel writing channels in shuffled order."""
    g, o, h, w = 3, 18, 5, 7
    graph = conv_graph(c=12, o=o, group=g, h=h, w=w, act="relu", k=(1, 1), pads=(0, 0, 0, 0))
    model = save_with_tail(graph, [
        helper.make_node("Reshape", ["a", "split"], ["s1"], name="/shuffle/Reshape"),
        helper.make_node("Transpose", ["s1"], ["s2"], name="/shuffle/Transpose",
                         perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["s2", "merge"], ["y"], name="/shuffle/Reshape_1")], [
        numpy_helper.from_array(np.array([1, g, o // g, h, w], np.int64), "split"),
        numpy_helper.from_array(np.array([1, o, h, w], np.int64), "merge")],
        tmp_path / "shuffle.onnx")
    art = edgec.compile(model, target="x86", output=tmp_path / "shuffle.edgec")
    (name,) = _kernels(art)
    assert name.startswith("edgec_conv2d_bias_relu_shuffle")
    # what else runs is at most TVM's copies of reshapes at the graph's edges:
    # the result into the output's shape and, for the flattened map, the input
    # (inside a graph both are free views)
    assert all(k.startswith("reshape") for k in set(art.manifest["kernels"]) - {name})
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


def concat_graph(shapes: list[tuple[int, ...]], axis: int, dtype=TensorProto.FLOAT):
    """x0, x1, ... -> Relu each -> Concat(axis) -> y (the Relus keep inputs
    from being graph inputs fed straight through)."""
    elem = helper.tensor_dtype_to_np_dtype(dtype)
    nodes, inputs = [], []
    for i, sh in enumerate(shapes):
        inputs.append(helper.make_tensor_value_info(f"x{i}", dtype, list(sh)))
        nodes.append(helper.make_node("Relu" if np.issubdtype(elem, np.floating) else "Abs",
                                      [f"x{i}"], [f"r{i}"], name=f"/pre{i}"))
    out = list(shapes[0])
    out[axis] = sum(sh[axis] for sh in shapes)
    nodes.append(helper.make_node("Concat", [f"r{i}" for i in range(len(shapes))], ["y"],
                                  name="/cat/Concat", axis=axis))
    graph = helper.make_graph(nodes, "cat", inputs,
                              [helper.make_tensor_value_info("y", dtype, out)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize(("shapes", "axis", "ours"), [
    ([(1, 64, 55, 55), (1, 64, 55, 55)], 1, True),  # SqueezeNet's fire module
    ([(2, 3, 17, 19), (2, 5, 17, 19), (2, 1, 17, 19)], 1, True),  # batch 2: rows per image
    ([(1, 4, 30, 33), (1, 4, 7, 33)], 2, True),  # along H
    ([(1, 8, 300), (1, 8, 5000)], -1, True),  # a row longer than one chunk, and its tail
    ([(3, 40, 2), (3, 40, 3)], 2, False),  # rows of 2 and 3 elements: TVM's kernel
])
def test_concat_copies_match_onnxruntime(shapes, axis, ours, tmp_path):
    """Long rows are copied by edgec's kernel (in chunks, in parallel), short
    ones keep TVM's; both must equal onnxruntime exactly."""
    model = save_model(concat_graph(shapes, axis), tmp_path / "cat.onnx")
    art = edgec.compile(model, target="x86", output=tmp_path / "cat.edgec")
    kernels = [k for k in art.manifest["kernels"] if k.startswith("edgec_concat")]
    assert len(kernels) == int(ours), art.manifest["kernels"]
    if ours:
        assert art.manifest["kernels"][kernels[0]]["onnx_nodes"] == ["/cat/Concat"]
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("op", "shape", "axes", "out"), [
    ("GlobalAveragePool", (2, 24, 20, 32), None, (2, 24, 1, 1)),  # SE blocks, CNN heads
    ("ReduceMax", (3, 5, 64), [-1], (3, 5)),
    ("Softmax", (4, 128), None, (4, 128)),  # its max and its sum
    ("ReduceSum", (2, 6, 7, 48), [2, 3], (2, 6, 1, 1)),
])
def test_reductions_vectorised_by_rfactor_match_onnxruntime(op, shape, axes, out, tmp_path):
    """Reductions over a contiguous innermost axis are computed as vector
    partial results (rfactor, visible as an _rf buffer in the lowered module);
    the reassociated sums still match onnxruntime."""
    inits, inputs = [], ["x"]
    if axes is not None:
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
        inputs.append("axes")
    attrs = {"keepdims": int(len(out) == len(shape))} if axes is not None else {}
    node = helper.make_node(op, inputs, ["y"], name="/red", **attrs)
    graph = helper.make_graph([node], "red",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
                              inits)
    model = save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                                         ir_version=8), tmp_path / "red.onnx")
    art = edgec.compile(model, target="x86", output=tmp_path / "red.edgec",
                        save_temps=tmp_path / "temps")
    assert "_rf" in (tmp_path / "temps" / "relax-after.py").read_text()
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


def test_grouped_pointwise_conv_runs_on_the_flattened_map(tmp_path):
    """ShuffleNet's grouped 1x1 + residual: the kernel sees one row of H*W
    pixels ([N, C, 1, H*W], the same bytes), and the result matches."""
    model = tmp_path / "g.onnx"
    onnx.save(conv_graph(c=24, o=24, group=4, h=9, w=13, k=(1, 1), pads=(0, 0, 0, 0),
                         act="relu", residual=True), str(model))
    temps = tmp_path / "temps"
    art = edgec.compile(model, target="x86", output=tmp_path / "g.edgec", save_temps=temps)
    assert "R.shape([1, 24, 1, 117])" in (temps / "relax-kernels.py").read_text()
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


def test_a_flattened_conv_joins_a_concat_without_a_copy(tmp_path):
    """ShuffleNet's downsampling tail: Relu(Concat(grouped 1x1 conv, pool)).
    The conv runs flattened ([N, G, O/G, 1, H*W]) and edgec's concat reads it
    as [1, O*H*W]: one view of the kernel's output, not a reshape of a
    reshape, which TVM would fuse into a copy kernel."""
    g = conv_graph(c=24, o=32, group=4, h=10, w=12, k=(1, 1), pads=(0, 0, 0, 0))
    g.graph.node.pop()  # the Identity: the conv feeds the concat
    g.graph.node.extend([
        helper.make_node("AveragePool", ["x"], ["p"], name="/short/AveragePool",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["c", "p"], ["cat"], name="/cat/Concat", axis=1),
        helper.make_node("Relu", ["cat"], ["y"], name="/cat/Relu")])
    g.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 56
    model = save_model(g, tmp_path / "cat.onnx")
    temps = tmp_path / "temps"
    art = edgec.compile(model, target="x86", output=tmp_path / "cat.edgec", save_temps=temps)
    kernels = art.manifest["kernels"]
    assert any(k.startswith("edgec_concat") for k in kernels), kernels
    assert not [k for k in kernels if k.startswith("fused_reshape")], kernels
    assert "R.shape([1, 24, 1, 120])" in (temps / "relax-kernels.py").read_text()  # flattened
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


def attention_graph(*, lead=(2, 3), s=17, d=24, t=None, seed=0) -> onnx.ModelProto:
    """softmax(Q K^T / sqrt d) V with Q, K, V as inputs [*lead, s|t, d]: both
    MatMuls multiply two computed tensors."""
    t = t or s
    scale = numpy_helper.from_array(np.array(1 / np.sqrt(d), np.float32), "scale")
    perm = [*range(len(lead)), len(lead) + 1, len(lead)]
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], name="/att/Transpose", perm=perm),
             helper.make_node("MatMul", ["q", "kt"], ["qk"], name="/att/MatMul"),
             helper.make_node("Mul", ["qk", "scale"], ["qks"], name="/att/Mul"),
             helper.make_node("Softmax", ["qks"], ["p"], name="/att/Softmax", axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["y"], name="/att/MatMul_1")]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [*lead, n, d])
              for name, n in (("q", s), ("k", t), ("v", t))]
    graph = helper.make_graph(nodes, "att", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             [*lead, s, d])], [scale])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _check_attention(tmp_path, params, target):
    model = tmp_path / "att.onnx"
    onnx.save(attention_graph(**params), str(model))
    art = edgec.compile(model, target=target, output=tmp_path / "att.edgec")
    nodes = {n for name, entry in art.manifest["kernels"].items()
             if name.startswith("edgec_batch_matmul") for n in entry["onnx_nodes"]}
    assert {"/att/MatMul", "/att/MatMul_1"} <= nodes, art.manifest["kernels"]
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()


@pytest.mark.parametrize("params", [dict(), dict(lead=(1,), s=5, t=70, d=16),
                                    dict(lead=(), s=33, d=8)], ids=["4d", "3d-long-keys", "2d"])
def test_attention_matmuls_run_batched_kernels(params, tmp_path):
    """Q K^T and A V (no constant operand) run edgec's batched kernel: B is
    packed into panels inside it, rows and columns padded to the tile."""
    _check_attention(tmp_path, params, "x86")


@pytest.mark.cross
def test_attention_matmuls_under_emulated_arm(tmp_path):
    _check_attention(tmp_path, dict(lead=(2,), s=9, t=13, d=12), "arm")


def test_activation_search_skips_a_graph_output_reader(tmp_path):
    """A conv output that is a graph output and also read by a Sigmoid has two
    readers, one of them the function's output tuple: the gated-activation
    search (SiLU, GELU) must look past it, not fail on it."""
    graph = conv_graph(o=12)
    model = save_with_tail(graph, [
        helper.make_node("Identity", ["c"], ["y"], name="/out/Identity"),
        helper.make_node("Sigmoid", ["c"], ["z"], name="/z/Sigmoid")], [], tmp_path / "two.onnx")
    m = onnx.load(str(model))
    m.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 12, 9, 11]))
    onnx.save(m, str(model))
    art = edgec.compile(model, target="x86", output=tmp_path / "two.edgec")
    assert any(k.startswith("edgec_conv2d") for k in art.manifest["kernels"])
    assert edgec.verify(model, art).ok


def _prim_funcs(text: str) -> dict[str, str]:
    """name -> body of each TIR function in a --save-temps module dump."""
    parts = text.split("    @T.prim_func")[1:]
    return {p.split("def ", 1)[1].split("(", 1)[0]: p for p in parts}


def test_elementwise_chains_run_in_one_pass(tmp_path):
    """FPN's x * gate + x + Upsample(y): TVM fuses the ops into one kernel, and
    edgec computes the intermediates inside the last op instead of writing
    each to a buffer of its own; the 2x upsample of a small x2 * g2 + x2
    keeps that sum's buffer (it would be recomputed per output pixel)."""
    f = TensorProto.FLOAT
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
             numpy_helper.from_array(np.array([], np.float32), "roi")]
    nodes = [helper.make_node("Mul", ["x", "g"], ["m"], name="/lat/Mul"),
             helper.make_node("Add", ["x", "m"], ["a"], name="/lat/Add"),
             helper.make_node("Resize", ["s", "roi", "scales"], ["u"], name="/up/Resize",
                              mode="nearest", nearest_mode="floor",
                              coordinate_transformation_mode="asymmetric"),
             helper.make_node("Add", ["a", "u"], ["y"], name="/fpn/Add"),
             helper.make_node("Mul", ["s", "g"], ["m2"], name="/small/Mul"),
             helper.make_node("Add", ["s", "m2"], ["a2"], name="/small/Add"),
             helper.make_node("Resize", ["a2", "roi", "scales"], ["y2"], name="/up2/Resize",
                              mode="nearest", nearest_mode="floor",
                              coordinate_transformation_mode="asymmetric")]
    graph = helper.make_graph(
        nodes, "fpn", [helper.make_tensor_value_info("x", f, [1, 16, 20, 24]),
                       helper.make_tensor_value_info("g", f, [1, 16, 1, 1]),
                       helper.make_tensor_value_info("s", f, [1, 16, 10, 12])],
        [helper.make_tensor_value_info("y", f, [1, 16, 20, 24]),
         helper.make_tensor_value_info("y2", f, [1, 16, 20, 24])], inits)
    model = save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                         ir_version=8), tmp_path / "fpn.onnx")
    art = edgec.compile(model, target="x86", output=tmp_path / "fpn.edgec",
                        save_temps=tmp_path / "temps")
    funcs = _prim_funcs((tmp_path / "temps" / "relax-after.py").read_text())
    (big,) = [b for name, b in funcs.items() if "resize" in name and "add" in name.split(
        "resize")[-1]]
    assert "sblock_alloc_buffer" not in big, big  # one pass: no intermediate buffers
    (small,) = [b for name, b in funcs.items() if "resize" in name and b is not big]
    assert small.count("sblock_alloc_buffer") == 1, small  # x2 * g2 + x2, kept at 10x12
    report = edgec.verify(model, art)
    assert report.ok, report.to_json()

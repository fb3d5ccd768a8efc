"""edgec's int8 kernel templates (kernels/conv2d_int8.py, matmul_int8.py) built alone.

Each kernel is compiled by itself and checked bit-exactly against (a) a
numpy model of the integer math and (b) onnxruntime's QLinearConv on the
same quantised inputs, for the instruction paths that run here: VNNI
(vpdpbusd, 512- and 256-bit) and AVX2 / AVX-512 (pmaddwd on int16; haswell
and skylake-avx512 code runs on this CPU too), the plain int16 path, and
build checks for aarch64 (sdot) and AVX-VNNI. Shapes cover what templates
get wrong: odd channel counts, stride 2, asymmetric padding, dilation,
groups, 1x1 / 3x3 / 7x7, zero points != 0, uint8 and int8 activations and
outputs, a fused ReLU clamp.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm.target import codegen

from edgec.backend.tvm.kernels import conv2d_int8 as q
from edgec.backend.tvm.kernels.conv2d import ConvShape, output_shape
from edgec.backend.tvm.kernels.generic import SCHEDULED, finish

pytestmark = pytest.mark.compile

TARGETS = {
    "avx512-vnni": {"kind": "llvm", "mcpu": "znver4", "num-cores": 2},
    # the 256-bit vpdpbusd, EVEX-encoded (Zen 4 has avx512vl + vnni, not AVX-VNNI)
    "avx-vnni": {"kind": "llvm", "mcpu": "znver4", "num-cores": 2},
    "avx512": {"kind": "llvm", "mcpu": "skylake-avx512", "num-cores": 2},
    "avx2": {"kind": "llvm", "mcpu": "haswell", "num-cores": 2},
    "generic": {"kind": "llvm", "mcpu": "x86-64", "num-cores": 2},
}
HOST = set(codegen.llvm_get_cpu_features(tvm.target.Target(
    {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu()})))
RUNS = {"avx512-vnni": {"avx512vnni", "avx512bw"}, "avx-vnni": {"avx512vnni", "avx512vl"},
        "avx512": {"avx512bw"}, "avx2": {"avx2"}, "generic": set()}


def needs(isa: str):
    return pytest.mark.skipif(not RUNS[isa] <= HOST, reason=f"{isa} code does not run here")


def reference(x, w, bias, s: ConvShape, x_zp: int, mult, rq: q.Requant) -> np.ndarray:
    """The exact integer conv, then the requant in float32 as the kernel does it."""
    g, cg, og = s.groups, s.c // s.groups, s.o // s.groups
    t, lf, b, r = s.pad
    xs = np.pad(x.astype(np.int64) - x_zp, ((0, 0), (0, 0), (t, b), (lf, r)))
    oh, ow = s.out_hw
    (sh, sw), (dh, dw) = s.stride, s.dilation
    acc = np.zeros((s.n, s.o, oh, ow), np.int64)
    for gi in range(g):
        for ky in range(s.kh):
            for kx in range(s.kw):
                patch = xs[:, gi * cg:(gi + 1) * cg, ky * dh:ky * dh + (oh - 1) * sh + 1:sh,
                           kx * dw:kx * dw + (ow - 1) * sw + 1:sw]
                acc[:, gi * og:(gi + 1) * og] += np.einsum(
                    "nchw,oc->nohw", patch, w[gi * og:(gi + 1) * og, :, ky, kx].astype(np.int64))
    if bias is not None:
        acc += bias[None, :, None, None]
    f = acc.astype(np.int32).astype(np.float32) * mult[None, :, None, None]
    return np.clip(np.rint(f).astype(np.int64) + rq.zero_point, rq.lo, rq.hi).astype(rq.out_dtype)


def qlinearconv(x, s: ConvShape, x_zp, w, bias, sx, sw, sy, y_zp, y_dtype) -> np.ndarray:
    """onnxruntime's QLinearConv (per-channel weight scales, weight zero point 0)."""
    tp = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}
    inits = [numpy_helper.from_array(np.array(sx, np.float32), "xs"),
             numpy_helper.from_array(np.array(x_zp, x.dtype), "xz"),
             numpy_helper.from_array(w, "w"), numpy_helper.from_array(sw, "ws"),
             numpy_helper.from_array(np.zeros(s.o, np.int8), "wz"),
             numpy_helper.from_array(np.array(sy, np.float32), "ys"),
             numpy_helper.from_array(np.array(y_zp, y_dtype), "yz")]
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "b"))
        names.append("b")
    node = helper.make_node("QLinearConv", names, ["y"], kernel_shape=[s.kh, s.kw],
                            strides=list(s.stride), pads=list(s.pad), dilations=list(s.dilation),
                            group=s.groups)
    oh, ow = s.out_hw
    graph = helper.make_graph(
        [node], "qconv", [helper.make_tensor_value_info("x", tp[str(x.dtype)], list(x.shape))],
        [helper.make_tensor_value_info("y", tp[y_dtype], [s.n, s.o, oh, ow])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def build(kernel, target: dict):
    func = finish(kernel.schedule).with_attr("global_symbol", "main")
    return tvm.compile(tvm.IRModule({"main": func}), target=target)


def run_conv(s: ConvShape, isa: str, *, x_dtype="uint8", out_dtype="uint8", relu=False,
             bias=True, seed=0, tile=None):
    """Quantise random data like quantize_static does, run the kernel; return
    (kernel output, numpy reference, onnxruntime's output: None with a ReLU,
    which QLinearConv has not, or mixed activation / output types, which
    onnxruntime does not implement)."""
    rng = np.random.default_rng(seed)
    lo_x, hi_x = (0, 255) if x_dtype == "uint8" else (-128, 127)
    x = rng.integers(lo_x, hi_x + 1, (s.n, s.c, s.h, s.w)).astype(x_dtype)
    x_zp = int(rng.integers(lo_x + 20, hi_x - 20))
    w = rng.integers(-127, 128, (s.o, s.c // s.groups, s.kh, s.kw)).astype(np.int8)
    b = rng.integers(-5000, 5000, s.o).astype(np.int32) if bias else None
    k = (s.c // s.groups) * s.kh * s.kw
    sx = np.float32(0.02)
    sw = rng.uniform(0.5, 2.0, s.o).astype(np.float32) / np.float32(127.0)
    sy = np.float32(0.02 * 128 * np.sqrt(k) / 40)  # about a third of outputs clamp
    mult = (sx * sw / sy).astype(np.float32)  # onnxruntime's order: (sx * sw[o]) / sy
    lo_y, hi_y = (0, 255) if out_dtype == "uint8" else (-128, 127)
    y_zp = int(rng.integers(lo_y + 40, hi_y - 40))
    rq = q.Requant(out_dtype, y_zp, y_zp if relu else lo_y, hi_y)
    tile = tile or q.choose_int8_tile(s, isa)
    epi = q.padded_epilogue(rq.epilogue(mult), s.groups, tile)
    kernel = q.conv2d_int8_kernel(s, tile, epi, isa, x_dtype, x_zp)
    lib = build(kernel, TARGETS[isa])
    wp, bp = q.prepare_conv_int8(w, b, x_zp, x_dtype, s.groups, isa, tile)
    dev = tvm.cpu()
    y = tvm.runtime.tensor(np.zeros(output_shape(s), out_dtype), dev)
    lib["main"](*(tvm.runtime.tensor(a, dev) for a in (x, wp, bp, epi.mult)), y)
    want = reference(x, w, b, s, x_zp, mult, rq)
    got = y.numpy().reshape(want.shape)
    ort_y = None
    if not relu and x_dtype == out_dtype:  # onnxruntime has only u8->u8 and s8->s8
        ort_y = qlinearconv(x, s, x_zp, w, b, sx, sw, sy, y_zp, out_dtype)
    return got, want, ort_y


def shape(c, o, hw, k, stride=1, pad=None, dil=1, groups=1, n=1):
    h, w = hw
    pad = (k // 2,) * 4 if pad is None else pad
    return ConvShape(n, c, h, w, o, k, k, (stride, stride), pad, (dil, dil), groups)


CASES = [
    # (shape, x dtype, out dtype, relu)
    (shape(5, 17, (9, 11), 3), "uint8", "uint8", False),
    (shape(16, 32, (12, 10), 3, 2, (0, 1, 2, 1)), "int8", "int8", False),
    (shape(17, 24, (7, 13), 1, pad=(0, 0, 0, 0)), "uint8", "int8", True),
    (shape(6, 10, (10, 9), 3, 1, (2, 2, 2, 2), dil=2, groups=2), "int8", "int8", False),
    (shape(3, 16, (23, 21), 7, 2, (3, 3, 3, 3)), "uint8", "uint8", True),
    (shape(64, 48, (14, 14), 3, n=2), "uint8", "uint8", False),  # parallel, 3 vectors
    (shape(32, 64, (9, 9), 1, 2, (0, 0, 0, 0), groups=4), "int8", "uint8", False),
    (shape(8, 16, (6, 30), 3, 1, (1, 0, 0, 2)), "uint8", "uint8", False),
]


@pytest.mark.parametrize("isa", ["avx512-vnni", "avx2"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_conv_matches_numpy_and_onnxruntime_bit_exactly(isa, case):
    if not RUNS[isa] <= HOST:
        pytest.skip(f"{isa} code does not run here")
    s, xd, yd, relu = CASES[case]
    got, want, ort_y = run_conv(s, isa, x_dtype=xd, out_dtype=yd, relu=relu, seed=case)
    np.testing.assert_array_equal(got, want)
    if ort_y is not None:
        np.testing.assert_array_equal(got, ort_y)
    # not a degenerate test: outputs spread over the range, some clamped
    assert len(np.unique(want)) > 20


@pytest.mark.parametrize("isa", ["avx-vnni", "avx512", "generic"])
def test_other_isa_paths_are_exact(isa):
    if not RUNS[isa] <= HOST:
        pytest.skip(f"{isa} code does not run here")
    for case in (1, 3):
        s, xd, yd, relu = CASES[case]
        got, want, _ = run_conv(s, isa, x_dtype=xd, out_dtype=yd, relu=relu, seed=case)
        np.testing.assert_array_equal(got, want)


@needs("avx512-vnni")
def test_random_shapes_vnni():
    rng = np.random.default_rng(7)
    for i in range(6):
        groups = int(rng.choice([1, 1, 2, 3]))
        c = groups * int(rng.integers(1, 12))
        o = groups * int(rng.integers(1, 12))
        k = int(rng.choice([1, 3, 5]))
        s = ConvShape(int(rng.integers(1, 3)), c, int(rng.integers(k, 15)),
                      int(rng.integers(k, 15)), o, k, k,
                      (int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                      tuple(int(p) for p in rng.integers(0, k // 2 + 2, 4)),
                      (int(rng.integers(1, 3)),) * 2, groups)
        if min(s.out_hw) < 1 or q.choose_int8_tile(s, "avx512-vnni") is None:
            continue
        xd = str(rng.choice(["uint8", "int8"]))
        got, want, ort_y = run_conv(s, "avx512-vnni", x_dtype=xd, out_dtype=xd, seed=100 + i,
                                    bias=bool(i % 2))
        np.testing.assert_array_equal(got, want, err_msg=str(s))
        np.testing.assert_array_equal(got, ort_y, err_msg=str(s))


@needs("avx512-vnni")
def test_half_width_tiles_on_zen4():
    """24 output channels as 3 x 8-lane vpdpbusd (256-bit) instead of 32 padded."""
    s = shape(40, 24, (11, 20), 3)
    tile = q.choose_int8_tile(s, "avx512-vnni", half_width=True)
    assert (tile.ob, tile.lanes) == (24, 8)
    assert q.choose_int8_tile(s, "avx512-vnni").lanes == 16
    got, want, ort_y = run_conv(s, "avx512-vnni", tile=tile, seed=3)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, ort_y)


def test_int8_isa_from_llvm_features():
    def feats(t):
        return set(codegen.llvm_get_cpu_features(tvm.target.Target(t)))
    assert q.int8_isa("x86_64", feats({"kind": "llvm", "mcpu": "znver4"})) == "avx512-vnni"
    assert q.int8_isa("x86_64", feats({"kind": "llvm", "mcpu": "znver3"})) == "avx2"
    assert q.int8_isa("x86_64", feats({"kind": "llvm", "mcpu": "alderlake"})) == "avx-vnni"
    assert q.int8_isa("x86_64", feats({"kind": "llvm", "mcpu": "skylake-avx512"})) == "avx512"
    assert q.int8_isa("aarch64", {"neon", "dotprod"}) == "neon-dot"
    assert q.int8_isa("aarch64", {"neon"}) == "neon"


def test_depthwise_is_left_to_the_float_path():
    assert q.choose_int8_tile(shape(32, 32, (8, 8), 3, groups=32), "avx512-vnni") is None
    assert q.choose_int8_tile(shape(32, 64, (8, 8), 3, groups=32), "avx2") is None


def test_prepare_folds_zero_point_and_shift_into_bias():
    rng = np.random.default_rng(1)
    w = rng.integers(-128, 128, (10, 3, 3, 3)).astype(np.int8)
    b = rng.integers(-100, 100, 10).astype(np.int32)
    tile = q.Int8Tile(16, 4, 16, 4)
    wp, bp = q.prepare_conv_int8(w, b, -5, "int8", 1, "avx512-vnni", tile)
    assert wp.shape == (1, 1, 1, 3, 3, 16, 4) and wp.dtype == np.int8
    assert bp.shape == (16,) and not bp[10:].any()  # channels padded to the tile
    np.testing.assert_array_equal(bp[:10], b - (128 - 5) * w.reshape(10, -1).astype(int).sum(1))
    assert not wp[0, 0, 0, :, :, 10:].any() and not wp[..., 3].any()  # zero padding


@pytest.mark.parametrize("isa,target,instr", [
    ("neon-dot", {"kind": "llvm", "mtriple": "aarch64-linux-gnu",
                  "mattr": ["+neon", "+dotprod"]}, "sdot"),
    ("neon", {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}, "smlal"),
    ("avx-vnni", {"kind": "llvm", "mcpu": "alderlake"}, "vpdpbusd"),
    ("avx2", {"kind": "llvm", "mcpu": "haswell"}, "vpmaddwd"),
])
def test_cross_builds_use_the_dot_product(isa, target, instr):
    s = shape(16, 32, (8, 8), 3)
    tile = q.choose_int8_tile(s, isa)
    epi = q.padded_epilogue(q.Requant("uint8", 3, 0, 255).epilogue(np.ones(32)), 1, tile)
    kernel = q.conv2d_int8_kernel(s, tile, epi, isa, "uint8", 7)
    lib = build(kernel, target)
    asm = lib.mod.inspect_source("asm")
    assert instr in asm
    assert SCHEDULED in finish(kernel.schedule).attrs


def matmul_integer(a, a_zp, b) -> np.ndarray:
    """onnxruntime's MatMulInteger (what quantize_dynamic emits), B's zero point 0."""
    tp = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}
    m, k = a.shape
    node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
    graph = helper.make_graph(
        [node], "mmi", [helper.make_tensor_value_info("a", tp[str(a.dtype)], [m, k]),
                        helper.make_tensor_value_info("az", tp[str(a.dtype)], [])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, b.shape[1]])],
        [numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.array(0, np.int8), "bz")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"a": a, "az": np.array(a_zp, a.dtype)})[0]


@pytest.mark.parametrize("isa", ["avx512-vnni", "avx2", "generic"])
@pytest.mark.parametrize("m,k,n,a_dtype,mode", [
    (37, 70, 50, "uint8", "dynamic"), (64, 256, 96, "int8", "dynamic"),
    (5, 33, 17, "int8", "requant"), (128, 384, 64, "uint8", "requant")])
def test_matmul_matches_numpy_and_matmulinteger(isa, m, k, n, a_dtype, mode):
    from edgec.backend.tvm.kernels import matmul_int8 as mq
    from edgec.backend.tvm.kernels.matmul import MatmulShape
    if not RUNS[isa] <= HOST:
        pytest.skip(f"{isa} code does not run here")
    rng = np.random.default_rng(m + k + n)
    lo, hi = (0, 255) if a_dtype == "uint8" else (-128, 127)
    a = rng.integers(lo, hi + 1, (m, k)).astype(a_dtype)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    a_zp = int(rng.integers(lo, hi))
    s = MatmulShape(m, k, n)
    tile = mq.choose_matmul_int8_tile(s, isa)
    exact = (a.astype(np.int64) - a_zp) @ b.astype(np.int64)
    dev = tvm.cpu()
    if mode == "dynamic":  # raw int32, zero point given at run time
        kernel = mq.matmul_int8_kernel(s, tile, None, isa, a_dtype, None)
        bp, bias, colsum = mq.prepare_matmul_int8(b, None, None, a_dtype, isa, tile)
        args = [a, bp, bias, np.array([a_zp], a_dtype), colsum]
        want = exact.astype(np.int32)
        y = tvm.runtime.tensor(np.zeros((m, n), np.int32), dev)
    else:
        bq = rng.integers(-3000, 3000, n).astype(np.int32)
        mult = (rng.uniform(0.5, 2, n) / (40 * np.sqrt(k))).astype(np.float32)
        rq = q.Requant("uint8", 100, 100, 255)  # ReLU
        kernel = mq.matmul_int8_kernel(s, tile, rq.epilogue(mult), isa, a_dtype, a_zp)
        bp, bias, _ = mq.prepare_matmul_int8(b, bq, a_zp, a_dtype, isa, tile)
        args = [a, bp, bias, mult]
        f = (exact + bq).astype(np.int32).astype(np.float32) * mult
        want = np.clip(np.rint(f) + 100, 100, 255).astype(np.uint8)
        y = tvm.runtime.tensor(np.zeros((m, n), np.uint8), dev)
    build(kernel, TARGETS[isa])["main"](*(tvm.runtime.tensor(v, dev) for v in args), y)
    np.testing.assert_array_equal(y.numpy(), want)
    if mode == "dynamic":
        np.testing.assert_array_equal(y.numpy(), matmul_integer(a, a_zp, b))
    else:
        assert len(np.unique(want)) > 20

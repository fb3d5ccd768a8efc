"""Which ONNX ops of an int8 (QDQ) graph the Ethos-U path runs, and why not otherwise.

The Ethos-U path writes each partition as an int8 TFLite model (tflite_writer.py)
and compiles it with Arm's Vela. A node is offered only when

- it is in QDQ form: every activation input is a DequantizeLinear of an int8
  tensor (per-tensor), weights are DequantizeLinear of constant int8 (symmetric,
  per-channel on the output channel), a bias is a DequantizeLinear of constant
  int32 whose scale is input scale x weight scale, and the output's only consumer
  is a QuantizeLinear to int8 (per-tensor);
- the TFLite form exists and is exact (padding equals TFLite SAME or VALID, or
  an explicit PAD before the op with VALID padding: PAD fills with the input's
  zero point, so a MaxPool needs that to be -128 and an AveragePool needs
  count_include_pad=1; a reshape does not change element order between NCHW and
  NHWC, ...);
- Vela places the TFLite operator on the NPU. The limits below are taken from
  Vela 5.2's ``tflite_supported_operators.py`` / ``tflite_model_semantic.py`` and
  are kept conservative where Vela's rule is conditional (e.g. strides are held
  to 1..3 although Vela allows wider ones for some output shapes).

`check` returns None for a supported node, else one line naming the op and what
is wrong; `PATTERNS` holds the op-specific part (run after the QDQ-form check).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx

from ...graph import GraphView, QParams

# Vela 5.2 limits (TFLiteSupportedOperators)
TENSOR_DIM_MAX = 65535
STRIDE_RANGE = (1, 3)
DILATED_HEIGHT_MAX = 64
DILATED_PRODUCT_MAX = 64 * 64
WEIGHTS_SUM_MAX = 127 * 65536
AVGPOOL_SAME_FILTER_MAX = 8
POOL_FILTER_HEIGHT_MAX = 256
POOL_FILTER_PRODUCT_MAX = 256 * 256
MEAN_PRODUCT_MAX_INT8 = 2 ** 24
MEAN_WIDTH_MAX = 64 * 64

#: non-activation inputs: op -> {input index: role}; "weights" (constant int8),
#: "bias" (constant int32), "param" (a plain constant: shapes, clip bounds, axes),
#: "fconst" (a float constant, plain or a DequantizeLinear of a constant: folded
#: into the TFLite operator's own weights)
INPUT_ROLES: dict[str, dict[int, str]] = {
    "Conv": {1: "weights", 2: "bias"},
    "Gemm": {1: "weights", 2: "bias"},
    "MatMul": {1: "weights"},
    "Reshape": {1: "param"},
    "Squeeze": {1: "param"},
    "Unsqueeze": {1: "param"},
    "Clip": {1: "param", 2: "param"},
    "BatchNormalization": {1: "fconst", 2: "fconst", 3: "fconst", 4: "fconst"},
}
#: ops whose activation inputs may also be constant int8 tensors (written as
#: constant TFLite tensors, per-tensor quantised)
CONST_OPERANDS = frozenset({"Add", "Mul", "Concat"})
#: ops Vela runs with a batch other than 1 (all others need batch 1 on 4-D tensors)
_BATCH_EXEMPT = frozenset({"Gemm", "MatMul", "Softmax", "Reshape", "Flatten", "Squeeze",
                           "Unsqueeze"})

Rule = Callable[[onnx.NodeProto, GraphView], "str | None"]


def _fmt(values) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def scalar(values: np.ndarray) -> float:
    return float(np.asarray(values).reshape(-1)[0])


def zero_point_of(q: QParams) -> int:
    return int(np.asarray(q.zero_point).reshape(-1)[0])


def nhwc_axis(axis: int, rank: int) -> int:
    """Where ONNX axis ``axis`` of a rank-``rank`` tensor is in the TFLite layout."""
    axis = axis % rank
    return (0, 3, 1, 2)[axis] if rank == 4 else axis


def order_preserved(shape: tuple[int, ...]) -> bool:
    """A 4-D NCHW tensor whose NHWC form has the same element order (C == 1 or
    H*W == 1); any other rank is kept in ONNX layout."""
    return len(shape) != 4 or shape[1] == 1 or shape[2] * shape[3] == 1


# ---------------------------------------------------------------- padding

def effective_pads(attrs: dict, in_hw: tuple[int, int], kernel: tuple[int, int],
                   strides: tuple[int, int], dilations: tuple[int, int]) -> list[int] | None:
    """ONNX [top, left, bottom, right] padding after auto_pad, or None when unknown."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        return pads if len(pads) == 4 else None
    if auto == "VALID":
        return [0, 0, 0, 0]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        before, after = [], []
        for i in range(2):
            out = -(-in_hw[i] // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_hw[i], 0)
            small, big = total // 2, total - total // 2
            before.append(small if auto == "SAME_UPPER" else big)
            after.append(big if auto == "SAME_UPPER" else small)
        return before + after
    return None


def tf_padding(in_hw: tuple[int, int], out_hw: tuple[int, int], kernel: tuple[int, int],
               strides: tuple[int, int], dilations: tuple[int, int],
               pads: list[int]) -> str | None:
    """"SAME" or "VALID" when the ONNX padding and output size are exactly TFLite's,
    else None. TFLite SAME pads ``total // 2`` before and the rest after."""
    dk = [(kernel[i] - 1) * dilations[i] + 1 for i in range(2)]
    valid_out = tuple((in_hw[i] - dk[i]) // strides[i] + 1 for i in range(2))
    if not any(pads) and tuple(out_hw) == valid_out:
        return "VALID"
    same_out = tuple(-(-in_hw[i] // strides[i]) for i in range(2))
    if tuple(out_hw) != same_out:
        return None
    for i in range(2):
        total = max((same_out[i] - 1) * strides[i] + dk[i] - in_hw[i], 0)
        if (pads[i], pads[i + 2]) != (total // 2, total - total // 2):
            return None
    return "SAME"


def window(node: onnx.NodeProto, graph: GraphView, kernel: tuple[int, int]
           ) -> tuple[str | None, str | None, tuple[int, int], tuple[int, int]]:
    """(TFLite padding, reason, strides, dilations) of a 2-D Conv or pool. The
    padding is "SAME" or "VALID", or "PAD" when the op needs an explicit PAD
    operator (padding ``explicit_pads``) before it runs with VALID padding."""
    op = node.op_type
    attrs = graph.attrs(node)
    x, y = graph.shape(node.input[0]), graph.shape(node.output[0])
    strides = tuple(attrs.get("strides", [1, 1]))
    dilations = tuple(attrs.get("dilations", [1, 1]))
    if len(strides) != 2 or len(dilations) != 2:
        return None, f"{op}: only 2-D windows supported", (1, 1), (1, 1)
    pads = effective_pads(attrs, x[2:], kernel, strides, dilations)
    if pads is None:
        return None, f"{op}: auto_pad {attrs.get('auto_pad')} unsupported", strides, dilations
    include_pad = op == "AveragePool" and attrs.get("count_include_pad", 0) and any(pads)
    # TFLite's AVERAGE_POOL_2D with SAME padding leaves the padding out of the count
    padding = None if include_pad else tf_padding(x[2:], y[2:], kernel, strides, dilations,
                                                  pads)
    if padding is not None:
        return padding, None, strides, dilations
    what = _fmt(pads) if attrs.get("ceil_mode", 0) == 0 else f"{_fmt(pads)} with ceil_mode=1"
    if op == "AveragePool" and not include_pad:
        return None, (f"AveragePool: pads {what} not expressible as TFLite SAME/VALID "
                      "(count_include_pad=0 leaves an explicit PAD out of the count)"), \
            strides, dilations
    full = explicit_pads(node, graph, kernel)
    if full is None:
        return None, f"{op}: pads {what} not expressible as TFLite SAME/VALID or a PAD", \
            strides, dilations
    padded = (x[2] + full[0] + full[2], x[3] + full[1] + full[3])
    if max(padded) > TENSOR_DIM_MAX:
        return None, (f"{op}: padded input {padded[0]}x{padded[1]} outside Vela's "
                      f"dimension range 1..{TENSOR_DIM_MAX}"), strides, dilations
    if op == "MaxPool":
        zp = zero_point_of(graph.dequantized(node.input[0]))
        if zp != -128:
            return None, (f"MaxPool: pads {what} need an explicit PAD, which fills with the "
                          f"input zero point {zp}, not the int8 minimum -128 (Vela has no "
                          "PADV2)"), strides, dilations
    return "PAD", None, strides, dilations


def explicit_pads(node: onnx.NodeProto, graph: GraphView, kernel: tuple[int, int]
                  ) -> list[int] | None:
    """[top, left, bottom, right] of the PAD operator after which the Conv or pool
    ``node`` runs with VALID padding and the ONNX output size; None when there is
    none. A MaxPool with ceil_mode=1 gets the extra rows/columns at the end (its
    PAD fills with the int8 minimum, which never wins a max)."""
    attrs = graph.attrs(node)
    x, y = graph.shape(node.input[0]), graph.shape(node.output[0])
    strides = tuple(attrs.get("strides", [1, 1]))
    dilations = tuple(attrs.get("dilations", [1, 1]))
    pads = effective_pads(attrs, x[2:], kernel, strides, dilations)
    if pads is None or min(pads) < 0:
        return None
    pads = list(pads)
    for i in range(2):
        dk = (kernel[i] - 1) * dilations[i] + 1
        after = (y[2 + i] - 1) * strides[i] + dk - x[2 + i] - pads[i]
        if after > pads[i + 2] and node.op_type == "MaxPool":
            pads[i + 2] = after  # ceil_mode: the last window reaches past the padding
        if (x[2 + i] + pads[i] + pads[i + 2] - dk) // strides[i] + 1 != y[2 + i]:
            return None
    return pads


def _stride_reason(op: str, strides: tuple[int, int]) -> str | None:
    lo, hi = STRIDE_RANGE
    if not all(lo <= s <= hi for s in strides):
        return f"{op}: stride {strides[0]}x{strides[1]} outside Vela's range {lo}..{hi}"
    return None


# ---------------------------------------------------------------- QDQ form

def float_const(graph: GraphView, name: str) -> np.ndarray | None:
    """The float64 value of a constant, or of a DequantizeLinear of a constant
    (as onnxruntime dequantises it); None when ``name`` is neither."""
    value = graph.const(name)
    if value is not None:
        return np.asarray(value, np.float64)
    dq = graph.dequantized(name)
    q = None if dq is None else graph.const(dq.tensor)
    if q is None:
        return None
    shape = [1] * q.ndim
    if q.ndim and dq.per_channel:
        shape[dq.axis % q.ndim] = -1
    scale = np.asarray(dq.scale, np.float32).reshape(shape if dq.per_channel else ())
    zp = np.asarray(dq.zero_point, np.int64).reshape(shape if dq.per_channel else ())
    return ((q.astype(np.int64) - zp) * scale).astype(np.float64)



def _is_int8_activation(q: QParams | None) -> bool:
    return q is not None and q.dtype == np.int8 and not q.per_channel


def qdq_form(node: onnx.NodeProto, graph: GraphView) -> str | None:
    """Why ``node`` is not a float op wrapped in int8 Q/DQ as the writer needs, or None."""
    op = node.op_type
    roles = INPUT_ROLES.get(op, {})
    data = 0
    for i, name in enumerate(node.input):
        if not name:
            continue
        role = roles.get(i, "activation")
        if role == "param":
            if graph.const(name) is None:
                return f"{op}: input {i} ({name}) is not constant"
            continue
        if role == "fconst":
            if float_const(graph, name) is None:
                return f"{op}: input {i} ({name}) is not constant"
            continue
        dq = graph.dequantized(name)
        const = dq is not None and graph.const(dq.tensor) is not None
        if role == "weights":
            if dq is None or not const or dq.dtype != np.int8:
                return f"{op}: weights are not a DequantizeLinear of constant int8"
            if np.any(np.asarray(dq.zero_point) != 0):
                return f"{op}: weights are not symmetric (zero point != 0)"
            continue
        if role == "bias":
            if dq is None or not const or dq.dtype != np.int32:
                return f"{op}: bias is not a DequantizeLinear of constant int32"
            if np.any(np.asarray(dq.zero_point) != 0):
                return f"{op}: bias zero point != 0"
            continue
        if not _is_int8_activation(dq):
            return f"{op}: input {name} is not dequantised from per-tensor int8"
        if const and op not in CONST_OPERANDS:
            return f"{op}: constant input {name} unsupported"
        data += 1
        shape = graph.shape(name)
        if shape is None:
            return f"{op}: input {name} has no static shape"
        if not const and len(shape) > 4:
            return f"{op}: {len(shape)}-D input unsupported (at most 4-D)"
    if data == 0:
        return f"{op}: no dequantised int8 input"
    outputs = [o for o in node.output if o]
    if len(outputs) != 1:
        return f"{op}: only one output supported"
    if not _is_int8_activation(graph.quantized(outputs[0])):
        return f"{op}: output not quantised to int8"
    shape = graph.shape(outputs[0])
    if shape is None:
        return f"{op}: output has no static shape"
    if len(shape) > 4:
        return f"{op}: {len(shape)}-D output unsupported (at most 4-D)"
    tensors = [outputs[0]] + [n for i, n in enumerate(node.input)
                              if n and roles.get(i, "activation") == "activation"]
    for name in tensors:
        s = graph.shape(name)
        if any(not 1 <= d <= TENSOR_DIM_MAX for d in s):
            return (f"{op}: tensor {name} shape {list(s)} outside Vela's dimension range "
                    f"1..{TENSOR_DIM_MAX}")
        if op not in _BATCH_EXEMPT and len(s) == 4 and s[0] != 1:
            return f"{op}: batch {s[0]} unsupported (Vela needs batch 1)"
    return None


def _bias_scale_reason(op: str, graph: GraphView, x: str, w: QParams, b: str | None,
                       channels: int) -> str | None:
    if not b:
        return None
    bq = graph.dequantized(b)
    bias = graph.const(bq.tensor)
    if bias.size != channels:
        return f"{op}: bias has {bias.size} values for {channels} output channels"
    want = scalar(graph.dequantized(x).scale) * np.broadcast_to(
        np.asarray(w.scale, np.float64).reshape(-1), (channels,))
    have = np.broadcast_to(np.asarray(bq.scale, np.float64).reshape(-1), (channels,))
    if not np.allclose(have, want, rtol=1e-5, atol=0):
        return f"{op}: bias scale is not input scale x weight scale"
    return None


# ---------------------------------------------------------------- op rules

def _conv(node: onnx.NodeProto, graph: GraphView) -> str | None:
    x, y = graph.shape(node.input[0]), graph.shape(node.output[0])
    wq = graph.dequantized(node.input[1])
    w = graph.const(wq.tensor)
    if len(x) != 4 or w.ndim != 4:
        return f"Conv: only 2-D convolution (4-D input) supported, got {len(x)}-D"
    attrs = graph.attrs(node)
    group = int(attrs.get("group", 1))
    cin, cout = x[1], w.shape[0]
    if group != 1 and group != cin:  # a SPLIT, one CONV_2D per group, a CONCATENATION
        if cin % group or cout % group:
            return f"Conv: groups={group} do not divide {cin} input / {cout} output channels"
    elif group != 1 and cout != cin:
        return (f"Conv: depthwise channel multiplier {cout // cin} unsupported "
                "(Vela needs 1 input channel for a multiplier > 1)")
    if wq.per_channel and wq.axis % 4 != 0:
        return f"Conv: weights quantised per channel on axis {wq.axis} (needs 0)"
    kernel = tuple(w.shape[2:])
    _, reason, strides, dilations = window(node, graph, kernel)
    if reason:
        return reason
    reason = _stride_reason("Conv", strides)
    if reason:
        return reason
    dk = [(kernel[i] - 1) * dilations[i] + 1 for i in range(2)]
    if dk[0] > DILATED_HEIGHT_MAX:
        return f"Conv: dilated kernel height {dk[0]} > Vela's {DILATED_HEIGHT_MAX}"
    if dk[0] * dk[1] > DILATED_PRODUCT_MAX:
        return f"Conv: dilated kernel area {dk[0] * dk[1]} > Vela's {DILATED_PRODUCT_MAX}"
    # Vela sums |w| per output channel of its HWIO weights; a depthwise kernel is
    # one [kh, kw, C, 1] block there, so its whole sum counts
    depthwise = group != 1 and group == cin
    per_out = np.abs(w.astype(np.int64)).reshape(1 if depthwise else cout, -1).sum(axis=1)
    if per_out.max(initial=0) > WEIGHTS_SUM_MAX:
        return f"Conv: sum of |weights| {int(per_out.max())} > Vela's {WEIGHTS_SUM_MAX}"
    if y[1] != cout:
        return "Conv: output channels do not match the weights"
    bias = node.input[2] if len(node.input) > 2 else None
    return _bias_scale_reason("Conv", graph, node.input[0], wq, bias, cout)


def _fc(op: str, node: onnx.NodeProto, graph: GraphView, trans_b: bool) -> str | None:
    a = graph.shape(node.input[0])
    wq = graph.dequantized(node.input[1])
    w = graph.const(wq.tensor)
    if len(a) != 2 or w.ndim != 2:
        return f"{op}: only 2-D A x 2-D constant B supported (got {len(a)}-D x {w.ndim}-D)"
    n_axis = 0 if trans_b else 1
    if wq.per_channel and wq.axis % 2 != n_axis:
        return f"{op}: weights quantised per channel on the reduction axis"
    n = w.shape[n_axis]
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    return _bias_scale_reason(op, graph, node.input[0], wq, bias, n)


def _gemm(node: onnx.NodeProto, graph: GraphView) -> str | None:
    attrs = graph.attrs(node)
    if attrs.get("transA", 0):
        return "Gemm: transA=1 unsupported"
    if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        return "Gemm: alpha/beta other than 1 unsupported"
    return _fc("Gemm", node, graph, bool(attrs.get("transB", 0)))


def _matmul(node: onnx.NodeProto, graph: GraphView) -> str | None:
    return _fc("MatMul", node, graph, False)


def _binary(node: onnx.NodeProto, graph: GraphView) -> str | None:
    op = node.op_type
    y = graph.shape(node.output[0])
    shapes = []
    for name in node.input:
        s = graph.shape(name)
        dq = graph.dequantized(name)
        if graph.const(dq.tensor) is None and len(s) != len(y):
            return f"{op}: inputs of different rank unsupported"
        if len(s) > len(y):
            return f"{op}: constant input of higher rank than the output"
        shapes.append((1,) * (len(y) - len(s)) + tuple(s))
    a, b = shapes
    for i, i2, o in zip(a, b, y, strict=True):
        if not (i == i2 or i == 1 or i2 == 1) or o != max(i, i2):
            return f"{op}: broadcast {list(a)} with {list(b)} unsupported"
    if a != tuple(y) and b != tuple(y):
        return f"{op}: neither input has the output shape {list(y)}"
    return None


def _pool(node: onnx.NodeProto, graph: GraphView) -> str | None:
    op = node.op_type
    x = graph.shape(node.input[0])
    if len(x) != 4:
        return f"{op}: only 2-D pooling (4-D input) supported"
    attrs = graph.attrs(node)
    kernel = tuple(attrs.get("kernel_shape", ()))
    if len(kernel) != 2:
        return f"{op}: only 2-D kernels supported"
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        return f"{op}: dilation unsupported"
    if attrs.get("storage_order", 0):
        return f"{op}: storage_order=1 unsupported"
    padding, reason, strides, _ = window(node, graph, kernel)
    if reason:
        return reason
    reason = _stride_reason(op, strides)
    if reason:
        return reason
    kh, kw = kernel
    if op == "AveragePool":
        if padding == "SAME" and max(kh, kw) > AVGPOOL_SAME_FILTER_MAX:
            return (f"AveragePool: kernel {kh}x{kw} with SAME padding > Vela's "
                    f"{AVGPOOL_SAME_FILTER_MAX}x{AVGPOOL_SAME_FILTER_MAX}")
        if padding == "SAME":
            return None
    if kh > POOL_FILTER_HEIGHT_MAX:
        return f"{op}: kernel height {kh} > Vela's {POOL_FILTER_HEIGHT_MAX}"
    if kh * kw > POOL_FILTER_PRODUCT_MAX:
        return f"{op}: kernel area {kh * kw} > Vela's {POOL_FILTER_PRODUCT_MAX}"
    return None


def _global_average_pool(node: onnx.NodeProto, graph: GraphView) -> str | None:
    x = graph.shape(node.input[0])
    if len(x) != 4:
        return "GlobalAveragePool: only 4-D input supported"
    h, w = x[2], x[3]
    if w > MEAN_WIDTH_MAX:
        return f"GlobalAveragePool: width {w} > Vela's {MEAN_WIDTH_MAX}"
    if h * w > MEAN_PRODUCT_MAX_INT8:
        return f"GlobalAveragePool: H*W {h * w} > Vela's {MEAN_PRODUCT_MAX_INT8}"
    return None


def _elementwise(node: onnx.NodeProto, graph: GraphView) -> str | None:
    return None


def clip_bounds(node: onnx.NodeProto, graph: GraphView) -> tuple[float, float]:
    if node.op_type == "Relu":
        return 0.0, math.inf
    attrs = graph.attrs(node)
    lo = attrs.get("min", -math.inf)
    hi = attrs.get("max", math.inf)
    if len(node.input) > 1 and node.input[1]:
        lo = float(graph.const(node.input[1]))
    if len(node.input) > 2 and node.input[2]:
        hi = float(graph.const(node.input[2]))
    return float(lo), float(hi)


#: exact (min, max) of the TFLite RELU family
RELU_FORMS = {(0.0, math.inf): "RELU", (0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1"}


def clip_is_noop(node: onnx.NodeProto, graph: GraphView) -> bool:
    """The clip range contains the output's int8 range (to half a step), so
    quantising clamps the same values: the op is a requantisation."""
    lo, hi = clip_bounds(node, graph)
    q = graph.quantized(node.output[0])
    s, z = scalar(q.scale), zero_point_of(q)
    return lo <= (-128 - z) * s + s / 2 and hi >= (127 - z) * s - s / 2


def _clip(node: onnx.NodeProto, graph: GraphView) -> str | None:
    lo, hi = clip_bounds(node, graph)
    if (lo, hi) in RELU_FORMS or clip_is_noop(node, graph):
        return None
    return (f"Clip: range [{lo:g}, {hi:g}] is no TFLite RELU form and narrower than "
            "the output range")


def _leaky_relu(node: onnx.NodeProto, graph: GraphView) -> str | None:
    alpha = float(graph.attrs(node).get("alpha", 0.01))
    if not 0.0 <= alpha <= 1.0:
        return f"LeakyRelu: alpha {alpha:g} outside [0, 1]"
    return None


def _softmax(node: onnx.NodeProto, graph: GraphView) -> str | None:
    x = graph.shape(node.input[0])
    rank = len(x)
    opset = next((o.version for o in graph.model.opset_import if o.domain in ("", "ai.onnx")), 13)
    axis = int(graph.attrs(node).get("axis", -1 if opset >= 13 else 1)) % rank
    if opset < 13 and axis != rank - 1:
        return "Softmax: opset < 13 flattening from a middle axis unsupported"
    if nhwc_axis(axis, rank) != rank - 1:
        return f"Softmax: axis {axis} is not the innermost TFLite axis"
    tfl = (x[0], x[2], x[3], x[1]) if rank == 4 else tuple(x)
    s4 = (1,) * (4 - rank) + tfl  # Vela's Shape4D of the TFLite tensor
    h_w = s4[1] * s4[2]
    if h_w > TENSOR_DIM_MAX:
        return f"Softmax: H*W {h_w} > Vela's {TENSOR_DIM_MAX}"
    return None


def _concat(node: onnx.NodeProto, graph: GraphView) -> str | None:
    y = graph.shape(node.output[0])
    axis = int(graph.attrs(node).get("axis", 1)) % len(y)
    if axis == 0 and len(y) == 4:
        return "Concat: concatenation along the batch axis unsupported"
    for name in node.input:
        if len(graph.shape(name)) != len(y):
            return "Concat: inputs of different rank"
    return None


def _reshape(node: onnx.NodeProto, graph: GraphView) -> str | None:
    op = node.op_type
    x, y = graph.shape(node.input[0]), graph.shape(node.output[0])
    if int(np.prod(x)) != int(np.prod(y)):
        return f"{op}: element count changes"
    if tuple(x) == tuple(y) or (order_preserved(x) and order_preserved(y)):
        return None
    if not order_preserved(x):
        if len(y) == 4:
            return f"{op}: reshapes a 4-D feature map with H*W>1 and C>1 (layout change)"
        return f"{op}: flattens a 4-D feature map with H*W>1 (layout change)"
    return f"{op}: makes a 4-D feature map with H*W>1 and C>1 (layout change)"


def affine(node: onnx.NodeProto, graph: GraphView) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) per channel with node(x) = a * x + b: a BatchNormalization, or the
    sloped part of a HardSigmoid (its clamp to [0, 1] is left to the output's
    quantisation, see _hardsigmoid)."""
    if node.op_type == "HardSigmoid":
        attrs = graph.attrs(node)
        c = graph.shape(node.input[0])[1]
        return (np.full(c, float(attrs.get("alpha", 0.2)), np.float64),
                np.full(c, float(attrs.get("beta", 0.5)), np.float64))
    scale, bias, mean, var = (float_const(graph, n).reshape(-1) for n in node.input[1:5])
    eps = float(graph.attrs(node).get("epsilon", 1e-5))
    a = scale / np.sqrt(var + eps)
    return a, bias - mean * a


def affine_weights(node: onnx.NodeProto, graph: GraphView
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 1x1 depthwise convolution computing `affine`: int8 weights (+-127, each
    channel's one weight exact), float32 per-channel weight scales and int32-valued
    biases (as int64 when finite, for range checks)."""
    a, b = affine(node, graph)
    w = np.where(a > 0, 127, np.where(a < 0, -127, 0)).astype(np.int8)
    w_scale = np.where(a != 0, np.abs(a) / 127, 1.0).astype(np.float32)
    x_scale = np.float32(scalar(graph.dequantized(node.input[0]).scale))
    bias = np.round(b / (np.float64(x_scale) * w_scale.astype(np.float64)))
    return w, w_scale, bias.astype(np.int64) if np.all(np.isfinite(bias)) else bias


def _batchnorm(node: onnx.NodeProto, graph: GraphView) -> str | None:
    x = graph.shape(node.input[0])
    if len(x) != 4:
        return f"BatchNormalization: only 4-D input supported, got {len(x)}-D"
    if graph.attrs(node).get("training_mode", 0):
        return "BatchNormalization: training_mode=1 unsupported"
    params = [float_const(graph, n) for n in node.input[1:5]]
    if any(p.size != x[1] for p in params):
        return f"BatchNormalization: parameters are not one value per channel ({x[1]})"
    eps = float(graph.attrs(node).get("epsilon", 1e-5))
    if np.any(params[3] + eps <= 0):
        return "BatchNormalization: variance + epsilon <= 0"
    return _affine_bias_reason(node, graph)


def _affine_bias_reason(node: onnx.NodeProto, graph: GraphView) -> str | None:
    _, _, bias = affine_weights(node, graph)
    if not np.all(np.isfinite(bias)) or np.abs(bias).max(initial=0) >= 2 ** 31:
        return f"{node.op_type}: offset too large for an int32 bias at the input scale"
    return None


def _hardsigmoid(node: onnx.NodeProto, graph: GraphView) -> str | None:
    """max(0, min(1, alpha x + beta)) as a 1x1 depthwise convolution whose int8
    output saturates where the clamp would cut: exact when the output's int8 range
    lies inside [0, 1] to half a step (onnxruntime calibrates it so)."""
    x = graph.shape(node.input[0])
    if len(x) != 4:
        return f"HardSigmoid: only 4-D input supported, got {len(x)}-D"
    q = graph.quantized(node.output[0])
    s, z = scalar(q.scale), zero_point_of(q)
    lo, hi = (-128 - z) * s, (127 - z) * s
    if lo < -s / 2 or hi > 1 + s / 2:
        return (f"HardSigmoid: output range [{lo:g}, {hi:g}] reaches beyond [0, 1] "
                "(its clamp is left to the int8 saturation)")
    return _affine_bias_reason(node, graph)


PATTERNS: dict[str, Rule] = {
    "BatchNormalization": _batchnorm,
    "HardSigmoid": _hardsigmoid,
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _binary,
    "Mul": _binary,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_average_pool,
    "Relu": _elementwise,
    "Clip": _clip,
    "LeakyRelu": _leaky_relu,
    "Sigmoid": _elementwise,
    "Tanh": _elementwise,
    "Softmax": _softmax,
    "Concat": _concat,
    "Reshape": _reshape,
    "Flatten": _reshape,
    "Squeeze": _reshape,
    "Unsqueeze": _reshape,
}


def check(node: onnx.NodeProto, graph: GraphView) -> str | None:
    """None when the Ethos-U path runs ``node``, else one line naming the op and why not."""
    rule = PATTERNS.get(node.op_type)
    if rule is None:
        return f"{node.op_type}: not supported by the Ethos-U path"
    return qdq_form(node, graph) or rule(node, graph)

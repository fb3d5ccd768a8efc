"""An int8 ONNX QDQ partition as an int8 TFLite flatbuffer, for Vela and LiteRT.

The partition's inputs and outputs are int8 tensors in ONNX layout; inside,
every float compute op reads DequantizeLinear outputs and feeds one
QuantizeLinear (patterns.check holds the rules). Each such op becomes its
TFLite int8 operator(s) on the integer tensors:

- 4-D activations are NHWC (``perm`` (0, 2, 3, 1) turns the ONNX array into the
  TFLite one), other ranks keep the ONNX layout;
- Conv weights [O, I, kh, kw] -> [O, kh, kw, I] (per-channel, dimension 0);
  depthwise [C, 1, kh, kw] -> [1, kh, kw, C] (per-channel, dimension 3);
  FULLY_CONNECTED weights [N, K] (per-channel, dimension 0); bias int32 with
  scale input scale x weight scale (a zero bias when the ONNX op has none);
- a grouped Conv (1 < groups < channels) is a SPLIT of the input channels, one
  CONV_2D per group and a CONCATENATION; BatchNormalization and HardSigmoid are a
  1x1 DEPTHWISE_CONV_2D with one exact weight per channel (patterns.affine);
- a Conv or pool whose ONNX pads are no TFLite SAME/VALID reads a PAD of its
  input (int8, same quantisation, filled with the zero point; patterns.window
  decides when that is exact) and runs with VALID padding;
- where TFLite fixes an operator's output quantisation (LOGISTIC and SOFTMAX
  1/256 at -128, TANH 1/128 at 0) or needs it equal to the input's (pools,
  RESHAPE, every CONCATENATION input), the op writes a helper tensor and a
  QUANTIZE (int8 -> int8) rescales it to the ONNX quantisation.

Every TFLite tensor is named after its ONNX tensor: activations after the int8
tensor (the QuantizeLinear output, or the partition input), weights and biases
after their int8/int32 initializer; helper tensors add ``/<what>`` to the name
of the tensor they serve. ``TfliteIO.layers`` maps the output tensor of every
TFLite operator to the ONNX node it came from, for Vela's per-layer report.

The flatbuffer is built with the schema module Vela ships (``ethosu.vela.tflite``):
schema version 3, one subgraph, buffer 0 empty.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import onnx
from ethosu.vela.tflite import (
    ActivationFunctionType,
    AddOptions,
    Buffer,
    BuiltinOperator,
    BuiltinOptions,
    ConcatenationOptions,
    Conv2DOptions,
    DepthwiseConv2DOptions,
    FullyConnectedOptions,
    LeakyReluOptions,
    Model,
    MulOptions,
    Operator,
    OperatorCode,
    Padding,
    PadOptions,
    Pool2DOptions,
    QuantizationParameters,
    QuantizeOptions,
    ReducerOptions,
    ReshapeOptions,
    SoftmaxOptions,
    SplitOptions,
    SubGraph,
    Tensor,
    TensorType,
)

from ...graph import GraphView, QParams
from . import patterns
from .patterns import check, nhwc_axis, scalar, zero_point_of

SCHEMA_VERSION = 3
NHWC = (0, 2, 3, 1)
_OP = BuiltinOperator.BuiltinOperator
_OPT = BuiltinOptions.BuiltinOptions
_NONE = ActivationFunctionType.ActivationFunctionType.NONE
_PAD = {"SAME": Padding.Padding.SAME, "VALID": Padding.Padding.VALID,
        "PAD": Padding.Padding.VALID}  # after an explicit PAD operator
_TYPES = {np.dtype(np.int8): TensorType.TensorType.INT8,
          np.dtype(np.int32): TensorType.TensorType.INT32}
#: operator versions for int8 kernels (TFLite's op_version rules)
_VERSIONS = {_OP.CONV_2D: 3, _OP.DEPTHWISE_CONV_2D: 3, _OP.FULLY_CONNECTED: 4, _OP.ADD: 2,
             _OP.MUL: 2, _OP.MAX_POOL_2D: 2, _OP.AVERAGE_POOL_2D: 2, _OP.MEAN: 2,
             _OP.CONCATENATION: 2, _OP.RESHAPE: 1, _OP.LOGISTIC: 2, _OP.TANH: 2,
             _OP.SOFTMAX: 2, _OP.QUANTIZE: 2, _OP.RELU: 2, _OP.RELU6: 2,
             _OP.RELU_N1_TO_1: 1, _OP.LEAKY_RELU: 2, _OP.PAD: 2,
             _OP.SPLIT: 2}
#: (scale, zero point) TFLite requires of these int8 outputs
_FIXED_OUTPUT = {"Sigmoid": (1 / 256, -128), "Softmax": (1 / 256, -128), "Tanh": (1 / 128, 0)}


@dataclass(frozen=True)
class TfliteTensor:
    """One input or output of the TFLite model: ``name`` is the ONNX tensor's,
    ``shape`` the TFLite one, ``perm`` the transpose taking the ONNX-layout array
    to it (``np.transpose(x, perm)``), None when the layouts agree."""

    name: str
    shape: tuple[int, ...]
    perm: tuple[int, ...] | None

    def to_onnx(self, value: np.ndarray) -> np.ndarray:
        """A TFLite-layout array back in ONNX layout."""
        return value if self.perm is None else np.transpose(value, np.argsort(self.perm))

    def to_tflite(self, value: np.ndarray) -> np.ndarray:
        return value if self.perm is None else np.transpose(value, self.perm)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape),
                "perm": None if self.perm is None else list(self.perm)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TfliteTensor:
        return cls(d["name"], tuple(d["shape"]), None if d["perm"] is None else tuple(d["perm"]))


@dataclass(frozen=True)
class TfliteIO:
    """The written model's inputs and outputs in its order, and ``layers``: the
    output tensor of each TFLite operator -> the ONNX node it implements (plus
    ``<input>_softmax`` for a SOFTMAX, the prefix of the operators Vela makes of it)."""

    inputs: list[TfliteTensor]
    outputs: list[TfliteTensor]
    layers: dict[str, str] = field(default_factory=dict)

    def node_for(self, tensor: str) -> str | None:
        """The ONNX node behind a layer of Vela's report, named ``tensor``: a key of
        ``layers``, or one with a suffix Vela adds to the operators it makes of it
        (``_intermediate``, ``_softmax_3``, ...); None when unknown."""
        if tensor in self.layers:
            return self.layers[tensor]
        keys = [k for k in self.layers if tensor.startswith(k) and tensor[len(k)] in "_/"]
        return self.layers[max(keys, key=len)] if keys else None

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [t.to_json() for t in self.inputs],
                "outputs": [t.to_json() for t in self.outputs],
                "layers": dict(self.layers)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TfliteIO:
        return cls([TfliteTensor.from_json(t) for t in d["inputs"]],
                   [TfliteTensor.from_json(t) for t in d["outputs"]], dict(d.get("layers", {})))


def write_tflite(sub_model: onnx.ModelProto, path: Path) -> TfliteIO:
    """Write ``sub_model`` (an int8 QDQ partition) to ``path`` as int8 TFLite.

    Raises ValueError naming the node when a node is not one `patterns.check`
    accepts, or the partition's edges are not int8 tensors."""
    io = _Converter(sub_model).run()
    Path(path).write_bytes(io[0])
    return io[1]


def tflite_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[i] for i in NHWC) if len(shape) == 4 else tuple(shape)


def _perm(rank: int) -> tuple[int, ...] | None:
    return NHWC if rank == 4 else None


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    buffer: int = 0
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    quantized_dimension: int = 0


@dataclass
class _Op:
    code: int
    inputs: list[int]
    outputs: list[int]
    options_type: int = 0
    options: Callable[[flatbuffers.Builder], int] | None = None


class _Converter:
    def __init__(self, model: onnx.ModelProto):
        self.g = GraphView(model)
        self.tensors: list[_Tensor] = []
        self.by_name: dict[str, int] = {}
        self.buffers: list[bytes] = [b""]
        self.ops: list[_Op] = []
        self.layers: dict[str, str] = {}
        self.node_name = ""

    # ------------------------------------------------------------ tensors

    def _new_tensor(self, t: _Tensor) -> int:
        base, k = t.name, 1
        while t.name in self.by_name:  # e.g. one initializer used twice
            k += 1
            t.name = f"{base}#{k}"
        self.tensors.append(t)
        self.by_name[t.name] = len(self.tensors) - 1
        return len(self.tensors) - 1

    def activation(self, name: str, onnx_shape: tuple[int, ...], scale: float,
                   zero_point: int) -> int:
        return self._new_tensor(_Tensor(name, tflite_shape(onnx_shape), np.dtype(np.int8),
                                        scale=np.array([scale], np.float32),
                                        zero_point=np.array([zero_point], np.int64)))

    def constant(self, name: str, value: np.ndarray, scale=None, zero_point=None,
                 dim: int = 0) -> int:
        value = np.ascontiguousarray(value)
        self.buffers.append(value.tobytes())
        t = _Tensor(name, tuple(value.shape), value.dtype, len(self.buffers) - 1,
                    None if scale is None else np.asarray(scale, np.float32).reshape(-1),
                    None if zero_point is None else np.asarray(zero_point, np.int64).reshape(-1),
                    dim)
        return self._new_tensor(t)

    def qparams_of(self, index: int) -> tuple[float, int]:
        t = self.tensors[index]
        return float(t.scale[0]), int(t.zero_point[0])

    def input_of(self, name: str, rank: int | None = None) -> int:
        """The TFLite tensor holding DequantizeLinear output ``name``'s int8 data;
        a constant int8 tensor is written (broadcast to ``rank``, NHWC if 4-D)."""
        dq = self.g.dequantized(name)
        value = self.g.const(dq.tensor)
        if value is None:
            if dq.tensor not in self.by_name:
                raise ValueError(f"node {self.node_name}: input {dq.tensor} is not produced "
                                 "by a converted node")
            return self.by_name[dq.tensor]
        rank = value.ndim if rank is None else rank
        value = value.reshape((1,) * (rank - value.ndim) + value.shape)
        if rank == 4:
            value = value.transpose(NHWC)
        return self.constant(dq.tensor, value.astype(np.int8), scalar(dq.scale), zero_point_of(dq))

    def output_of(self, node: onnx.NodeProto) -> tuple[int, QParams]:
        q = self.g.quantized(node.output[0])
        shape = self.g.shape(node.output[0])
        return self.activation(q.tensor, shape, scalar(q.scale), zero_point_of(q)), q

    # ------------------------------------------------------------ operators

    def emit(self, code: int, inputs: list[int], outputs: list[int], options_type: int = 0,
             options: Callable[[flatbuffers.Builder], int] | None = None) -> None:
        self.ops.append(_Op(code, inputs, outputs, options_type, options))
        for o in outputs:
            self.layers[self.tensors[o].name] = self.node_name

    def requantize(self, src: int, dst: int) -> None:
        self.emit(_OP.QUANTIZE, [src], [dst], _OPT.QuantizeOptions, _quantize_options)

    def padded(self, node: onnx.NodeProto, kernel: tuple[int, int], padding: str) -> int:
        """The input of the Conv or pool ``node``: its activation, or with
        ``padding`` "PAD" a PAD of it, ``<output>/pad``, by patterns.explicit_pads."""
        x = self.input_of(node.input[0])
        if padding != "PAD":
            return x
        top, left, bottom, right = patterns.explicit_pads(node, self.g, kernel)
        t = self.tensors[x]
        n, h, w, c = t.shape
        out_name = self.g.quantized(node.output[0]).tensor
        paddings = self.constant(f"{out_name}/paddings",
                                 np.array([[0, 0], [top, bottom], [left, right], [0, 0]],
                                          np.int32))
        tmp = self._new_tensor(_Tensor(f"{out_name}/pad", (n, h + top + bottom,
                                                           w + left + right, c), t.dtype,
                                       scale=t.scale.copy(), zero_point=t.zero_point.copy()))

        def opts(b):
            PadOptions.PadOptionsStart(b)
            return PadOptions.PadOptionsEnd(b)
        self.emit(_OP.PAD, [x, paddings], [tmp], _OPT.PadOptions, opts)
        return tmp

    def emit_with_qparams(self, code: int, inputs: list[int], out: int, want: tuple[float, int],
                          suffix: str, options_type: int = 0, options=None) -> None:
        """``code`` writing ``out``, when its output must be quantised as ``want``
        and ``out`` is not: through a helper tensor and a QUANTIZE."""
        have = self.qparams_of(out)
        if have[1] == want[1] and math.isclose(have[0], want[0], rel_tol=1e-6):
            self.emit(code, inputs, [out], options_type, options)
            return
        t = self.tensors[out]
        tmp = self._new_tensor(_Tensor(f"{t.name}/{suffix}", t.shape, t.dtype,
                                       scale=np.array([want[0]], np.float32),
                                       zero_point=np.array([want[1]], np.int64)))
        self.emit(code, inputs, [tmp], options_type, options)
        self.requantize(tmp, out)

    # ------------------------------------------------------------ conversion

    def run(self) -> tuple[bytes, TfliteIO]:
        g = self.g
        io_in = []
        for name in g.inputs:
            shape = g.shape(name)
            if g.dtype(name) != np.int8 or shape is None:
                raise ValueError(f"partition input {name} is not a static-shape int8 tensor")
            users = [u for u in g.consumers(name) if u.op_type == "DequantizeLinear"]
            if not users:
                raise ValueError(f"partition input {name} is not read by a DequantizeLinear")
            qs = [g.dequantized(u.output[0]) for u in users]
            q = qs[0]
            if any(p is None or p.per_channel for p in qs):
                raise ValueError(f"partition input {name} is not per-tensor quantised")
            if any(zero_point_of(p) != zero_point_of(q) or not math.isclose(
                    scalar(p.scale), scalar(q.scale), rel_tol=1e-6) for p in qs):
                raise ValueError(f"partition input {name} is dequantised with different "
                                 "parameters")
            self.activation(name, shape, scalar(q.scale), zero_point_of(q))
            io_in.append(TfliteTensor(name, tflite_shape(shape), _perm(len(shape))))
        for i, node in enumerate(g.nodes):
            if node.op_type in ("DequantizeLinear", "QuantizeLinear", "Constant"):
                continue
            self.node_name = node.name or f"{node.op_type}_{i}"
            reason = check(node, g)
            if reason:
                raise ValueError(f"node {self.node_name}: {reason}")
            _CONVERTERS[node.op_type](self, node)
        io_out = []
        for name in g.outputs:
            if name not in self.by_name or self.tensors[self.by_name[name]].buffer:
                raise ValueError(f"partition output {name} is not written by a converted node")
            shape = g.shape(name)
            io_out.append(TfliteTensor(name, tflite_shape(shape), _perm(len(shape))))
        inputs = [self.by_name[t.name] for t in io_in]
        outputs = [self.by_name[t.name] for t in io_out]
        return self.serialize(inputs, outputs), TfliteIO(io_in, io_out, dict(self.layers))

    def _conv(self, node: onnx.NodeProto) -> None:
        g = self.g
        attrs = g.attrs(node)
        xq = g.dequantized(node.input[0])
        wq = g.dequantized(node.input[1])
        w = g.const(wq.tensor)
        cout = w.shape[0]
        group = int(attrs.get("group", 1))
        depthwise = group != 1 and group == g.shape(node.input[0])[1]
        padding, _, strides, dilations = patterns.window(node, g, tuple(w.shape[2:]))
        x = self.padded(node, tuple(w.shape[2:]), padding)
        w_scale = np.broadcast_to(np.asarray(wq.scale, np.float32).reshape(-1), (cout,))
        if group != 1 and not depthwise:
            self._grouped_conv(node, x, w, w_scale, group, padding, strides, dilations)
            return
        if depthwise:
            weights = self.constant(wq.tensor, w.transpose(1, 2, 3, 0), w_scale,
                                    np.zeros(cout, np.int64), dim=3)
        else:
            weights = self.constant(wq.tensor, w.transpose(0, 2, 3, 1), w_scale,
                                    np.zeros(cout, np.int64), dim=0)
        bias = self._bias(node, 2, scalar(xq.scale) * w_scale, cout)
        out, _ = self.output_of(node)
        if depthwise:
            self.emit(_OP.DEPTHWISE_CONV_2D, [x, weights, bias], [out],
                      _OPT.DepthwiseConv2DOptions, _depthwise_options(padding, strides,
                                                                      dilations))
        else:
            self.emit(_OP.CONV_2D, [x, weights, bias], [out], _OPT.Conv2DOptions,
                      _conv_options(padding, strides, dilations))

    def _affine(self, node: onnx.NodeProto) -> None:
        """BatchNormalization, HardSigmoid (patterns.affine): a 1x1 DEPTHWISE_CONV_2D,
        one exact int8 weight per channel (+-127 at scale |a| / 127) and the offset
        as its int32 bias."""
        w, w_scale, bias = patterns.affine_weights(node, self.g)
        x = self.input_of(node.input[0])
        out, _ = self.output_of(node)
        name = self.tensors[out].name
        c = w.size
        weights = self.constant(f"{name}/weights", w.reshape(1, 1, 1, c), w_scale,
                                np.zeros(c, np.int64), dim=3)
        x_scale = np.float32(self.qparams_of(x)[0])
        b = self.constant(f"{name}/bias", bias.astype(np.int32), x_scale * w_scale,
                          np.zeros(c, np.int64), dim=0)
        self.emit(_OP.DEPTHWISE_CONV_2D, [x, weights, b], [out], _OPT.DepthwiseConv2DOptions,
                  _depthwise_options("VALID", (1, 1), (1, 1)))

    def _grouped_conv(self, node: onnx.NodeProto, x: int, w: np.ndarray, w_scale: np.ndarray,
                      group: int, padding: str, strides, dilations) -> None:
        """SPLIT of the input channels into ``group`` parts, one CONV_2D per part
        (``<output>/group<k>``), CONCATENATION of their outputs."""
        g = self.g
        wq = g.dequantized(node.input[1])
        xq = g.dequantized(node.input[0])
        cout = w.shape[0]
        co = cout // group
        bias_scale = scalar(xq.scale) * w_scale
        _, bias = self._bias_values(node, 2, cout)
        out, _ = self.output_of(node)
        name = self.tensors[out].name
        t = self.tensors[x]
        n, h, wd, c = t.shape
        parts = [self._new_tensor(_Tensor(f"{name}/group{k}/in", (n, h, wd, c // group),
                                          t.dtype, scale=t.scale.copy(),
                                          zero_point=t.zero_point.copy()))
                 for k in range(group)]
        axis = self.constant(f"{name}/split_axis", np.array(3, np.int32))

        def split_opts(b):
            SplitOptions.SplitOptionsStart(b)
            SplitOptions.SplitOptionsAddNumSplits(b, group)
            return SplitOptions.SplitOptionsEnd(b)
        self.emit(_OP.SPLIT, [axis, x], parts, _OPT.SplitOptions, split_opts)
        o = self.tensors[out]
        opts = _conv_options(padding, strides, dilations)
        outs = []
        for k in range(group):
            sl = slice(k * co, (k + 1) * co)
            weights = self.constant(f"{wq.tensor}/group{k}", w[sl].transpose(0, 2, 3, 1),
                                    w_scale[sl], np.zeros(co, np.int64), dim=0)
            b = self.constant(f"{name}/group{k}/bias", bias[sl], bias_scale[sl],
                              np.zeros(co, np.int64), dim=0)
            part_out = self._new_tensor(_Tensor(f"{name}/group{k}", (*o.shape[:3], co), o.dtype,
                                                scale=o.scale.copy(),
                                                zero_point=o.zero_point.copy()))
            self.emit(_OP.CONV_2D, [parts[k], weights, b], [part_out], _OPT.Conv2DOptions, opts)
            outs.append(part_out)
        self.emit(_OP.CONCATENATION, outs, [out], _OPT.ConcatenationOptions,
                  _concat_options(3))

    def _bias_values(self, node: onnx.NodeProto, index: int, channels: int
                     ) -> tuple[str, np.ndarray]:
        """(tensor name, int32 values) of the node's bias input, zeros when it has none."""
        if len(node.input) > index and node.input[index]:
            bq = self.g.dequantized(node.input[index])
            return bq.tensor, self.g.const(bq.tensor).astype(np.int32).reshape(channels)
        return f"{node.output[0]}/bias", np.zeros(channels, np.int32)

    def _bias(self, node: onnx.NodeProto, index: int, scale: np.ndarray, channels: int) -> int:
        name, value = self._bias_values(node, index, channels)
        return self.constant(name, value, scale, np.zeros(channels, np.int64), dim=0)

    def _fully_connected(self, node: onnx.NodeProto, trans_b: bool) -> None:
        g = self.g
        xq = g.dequantized(node.input[0])
        wq = g.dequantized(node.input[1])
        w = g.const(wq.tensor)
        w = w if trans_b else w.T  # [N, K]
        n = w.shape[0]
        w_scale = np.broadcast_to(np.asarray(wq.scale, np.float32).reshape(-1), (n,))
        weights = self.constant(wq.tensor, w, w_scale, np.zeros(n, np.int64), dim=0)
        bias = self._bias(node, 2, scalar(xq.scale) * w_scale, n)
        out, _ = self.output_of(node)

        def opts(b):
            M = FullyConnectedOptions
            M.FullyConnectedOptionsStart(b)
            M.FullyConnectedOptionsAddFusedActivationFunction(b, _NONE)
            M.FullyConnectedOptionsAddKeepNumDims(b, False)
            return M.FullyConnectedOptionsEnd(b)
        self.emit(_OP.FULLY_CONNECTED, [self.input_of(node.input[0]), weights, bias], [out],
                  _OPT.FullyConnectedOptions, opts)

    def _gemm(self, node: onnx.NodeProto) -> None:
        self._fully_connected(node, bool(self.g.attrs(node).get("transB", 0)))

    def _matmul(self, node: onnx.NodeProto) -> None:
        self._fully_connected(node, False)

    def _binary(self, node: onnx.NodeProto, code: int, options_type: int, module) -> None:
        rank = len(self.g.shape(node.output[0]))
        inputs = [self.input_of(name, rank) for name in node.input]
        out, _ = self.output_of(node)
        prefix = module.__name__.rsplit(".", 1)[-1]

        def opts(b):
            getattr(module, f"{prefix}Start")(b)
            getattr(module, f"{prefix}AddFusedActivationFunction")(b, _NONE)
            return getattr(module, f"{prefix}End")(b)
        self.emit(code, inputs, [out], options_type, opts)

    def _add(self, node: onnx.NodeProto) -> None:
        self._binary(node, _OP.ADD, _OPT.AddOptions, AddOptions)

    def _mul(self, node: onnx.NodeProto) -> None:
        self._binary(node, _OP.MUL, _OPT.MulOptions, MulOptions)

    def _pool(self, node: onnx.NodeProto, code: int) -> None:
        g = self.g
        attrs = g.attrs(node)
        kh, kw = attrs["kernel_shape"]
        padding, _, (sh, sw), _ = patterns.window(node, g, (kh, kw))
        x = self.padded(node, (kh, kw), padding)
        out, _ = self.output_of(node)
        pad = _PAD[padding]

        def opts(b):
            M = Pool2DOptions
            M.Pool2DOptionsStart(b)
            M.Pool2DOptionsAddPadding(b, pad)
            M.Pool2DOptionsAddStrideW(b, sw)
            M.Pool2DOptionsAddStrideH(b, sh)
            M.Pool2DOptionsAddFilterWidth(b, kw)
            M.Pool2DOptionsAddFilterHeight(b, kh)
            M.Pool2DOptionsAddFusedActivationFunction(b, _NONE)
            return M.Pool2DOptionsEnd(b)
        self.emit_with_qparams(code, [x], out, self.qparams_of(x), "pool",
                               _OPT.Pool2DOptions, opts)

    def _maxpool(self, node: onnx.NodeProto) -> None:
        self._pool(node, _OP.MAX_POOL_2D)

    def _averagepool(self, node: onnx.NodeProto) -> None:
        self._pool(node, _OP.AVERAGE_POOL_2D)

    def _globalaveragepool(self, node: onnx.NodeProto) -> None:
        x = self.input_of(node.input[0])
        out, _ = self.output_of(node)
        axes = self.constant(f"{self.tensors[out].name}/axes", np.array([1, 2], np.int32))

        def opts(b):
            ReducerOptions.ReducerOptionsStart(b)
            ReducerOptions.ReducerOptionsAddKeepDims(b, True)
            return ReducerOptions.ReducerOptionsEnd(b)
        self.emit(_OP.MEAN, [x, axes], [out], _OPT.ReducerOptions, opts)

    def _relu(self, node: onnx.NodeProto) -> None:
        self.emit(_OP.RELU, [self.input_of(node.input[0])], [self.output_of(node)[0]])

    def _clip(self, node: onnx.NodeProto) -> None:
        form = patterns.RELU_FORMS.get(patterns.clip_bounds(node, self.g))
        x = self.input_of(node.input[0])
        out, _ = self.output_of(node)
        if form is None:  # the output range lies inside the clip range
            self.requantize(x, out)
        else:
            self.emit(getattr(_OP, form), [x], [out])

    def _leakyrelu(self, node: onnx.NodeProto) -> None:
        alpha = float(self.g.attrs(node).get("alpha", 0.01))

        def opts(b):
            LeakyReluOptions.LeakyReluOptionsStart(b)
            LeakyReluOptions.LeakyReluOptionsAddAlpha(b, alpha)
            return LeakyReluOptions.LeakyReluOptionsEnd(b)
        self.emit(_OP.LEAKY_RELU, [self.input_of(node.input[0])], [self.output_of(node)[0]],
                  _OPT.LeakyReluOptions, opts)

    def _fixed(self, node: onnx.NodeProto, code: int, options_type: int = 0, options=None):
        x = self.input_of(node.input[0])
        out, _ = self.output_of(node)
        self.emit_with_qparams(code, [x], out, _FIXED_OUTPUT[node.op_type],
                               node.op_type.lower(), options_type, options)

    def _sigmoid(self, node: onnx.NodeProto) -> None:
        self._fixed(node, _OP.LOGISTIC)

    def _tanh(self, node: onnx.NodeProto) -> None:
        self._fixed(node, _OP.TANH)

    def _softmax(self, node: onnx.NodeProto) -> None:
        def opts(b):
            SoftmaxOptions.SoftmaxOptionsStart(b)
            SoftmaxOptions.SoftmaxOptionsAddBeta(b, 1.0)
            return SoftmaxOptions.SoftmaxOptionsEnd(b)
        self._fixed(node, _OP.SOFTMAX, _OPT.SoftmaxOptions, opts)
        # Vela splits SOFTMAX into ~30 NPU operators named "<input>_softmax_<n>"
        self.layers[f"{self.tensors[self.input_of(node.input[0])].name}_softmax"] = self.node_name

    def _concat(self, node: onnx.NodeProto) -> None:
        rank = len(self.g.shape(node.output[0]))
        axis = nhwc_axis(int(self.g.attrs(node).get("axis", 1)), rank)
        out, _ = self.output_of(node)
        want = self.qparams_of(out)
        inputs = []
        for name in node.input:
            x = self.input_of(name, rank)
            have = self.qparams_of(x)
            if have[1] != want[1] or not math.isclose(have[0], want[0], rel_tol=1e-6):
                t = self.tensors[x]
                tmp = self._new_tensor(_Tensor(
                    f"{t.name}/requant:{self.tensors[out].name}", t.shape, t.dtype,
                    scale=np.array([want[0]], np.float32),
                    zero_point=np.array([want[1]], np.int64)))
                self.requantize(x, tmp)
                x = tmp
            inputs.append(x)
        self.emit(_OP.CONCATENATION, inputs, [out], _OPT.ConcatenationOptions,
                  _concat_options(axis))

    def _reshape(self, node: onnx.NodeProto) -> None:
        x = self.input_of(node.input[0])
        out, _ = self.output_of(node)
        new_shape = [int(d) for d in self.tensors[out].shape]
        shape = self.constant(f"{self.tensors[out].name}/shape", np.array(new_shape, np.int32))

        def opts(b):
            vec = b.CreateNumpyVector(np.array(new_shape, np.int32))
            ReshapeOptions.ReshapeOptionsStart(b)
            ReshapeOptions.ReshapeOptionsAddNewShape(b, vec)
            return ReshapeOptions.ReshapeOptionsEnd(b)
        self.emit_with_qparams(_OP.RESHAPE, [x, shape], out, self.qparams_of(x), "reshape",
                               _OPT.ReshapeOptions, opts)

    # ------------------------------------------------------------ flatbuffer

    def serialize(self, inputs: list[int], outputs: list[int]) -> bytes:
        b = flatbuffers.Builder(1024)
        codes: dict[int, int] = {}
        for op in self.ops:
            codes.setdefault(op.code, len(codes))

        def ints(values, dtype=np.int32):
            return b.CreateNumpyVector(np.asarray(values, dtype))

        def offsets(start, items):
            start(b, len(items))
            for off in reversed(items):
                b.PrependUOffsetTRelative(off)
            return b.EndVector()

        buffer_offsets = []
        for data in self.buffers:
            vec = _aligned_bytes(b, data) if data else None
            Buffer.BufferStart(b)
            if vec is not None:
                Buffer.BufferAddData(b, vec)
            buffer_offsets.append(Buffer.BufferEnd(b))

        tensor_offsets = []
        for t in self.tensors:
            name = b.CreateString(t.name)
            shape = ints(t.shape)
            quant = None
            if t.scale is not None:
                scale = b.CreateNumpyVector(np.asarray(t.scale, np.float32))
                zp = b.CreateNumpyVector(np.asarray(t.zero_point, np.int64))
                Q = QuantizationParameters
                Q.QuantizationParametersStart(b)
                Q.QuantizationParametersAddScale(b, scale)
                Q.QuantizationParametersAddZeroPoint(b, zp)
                Q.QuantizationParametersAddQuantizedDimension(b, t.quantized_dimension)
                quant = Q.QuantizationParametersEnd(b)
            Tensor.TensorStart(b)
            Tensor.TensorAddShape(b, shape)
            Tensor.TensorAddType(b, _TYPES[np.dtype(t.dtype)])
            Tensor.TensorAddBuffer(b, t.buffer)
            Tensor.TensorAddName(b, name)
            if quant is not None:
                Tensor.TensorAddQuantization(b, quant)
            tensor_offsets.append(Tensor.TensorEnd(b))

        op_offsets = []
        for op in self.ops:
            ins, outs = ints(op.inputs), ints(op.outputs)
            opts = op.options(b) if op.options else None
            Operator.OperatorStart(b)
            Operator.OperatorAddOpcodeIndex(b, codes[op.code])
            Operator.OperatorAddInputs(b, ins)
            Operator.OperatorAddOutputs(b, outs)
            if opts is not None:
                Operator.OperatorAddBuiltinOptionsType(b, op.options_type)
                Operator.OperatorAddBuiltinOptions(b, opts)
            op_offsets.append(Operator.OperatorEnd(b))

        code_offsets = []
        for code in codes:
            OperatorCode.OperatorCodeStart(b)
            OperatorCode.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            OperatorCode.OperatorCodeAddBuiltinCode(b, code)
            OperatorCode.OperatorCodeAddVersion(b, _VERSIONS.get(code, 1))
            code_offsets.append(OperatorCode.OperatorCodeEnd(b))

        tensors_vec = offsets(SubGraph.SubGraphStartTensorsVector, tensor_offsets)
        ops_vec = offsets(SubGraph.SubGraphStartOperatorsVector, op_offsets)
        in_vec, out_vec = ints(inputs), ints(outputs)
        sg_name = b.CreateString("main")
        SubGraph.SubGraphStart(b)
        SubGraph.SubGraphAddTensors(b, tensors_vec)
        SubGraph.SubGraphAddInputs(b, in_vec)
        SubGraph.SubGraphAddOutputs(b, out_vec)
        SubGraph.SubGraphAddOperators(b, ops_vec)
        SubGraph.SubGraphAddName(b, sg_name)
        subgraph = SubGraph.SubGraphEnd(b)

        codes_vec = offsets(Model.ModelStartOperatorCodesVector, code_offsets)
        subgraphs_vec = offsets(Model.ModelStartSubgraphsVector, [subgraph])
        buffers_vec = offsets(Model.ModelStartBuffersVector, buffer_offsets)
        description = b.CreateString("edgec ONNX QDQ partition")
        Model.ModelStart(b)
        Model.ModelAddVersion(b, SCHEMA_VERSION)
        Model.ModelAddOperatorCodes(b, codes_vec)
        Model.ModelAddSubgraphs(b, subgraphs_vec)
        Model.ModelAddDescription(b, description)
        Model.ModelAddBuffers(b, buffers_vec)
        b.Finish(Model.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _conv_options(padding: str, strides, dilations):
    """CONV_2D's options builder (``padding``: SAME, VALID, or PAD: VALID after a PAD)."""
    (sh, sw), (dh, dw), pad = strides, dilations, _PAD[padding]

    def opts(b):
        M = Conv2DOptions
        M.Conv2DOptionsStart(b)
        M.Conv2DOptionsAddPadding(b, pad)
        M.Conv2DOptionsAddStrideW(b, sw)
        M.Conv2DOptionsAddStrideH(b, sh)
        M.Conv2DOptionsAddFusedActivationFunction(b, _NONE)
        M.Conv2DOptionsAddDilationWFactor(b, dw)
        M.Conv2DOptionsAddDilationHFactor(b, dh)
        return M.Conv2DOptionsEnd(b)
    return opts


def _depthwise_options(padding: str, strides, dilations):
    """DEPTHWISE_CONV_2D's options builder, depth multiplier 1."""
    (sh, sw), (dh, dw), pad = strides, dilations, _PAD[padding]

    def opts(b):
        M = DepthwiseConv2DOptions
        M.DepthwiseConv2DOptionsStart(b)
        M.DepthwiseConv2DOptionsAddPadding(b, pad)
        M.DepthwiseConv2DOptionsAddStrideW(b, sw)
        M.DepthwiseConv2DOptionsAddStrideH(b, sh)
        M.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
        M.DepthwiseConv2DOptionsAddFusedActivationFunction(b, _NONE)
        M.DepthwiseConv2DOptionsAddDilationWFactor(b, dw)
        M.DepthwiseConv2DOptionsAddDilationHFactor(b, dh)
        return M.DepthwiseConv2DOptionsEnd(b)
    return opts


def _concat_options(axis: int):
    """CONCATENATION's options builder along TFLite axis ``axis``."""
    def opts(b):
        ConcatenationOptions.ConcatenationOptionsStart(b)
        ConcatenationOptions.ConcatenationOptionsAddAxis(b, axis)
        ConcatenationOptions.ConcatenationOptionsAddFusedActivationFunction(b, _NONE)
        return ConcatenationOptions.ConcatenationOptionsEnd(b)
    return opts


def _aligned_bytes(b: flatbuffers.Builder, data: bytes) -> int:
    """A [ubyte] vector whose data starts 16-byte aligned (as TFLite writers do)."""
    b.StartVector(1, len(data), 16)
    b.head = b.head - len(data)
    b.Bytes[b.head:b.head + len(data)] = data
    return b.EndVector()


def _quantize_options(b: flatbuffers.Builder) -> int:
    QuantizeOptions.QuantizeOptionsStart(b)
    return QuantizeOptions.QuantizeOptionsEnd(b)



_CONVERTERS: dict[str, Callable[[_Converter, onnx.NodeProto], None]] = {
    "BatchNormalization": _Converter._affine, "HardSigmoid": _Converter._affine,
    "Conv": _Converter._conv, "Gemm": _Converter._gemm, "MatMul": _Converter._matmul,
    "Add": _Converter._add, "Mul": _Converter._mul, "MaxPool": _Converter._maxpool,
    "AveragePool": _Converter._averagepool,
    "GlobalAveragePool": _Converter._globalaveragepool, "Relu": _Converter._relu,
    "Clip": _Converter._clip, "LeakyRelu": _Converter._leakyrelu,
    "Sigmoid": _Converter._sigmoid, "Tanh": _Converter._tanh, "Softmax": _Converter._softmax,
    "Concat": _Converter._concat, "Reshape": _Converter._reshape,
    "Flatten": _Converter._reshape, "Squeeze": _Converter._reshape,
    "Unsqueeze": _Converter._reshape,
}
assert set(_CONVERTERS) == set(patterns.PATTERNS), "every pattern needs a converter"

"""int8 post-training quantisation: onnxruntime's calibrators write a QDQ graph.

edgec quantises the model after its own float passes (BatchNorm already in
the convs, Pads fused), so ranges are calibrated on the graph that is
compiled. onnxruntime runs the float model over the samples and its
calibrators (min/max, percentile, entropy) choose the ranges; its QDQ
quantiser inserts QuantizeLinear/DequantizeLinear pairs (per-channel
symmetric int8 weights, uint8 or int8 activations). The TVM backend then
computes each DQ -> op -> ... -> Q in one integer kernel: this module only
decides what is quantised and the ranges.

What is quantised: the inputs of Conv, ConvTranspose, Gemm and MatMul with
constant weights (the multiply-adds, on integer dot products), not their outputs.
Everything between one such op and the next (bias, activations, HardSwish,
PP-LCNet's affines, residual adds) stays float inside the kernel that
computes the op and is quantised once, as the next op's input; the
activations between kernels are uint8 / int8 all the same. onnxruntime's
own default quantises every op's output too: each of those steps adds
noise and costs a kernel of its own (measured on PP-OCRv4 rec, exact match
93.7% float: 83.0% with every op quantised, 92.7% with only conv and matmul
inputs, 93.3% with attention's activation x activation MatMuls also float).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import UnsupportedError, UsageError
from .calibration import Calibration
from .options import QuantizeOptions

#: op types whose inputs get quantised weights: what "kept float" is counted over
COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
#: the op types edgec quantises (inputs only; see the module docstring)
QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass
class QuantSummary:
    """What the manifest records about a quantisation."""

    options: QuantizeOptions
    calibration: Calibration
    quantized: list[str] = field(default_factory=list)  # compute nodes with int8 weights
    kept_float: list[str] = field(default_factory=list)  # compute nodes left in float
    scales_sha256: str = ""
    seconds: float = 0.0
    activations: str = ""  # what the activations were quantised to, when not the options'

    def to_json(self) -> dict:
        return {"mode": self.options.mode, "method": self.options.method,
                **({"percentile": self.options.percentile}
                   if self.options.method == "percentile" else {}),
                "weights": "int8 symmetric, " + ("per channel" if self.options.per_channel
                                                 else "per tensor"),
                "activations": self.activations or (
                    "int8 symmetric" if self.options.symmetric_activations
                    else "uint8 asymmetric"),
                "calibration": self.calibration.to_json(),
                **({"label": "random calibration data: a smoke test, not an accuracy "
                             "measurement"} if self.calibration.kind == "random" else {}),
                "quantized_ops": len(self.quantized), "kept_float": self.kept_float,
                "keep_float_requested": list(self.options.keep_float),
                "scales_sha256": self.scales_sha256, "seconds": round(self.seconds, 3)}


class _Reader:
    """onnxruntime's CalibrationDataReader over the samples, reporting progress."""

    def __init__(self, samples: list[dict[str, np.ndarray]], say: Callable[[str], None]):
        self.samples, self.say, self.i = samples, say, 0

    def get_next(self):
        if self.i >= len(self.samples):
            return None
        self.i += 1
        self.say(f"calibrating: sample {self.i}/{len(self.samples)}")
        return self.samples[self.i - 1]

    def rewind(self):
        self.i = 0


def _name_nodes(model: onnx.ModelProto) -> None:
    """Give unnamed nodes names: onnxruntime selects nodes to exclude by name."""
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


#: the first opset with per-axis QuantizeLinear/DequantizeLinear
QDQ_OPSET = 13


def _upgrade_opset(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """``model`` at opset 13 at least: onnxruntime writes per-channel (axis)
    DequantizeLinear nodes but leaves an older opset number, an invalid model."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset >= QDQ_OPSET:
        return model
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, QDQ_OPSET)
    except Exception as exc:  # onnx raises its own C++ error types
        raise UnsupportedError(f"{source}: opset {opset} cannot be upgraded to {QDQ_OPSET} "
                               f"for int8 quantisation ({str(exc).splitlines()[0]}); "
                               "re-export the model at opset 13 or newer") from None


def excluded_nodes(model: onnx.ModelProto, keep_float: tuple[str, ...], source: str) -> list[str]:
    """Node names for ``--keep-float`` items (node names or op types); unknown ones are
    an error that lists a few real names."""
    names = {n.name for n in model.graph.node}
    types = {n.op_type for n in model.graph.node}
    out: list[str] = []
    for item in keep_float:
        if item in names:
            out.append(item)
        elif item in types:
            out += [n.name for n in model.graph.node if n.op_type == item]
        else:
            examples = [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS][:3]
            raise UsageError(f"--keep-float {item}: {source} has no node or op type of that "
                             "name (after edgec's passes); give a node name, e.g. "
                             + ", ".join(repr(e) for e in examples) + ", or an op type "
                             "such as Conv ('edgec compile --save-temps DIR' keeps the graph)")
    return sorted(set(out))


def activation_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMuls of two computed tensors (attention's Q K^T and A V): left float.
    edgec has no integer kernel for them, and quantising a softmax's output to
    8 bits cost PP-OCRv4 rec 0.6 points of exact match (measured here)."""
    consts = {t.name for t in model.graph.initializer} | \
        {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and not any(i in consts for i in n.input)]


def _summarise(qmodel: onnx.ModelProto, summary: QuantSummary) -> None:
    dq_out = {o for n in qmodel.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for n in qmodel.graph.node:
        if n.op_type in COMPUTE_OPS:
            weights_quantised = len(n.input) > 1 and n.input[1] in dq_out
            (summary.quantized if weights_quantised and n.input[0] in dq_out
             else summary.kept_float).append(n.name)
    inits = {t.name: t for t in qmodel.graph.initializer}
    digest = hashlib.sha256()
    for n in qmodel.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            for name in n.input[1:]:
                if name in inits:
                    digest.update(name.encode() + b"\0" + inits[name].SerializeToString())
    summary.scales_sha256 = digest.hexdigest()


#: outputs entropy calibration keeps at their full range: KL's threshold clips the
#: tail, and a probability's tail is the answer (PP-OCRv4 rec's Softmax clipped at
#: 0.063: every character tied, exact match 93.7% -> 0.0%, measured here)
FULL_RANGE_OPS = ("Softmax", "Sigmoid", "HardSigmoid")

#: histogram bins for entropy calibration (TensorRT's 2048): onnxruntime's default
#: of 128, equal to its 128 quantised bins, leaves the KL search one candidate,
#: the full range, so "entropy" gave min/max's ranges exactly (measured here)
ENTROPY_BINS = 2048


def widen_to_full_range(ranges, names: set[str]) -> None:
    """Entropy ranges of ``names`` widened to their histogram's extent (FULL_RANGE_OPS)."""
    for name in names & set(ranges.data):
        td = ranges.data[name]
        edges = getattr(td, "bins", None)
        if edges is None or len(edges) < 2:
            continue
        if float(td.lowest) < 0:  # the histogram spans +-max|x|: one-sided data stays so
            td.lowest = np.array(min(float(td.lowest), float(edges[0])), np.float32)
        td.highest = np.array(max(float(td.highest), float(edges[-1])), np.float32)


def _entropy_ranges(src: Path, tmp: Path, reader: _Reader, options: QuantizeOptions,
                    cache: Path) -> str:
    """Entropy (KL) ranges from onnxruntime's calibrator with enough bins, saved as
    the calibration cache quantize_static reads instead of calibrating itself."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data

    calibrator = create_calibrator(
        src, None, augmented_model_path=str(tmp / "augmented.onnx"),
        calibrate_method=CalibrationMethod.Entropy,
        extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": 128,
                       "symmetric": options.symmetric_activations})
    calibrator.collect_data(reader)
    ranges = calibrator.compute_data()
    model = onnx.load(src, load_external_data=False)
    keep = {o.name for o in model.graph.output} | \
        {o for n in model.graph.node if n.op_type in FULL_RANGE_OPS for o in n.output}
    widen_to_full_range(ranges, keep)
    save_tensors_data(ranges, cache)
    return str(cache)


def weights_as_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` at IR 7 or newer with no weight listed as a graph input.

    IR < 4 needs every initializer listed as a graph input, which edgec's passes
    do not keep; onnxruntime's opset upgrade (to 13 for per-channel QDQ) then
    fails on "undefined" weights. And IR 3 lists every weight as a graph input
    too: onnxruntime then takes them for run-time values and quantises them as
    activations (uint8, per tensor, in the graph), which no integer kernel wants."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.ir_version = max(model.ir_version, 7)
    weights = {t.name for t in model.graph.initializer}
    kept = [vi for vi in model.graph.input if vi.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return model


#: how a model is quantised: edgec's scheme (module docstring), or onnxruntime's own
#: default (every op it knows, outputs too) for the onnxruntime int8 yardstick, which
#: onnxruntime runs fastest (its QLinearConv fusions need a quantize after each op)
SCHEMES = ("edgec", "onnxruntime")


def _gemm_bias_per_column(model: onnx.ModelProto) -> None:
    """Give every Gemm with a constant bias C the [N] bias (and beta 1) onnxruntime's
    quantizer expects: with per-channel weights it rescales the weights for an int32
    bias and fails on any other C shape (a [1, N] C: "The truth value of an array ...
    is ambiguous"; a scalar C: "too many indices for array"; a [M, 1] C: "index ... is
    out of bounds"). C = scalar, [N], [1, N] becomes [N]; a C that varies along the rows
    ([M, 1], [M, N]) moves into an Add after the Gemm."""
    inits = {t.name: t for t in model.graph.initializer}
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    nodes = list(model.graph.node)
    for node in nodes:
        if node.op_type != "Gemm" or len(node.input) < 3 or node.input[2] not in inits \
                or node.input[1] not in inits or readers.get(node.input[2]) != 1:
            continue
        attrs = {a.name: a for a in node.attribute}
        beta = attrs["beta"].f if "beta" in attrs else 1.0
        trans_b = bool(attrs["transB"].i) if "transB" in attrs else False
        b_dims = inits[node.input[1]].dims
        n = b_dims[0] if trans_b else b_dims[1]
        c = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32) * np.float32(beta)
        if c.ndim == 1 and c.shape[0] == n and beta == 1.0:
            continue
        if "beta" in attrs:
            node.attribute.remove(attrs["beta"])
        name = node.input[2]
        if c.ndim <= 1 or (c.ndim == 2 and c.shape[0] == 1):
            inits[name].CopyFrom(numpy_helper.from_array(
                np.ascontiguousarray(np.broadcast_to(c.reshape(-1), (n,))), name))
        else:  # varies along the rows: Gemm(A, B) + C
            inits[name].CopyFrom(numpy_helper.from_array(c, name))
            out = node.output[0]
            node.output[0] = f"{out}__gemm"
            del node.input[2]
            add = onnx.helper.make_node("Add", [node.output[0], name], [out],
                                        name=f"{node.name}/bias")
            model.graph.node.insert(list(model.graph.node).index(node) + 1, add)
        for vi in [v for v in model.graph.value_info if v.name == name]:
            model.graph.value_info.remove(vi)


def quantize_int8(model: onnx.ModelProto, options: QuantizeOptions, calibration: Calibration,
                  *, source: str, say: Callable[[str], None] = lambda _m: None,
                  ranges: Path | None = None, only: tuple[str, ...] | None = None,
                  scheme: str = "edgec", activations: str | None = None
                  ) -> tuple[onnx.ModelProto, QuantSummary]:
    """``model`` (float, static shapes) as a QDQ model calibrated on ``calibration``.

    ``ranges``: a file of calibrated ranges, read when it exists (no calibration
    run) and written otherwise: quant-report quantises one model many ways.
    ``only``: quantise just these nodes (a layer's sensitivity). ``scheme``: one
    of SCHEMES. ``activations``: "int8" or "uint8" overrides the activation type
    --symmetric-activations implies (int8 accelerators take asymmetric int8)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme {scheme!r}: one of {SCHEMES}")
    edgec_scheme = scheme == "edgec"
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    t0 = time.perf_counter()
    model = _upgrade_opset(weights_as_constants(model), source)
    _name_nodes(model)
    _gemm_bias_per_column(model)
    exclude = sorted(set(excluded_nodes(model, options.keep_float, source))
                     | set(activation_matmuls(model) if edgec_scheme else ()))
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[options.method]
    extra = {"ActivationSymmetric": options.symmetric_activations, "WeightSymmetric": True,
             "CalibPercentile": options.percentile,
             **({"OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS)}
                if edgec_scheme else {})}
    summary = QuantSummary(options, calibration)
    if activations is not None:
        summary.activations = f"{activations} " + (
            "symmetric" if options.symmetric_activations else "asymmetric")
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory(prefix="edgec-quant-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        onnx.save(model, src)
        reader = _Reader(calibration.samples, say)
        cache = ranges if ranges is not None else Path(tmp) / "ranges.json"
        try:
            root.setLevel(logging.ERROR)  # "consider pre-processing": edgec's passes did
            with contextlib.redirect_stdout(None):
                if cache.exists():
                    reader = None
                elif options.method == "entropy":
                    _entropy_ranges(src, Path(tmp), reader, options, cache)
                    reader = None
                quantize_static(
                    str(src), str(dst), reader, calibration_cache_path=str(cache),
                    quant_format=QuantFormat.QDQ, per_channel=options.per_channel,
                    activation_type=QuantType.QInt8 if (
                        activations or ("int8" if options.symmetric_activations else "uint8")
                    ) == "int8" else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                    op_types_to_quantize=list(QUANTIZED_OPS) if edgec_scheme else None,
                    nodes_to_quantize=list(only) if only is not None else None,
                    calibrate_method=method, extra_options=extra)
        finally:
            root.setLevel(level)
        qmodel = onnx.load(dst)
    _summarise(qmodel, summary)
    summary.seconds = time.perf_counter() - t0
    return qmodel, summary

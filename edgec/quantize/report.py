"""How much int8 costs, per layer and per output, measured on held-out samples.

Ranges are calibrated once; every variant below reuses them, so each is one
quantiser pass and one onnxruntime run, not a calibration.
- Sensitivity: the model with only that layer quantised, its outputs' SQNR
  against float: what quantising the layer costs on its own.
- Accumulated: in the fully quantised model, the layer's int8 output (as the
  next layer reads it, after QuantizeLinear -> DequantizeLinear) against the
  float one: the noise from the input up to there.
``max_drop`` keeps layers float, the fewest that bring every output's SQNR
to the budget (bisection over the layers ordered by the noise each adds per
MAC it runs: automatic mixed precision); their share of the MACs is
reported (the speed they cost is an estimate from MACs, not a measurement).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from ..errors import UsageError
from .calibration import Calibration
from .options import QuantizeOptions
from .static import COMPUTE_OPS, quantize_int8


@dataclass
class LayerError:
    node: str
    op: str
    tensor: str
    sqnr_db: float  # accumulated: this layer's output in the fully int8 model
    max_abs_err: float
    macs: int
    sensitivity_db: float = float("inf")  # worst output SQNR with only this layer int8

    def to_json(self) -> dict:
        return {"node": self.node, "op": self.op, "tensor": self.tensor,
                "sensitivity_db": _num(self.sensitivity_db),
                "accumulated_sqnr_db": _num(self.sqnr_db), "max_abs_err": self.max_abs_err,
                "macs": self.macs}


@dataclass
class QuantReport:
    model: str
    options: QuantizeOptions
    calibration_samples: int
    eval_samples: int
    eval_source: str
    layers: list[LayerError]
    outputs: list[dict]  # name, sqnr_db, max_abs_err (with kept_float in float)
    outputs_all_int8: list[dict] = field(default_factory=list)  # before any layer was kept
    kept_float: list[str] = field(default_factory=list)
    float_mac_share: float = 0.0
    budget_db: float | None = None
    budget_met: bool | None = None

    def to_json(self) -> dict:
        return {"model": self.model, "quantize": self.options.to_json(),
                "calibration_samples": self.calibration_samples,
                "eval_samples": self.eval_samples, "eval_source": self.eval_source,
                "layers": [la.to_json() for la in self.layers],
                "outputs": [{**o, "sqnr_db": _num(o["sqnr_db"])} for o in self.outputs],
                "outputs_all_int8": [{**o, "sqnr_db": _num(o["sqnr_db"])}
                                     for o in self.outputs_all_int8],
                "max_drop_db": self.budget_db, "budget_met": self.budget_met,
                "kept_float": self.kept_float,
                "kept_float_mac_share": round(self.float_mac_share, 4)}


def _num(v: float):
    return v if np.isfinite(v) else ("inf" if v > 0 else "-inf")


def _sqnr(got: np.ndarray, ref: np.ndarray) -> float:
    from ..verification import sqnr_db

    return sqnr_db(got, ref)


def _macs(model: onnx.ModelProto) -> dict[str, int]:
    """Multiply-accumulates per compute node, from the shapes shape inference left."""
    shapes = {}
    for vi in [*model.graph.value_info, *model.graph.output, *model.graph.input]:
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if dims and all(dims):
            shapes[vi.name] = dims
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        w, y = inits.get(n.input[1]) if len(n.input) > 1 else None, shapes.get(n.output[0])
        if n.op_type in COMPUTE_OPS and w is not None and y is not None:
            if n.op_type == "Conv":
                out[n.name] = int(np.prod(y) * np.prod(w[1:]))
            else:
                out[n.name] = int(np.prod(y) * (w[0] if n.op_type == "MatMul" else w[-1]))
    return out


def _exposed(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    m = onnx.ModelProto.FromString(model.SerializeToString())
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(
                name, onnx.TensorProto.FLOAT, None))
    return m


def _layer_tensors(qdq: onnx.ModelProto) -> list[tuple[str, str, str, str]]:
    """(node, op, float tensor, int8 tensor as read downstream) per quantised layer."""
    consumers: dict[str, list] = {}
    for n in qdq.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    dq_out = {o for n in qdq.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    layers = []
    for n in qdq.graph.node:
        if n.op_type not in COMPUTE_OPS or len(n.input) < 2 or n.input[1] not in dq_out:
            continue
        t = n.output[0]
        q = next((c for c in consumers.get(t, []) if c.op_type == "QuantizeLinear"), None)
        dq = next((c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"),
                  None) if q is not None else None
        float_name = t[:-len("_QuantizeLinear_Input")] if t.endswith(
            "_QuantizeLinear_Input") else t
        layers.append((n.name, n.op_type, float_name, dq.output[0] if dq is not None else t))
    return layers


def _run(model: onnx.ModelProto, samples: list[dict], names: list[str]) -> list[dict]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return [dict(zip(names, sess.run(names, s), strict=True)) for s in samples]


class _Measure:
    """The float model's outputs and layer tensors on the held-out samples, run once,
    and the errors of any QDQ variant against them."""

    def __init__(self, float_model: onnx.ModelProto, qdq: onnx.ModelProto, samples: list):
        self.samples = samples
        floats = {o.name for o in float_model.graph.output} | \
            {o for n in float_model.graph.node for o in n.output}
        self.layers = [la for la in _layer_tensors(qdq) if la[2] in floats]
        self.outs = [o.name for o in float_model.graph.output]
        extra = [la[2] for la in self.layers if la[2] not in self.outs]
        self.ref = _run(_exposed(float_model, extra), samples, self.outs + extra)
        self.macs = _macs(float_model)

    def _err(self, fname: str, got_runs: list[dict], qname: str) -> tuple[float, float]:
        ref = np.concatenate([r[fname].ravel() for r in self.ref])
        got = np.concatenate([r[qname].ravel() for r in got_runs])
        return _sqnr(got, ref), float(np.abs(got - ref).max()) if ref.size else 0.0

    def outputs(self, qdq: onnx.ModelProto) -> list[dict]:
        runs = _run(qdq, self.samples, self.outs)
        out = []
        for name in self.outs:
            db, err = self._err(name, runs, name)
            out.append({"name": name, "sqnr_db": db, "max_abs_err": err})
        return out

    def layers_and_outputs(self, qdq: onnx.ModelProto) -> tuple[list[LayerError], list[dict]]:
        extra = [la[3] for la in self.layers if la[3] not in self.outs]
        runs = _run(_exposed(qdq, extra), self.samples, self.outs + extra)
        result = []
        for node, op, fname, qname in self.layers:
            db, err = self._err(fname, runs, qname)
            result.append(LayerError(node, op, fname, db, err, self.macs.get(node, 0)))
        outputs = []
        for name in self.outs:
            db, err = self._err(name, runs, name)
            outputs.append({"name": name, "sqnr_db": db, "max_abs_err": err})
        return result, outputs


def _worst(outputs: list[dict]) -> float:
    return min(o["sqnr_db"] for o in outputs)


def _noise_per_mac(layer: LayerError) -> float:
    """The output noise a layer adds on its own (relative power, from its
    sensitivity) per multiply-accumulate it would run in int8: the order
    ``max_drop`` keeps layers float in, so the noise goes first where it buys
    the least speed. By sensitivity alone, PP-OCRv4 rec kept 69% of its MACs
    float for a 20 dB budget; by this order, small depthwise and squeeze-excite
    convs go first (measured: see README, int8 accuracy)."""
    return 10.0 ** (-layer.sensitivity_db / 10.0) / max(layer.macs, 1)


def quant_report(float_model: onnx.ModelProto, options: QuantizeOptions,
                 calibration: Calibration, evaluation: Calibration, *, source: str,
                 max_drop: float | None = None,
                 say: Callable[[str], None] = lambda _m: None) -> QuantReport:
    """Quantise on ``calibration``, measure on ``evaluation``; with ``max_drop``
    keep the most sensitive layers float until every output's SQNR is >= max_drop dB."""
    if not evaluation.samples:
        raise UsageError(f"{source}: no held-out samples to measure on; give --eval DIR or "
                         "at least 2 calibration samples")
    with tempfile.TemporaryDirectory(prefix="edgec-qreport-") as tmp:
        ranges = Path(tmp) / "ranges.json"

        def quantise(opts: QuantizeOptions, only=None) -> onnx.ModelProto:
            return quantize_int8(float_model, opts, calibration, source=source, say=say,
                                 ranges=ranges, only=only)[0]

        qdq = quantise(options)
        say("measuring per-layer error")
        m = _Measure(float_model, qdq, evaluation.samples)
        layers, outputs = m.layers_and_outputs(qdq)
        for i, la in enumerate(layers):
            say(f"sensitivity {i + 1}/{len(layers)}: {la.node}")
            la.sensitivity_db = _worst(m.outputs(quantise(options, only=(la.node,))))
        kept: list[str] = []
        final, opts = outputs, options
        if max_drop is not None and _worst(outputs) < max_drop:
            order = [la.node for la in sorted(layers, key=_noise_per_mac, reverse=True)]
            tried: dict[int, list[dict]] = {0: outputs}

            def attempt(k: int) -> list[dict]:
                if k not in tried:
                    say(f"keeping the {k} most sensitive layer(s) float")
                    tried[k] = m.outputs(quantise(replace(
                        options, keep_float=(*options.keep_float, *order[:k]))))
                return tried[k]

            lo, hi = 0, len(order)  # all float meets any budget: sum of noise is 0
            if _worst(attempt(hi)) >= max_drop:
                while hi - lo > 1:  # the fewest k that meet it, if meeting is monotone
                    mid = (lo + hi) // 2
                    lo, hi = (lo, mid) if _worst(attempt(mid)) >= max_drop else (mid, hi)
            kept, final = order[:hi], attempt(hi)
            opts = replace(options, keep_float=(*options.keep_float, *kept))
    total = sum(la.macs for la in layers) or 1
    share = sum(la.macs for la in layers if la.node in kept) / total
    met = None if max_drop is None else bool(_worst(final) >= max_drop)
    return QuantReport(source, opts, len(calibration.samples), len(evaluation.samples),
                       evaluation.source, layers, final, outputs, kept, share, max_drop, met)


def plot(report: QuantReport, path) -> None:
    """A bar per layer (SQNR, dB), kept-float layers marked: ``--plot``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report.layers
    vals = [min(la.sensitivity_db, 99.0) for la in layers]
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(layers) + 2), 4))
    colors = ["tab:orange" if la.node in report.kept_float else "tab:blue" for la in layers]
    ax.bar(range(len(layers)), vals, color=colors)
    ax.set_xticks(range(len(layers)), [la.node for la in layers], rotation=90, fontsize=6)
    ax.set_ylabel("output SQNR, only this layer int8 (dB)")
    if report.budget_db is not None:
        ax.axhline(report.budget_db, color="tab:red", linestyle="--", label="--max-drop")
        ax.legend()
    ax.set_title(f"{report.model}: int8 sensitivity per layer (orange: kept float)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

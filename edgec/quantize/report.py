"""How much int8 costs, per layer and per output, measured on held-out samples.

Both the float model and its calibrated QDQ graph run in onnxruntime with
every quantised layer's output exposed; each layer's SQNR is its int8 output
(as the next layer reads it, after QuantizeLinear -> DequantizeLinear)
against the float one, noise accumulated from the input up to that layer.
``max_drop`` keeps the layer with the worst SQNR in float and re-quantises,
until every output's SQNR reaches the budget (automatic mixed precision):
the layers left float and their share of the model's MACs are reported (the
speed they cost is an estimate from MACs, not a measurement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import onnx

from ..errors import UsageError
from .calibration import Calibration
from .options import QuantizeOptions
from .static import COMPUTE_OPS, quantize_int8

#: at most this many re-quantisations while meeting --max-drop
MAX_ROUNDS = 12


@dataclass
class LayerError:
    node: str
    op: str
    tensor: str
    sqnr_db: float
    max_abs_err: float
    macs: int

    def to_json(self) -> dict:
        return {"node": self.node, "op": self.op, "tensor": self.tensor,
                "sqnr_db": _num(self.sqnr_db), "max_abs_err": self.max_abs_err,
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


def measure(float_model: onnx.ModelProto, qdq: onnx.ModelProto,
            samples: list[dict]) -> tuple[list[LayerError], list[dict]]:
    """Per-layer and per-output errors of ``qdq`` against ``float_model``."""
    layers = _layer_tensors(qdq)
    macs = _macs(float_model)
    floats = {o.name for o in float_model.graph.output} | \
        {v.name for v in float_model.graph.value_info} | \
        {o for n in float_model.graph.node for o in n.output}
    layers = [la for la in layers if la[2] in floats]
    outs = [o.name for o in float_model.graph.output]
    fl = _run(_exposed(float_model, [la[2] for la in layers]), samples,
              outs + [la[2] for la in layers if la[2] not in outs])
    qn = _run(_exposed(qdq, [la[3] for la in layers]), samples,
              outs + [la[3] for la in layers if la[3] not in outs])

    def errors(fname, qname):
        ref = np.concatenate([r[fname].ravel() for r in fl])
        got = np.concatenate([r[qname].ravel() for r in qn])
        return _sqnr(got, ref), float(np.abs(got - ref).max()) if ref.size else 0.0

    result = []
    for node, op, fname, qname in layers:
        db, err = errors(fname, qname)
        result.append(LayerError(node, op, fname, db, err, macs.get(node, 0)))
    outputs = []
    for name in outs:
        db, err = errors(name, name)
        outputs.append({"name": name, "sqnr_db": db, "max_abs_err": err})
    return result, outputs


def quant_report(float_model: onnx.ModelProto, options: QuantizeOptions,
                 calibration: Calibration, evaluation: Calibration, *, source: str,
                 max_drop: float | None = None,
                 say: Callable[[str], None] = lambda _m: None) -> QuantReport:
    """Quantise on ``calibration``, measure on ``evaluation``; with ``max_drop``
    keep the noisiest layers float until every output's SQNR is >= max_drop dB."""
    if not evaluation.samples:
        raise UsageError(f"{source}: no held-out samples to measure on; give --eval DIR or "
                         "at least 2 calibration samples")
    opts = options
    qdq, _summary = quantize_int8(float_model, opts, calibration, source=source, say=say)
    say("measuring per-layer error")
    layers, outputs = measure(float_model, qdq, evaluation.samples)
    first, first_outputs = layers, outputs
    kept: list[str] = []
    rounds = 0
    while max_drop is not None and min(o["sqnr_db"] for o in outputs) < max_drop \
            and rounds < MAX_ROUNDS:
        candidates = [la for la in layers if la.node not in kept]
        if not candidates:
            break
        worst = min(candidates, key=lambda la: la.sqnr_db)
        kept.append(worst.node)
        rounds += 1
        say(f"keeping {worst.node} float ({rounds}/{MAX_ROUNDS})")
        opts = replace(options, keep_float=(*options.keep_float, *kept))
        qdq, _summary = quantize_int8(float_model, opts, calibration, source=source, say=say)
        layers, outputs = measure(float_model, qdq, evaluation.samples)
    total = sum(la.macs for la in first) or 1
    share = sum(la.macs for la in first if la.node in kept) / total
    met = None if max_drop is None else bool(min(o["sqnr_db"] for o in outputs) >= max_drop)
    by_node = {la.node: la for la in first}
    return QuantReport(source, opts, len(calibration.samples), len(evaluation.samples),
                       evaluation.source, [by_node[n] for n in by_node], outputs,
                       first_outputs, kept, share, max_drop, met)


def plot(report: QuantReport, path) -> None:
    """A bar per layer (SQNR, dB), kept-float layers marked: ``--plot``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report.layers
    vals = [min(la.sqnr_db, 99.0) for la in layers]
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(layers) + 2), 4))
    colors = ["tab:orange" if la.node in report.kept_float else "tab:blue" for la in layers]
    ax.bar(range(len(layers)), vals, color=colors)
    ax.set_xticks(range(len(layers)), [la.node for la in layers], rotation=90, fontsize=6)
    ax.set_ylabel("SQNR vs float (dB)")
    if report.budget_db is not None:
        ax.axhline(report.budget_db, color="tab:red", linestyle="--", label="--max-drop")
        ax.legend()
    ax.set_title(f"{report.model}: int8 error per layer (orange: kept float)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

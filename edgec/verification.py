"""Compare edgec's outputs with onnxruntime's under explicit per-dtype tolerances.

An element passes when |edgec - ref| <= atol + rtol * |ref| (numpy's allclose
rule); integer and boolean outputs must match exactly; NaN must meet NaN.
The defaults are documented in the README and overridable per run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

#: dtype -> (rtol, atol). Float tolerances allow for reassociated sums and
#: fused multiply-adds in TVM's kernels; they are far below any real bug.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-9),
    "float32": (1e-3, 1e-4),
    "float16": (1e-2, 1e-3),
    "bfloat16": (5e-2, 1e-2),
}
#: quantised artifacts are judged by signal-to-quantisation-noise ratio against
#: onnxruntime's float32 run, not by float tolerances: 20 dB is noise at a tenth
#: of the signal's amplitude (int8 models that keep accuracy measure 25-45 dB on
#: their logits); float16 keeps about 3 decimal digits
DEFAULT_MIN_SQNR: dict[str, float] = {"int8": 20.0, "fp16": 40.0}


def sqnr_db(got: np.ndarray, ref: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (got - ref)^2) in dB; inf when equal, -inf for a
    zero reference that ``got`` does not match."""
    f, g = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    noise = float(np.sum((g - f) ** 2))
    signal = float(np.sum(f ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * np.log10(signal / noise)


def tolerance_for(dtype: str, rtol: float | None = None,
                  atol: float | None = None) -> tuple[float, float]:
    """``(rtol, atol)`` for outputs of ``dtype``: the default, overridden where given.

    Dtypes without a default (integers, booleans) get ``(0, 0)``: exact match.
    """
    base = DEFAULT_TOLERANCES.get(dtype, (0.0, 0.0))
    return (base[0] if rtol is None else rtol, base[1] if atol is None else atol)


@dataclass(frozen=True)
class OutputCheck:
    """How one output compared with onnxruntime's.

    Attributes:
        name: the output's name.
        shape: onnxruntime's shape of it.
        dtype: onnxruntime's dtype name.
        max_abs_err: the largest ``|edgec - ref|`` (inf on a shape, dtype or NaN
            disagreement).
        max_rel_err: the largest ``|edgec - ref| / |ref|`` over elements where
            ``|ref| > atol`` (near zero the absolute term governs).
        rtol: the relative tolerance applied.
        atol: the absolute tolerance applied.
        mismatched: how many elements are outside tolerance.
        ok: True when none is.
        problem: a shape, dtype or NaN disagreement in words, else "".
        sqnr_db: for a quantised artifact, the output's SQNR against onnxruntime's
            float32 output (dB); None otherwise.
        min_sqnr_db: the SQNR it had to reach (the pass rule for quantised artifacts).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_err: float
    max_rel_err: float
    rtol: float
    atol: float
    mismatched: int  # elements outside tolerance
    ok: bool
    problem: str = ""  # shape/dtype/NaN disagreement, if any
    sqnr_db: float | None = None  # quantised artifacts: measured against float32
    min_sqnr_db: float | None = None  # and the floor it must reach

    def to_json(self) -> dict:
        """The fields as a plain dict (``verify --json``'s ``outputs`` entries)."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def compare_output(name: str, got: np.ndarray, ref: np.ndarray, *, rtol: float | None = None,
                   atol: float | None = None) -> OutputCheck:
    """Compare one output ``got`` with the reference ``ref`` under ``dtype``'s tolerances.

    An element passes when ``|got - ref| <= atol + rtol * |ref|``; NaN must meet
    NaN and an infinity the same infinity.
    """
    dtype = str(ref.dtype)
    r, a = tolerance_for(dtype, rtol, atol)
    if got.shape != ref.shape or got.dtype != ref.dtype:
        return OutputCheck(name, tuple(ref.shape), dtype, float("inf"), float("inf"), r, a,
                           int(ref.size), False,
                           f"edgec gives {got.dtype}{list(got.shape)}, "
                           f"onnxruntime {ref.dtype}{list(ref.shape)}")
    if ref.size == 0:
        return OutputCheck(name, tuple(ref.shape), dtype, 0.0, 0.0, r, a, 0, True)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is handled below
        return _compare_values(name, got, ref, dtype, r, a)


def _compare_values(name: str, got: np.ndarray, ref: np.ndarray, dtype: str, r: float,
                    a: float) -> OutputCheck:
    g = got.astype(np.float64)
    f = ref.astype(np.float64)
    nan_g, nan_f = np.isnan(g), np.isnan(f)
    both_nan = nan_g & nan_f
    diff = np.where(both_nan, 0.0, np.abs(g - f))
    diff = np.where(nan_g ^ nan_f, np.inf, diff)
    same_inf = np.isinf(f) & (g == f)
    diff = np.where(same_inf, 0.0, diff)
    bad = diff > a + r * np.abs(np.where(np.isfinite(f), f, 0.0))
    # Relative error only where the reference is not ~0 (|ref| > atol): near zero
    # it is meaningless and the absolute term of the rule governs.
    big = np.abs(f) > max(a, np.finfo(np.float64).tiny)
    rel = np.where(big & (diff > 0), diff / np.where(big, np.abs(f), 1.0), 0.0)
    problem = "NaN where onnxruntime has a number (or the reverse)" if (nan_g ^ nan_f).any() \
        else ""
    return OutputCheck(name, tuple(ref.shape), dtype, float(diff.max()), float(rel.max()), r, a,
                       int(bad.sum()), not bad.any(), problem)


def compare_quantized(name: str, got: np.ndarray, ref: np.ndarray,
                      min_sqnr: float) -> OutputCheck:
    """A quantised output against the float reference: SQNR and the largest error;
    it passes when the SQNR reaches ``min_sqnr`` dB."""
    base = compare_output(name, got, ref, rtol=0.0, atol=0.0)
    if base.problem and got.shape != ref.shape:
        return base
    db = sqnr_db(got, ref) if ref.size else float("inf")
    finite = np.isfinite(got).all() == np.isfinite(ref).all()
    ok = bool(finite and db >= min_sqnr)
    problem = "" if ok else base.problem or f"SQNR {db:.1f} dB < {min_sqnr:g} dB"
    return OutputCheck(name, base.shape, base.dtype, base.max_abs_err, base.max_rel_err,
                       0.0, 0.0, 0 if ok else int(ref.size), ok, problem, sqnr_db=db,
                       min_sqnr_db=min_sqnr)


def compare_outputs(got: dict[str, np.ndarray], ref: dict[str, np.ndarray], *,
                    rtol: float | None = None, atol: float | None = None,
                    min_sqnr: float | None = None) -> list[OutputCheck]:
    """One `OutputCheck` per reference output, in the reference's order; an output
    edgec did not produce fails. ``min_sqnr``: judge float outputs by SQNR (a
    quantised artifact) instead of tolerances."""
    checks = []
    for name, r in ref.items():
        if name not in got:
            checks.append(OutputCheck(name, tuple(r.shape), str(r.dtype), float("inf"),
                                      float("inf"), 0.0, 0.0, int(r.size), False,
                                      "edgec did not produce this output"))
            continue
        if min_sqnr is not None and r.dtype.kind == "f":
            checks.append(compare_quantized(name, got[name], r, min_sqnr))
        else:
            checks.append(compare_output(name, got[name], r, rtol=rtol, atol=atol))
    return checks


@dataclass
class PartitionCheck:
    """One accelerator partition against onnxruntime, in two ways.

    Op by op (when the plugin has a reference form for single nodes): every
    compute node of the partition run alone in that form on the very int8 inputs
    onnxruntime computed for it, against onnxruntime's output. Integer outputs
    pass when no element differs by more than ``PARTITION_MAX_STEPS`` quantisation
    steps: fixed-point requantisation (TFLite) and onnxruntime's float path round
    halves differently. This is what passes or fails an int8 partition.

    Whole: the partition as the artifact ran it (its runtime hook) against
    onnxruntime running the partition's sub-model on the same inputs. Through a
    deep partition one-step differences compound (a conv sums them), so for int8
    this is reported, not judged; float outputs are judged by the tolerances."""

    partition: str
    runs_as: str  # what ran it here: the plugin runtime hook's label
    outputs: int  # the partition's outputs compared whole
    max_abs_err: float  # whole partition: worst element over its outputs
    exact_share: float  # whole partition: elements equal
    ops: int  # nodes checked alone (0: the plugin has no reference form)
    op_max_err: float  # op by op: worst element
    worst_op: str  # the node with op_max_err
    rule: str
    ok: bool

    def to_json(self) -> dict:
        """The check as a plain dict (``edgec verify --json``'s ``partitions``)."""
        return dict(self.__dict__)


#: integer outputs of one node may differ from onnxruntime by this many steps
PARTITION_MAX_STEPS = 1


def _int_diff(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.abs(got.astype(np.int64) - want.astype(np.int64))


def _ort_all(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime on ``model`` (no graph rewrites), returning every node output."""
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto.FromString(model.SerializeToString())
    have = {o.name for o in m.graph.output}
    for node in m.graph.node:
        m.graph.output.extend(onnx.ValueInfoProto(name=t) for t in node.output
                              if t and t not in have)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


def _op_by_op(session, model, feeds) -> tuple[int, float, str, bool]:
    """(nodes checked, worst difference, its node, all within the rule) of every node
    run alone in the plugin's reference form on onnxruntime's inputs; (0, 0, "", True)
    when the plugin has no reference form."""
    import tempfile
    from pathlib import Path

    from .accel.partition import units

    int8 = session.plugin.precision == "int8"
    values = None  # onnxruntime's every tensor, once a node has a reference form
    worst, where, count, ok = 0.0, "", 0, True
    with tempfile.TemporaryDirectory(prefix="edgec-verify-ops-") as tmp:
        for name, unit in units(model, int8):
            runner = session.plugin.reference(unit, Path(tmp), session.config)
            if runner is None:
                return 0, 0.0, "", True
            if values is None:
                values = {**feeds, **_ort_all(model, feeds)}
            got = runner({i.name: values[i.name] for i in unit.graph.input})
            for o in unit.graph.output:
                if int8:
                    d = _int_diff(got[o.name], values[o.name])
                    ok = ok and (not d.size or d.max() <= PARTITION_MAX_STEPS)
                else:
                    d = np.abs(got[o.name] - values[o.name])
                    ok = ok and compare_output(o.name, got[o.name], values[o.name]).ok
                err = float(d.max()) if d.size else 0.0
                if err > worst or not where:
                    worst, where = err, name
            count += 1
    return count, worst, where, ok


def check_partitions(artifact, feeds: dict[str, np.ndarray]) -> list[PartitionCheck]:
    """Every accelerator partition of ``artifact`` against onnxruntime (see PartitionCheck)."""
    import onnx

    from .reference import run_reference

    session = artifact.session()
    env = session.run_steps(feeds)
    checks = []
    for step in session.steps:
        if step.device == "cpu":
            continue
        path = session.extracted(step.entry["model"])
        inputs = {s.name: env[s.name] for s in step.inputs}
        ref = run_reference(path, inputs)
        worst, exact, total, float_ok = 0.0, 0, 0, True
        for spec in step.outputs:
            got, want = env[spec.name], ref[spec.name]
            if np.dtype(spec.dtype).kind in "iu":
                d = _int_diff(got, want)
            else:
                c = compare_output(spec.name, got, want)
                d, float_ok = np.abs(got - want), float_ok and c.ok
            worst = max(worst, float(d.max()) if d.size else 0.0)
            exact += int(np.sum(d == 0))
            total += d.size
        ops, op_worst, op_name, ok = _op_by_op(session, onnx.load(path), inputs)
        if ops:
            rule = (f"each op alone: |diff| <= {PARTITION_MAX_STEPS} step"
                    if session.plugin.precision == "int8"
                    else "each op alone within float tolerances")
        else:
            rule, ok = "whole partition within float tolerances", float_ok
        checks.append(PartitionCheck(step.device, step.label, len(step.outputs), worst,
                                     round(exact / total, 4) if total else 1.0, ops,
                                     op_worst, op_name, rule, bool(ok)))
    return checks


@dataclass
class VerifyReport:
    """Result of running an artifact and onnxruntime on the same inputs (`edgec.verify`).

    Attributes:
        artifact: the artifact's path.
        model: the ONNX file onnxruntime ran.
        seed: the seed of the random inputs, or None when the caller gave them.
        checks: one `OutputCheck` per output.
        emulated: True when the artifact ran under qemu-user.
        quantization: the artifact's quantisation record (its outputs are then
            judged by SQNR), or None.
        device: what the remote device the artifact ran on reported about itself
            (``verify --device``), or None when it ran here.
    """

    artifact: str
    model: str
    seed: int | None
    checks: list[OutputCheck]
    emulated: bool = False
    quantization: dict | None = None  # the manifest's, for a quantised artifact
    device: dict | None = None
    partitions: list[PartitionCheck] = field(default_factory=list)  # accelerator artifacts

    @property
    def ok(self) -> bool:
        """True when every output is within tolerance and, for an accelerator artifact,
        every partition matches onnxruntime (what ``edgec verify`` exits 0 for)."""
        return all(c.ok for c in self.checks) and all(p.ok for p in self.partitions)

    def to_json(self) -> dict:
        """The report as a plain dict (``edgec verify --json``)."""
        return {"artifact": self.artifact, "model": self.model, "seed": self.seed,
                "emulated": self.emulated, "ok": self.ok,
                **({"device": self.device} if self.device else {}),
                **({"quantization": self.quantization} if self.quantization else {}),
                "outputs": [c.to_json() for c in self.checks],
                **({"partitions": [p.to_json() for p in self.partitions]}
                   if self.partitions else {})}


def verify_artifact(artifact, model, *, feeds: dict[str, np.ndarray] | None = None,
                    seed: int = 0, rtol: float | None = None, atol: float | None = None,
                    emulate: bool | None = None, min_sqnr: float | None = None,
                    device=None) -> tuple[VerifyReport, dict[str, np.ndarray]]:
    """Run ``artifact`` and onnxruntime on ``model`` with the same inputs and compare.

    A quantised artifact's float outputs pass when their SQNR against
    onnxruntime's float32 run reaches ``min_sqnr`` dB (default
    DEFAULT_MIN_SQNR for its mode); other artifacts use the tolerances.

    Returns the report and the inputs used. Inputs bound to constants at
    compile time are fed to onnxruntime with the same values. ``emulate``
    (default: when this machine cannot run the artifact but qemu can) runs
    an aarch64 artifact through its C bundle under qemu-user. ``device`` (an
    `edgec.runtime.device.client.RemoteSession`) runs it on a remote device instead.
    """
    from pathlib import Path

    from .artifact import sha256_file
    from .errors import UsageError
    from .reference import run_reference
    from .tensors import random_inputs

    model = Path(model)
    if not model.is_file():
        raise UsageError(f"{model}: no such file; give the ONNX model the artifact was "
                         "compiled from")
    expected = artifact.manifest["source_model"]["sha256"]
    if sha256_file(model) != expected:
        raise UsageError(f"{model}: not the model {artifact.path} was compiled from (sha256 "
                         f"differs from the manifest's {expected[:12]}...); give the right "
                         "model or recompile")
    if feeds is None:
        feeds = random_inputs(artifact.inputs, seed=seed, int_bounds=artifact.input_bounds)
        used_seed: int | None = seed
    else:
        used_seed = None
    if device is not None:
        emulate = False
        got = device.run(feeds)
    else:
        if emulate is None:
            emulate = artifact.needs_emulation
        got = artifact.run(feeds, emulate=emulate)
    consts = {k: np.asarray(v) for k, v in
              artifact.manifest["bindings"].get("input_consts", {}).items()}
    ref_feeds = dict(feeds)
    for name, value in consts.items():
        ref_feeds[name] = value
    ref = run_reference(model, ref_feeds)
    quant = artifact.manifest.get("quantization")
    if quant and min_sqnr is None:
        min_sqnr = DEFAULT_MIN_SQNR[quant["mode"]]
    elif not quant and min_sqnr is not None:
        raise UsageError(f"{artifact.path}: --min-sqnr is for quantised artifacts; this one "
                         "is float32 (use --rtol/--atol)")
    report = VerifyReport(str(artifact.path), str(model), used_seed,
                          compare_outputs(got, ref, rtol=rtol, atol=atol,
                                          min_sqnr=min_sqnr if quant else None),
                          emulated=emulate, quantization=quant,
                          device=device.device.info if device is not None else None)
    if artifact.offload is not None:
        report.partitions = check_partitions(artifact, feeds)
    return report, feeds


"""Does int8 keep PP-OCR's accuracy? Float vs a candidate engine on rendered text.

    python benchmarks/accuracy/run_accuracy.py                       # ort_float vs ort_int8
    python benchmarks/accuracy/run_accuracy.py --readme README.md    # ... and the table there
    python benchmarks/accuracy/run_accuracy.py --prepare-only        # calibration data only
    python benchmarks/accuracy/run_accuracy.py --edgec-artifacts DIR # vs DIR/{det,rec,cls}.edgec

Models (models/real/, from the rapidocr-onnxruntime 1.4.4 wheel): PP-OCRv4 det and rec,
PP-OCR mobile v2.0 cls. Data (render.py): calibration and evaluation sets rendered from
different seeds, checked disjoint. Every model runs at one fixed shape (ocr.py):
det 1x3x640x640, rec 1x3x48x320, cls 1x3x48x192.

An engine is ``fn(model, feeds) -> list of outputs`` with model one of "det", "rec", "cls"
and feeds ``{input name: array}`` at those shapes. --engine / --reference take a name from
ENGINES or ``module:factory`` (``factory(ctx: Context) -> engine``).

Calibration data is written as ``WORKDIR/calib/<model>/<k>.npz`` (one array per input
name), the layout ``edgec compile --quantize int8 --calibration DIR`` takes.

Goals (the issue): rec exact-match drop <= 1 point, cls accuracy drop <= 1 point,
det box F1 of the candidate against the reference's boxes >= 0.97.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import ocr  # noqa: E402
import render  # noqa: E402

BEGIN, END = "<!-- accuracy:begin -->", "<!-- accuracy:end -->"
CALIB_SEED, EVAL_SEED = 1000, 2000
#: for the cls set, every line is also shown rotated by 180 degrees; calibration lines
#: alternate upright / rotated


@dataclass(frozen=True)
class ModelInfo:
    name: str
    file: str
    input: str
    shape: tuple[int, ...]

    @property
    def path(self) -> Path:
        return REPO / "models" / "real" / self.file


MODELS = {
    "det": ModelInfo("det", "ch_PP-OCRv4_det_infer.onnx", "x", ocr.DET_SHAPE),
    "rec": ModelInfo("rec", "ch_PP-OCRv4_rec_infer.onnx", "x", ocr.REC_SHAPE),
    "cls": ModelInfo("cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx", "x", ocr.CLS_SHAPE),
}

Engine = Callable[[str, dict[str, np.ndarray]], list[np.ndarray]]


@dataclass
class Context:
    """What an engine factory may use."""

    workdir: Path
    calib_dir: Path  # calib_dir / <model> / <k>.npz
    threads: int = 2
    edgec_artifacts: Path | None = None
    quant: QuantConfig = field(default_factory=lambda: QuantConfig())
    calib_digest: dict[str, str] = field(default_factory=dict)  # model -> sha256
    log: Callable[[str], None] = print


# ---------------------------------------------------------------- engines

class OrtEngine:
    """onnxruntime on one ONNX file per model (CPU, ``threads`` intra-op threads)."""

    def __init__(self, paths: dict[str, Path], threads: int = 2, label: str = "onnxruntime"):
        self.paths = paths
        self.threads = threads
        self.label = label
        self._sessions: dict = {}

    def session(self, model: str):
        if model not in self._sessions:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            so.log_severity_level = 3
            self._sessions[model] = ort.InferenceSession(
                str(self.paths[model]), so, providers=["CPUExecutionProvider"])
        return self._sessions[model]

    def __call__(self, model: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session(model).run(None, feeds)


def ort_float(ctx: Context) -> OrtEngine:
    import onnxruntime as ort

    return OrtEngine({m: info.path for m, info in MODELS.items()}, ctx.threads,
                     f"onnxruntime {ort.__version__}, float32 (the models as shipped)")


#: per-channel QDQ needs DequantizeLinear's axis attribute: opset 13
MIN_QDQ_OPSET = 13


def fix_input_shape(src: Path, dst: Path, name: str, shape: tuple[int, ...]) -> None:
    """Copy of ``src`` with input ``name`` at ``shape``, no stale output/value shapes, and
    the default-domain opset raised to 13 when lower (det and rec are opset 12, cls 11)."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(src))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < MIN_QDQ_OPSET:
        model = version_converter.convert_version(model, MIN_QDQ_OPSET)
    for inp in model.graph.input:
        if inp.name == name:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, shape, strict=True):
                d.Clear()
                d.dim_value = v
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    onnx.save(model, str(dst))


class NpzReader:
    """onnxruntime CalibrationDataReader over DIR/*.npz (sorted by name)."""

    def __init__(self, folder: Path):
        self.files = sorted(folder.glob("*.npz"))
        self._it = iter(self.files)

    def get_next(self):
        f = next(self._it, None)
        if f is None:
            return None
        with np.load(f) as z:
            return {k: z[k] for k in z.files}

    def rewind(self):
        self._it = iter(self.files)


@dataclass(frozen=True)
class QuantConfig:
    """How ort_int8 quantises: edgec's --quantize int8 defaults unless told otherwise."""

    method: str = "minmax"  # minmax | percentile | entropy (edgec --calib-method)
    op_types: tuple[str, ...] = ()  # only these op types (default: onnxruntime's list)
    activations: str = "uint8"  # uint8 | uint16 (16-bit: a diagnostic, not int8)
    float_outputs: bool = False  # the quantised ops' outputs stay float (edgec's scheme)

    def describe(self) -> str:
        ops = "+".join(self.op_types) if self.op_types else "all ops"
        return (f"QDQ, per-channel int8 weights, {self.activations} activations, "
                f"{self.method} calibration, {ops}"
                + (", float outputs" if self.float_outputs else ""))

    def to_json(self) -> dict:
        return {"method": self.method, "op_types": list(self.op_types),
                "activations": self.activations, "float_outputs": self.float_outputs}


def quantize_ort(info: ModelInfo, calib: Path, out: Path, cfg: QuantConfig = QuantConfig(),
                 log=print) -> Path:
    """The QDQ model of ``info`` calibrated on ``calib/*.npz``: fixed input shape at
    opset >= 13, onnxruntime's quant_pre_process, then quantize_static with per-channel
    int8 weights and (by default) uint8 activations, min/max calibration: edgec's
    --quantize int8 defaults."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out.parent.mkdir(parents=True, exist_ok=True)
    fixed = out.with_name(f"{info.name}.fixed.onnx")
    pre = out.with_name(f"{info.name}.pre.onnx")
    t0 = time.perf_counter()
    fix_input_shape(info.path, fixed, info.input, info.shape)
    try:
        quant_pre_process(str(fixed), str(pre))
    except Exception as exc:  # the cls model's Concat trips the symbolic shape inference
        log(f"  {info.name}: quant_pre_process failed ({type(exc).__name__}: {exc}); "
            "again with skip_symbolic_shape=True (the input shape is fixed, so onnx's own "
            "shape inference suffices)")
        quant_pre_process(str(fixed), str(pre), skip_symbolic_shape=True)
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[cfg.method]
    act = {"uint8": QuantType.QUInt8, "uint16": QuantType.QUInt16}[cfg.activations]
    kw = {"op_types_to_quantize": list(cfg.op_types)} if cfg.op_types else {}
    if cfg.float_outputs:
        kw["extra_options"] = {"OpTypesToExcludeOutputQuantization": list(cfg.op_types)}
        import onnx

        m = onnx.load(str(pre))
        consts = {t.name for t in m.graph.initializer} | \
            {o for n in m.graph.node if n.op_type == "Constant" for o in n.output}
        kw["nodes_to_exclude"] = [n.name for n in m.graph.node if n.op_type == "MatMul"
                                  and not any(i in consts for i in n.input)]
    quantize_static(str(pre), str(out), NpzReader(calib),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=act, weight_type=QuantType.QInt8,
                    calibrate_method=method, **kw)
    log(f"  quantised {info.name}: {len(list(calib.glob('*.npz')))} samples, "
        f"{time.perf_counter() - t0:.1f} s -> {out}")
    return out


def ort_int8(ctx: Context) -> OrtEngine:
    """onnxruntime on QDQ models made here from the calibration set, cached in
    WORKDIR/int8-<config>/ and remade when the calibration data or the config changes."""
    cfg = ctx.quant
    tag = f"{cfg.method}-{cfg.activations}" + ("-" + "+".join(cfg.op_types)
                                                 if cfg.op_types else "") \
        + ("-float-out" if cfg.float_outputs else "")
    paths = {}
    for m, info in MODELS.items():
        out = ctx.workdir / f"int8-{tag}" / f"{m}.int8.onnx"
        stamp = out.with_suffix(".json")
        key = {"calibration": ctx.calib_digest.get(m), "config": cfg.to_json(),
               "model": info.file, "shape": list(info.shape)}
        if not (out.exists() and stamp.exists() and json.loads(stamp.read_text()) == key):
            quantize_ort(info, ctx.calib_dir / m, out, cfg, ctx.log)
            stamp.write_text(json.dumps(key) + "\n")
        paths[m] = out
    import onnxruntime as ort

    return OrtEngine(paths, ctx.threads,
                     f"onnxruntime {ort.__version__} quantize_static: {cfg.describe()}")


class EdgecEngine:
    """edgec artifacts DIR/det.edgec, DIR/rec.edgec, DIR/cls.edgec (compiled from the
    same models with --input-shape at MODELS' shapes), run in this process."""

    def __init__(self, folder: Path):
        import edgec

        self.artifacts = {}
        modes = []
        for m in MODELS:
            path = folder / f"{m}.edgec"
            if not path.exists():
                raise SystemExit(f"run_accuracy: {path} is missing; compile it with the "
                                 f"command --prepare-only prints")
            self.artifacts[m] = edgec.load(path)
            man = self.artifacts[m].manifest
            q = man.get("quantization") or _find_key(man, "quantize")
            mode = q.get("mode", "?") if isinstance(q, dict) else "float32"
            kept = q.get("kept_float", []) if isinstance(q, dict) else []
            if kept:
                mode += (f" with {len(kept)} of {len(kept) + q.get('quantized_ops', 0)} "
                         "conv/matmul layers kept float")
            modes.append(f"{m} {mode}")
        shown = folder.resolve()
        shown = shown.relative_to(REPO) if shown.is_relative_to(REPO) else shown
        self.label = f"edgec artifacts in {shown} ({', '.join(modes)})"

    def __call__(self, model: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        art = self.artifacts[model]
        outs = art.run(feeds)
        return [outs[spec.name] for spec in art.outputs]


def _find_key(tree, key: str):
    """The first value under ``key`` anywhere in a JSON-like tree (None: none)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        tree = list(tree.values())
    if isinstance(tree, list):
        for v in tree:
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def edgec_engine(ctx: Context) -> EdgecEngine:
    if ctx.edgec_artifacts is None:
        raise SystemExit("run_accuracy: --engine edgec needs --edgec-artifacts DIR")
    return EdgecEngine(ctx.edgec_artifacts)


ENGINES: dict[str, Callable[[Context], Engine]] = {
    "ort_float": ort_float,
    "ort_int8": ort_int8,
    "edgec": edgec_engine,
}


def make_engine(name: str, ctx: Context) -> Engine:
    if name in ENGINES:
        return ENGINES[name](ctx)
    if ":" in name:
        mod, _, attr = name.partition(":")
        return getattr(importlib.import_module(mod), attr)(ctx)
    raise SystemExit(f"run_accuracy: unknown engine {name!r}; choose one of "
                     f"{', '.join(ENGINES)} or give module:factory")


# ---------------------------------------------------------------- data

@dataclass
class DataSet:
    lines: list[render.Line]
    pages: list[render.Page]
    seed: int


def make_dataset(seed: int, n_lines: int, n_pages: int, cs: render.Charset) -> DataSet:
    lines = [render.render_line(seed, i, cs) for i in range(n_lines)]
    # pages use their own stream so the number of lines does not change them
    pages = [render.render_page(seed + 1, i, cs) for i in range(n_pages)]
    return DataSet(lines, pages, seed)


def check_disjoint(calib: DataSet, evals: DataSet) -> dict[str, int]:
    """Calibration and evaluation share no image (and no line text); returns the counts."""
    ci = {render.image_digest(x.image) for x in calib.lines}
    ci |= {render.image_digest(p.image) for p in calib.pages}
    ei = {render.image_digest(x.image) for x in evals.lines}
    ei |= {render.image_digest(p.image) for p in evals.pages}
    shared_images = len(ci & ei)
    shared_texts = len({x.text for x in calib.lines} & {x.text for x in evals.lines})
    if shared_images:
        raise SystemExit(f"run_accuracy: {shared_images} images in both calibration and "
                         "evaluation sets")
    return {"shared_images": shared_images, "shared_line_texts": shared_texts}


def cls_inputs(lines: list[render.Line], alternate: bool) -> list[tuple[np.ndarray, str]]:
    """(input, label) for cls: alternate -> every other line rotated (calibration);
    else each line upright and rotated (evaluation)."""
    out = []
    for i, line in enumerate(lines):
        if alternate:
            rot = i % 2 == 1
            img = render.rotate180(line.image) if rot else line.image
            out.append((ocr.cls_preprocess(img), "180" if rot else "0"))
        else:
            out.append((ocr.cls_preprocess(line.image), "0"))
            out.append((ocr.cls_preprocess(render.rotate180(line.image)), "180"))
    return out


def write_calibration(ds: DataSet, folder: Path) -> dict[str, dict]:
    """folder/<model>/<k>.npz, one array per input name, at MODELS' shapes; a folder
    whose samples are already these (by sha256, in folder/<model>.sha256) is left as it
    is, so the int8 models made from it stay valid. Returns {model: {samples, sha256}}."""
    samples = {
        "det": [ocr.det_preprocess(p.image)[0] for p in ds.pages],
        "rec": [ocr.rec_preprocess(x.image) for x in ds.lines],
        "cls": [x for x, _ in cls_inputs(ds.lines, alternate=True)],
    }
    out = {}
    for m, arrays in samples.items():
        h = hashlib.sha256()
        for a in arrays:
            assert a.shape == MODELS[m].shape, (m, a.shape)
            h.update(np.ascontiguousarray(a).tobytes())
        digest = h.hexdigest()
        d, stamp = folder / m, folder / f"{m}.sha256"
        fresh = (stamp.exists() and stamp.read_text().strip() == digest
                 and len(list(d.glob("*.npz"))) == len(arrays))
        if not fresh:
            d.mkdir(parents=True, exist_ok=True)
            for old in d.glob("*.npz"):
                old.unlink()
            for k, a in enumerate(arrays):
                np.savez(d / f"{k:04d}.npz", **{MODELS[m].input: a})
            stamp.write_text(digest + "\n")
        out[m] = {"samples": len(arrays), "sha256": digest}
    return out


# ---------------------------------------------------------------- evaluation

@dataclass
class Predictions:
    rec: list[str] = field(default_factory=list)
    cls: list[str] = field(default_factory=list)
    det: list[list[ocr.Box]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def predict(engine: Engine, ds: DataSet, labels: list[str],
            cls_set: list[tuple[np.ndarray, str]]) -> Predictions:
    pr = Predictions()
    t0 = time.perf_counter()
    for line in ds.lines:
        probs = engine("rec", {"x": ocr.rec_preprocess(line.image)})[0]
        pr.rec.append(ocr.ctc_greedy_decode(probs, labels)[0][0])
    t1 = time.perf_counter()
    for x, _ in cls_set:
        pr.cls.append(ocr.cls_decode(engine("cls", {"x": x})[0])[0][0])
    t2 = time.perf_counter()
    for page in ds.pages:
        x, scale = ocr.det_preprocess(page.image)
        prob = engine("det", {"x": x})[0]
        pr.det.append(ocr.db_postprocess(prob, scale=scale,
                                          dest_hw=(page.image.height, page.image.width)))
    t3 = time.perf_counter()
    pr.seconds = {"rec": t1 - t0, "cls": t2 - t1, "det": t3 - t2}
    return pr


def rec_metrics(texts: list[str], ds: DataSet) -> dict:
    gts = [ocr.normalise_text(x.text) for x in ds.lines]
    hyps = [ocr.normalise_text(t) for t in texts]
    exact = [g == h for g, h in zip(gts, hyps, strict=True)]
    edits = sum(ocr.edit_distance(g, h) for g, h in zip(gts, hyps, strict=True))
    by_kind: dict[str, list[bool]] = {}
    for line, ok in zip(ds.lines, exact, strict=True):
        by_kind.setdefault(line.kind, []).append(ok)
    return {"n": len(gts), "exact_match": 100.0 * float(np.mean(exact)),
            "cer": 100.0 * edits / max(1, sum(len(g) for g in gts)),
            "exact_match_by_kind": {k: {"n": len(v), "exact_match": 100.0 * float(np.mean(v))}
                                    for k, v in sorted(by_kind.items())}}


def cls_metrics(pred: list[str], cls_set: list[tuple[np.ndarray, str]]) -> dict:
    gold = [lab for _, lab in cls_set]
    ok = np.array([p == g for p, g in zip(pred, gold, strict=True)])
    up = np.array([g == "0" for g in gold])
    return {"n": len(gold), "accuracy": 100.0 * float(ok.mean()),
            "accuracy_upright": 100.0 * float(ok[up].mean()),
            "accuracy_rotated": 100.0 * float(ok[~up].mean())}


def det_metrics(pred: list[list[ocr.Box]], ref: list[list[ocr.Box]]) -> dict:
    m = np.array([ocr.match_boxes(p, r) for p, r in zip(pred, ref, strict=True)]).sum(0)
    return {**ocr.prf(int(m[0]), int(m[1]), int(m[2])), "matched": int(m[0]),
            "boxes": int(m[1]), "reference_boxes": int(m[2])}


def agreement(a: list[str], b: list[str]) -> float:
    """% of items where both give the same (normalised) text."""
    return 100.0 * float(np.mean([ocr.normalise_text(x) == ocr.normalise_text(y)
                                  for x, y in zip(a, b, strict=True)]))


# ---------------------------------------------------------------- report

def table(res: dict) -> str:
    ref, cand = res["reference"]["metrics"], res["candidate"]["metrics"]
    rname, cname = res["reference"]["engine"], res["candidate"]["engine"]
    rows = []

    def row(model, metric, r, c, drop, goal, met):
        rows.append(f"| {model} | {metric} | {r} | {c} | {drop} | {goal} | {met} |")

    g = res["goals"]
    d = ref["rec"]["exact_match"] - cand["rec"]["exact_match"]
    row("rec", "exact match, %", f"{ref['rec']['exact_match']:.1f}",
        f"{cand['rec']['exact_match']:.1f}", f"{d:+.1f} pt", "drop <= 1 pt",
        "yes" if g["rec_exact_match"]["met"] else "**no**")
    row("rec", "character error rate, %", f"{ref['rec']['cer']:.2f}",
        f"{cand['rec']['cer']:.2f}", f"{cand['rec']['cer'] - ref['rec']['cer']:+.2f} pt",
        "", "")
    row("rec", f"same text as {rname}, %", "100.0",
        f"{res['candidate']['agreement']['rec']:.1f}", "", "", "")
    d = ref["cls"]["accuracy"] - cand["cls"]["accuracy"]
    row("cls", "accuracy (upright + rotated), %", f"{ref['cls']['accuracy']:.1f}",
        f"{cand['cls']['accuracy']:.1f}", f"{d:+.1f} pt", "drop <= 1 pt",
        "yes" if g["cls_accuracy"]["met"] else "**no**")
    row("cls", "accuracy upright / rotated, %",
        f"{ref['cls']['accuracy_upright']:.1f} / {ref['cls']['accuracy_rotated']:.1f}",
        f"{cand['cls']['accuracy_upright']:.1f} / {cand['cls']['accuracy_rotated']:.1f}",
        "", "", "")
    dv = cand["det_vs_reference"]
    row("det", f"box F1 against {rname}'s boxes", "1.000", f"{dv['f1']:.3f}", "",
        ">= 0.97", "yes" if g["det_f1_vs_reference"]["met"] else "**no**")
    row("det", "box recall / precision against them", "1.000 / 1.000",
        f"{dv['recall']:.3f} / {dv['precision']:.3f}", "", "", "")
    rg, cg = ref["det_vs_rendered"], cand["det_vs_rendered"]
    row("det", "box F1 against the rendered text", f"{rg['f1']:.3f}", f"{cg['f1']:.3f}",
        f"{rg['f1'] - cg['f1']:+.3f}", "", "")
    d = res["data"]
    head = (f"PP-OCR (rapidocr-onnxruntime 1.4.4 models) on text rendered by "
            f"benchmarks/accuracy: {d['eval_lines']} lines (cls: each upright and "
            f"rotated), {d['eval_pages']} pages with {dv['reference_boxes']} "
            f"{rname} boxes; calibration {d['calib_lines']} lines and {d['calib_pages']} "
            f"pages from another seed. Fixed shapes det 1x3x640x640, rec 1x3x48x320, "
            f"cls 1x3x48x192.\nfloat: {res['reference']['label']}; int8: "
            f"{res['candidate']['label']}.")
    lines = [head, "",
             f"| model | metric | float ({rname}) | int8 ({cname}) | drop | goal | met? |",
             "| --- | --- | ---: | ---: | ---: | --- | --- |", *rows]
    kinds = " · ".join(
        f"{k} {ref['rec']['exact_match_by_kind'][k]['exact_match']:.1f} → "
        f"{v['exact_match']:.1f}" for k, v in cand["rec"]["exact_match_by_kind"].items())
    lines += ["", f"rec exact match by text kind, float → int8 (%): {kinds}."]
    return "\n".join(lines)


def replace_block(path: Path, block: str | None) -> None:
    """Put ``block`` between the BEGIN and END markers of ``path`` (None: only check that
    the markers are there)."""
    text = path.read_text(encoding="utf-8")
    b, e = text.find(BEGIN), text.find(END)
    if b < 0 or e < b:
        raise SystemExit(f"run_accuracy: {path} has no '{BEGIN}' ... '{END}' block; add "
                         "the two markers where the table goes")
    if block is not None:
        path.write_text(text[:b + len(BEGIN)] + "\n" + block + "\n" + text[e:],
                        encoding="utf-8")


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", help="the candidate (default ort_int8, or edgec with "
                    "--edgec-artifacts)")
    ap.add_argument("--reference", default="ort_float", help="the float baseline")
    ap.add_argument("--edgec-artifacts", type=Path, metavar="DIR",
                    help="DIR/det.edgec, DIR/rec.edgec, DIR/cls.edgec for --engine edgec")
    ap.add_argument("--workdir", type=Path, default=HERE / "work",
                    help="calibration data and int8 models (default %(default)s)")
    ap.add_argument("--lines", type=int, default=300, help="evaluation lines")
    ap.add_argument("--pages", type=int, default=50, help="evaluation pages")
    ap.add_argument("--calib-lines", type=int, default=64)
    ap.add_argument("--calib-pages", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=HERE / "results.json")
    ap.add_argument("--readme", type=Path, help="replace the accuracy block in this file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    ap.add_argument("--calib-method", choices=("minmax", "percentile", "entropy"),
                    default="minmax", help="ort_int8's calibration (default %(default)s)")
    ap.add_argument("--quantize-ops", default="", metavar="OP,OP",
                    help="ort_int8 quantises only these op types, e.g. Conv,Gemm,MatMul "
                    "(default: onnxruntime's full list)")
    ap.add_argument("--float-outputs", action="store_true",
                    help="with --quantize-ops: their outputs stay float")
    ap.add_argument("--activations", choices=("uint8", "uint16"), default="uint8",
                    help="ort_int8's activation type (uint16: a diagnostic)")
    ap.add_argument("--prepare-only", action="store_true",
                    help="write the calibration data, print the edgec commands, stop")
    args = ap.parse_args(argv)
    engine_name = args.engine or ("edgec" if args.edgec_artifacts else "ort_int8")

    t_start = time.perf_counter()
    if args.readme:
        replace_block(args.readme, None)  # fail now, not after the run
    if engine_name == "edgec" or args.reference == "edgec":
        if args.edgec_artifacts is None:
            raise SystemExit("run_accuracy: --engine edgec needs --edgec-artifacts DIR")
        missing = [m for m in MODELS if not (args.edgec_artifacts / f"{m}.edgec").exists()]
        if missing and not args.prepare_only:
            raise SystemExit(f"run_accuracy: no {', '.join(f'{m}.edgec' for m in missing)} "
                             f"in {args.edgec_artifacts}; compile them with the commands "
                             "--prepare-only prints")
    for info in MODELS.values():
        if not info.path.exists():
            raise SystemExit(f"run_accuracy: {info.path} is missing: run 'make models'")
    if not render.FONT_PATH.exists():
        raise SystemExit(f"run_accuracy: {render.FONT_PATH} is missing: "
                         f"apt-get install {render.FONT_PACKAGE}")
    characters = ocr.load_character_list(MODELS["rec"].path)
    labels = ocr.ctc_labels(characters)
    cs = render.Charset.build(characters)
    calib = make_dataset(CALIB_SEED, args.calib_lines, args.calib_pages, cs)
    evals = make_dataset(EVAL_SEED, args.lines, args.pages, cs)
    disjoint = check_disjoint(calib, evals)
    calib_dir = args.workdir / "calib"
    written = write_calibration(calib, calib_dir)
    counts = {m: w["samples"] for m, w in written.items()}
    (calib_dir / "manifest.json").write_text(json.dumps(
        {"seed": CALIB_SEED, "lines": args.calib_lines, "pages": args.calib_pages,
         "samples": written, "shapes": {m: list(i.shape) for m, i in MODELS.items()},
         "layout": "<model>/<k>.npz, one array per input name"}, indent=2) + "\n")
    print(f"data: {len(evals.lines)} eval lines, {len(evals.pages)} eval pages; calibration "
          f"{counts} in {calib_dir} ({time.perf_counter() - t_start:.1f} s)")
    if args.prepare_only:
        for m, info in MODELS.items():
            shape = ",".join(map(str, info.shape))
            print(f"  edgec compile {info.path.relative_to(REPO)} --input-shape "
                  f"{info.input}={shape} --quantize int8 --calibration {calib_dir / m} "
                  f"-o {args.edgec_artifacts or 'DIR'}/{m}.edgec")
        return 0

    quant = QuantConfig(args.calib_method,
                        tuple(o for o in args.quantize_ops.split(",") if o), args.activations,
                        args.float_outputs)
    ctx = Context(args.workdir, calib_dir, args.threads, args.edgec_artifacts, quant,
                  {m: w["sha256"] for m, w in written.items()})
    cls_set = cls_inputs(evals.lines, alternate=False)
    results: dict = {"goals": {}, "data": {
        "eval_seed": EVAL_SEED, "calib_seed": CALIB_SEED, "eval_lines": len(evals.lines),
        "eval_pages": len(evals.pages), "calib_lines": len(calib.lines),
        "calib_pages": len(calib.pages), "calib_samples": counts, "disjoint": disjoint,
        "font": f"{render.FONT_PATH} (Debian {render.FONT_PACKAGE})",
        "charset": {"hanzi": len(cs.hanzi), "letters": len(cs.latin + cs.upper),
                    "digits": len(cs.digits), "punct": cs.punct},
        "dictionary": f"{len(characters)} characters from metadata_props['character'] "
                      f"of {MODELS['rec'].file}",
        "shapes": {m: list(i.shape) for m, i in MODELS.items()}}}
    if "ort_int8" in (args.reference, engine_name):
        results["ort_int8_config"] = quant.to_json()
    preds = {}
    for role, name in (("reference", args.reference), ("candidate", engine_name)):
        t0 = time.perf_counter()
        engine = make_engine(name, ctx)
        t1 = time.perf_counter()
        preds[role] = predict(engine, evals, labels, cls_set)
        p = preds[role]
        gt_boxes = [[ocr.Box(*b) for b in page.boxes] for page in evals.pages]
        results[role] = {
            "engine": name, "label": getattr(engine, "label", name),
            "setup_seconds": round(t1 - t0, 2),
            "inference_seconds": {k: round(v, 2) for k, v in p.seconds.items()},
            "metrics": {"rec": rec_metrics(p.rec, evals), "cls": cls_metrics(p.cls, cls_set),
                        "det_vs_rendered": det_metrics(p.det, gt_boxes)}}
        print(f"{role} {name}: setup {t1 - t0:.1f} s, inference "
              f"{sum(p.seconds.values()):.1f} s {results[role]['inference_seconds']}")
    ref, cand = preds["reference"], preds["candidate"]
    results["candidate"]["metrics"]["det_vs_reference"] = det_metrics(cand.det, ref.det)
    results["candidate"]["agreement"] = {"rec": agreement(cand.rec, ref.rec),
                                         "cls": agreement(cand.cls, ref.cls)}
    rm, cm = results["reference"]["metrics"], results["candidate"]["metrics"]
    drop_em = rm["rec"]["exact_match"] - cm["rec"]["exact_match"]
    drop_cls = rm["cls"]["accuracy"] - cm["cls"]["accuracy"]
    f1 = cm["det_vs_reference"]["f1"]
    results["goals"] = {
        "rec_exact_match": {"drop_points": drop_em, "max_drop": 1.0, "met": bool(drop_em <= 1.0)},
        "cls_accuracy": {"drop_points": drop_cls, "max_drop": 1.0, "met": bool(drop_cls <= 1.0)},
        "det_f1_vs_reference": {"f1": f1, "min": 0.97, "met": bool(f1 >= 0.97)}}
    results["examples"] = [
        {"text": x.text, "kind": x.kind, "reference": r, "candidate": c}
        for x, r, c in zip(evals.lines, ref.rec, cand.rec, strict=True)
        if ocr.normalise_text(r) != ocr.normalise_text(c)][:20]
    results["machine"] = {"python": platform.python_version(), "cpu": platform.machine(),
                          "threads": args.threads}
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    md = table(results)
    results["markdown"] = md
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    print()
    print(md)
    print(f"\nwrote {args.json} ({results['seconds']} s in all)")
    if args.readme:
        replace_block(args.readme, md)
        print(f"updated the accuracy block of {args.readme}")
    missed = [k for k, g in results["goals"].items() if not g["met"]]
    if missed and args.strict:
        print(f"run_accuracy: goals missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""TFLite as a yardstick: ONNX -> onnx2tf -> .tflite, run by LiteRT with XNNPACK.

onnx2tf 1.29 (the last release for Python 3.11) pins numpy 1.26, onnx 1.19,
onnxruntime 1.23 and TensorFlow 2.19, which cannot share edgec's environment,
so the converter lives in its own virtualenv, built the first time a bench
needs it (tflite_venv.py says where and how), and runs as a subprocess. The
converted model runs here in LiteRT (``ai-edge-litert``, falling back to
``tflite_runtime``). Conversions are cached by the sha256 of the static-shape
ONNX model and the onnx2tf version; failures are cached with their reason
too, so a model onnx2tf cannot convert costs one attempt.

Nothing here may reach the internet: onnx2tf downloads a calibration sample
for 4-D 3-channel inputs unless the file is already in its working folder, so
a local one is written there, and proxies are pointed at a closed local port
so any other download fails at once instead of leaving the machine.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..artifact import TensorSpec
from ..cache import cache_dir
from ..fsutil import atomic_write
from . import tflite_venv
from .tflite_venv import converter_python
from .timing import EngineRun, time_calls

CALIBRATION = "calibration_image_sample_data_20x128x128x3_float32.npy"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CHANNELS_LAST = {3: (0, 2, 1), 4: (0, 2, 3, 1), 5: (0, 2, 3, 4, 1)}


class TfliteUnavailable(Exception):
    """The TFLite row cannot be produced; the message is the reason for the table."""


def _converter(*, build: bool, progress: tflite_venv.Progress | None = None
               ) -> tuple[Path, str]:
    """(converter Python, 'onnx2tf-version tensorflow-version'); ``build``: make the venv
    if it is missing (a bench about to convert), else only report that it is."""
    if build:
        try:
            py = tflite_venv.ensure(progress)
        except tflite_venv.ConverterUnavailable as exc:
            raise TfliteUnavailable(str(exc)) from None
    else:
        py = converter_python()
        if py is None:
            raise TfliteUnavailable(f"converter not built yet (the first bench with TFLite "
                                    f"or 'make setup' builds it in {tflite_venv.venv_dir()})")
        if not py.exists():
            raise TfliteUnavailable(f"{tflite_venv.PYTHON_ENV}={py} does not exist")
    res = subprocess.run([str(py), "-c", "import importlib.metadata as m; "
                          "print(m.version('onnx2tf'), m.version('tensorflow'))"],
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise TfliteUnavailable(f"{py} has no onnx2tf/tensorflow")
    return py, res.stdout.strip()


def versions() -> str:
    """'onnx2tf X tensorflow Y, litert Z' for reports, or why they are unknown."""
    try:
        conv = _converter(build=False)[1].split()
        conv_text = f"onnx2tf {conv[0]}, tensorflow {conv[1]}"
    except TfliteUnavailable as exc:
        conv_text = str(exc)
    return f"{conv_text}, {_interpreter_version()}"


def _interpreter_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("ai-edge-litert", "tflite-runtime"):
        try:
            return f"{dist} {version(dist)}"
        except PackageNotFoundError:
            continue
    return "no LiteRT"


def _failure_reason(log: str) -> str:
    lines = [_ANSI.sub("", ln).strip() for ln in log.splitlines()]
    op = next((ln.split("onnx_op_name:", 1)[1].strip() for ln in lines
               if "onnx_op_name:" in ln), None)
    exc = next((ln for ln in reversed(lines)
                if re.match(r"^[A-Za-z_.]*(Error|Exception)\b:?", ln)), None)
    parts = [f"at {op}" if op else "", exc or (lines[-1] if lines else "no output")]
    return " ".join(p for p in parts if p)[:300]


def convert(static_onnx: bytes, *, timeout_s: float = 1800,
            progress: tflite_venv.Progress | None = None) -> Path:
    """The cached .tflite (float32) for a static-shape ONNX model, converting if needed
    (and building the converter venv first if needed; ``progress`` gets its one-line
    announcements, stderr by default)."""
    return _convert(static_onnx, [], {}, "model_float32.tflite", timeout_s, progress)


def convert_int8(static_onnx: bytes, samples: list[dict[str, np.ndarray]], *,
                 timeout_s: float = 1800,
                 progress: tflite_venv.Progress | None = None) -> Path:
    """The cached integer-quantised .tflite (int8 weights and activations, per-channel,
    float input and output) that TensorFlow's converter calibrates on ``samples``
    (onnx2tf -oiqt -cind: 4-D inputs go channels last, as the model does)."""
    arrays = {}
    for name in samples[0]:
        stacked = np.concatenate([np.asarray(s[name], np.float32) for s in samples])
        arrays[name] = stacked.transpose(0, 2, 3, 1) if stacked.ndim == 4 else stacked
    args = ["-oiqt", "-qt", "per-channel"]
    files = {}
    for i, (name, a) in enumerate(arrays.items()):  # numbered: names may hold '/' or ':'
        args += ["-cind", name, f"calib-{i}.npy", "[[[[0.0]]]]", "[[[[1.0]]]]"]
        files[f"calib-{i}.npy"] = a
    return _convert(static_onnx, args, files, "model_integer_quant.tflite", timeout_s, progress)


def _convert(static_onnx: bytes, args: list[str], files: dict[str, np.ndarray], product: str,
             timeout_s: float, progress) -> Path:
    py, conv_version = _converter(build=True, progress=progress)
    h = hashlib.sha256(static_onnx + conv_version.encode() + " ".join(args).encode())
    for name in sorted(files):
        h.update(np.ascontiguousarray(files[name]).tobytes())
    slot = cache_dir("tflite", h.hexdigest()[:32])
    done, failed = slot / product, slot / "failed.txt"
    if done.exists():
        return done
    if failed.exists():
        raise TfliteUnavailable(f"conversion failed: {failed.read_text().strip()} (cached)")
    with tempfile.TemporaryDirectory(prefix="edgec-onnx2tf-") as tmp:
        work = Path(tmp)
        (work / "model.onnx").write_bytes(static_onnx)
        np.save(work / CALIBRATION,
                np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
        for name, value in files.items():
            np.save(work / name, value)
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="2",
                   CUDA_VISIBLE_DEVICES="", HTTP_PROXY="http://127.0.0.1:9",
                   HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="")
        # onnx2tf's console script, run through the interpreter (tflite_venv.py: why).
        cmd = [str(py), "-c", "import sys; from onnx2tf import main; sys.exit(main())",
               "-i", "model.onnx", "-o", "out", "-n", "-coion", *args]
        try:
            res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                                 timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise TfliteUnavailable(f"conversion failed: onnx2tf ran over {timeout_s:.0f} s") \
                from None
        made = work / "out" / product
        if res.returncode != 0 or not made.exists():
            reason = _failure_reason(res.stdout + "\n" + res.stderr)
            failed.write_text(reason + "\n")
            raise TfliteUnavailable(f"conversion failed: {reason}")
        with atomic_write(done) as f:
            f.write(made.read_bytes())
    return done


def _interpreter(path: Path, threads: int):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the predecessor, same API
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise TfliteUnavailable("neither ai-edge-litert nor tflite-runtime is "
                                    "installed") from None
    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def _relayout(value: np.ndarray, want: tuple[int, ...], preferred: tuple[int, ...] | None,
              what: str) -> np.ndarray:
    """``value`` transposed to shape ``want``.

    onnx2tf moves channels last (NCHW -> NHWC) and sometimes permutes other
    tensors (silero's state [2,1,128] comes back [1,2,128]). Every permutation
    that gives ``want`` is tried; they must agree on the data (moving size-1
    dims is free), else the channels-last one is taken, else it is an error.
    """
    if value.shape == want:
        return value
    import itertools

    candidates = [p for p in itertools.permutations(range(value.ndim))
                  if tuple(value.shape[i] for i in p) == want]
    if not candidates:
        raise TfliteUnavailable(f"{what}: TFLite tensor {list(want)} is no permutation of "
                                f"{list(value.shape)}")
    results = [np.ascontiguousarray(value.transpose(p)) for p in candidates]
    if all(np.array_equal(results[0], r) for r in results[1:]):
        return results[0]
    if preferred in candidates:
        return results[candidates.index(preferred)]
    raise TfliteUnavailable(f"{what}: cannot tell how TFLite laid out {list(value.shape)} as "
                            f"{list(want)}")


def _to_tflite_layout(value: np.ndarray, want: tuple[int, ...], what: str) -> np.ndarray:
    return _relayout(value, want, _CHANNELS_LAST.get(value.ndim), f"input {what}")


def _to_onnx_layout(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    perm = _CHANNELS_LAST.get(value.ndim)
    back = tuple(int(i) for i in np.argsort(perm)) if perm else None
    return _relayout(value, spec.shape, back, f"output {spec.name}")


def _clean(name: str) -> str:
    return name.removeprefix("serving_default_").split(":")[0]


def run(tflite: Path, feeds: dict[str, np.ndarray], inputs: list[TensorSpec],
        outputs: list[TensorSpec], *, threads: int, warmup: int, repeat: int,
        budget_s: float) -> EngineRun:
    """Run in LiteRT (XNNPACK, ``threads``) on ONNX-layout feeds; outputs in ONNX layout."""
    call, results = prepare(tflite, feeds, inputs, outputs, threads=threads)
    stats = time_calls(call, warmup=warmup, repeat=repeat, budget_s=budget_s)
    return EngineRun(results, stats, threads)


def prepare(tflite: Path, feeds: dict[str, np.ndarray], inputs: list[TensorSpec],
            outputs: list[TensorSpec], *, threads: int):
    """(one timed call, the outputs of a first run, ONNX layout) for a timing loop."""
    it = _interpreter(tflite, threads)
    details = it.get_input_details()
    by_name = {_clean(d["name"]): d for d in details}
    if not all(s.name in by_name for s in inputs):
        by_name = {s.name: d for s, d in zip(inputs, details, strict=False)}
    if len(details) != len(inputs):
        raise TfliteUnavailable(f"the TFLite model has {len(details)} inputs, ONNX "
                                f"{len(inputs)}")
    staged = []
    for s in inputs:
        d = by_name[s.name]
        value = _to_tflite_layout(np.asarray(feeds[s.name]), tuple(d["shape"]), s.name)
        staged.append((d["index"], value.astype(d["dtype"])))
    out_details = it.get_output_details()
    if len(out_details) != len(outputs):
        raise TfliteUnavailable(f"the TFLite model has {len(out_details)} outputs, ONNX "
                                f"{len(outputs)}")
    out_by_name = {_clean(d["name"]): d for d in out_details}
    if not all(s.name in out_by_name for s in outputs):  # names not kept: same order
        out_by_name = {s.name: d for s, d in zip(outputs, out_details, strict=True)}

    def call() -> None:
        for index, value in staged:
            it.set_tensor(index, value)
        it.invoke()

    call()
    results = {s.name: _to_onnx_layout(it.get_tensor(out_by_name[s.name]["index"]), s)
               for s in outputs}
    return call, results

"""Time one engine in a process started for it.

Timed one after another in the bench's own process (after TVM had compiled
the model there), the engines disturbed each other: PP-OCRv4 det ran at a
median of 65 ms inside two ``make bench`` runs and at 43-47 ms in a fresh
process, and onnxruntime's runs came out bimodal. So each engine's warm-up
and timing loop runs in a child process with nothing else in it; the bench
process compiles, converts and compares outputs. The child gets the feeds as
``.npz`` and returns its outputs the same way, with its stats as JSON.

Usage (by ``run_isolated`` only): ``python -m edgec.bench.isolated JOB_DIR``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ModelError, first_line
from ..stats import LatencyStats


class EngineFailed(Exception):
    """The engine could not run the model; ``kind`` says whose fault."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "model", "tflite" (unavailable) or "crash"


def run_isolated(engine: str, model: Path, feeds: dict[str, np.ndarray], *, threads: int,
                 warmup: int, repeat: int, budget_s: float, artifact: Path | None = None,
                 timeout_s: float = 1800):
    """(outputs, stats) of ``engine`` on ``model``, timed in a child process."""
    from ..baselines.timing import EngineRun

    with tempfile.TemporaryDirectory(prefix="edgec-bench-job-") as tmp:
        job = Path(tmp)
        np.savez(job / "feeds.npz", **feeds)
        (job / "job.json").write_text(json.dumps({
            "engine": engine, "model": str(model), "threads": threads, "warmup": warmup,
            "repeat": repeat, "budget_s": budget_s,
            "artifact": str(artifact) if artifact is not None else None}))
        env = dict(os.environ, TVM_NUM_THREADS=str(threads))
        try:
            proc = subprocess.run([sys.executable, "-m", "edgec.bench.isolated", str(job)],
                                  env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise EngineFailed("crash", f"{engine} did not finish in {timeout_s:.0f} s") \
                from None
        error = job / "error.json"
        if error.exists():
            e = json.loads(error.read_text())
            raise EngineFailed(e["kind"], e["message"])
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise EngineFailed("crash", f"{engine} exited with {proc.returncode}: {tail}")
        with np.load(job / "outputs.npz") as z:
            outputs = {k: z[k] for k in z.files}
        stats = LatencyStats(**json.loads((job / "stats.json").read_text()))
        return EngineRun(outputs, stats, threads)


def _time(job: dict, feeds: dict[str, np.ndarray]):
    engine, model = job["engine"], Path(job["model"])
    kw = {"threads": job["threads"], "warmup": job["warmup"], "repeat": job["repeat"],
          "budget_s": job["budget_s"]}
    if engine == "onnxruntime":
        from ..baselines import onnxruntime as ort_engine

        return ort_engine.run(model, feeds, **kw)
    from ..artifact import Artifact

    art = Artifact(job["artifact"])
    if engine == "tflite":
        from ..baselines import tflite

        return tflite.run(model, feeds, art.inputs, art.outputs, **kw)
    from ..baselines.timing import EngineRun, planned_runs

    session = art.session()
    outputs = session.run(feeds)
    for _ in range(max(0, kw["warmup"] - 1)):
        session.run(feeds)
    first = session.time(feeds, repeat=1).median_ms / 1e3
    runs = planned_runs(first, repeat=kw["repeat"], budget_s=kw["budget_s"])
    return EngineRun(outputs, session.time(feeds, repeat=runs), session.threads)


def main(folder: str) -> int:
    job_dir = Path(folder)
    job = json.loads((job_dir / "job.json").read_text())
    with np.load(job_dir / "feeds.npz") as z:
        feeds = {k: z[k] for k in z.files}
    try:
        run = _time(job, feeds)
    except ModelError as exc:
        kind, message = "model", str(exc)
    except Exception as exc:  # a baseline that cannot run: its reason becomes the row
        from ..baselines.tflite import TfliteUnavailable

        kind = "tflite" if isinstance(exc, TfliteUnavailable) else "crash"
        message = str(exc) if kind == "tflite" else f"{type(exc).__name__}: {first_line(exc)}"
    else:
        np.savez(job_dir / "outputs.npz", **run.outputs)
        (job_dir / "stats.json").write_text(json.dumps(run.stats.to_json()))
        return 0
    (job_dir / "error.json").write_text(json.dumps({"kind": kind, "message": message}))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

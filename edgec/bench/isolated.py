"""Time engines in processes of their own, in interleaved rounds.

Two effects made engine-by-engine timing in the bench's process unfair here:
- this VM runs in phases: the same SqueezeNet session took 4.8 ms per run
  for a while and 8.5 ms for the next while, switching within seconds, and
  onnxruntime's PP-OCRv4 det was 48-55 or 89-93 ms the same way. An engine
  timed in one block of seconds got whichever phase that block fell in;
- engines ran in the process that had just compiled the model, after each
  other's thread pools.
So each engine lives in a worker process started for it (feeds in and
outputs out as ``.npz``), and the timed runs go round-robin: every engine
gets a share of runs in each of several rounds, so all see the same phases
and the ratios between them hold even when the absolute numbers move.

Worker protocol (``python -m edgec.bench.isolated JOB_DIR``): after loading
and one run it writes ``outputs.npz`` and prints a JSON line ``{"first_s"}``
(or ``{"error": {"kind", "message"}}`` and exits); then each stdin line
``N`` answers with ``{"samples": [seconds, ...]}`` for N timed runs; EOF ends it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import ModelError, first_line
from ..stats import LatencyStats

ROUNDS = 5  # interleaved rounds: each engine's runs are spread over this many


class EngineFailed(Exception):
    """The engine could not run the model; ``kind`` says whose fault."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "model", "tflite" (unavailable) or "crash"


class EngineWorker:
    """One engine loaded in its own process, ready for timed runs."""

    def __init__(self, engine: str, model: Path, feeds: dict[str, np.ndarray], *,
                 threads: int, warmup: int, artifact: Path | None = None,
                 timeout_s: float = 1800) -> None:
        self.engine, self.threads, self.timeout_s = engine, threads, timeout_s
        self._tmp = tempfile.TemporaryDirectory(prefix="edgec-bench-job-")
        job = Path(self._tmp.name)
        np.savez(job / "feeds.npz", **feeds)
        (job / "job.json").write_text(json.dumps({
            "engine": engine, "model": str(model), "threads": threads, "warmup": warmup,
            "artifact": str(artifact) if artifact is not None else None}))
        env = dict(os.environ, TVM_NUM_THREADS=str(threads))
        self._stderr = (job / "stderr.log").open("w")  # a file: a full pipe would block it
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "edgec.bench.isolated", str(job)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        reply = self._reply()
        self.first_s = float(reply["first_s"])
        with np.load(job / "outputs.npz") as z:
            self.outputs = {k: z[k] for k in z.files}

    def _reply(self) -> dict:
        while True:  # skip anything a library printed to stdout
            line = self._proc.stdout.readline()
            if not line:
                self._proc.wait(timeout=self.timeout_s)
                log = Path(self._tmp.name) / "stderr.log"
                tail = (log.read_text().strip().splitlines() or ["no output"])[-1]
                code = self._proc.returncode
                self.close()
                raise EngineFailed("crash", f"{self.engine} exited with {code}: {tail}")
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if isinstance(reply, dict) and reply.keys() & {"error", "first_s", "samples"}:
                break
        if "error" in reply:
            self.close()
            raise EngineFailed(reply["error"]["kind"], reply["error"]["message"])
        return reply

    def samples(self, runs: int) -> list[float]:
        self._proc.stdin.write(f"{runs}\n")
        self._proc.stdin.flush()
        return [float(s) for s in self._reply()["samples"]]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()
        self._tmp.cleanup()

    def __enter__(self) -> EngineWorker:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def time_interleaved(workers: list[EngineWorker], *, repeat: int, budget_s: float,
                     min_runs: int = 5) -> list[LatencyStats]:
    """Each worker's runs (as many as fit ``budget_s``, at most ``repeat``, at
    least ``min_runs``) in ``ROUNDS`` round-robin rounds."""
    from ..baselines.timing import planned_runs

    plans = [planned_runs(w.first_s, repeat=repeat, budget_s=budget_s, min_runs=min_runs)
             for w in workers]
    got: list[list[float]] = [[] for _ in workers]
    for r in range(ROUNDS):
        for i, w in enumerate(workers):
            share = math.ceil(plans[i] * (r + 1) / ROUNDS) - len(got[i])
            if share > 0:
                got[i] += w.samples(share)
    return [LatencyStats.from_seconds(s) for s in got]


def _timed(call) -> Callable[[int], list[float]]:
    """n runs of a Python-driven engine, each between two clock reads."""
    def runs(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            call()
            out.append(time.perf_counter() - t0)
        return out
    return runs


def _load(job: dict, feeds: dict[str, np.ndarray]):
    """(n -> seconds of n timed runs, outputs of a first run)."""
    engine, model, threads = job["engine"], Path(job["model"]), job["threads"]
    if engine == "onnxruntime":
        from ..baselines import onnxruntime as ort_engine

        call, outputs = ort_engine.prepare(model, feeds, threads=threads)
        return _timed(call), outputs
    from ..artifact import Artifact

    art = Artifact(job["artifact"])
    if engine == "tflite":
        from ..baselines import tflite

        call, outputs = tflite.prepare(model, feeds, art.inputs, art.outputs, threads=threads)
        return _timed(call), outputs
    session = art.session()
    outputs = session.run(feeds)
    # timed natively, inputs set once per request (Session.samples)
    return (lambda n: session.samples(feeds, repeat=n, warm=False)), outputs


def _serve(job: dict, feeds: dict[str, np.ndarray], job_dir: Path) -> None:
    runs, outputs = _load(job, feeds)
    t0 = time.perf_counter()
    runs(1)
    first = time.perf_counter() - t0
    for _ in range(max(0, job["warmup"] - 1)):
        runs(1)
    np.savez(job_dir / "outputs.npz", **outputs)
    print(json.dumps({"first_s": first}), flush=True)
    for line in sys.stdin:
        print(json.dumps({"samples": runs(int(line))}), flush=True)


def main(folder: str) -> int:
    job_dir = Path(folder)
    job = json.loads((job_dir / "job.json").read_text())
    with np.load(job_dir / "feeds.npz") as z:
        feeds = {k: z[k] for k in z.files}
    try:
        _serve(job, feeds, job_dir)
        return 0
    except ModelError as exc:
        kind, message = "model", str(exc)
    except Exception as exc:  # a baseline that cannot run: its reason becomes the row
        from ..baselines.tflite import TfliteUnavailable

        kind = "tflite" if isinstance(exc, TfliteUnavailable) else "crash"
        message = str(exc) if kind == "tflite" else f"{type(exc).__name__}: {first_line(exc)}"
    print(json.dumps({"error": {"kind": kind, "message": message}}), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""edgec's differential tester: random graphs through every pipeline, against onnxruntime.

    python benchmarks/fuzz/run_fuzz.py --n 200 --seed 1 [--levels 0,1,2,3[,int8]] [--int8]
        [--jobs 2] [--timeout 120] [--rotate] [--start I] [--out DIR] [--minimise]
    python benchmarks/fuzz/run_fuzz.py --summarise DIR/outcomes.jsonl

Environment: EDGEC_FUZZ_SRC=DIR fuzzes the edgec source tree in DIR (e.g. a
``git archive`` of a commit) instead of this checkout's.

Graph ``i`` of seed ``S`` is ``graphgen.generate(S, i)`` (the same model every
time). Each graph is compiled by edgec at each ``-O`` level (``--rotate``: at
one level per graph, ``levels[i % len(levels)]``, which is what the CI test
does), run on seeded uniform [-1, 1) inputs and compared with onnxruntime on
the original model. With ``--int8`` each graph is also compiled at -O2 with
``--quantize int8`` on a calibration set drawn like the inputs (12 samples);
see ``compare_int8`` for what is compared.

Outcomes per (graph, level):

- ``pass``: every output within tolerance;
- ``mismatch``: an output differs (shape, or values: ``compare_fp32``);
- ``refused``: edgec raised one of its documented user-facing errors (exit 2-5:
  usage, model, unsupported, toolchain): allowed, counted and listed by reason;
- ``crash``: a bug: edgec's CompileError (exit 6, "TVM failed on a model edgec
  accepted"), an artifact edgec wrote and then rejects (exit 7), any other
  exception (the CLI's exit 70, internal error), an exception while running
  the artifact, or the worker process dying (segfault, abort);
- ``timeout``: no answer within ``--timeout`` seconds (the worker is killed).

Graphs run in long-lived worker processes (``--jobs`` of them, one TVM thread
each), so a segfault or hang costs one outcome, not the run. The summary
(graphs, ops covered, per-level outcomes, top refusal reasons, failures) is
printed and written as JSON to ``DIR/summary.json``; every outcome is appended
to ``DIR/outcomes.jsonl`` as it arrives (``--summarise`` reads it, also from a
run that was stopped); each failing graph's model is kept as
``DIR/failures/<graph>-<level>.onnx`` with a sidecar. ``--minimise`` shrinks
every failure with ``minimise.py`` and saves the reproducers under
tests/data/fuzz/.

A failure that matches the ``known`` entry of an unfixed reproducer's sidecar in
tests/data/fuzz/ is labelled with it. Exit status: 0 when every mismatch, crash
or timeout was a known bug (or there was none), 1 otherwise.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

STATUSES = ("pass", "mismatch", "refused", "crash", "timeout")
BUGS = ("mismatch", "crash", "timeout")
#: fp32: |edgec - ort| <= ATOL * scale + RTOL * |ort|, scale = max(1, max |ort|) per output.
#: Winograd rounding is about 1e-5 relative (docs/kernels.md); a chain of a dozen ops and
#: reductions over a few thousand terms stay well inside these.
RTOL = 1e-4
ATOL = 1e-4
#: int8: edgec's int8 artifact against onnxruntime running the QDQ model edgec quantised
#: (the same arithmetic up to rounding-boundary steps), as a signal-to-noise ratio in dB;
#: below it, still a pass when edgec is no more than INT8_SLACK_DB worse than onnxruntime's
#: own QDQ run, both against the float model. Measured (seed 2, 60 graphs, edgec 5395eba):
#: every passing graph at 128 dB or more (float rounding only); the wrong Resize gave 15 dB.
#: 30 dB leaves room for the one-step rounding flips tests/int8_check.py allows (not seen
#: here). fp32, same run: worst |diff| / scale 1.7e-6, 60x inside ATOL.
INT8_MIN_SQNR_DB = 30.0
INT8_SLACK_DB = 6.0
#: edgec exit codes that are documented refusals (README "Exit codes"): usage, model,
#: unsupported, toolchain
REFUSAL_CODES = (2, 3, 4, 5)
KNOWN_DIR = REPO / "tests" / "data" / "fuzz"  # reproducers; their sidecars name known bugs
INPUT_SEED = 1234  # seed of the comparison inputs (make_feeds)
CALIB_SAMPLES = 12
RECYCLE_AFTER = 200  # tasks per worker before it is replaced (TVM caches grow)


@dataclass
class Outcome:
    graph: str
    level: str  # "O0".."O3" or "int8"
    status: str
    detail: str = ""
    exit_code: int | None = None
    max_err: float | None = None
    seconds: float = 0.0
    ops: dict[str, int] = field(default_factory=dict)
    features: dict[str, int] = field(default_factory=dict)
    model: str | None = None  # where a failing graph was saved


# ------------------------------------------------------------------ comparison


@dataclass
class Verdict:
    ok: bool
    detail: str = ""
    max_err: float | None = None


def compare_fp32(ref: dict[str, np.ndarray], got: dict[str, np.ndarray],
                 rtol: float = RTOL, atol: float = ATOL) -> Verdict:
    """Every output of ``ref`` present in ``got`` with the same shape and values within
    ``atol * max(1, max|ref|) + rtol * |ref|`` (NaN must meet NaN)."""
    worst = 0.0
    for name, want in ref.items():
        if name not in got:
            return Verdict(False, f"output {name!r} missing (got {sorted(got)})")
        have = np.asarray(got[name])
        if have.shape != want.shape:
            return Verdict(False, f"output {name!r}: shape {have.shape}, onnxruntime {want.shape}")
        w = want.astype(np.float64)
        h = have.astype(np.float64)
        nan_w, nan_h = np.isnan(w), np.isnan(h)
        if (nan_w != nan_h).any():
            return Verdict(False, f"output {name!r}: {int((nan_w != nan_h).sum())} NaN differ")
        w, h = np.where(nan_w, 0, w), np.where(nan_h, 0, h)
        scale = max(1.0, float(np.abs(w).max()) if w.size else 1.0)
        err = np.abs(h - w)
        bad = err > atol * scale + rtol * np.abs(w)
        m = float(err.max()) if err.size else 0.0
        worst = max(worst, m / scale)
        if bad.any():
            idx = np.unravel_index(int(np.argmax(err)), err.shape)
            return Verdict(False, f"output {name!r}: {int(bad.sum())} of {bad.size} elements "
                           f"differ, max |diff| {m:.3g} at {list(map(int, idx))} (edgec "
                           f"{h[idx]:.6g}, onnxruntime {w[idx]:.6g}, scale {scale:.3g})", worst)
    return Verdict(True, "", worst)


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    noise = float(np.sum((got.astype(np.float64) - ref) ** 2))
    signal_ = float(np.sum(ref**2))
    if noise == 0.0:
        return float("inf")
    if signal_ == 0.0:
        return float("-inf")
    return 10.0 * np.log10(signal_ / noise)


def compare_int8(float_ref: dict[str, np.ndarray], qdq_ref: dict[str, np.ndarray],
                 got: dict[str, np.ndarray]) -> Verdict:
    """edgec's int8 outputs against onnxruntime on edgec's own QDQ model (``qdq_ref``):
    SQNR >= INT8_MIN_SQNR_DB, unless edgec is still within INT8_SLACK_DB of what the QDQ
    model itself achieves against float (then the quantisation, not the kernels, is poor).
    Outputs whose float reference is nearly constant (std < 1e-3) are skipped."""
    worst = float("inf")
    for name, want in qdq_ref.items():
        if name not in got:
            return Verdict(False, f"output {name!r} missing (got {sorted(got)})")
        have = np.asarray(got[name])
        if have.shape != want.shape:
            return Verdict(False, f"output {name!r}: shape {have.shape}, onnxruntime {want.shape}")
        if float(np.std(float_ref[name])) < 1e-3:
            continue
        s_qdq = sqnr_db(want, have)
        worst = min(worst, s_qdq)
        if s_qdq >= INT8_MIN_SQNR_DB:
            continue
        s_edgec, s_ort = sqnr_db(float_ref[name], have), sqnr_db(float_ref[name], want)
        if s_edgec >= s_ort - INT8_SLACK_DB:
            continue
        return Verdict(False, f"output {name!r}: SQNR {s_qdq:.1f} dB against onnxruntime's QDQ "
                       f"(min {INT8_MIN_SQNR_DB:g}); against float edgec {s_edgec:.1f} dB, "
                       f"onnxruntime QDQ {s_ort:.1f} dB", s_qdq)
    return Verdict(True, "", None if worst == float("inf") else worst)


# ------------------------------------------------------------------- one task


def _one_line(exc: BaseException | str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    line = lines[0] if lines else type(exc).__name__
    if isinstance(exc, BaseException) and not hasattr(exc, "exit_code"):
        line = f"{type(exc).__name__}: {line}"
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _internal(exc: BaseException) -> str:
    """Type, message and the innermost edgec frame of an internal error."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/edgec/" in f.filename]
    where = f" [{Path(frames[-1].filename).name}:{frames[-1].lineno}]" if frames else ""
    return _one_line(exc) + where


def load_task_model(task: dict):
    """The task's model: a generated graph (seed, index) or a file (path)."""
    import onnx
    from graphgen import generate

    if task.get("path"):
        return onnx.load(task["path"]), {}, {}
    g = generate(task["seed"], task["index"])
    return g.model, dict(g.ops), dict(g.features)


def calibration_dir(model, folder: Path, n: int = CALIB_SAMPLES) -> Path:
    from graphgen import make_feeds

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        np.savez(folder / f"{i:02d}.npz", **make_feeds(model, seed=10_000 + i))
    return folder


def run_task(task: dict, work: Path) -> Outcome:
    """Compile one model at one level in this process and compare with onnxruntime."""
    import onnx
    from graphgen import make_feeds, reference

    import edgec
    from edgec.errors import CompileError, EdgecError

    level = task["level"]
    name = task["graph"]
    if task.get("selftest") == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if task.get("selftest") == "hang":
        time.sleep(3600)
    model, ops, features = load_task_model(task)
    out = Outcome(name, level, "pass", ops=ops, features=features)
    tmp = Path(tempfile.mkdtemp(prefix="t-", dir=work))
    try:
        mpath = tmp / "model.onnx"
        onnx.save(model, str(mpath))
        feeds = make_feeds(model, seed=task.get("input_seed", INPUT_SEED))
        ref = reference(model, feeds)
        kwargs: dict[str, Any] = {}
        if level == "int8":
            from edgec.quantize.options import QuantizeOptions

            kwargs["opt_level"] = 2
            kwargs["save_temps"] = tmp / "temps"
            kwargs["quantize"] = QuantizeOptions(
                calibration=str(calibration_dir(model, tmp / "calib")))
        else:
            kwargs["opt_level"] = int(level.lstrip("O"))
        try:
            art = edgec.compile(mpath, target="host", output=tmp / "model.edgec", **kwargs)
        except CompileError as exc:
            out.status, out.detail, out.exit_code = "crash", _one_line(exc.message), exc.exit_code
            return out
        except EdgecError as exc:
            # usage, model, unsupported, toolchain: documented refusals; anything else (a
            # corrupt artifact written, exit 7) is a bug
            status = "refused" if exc.exit_code in REFUSAL_CODES else "crash"
            out.status, out.detail, out.exit_code = status, _one_line(exc.message), \
                exc.exit_code
            return out
        except Exception as exc:  # the CLI's exit 70: an internal error
            out.status, out.detail, out.exit_code = "crash", f"internal: {_internal(exc)}", 70
            return out
        try:
            got = art.run(feeds)
        except Exception as exc:  # a compiled artifact that fails to run is a bug
            out.status, out.detail = "crash", f"run: {_internal(exc)}"
            out.exit_code = getattr(exc, "exit_code", 70)
            return out
        if level == "int8":
            qdq = tmp / "temps" / "quantized-qdq.onnx"
            if not qdq.exists():
                out.status, out.detail = "refused", "no quantised model (nothing quantised)"
                return out
            qmodel = onnx.load(str(qdq))
            try:
                qref = reference(qmodel, feeds)
            except Exception:  # onnxruntime's fused integer kernels fail on some shapes
                qref = reference(qmodel, feeds, optimise=False)
            v = compare_int8(ref, qref, got)
        else:
            v = compare_fp32(ref, got)
        out.max_err = v.max_err
        if not v.ok:
            out.status, out.detail = "mismatch", v.detail
        return out
    finally:
        if out.status in BUGS and task.get("save_dir"):  # the model as this worker built it
            keep = Path(task["save_dir"]) / f"{name}-{level}.onnx"
            keep.parent.mkdir(parents=True, exist_ok=True)
            onnx.save(model, str(keep))
            out.model = str(keep)
        shutil.rmtree(tmp, ignore_errors=True)


def worker_main() -> int:
    """Serve tasks: one JSON line in on stdin, one JSON line out on the original stdout
    (TVM's and LLVM's chatter goes to stderr, the worker's log)."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    work = Path(tempfile.mkdtemp(prefix="worker-", dir=os.environ.get(_SCRATCH_ENV)))
    try:
        for line in sys.stdin:
            task = json.loads(line)
            print(f"== {task['graph']} {task['level']}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                outcome = run_task(task, work)
            except Exception as exc:  # a harness failure (the generator, onnxruntime)
                outcome = Outcome(task["graph"], task["level"], "crash",
                                  f"harness: {_internal(exc)}")
                outcome.features = {"harness-error": 1}
            outcome.seconds = round(time.perf_counter() - start, 3)
            outcome.detail = re.sub(re.escape(str(work)) + r"/t-[^/]+/", "", outcome.detail)
            proto.write(json.dumps(asdict(outcome)) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


# --------------------------------------------------------------------- workers


class Worker:
    """One long-lived worker process, replaced when it dies, hangs or has done enough."""

    def __init__(self, slot: int, log_dir: Path, env: dict[str, str]):
        self.slot, self.env, self.proc, self.done = slot, env, None, 0
        self.log_path = log_dir / f"worker-{slot}.log"
        self.log_path.write_text("")

    def _start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=self.env,
                start_new_session=True)  # its own group: a kill takes the linker too
        self.done = 0

    def _kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def _log_tail(self) -> str:
        lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("== ")]
        return lines[-1].strip()[:300] if lines else ""

    def run(self, task: dict, timeout: float) -> Outcome:
        if self.proc is not None and (self.proc.poll() is not None or self.done >= RECYCLE_AFTER):
            self.close()
        if self.proc is None:
            self._start()
        start = time.perf_counter()
        try:
            self.proc.stdin.write((json.dumps(task) + "\n").encode())
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            line = self.proc.stdout.readline() if ready else None
        except BrokenPipeError:
            line = b""
        seconds = round(time.perf_counter() - start, 3)
        if line is None:
            self._kill()
            return Outcome(task["graph"], task["level"], "timeout",
                           f"no answer within {timeout:g} s; worker killed", seconds=seconds)
        if not line:
            code = self.proc.wait()
            self.proc = None
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            tail = self._log_tail()
            return Outcome(task["graph"], task["level"], "crash",
                           f"worker died ({how})" + (f"; last log line: {tail}" if tail else ""),
                           exit_code=code, seconds=seconds)
        self.done += 1
        return Outcome(**json.loads(line))

    def close(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
            self.proc = None
        except subprocess.TimeoutExpired:
            self._kill()


_SCRATCH_ENV = "EDGEC_FUZZ_SCRATCH"


@functools.cache
def scratch() -> Path:
    root = Path(tempfile.mkdtemp(prefix="edgec-fuzz-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def worker_env() -> dict[str, str]:
    """One TVM thread per worker (the jobs share the cores), no tuning records, no
    downloads."""
    env = dict(os.environ)
    tuning = scratch() / "tuning"
    tuning.mkdir(exist_ok=True)
    env.update(TVM_NUM_THREADS="1", OMP_NUM_THREADS="1", EDGEC_NO_DOWNLOAD="1",
               EDGEC_TUNING_DB=str(tuning), **{_SCRATCH_ENV: str(scratch())})
    # EDGEC_FUZZ_SRC: fuzz another edgec source tree (a `git archive` of a commit) than
    # this checkout's
    src = os.environ.get("EDGEC_FUZZ_SRC") or str(REPO)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, str(HERE), env.get("PYTHONPATH")) if p)
    return env


def run_tasks(tasks: list[dict], *, jobs: int = 2, timeout: float = 120.0,
              log_dir: Path | None = None, progress: bool = True,
              stream: Path | None = None) -> list[Outcome]:
    """Every task on ``jobs`` workers; outcomes in task order (and, with ``stream``, each
    appended to that JSON-lines file as it arrives, so a long run that is stopped keeps
    what it found: ``--summarise FILE`` summarises it)."""
    sink = stream.open("a") if stream else None
    log_dir = log_dir or scratch() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = worker_env()
    todo: queue.Queue = queue.Queue()
    for i, task in enumerate(tasks):
        todo.put((i, task))
    results: list[Outcome | None] = [None] * len(tasks)
    lock = threading.Lock()
    start = time.perf_counter()
    done = [0]
    step = max(10, len(tasks) // 20)

    def serve(slot: int) -> None:
        worker = Worker(slot, log_dir, env)
        try:
            while True:
                try:
                    i, task = todo.get_nowait()
                except queue.Empty:
                    return
                outcome = worker.run(task, timeout)
                if not outcome.ops and "seed" in task:  # the worker died: describe the graph
                    from graphgen import generate

                    g = generate(task["seed"], task["index"])
                    outcome.ops, outcome.features = dict(g.ops), dict(g.features)
                with lock:
                    results[i] = outcome
                    done[0] += 1
                    if sink:
                        sink.write(json.dumps(asdict(outcome)) + "\n")
                        sink.flush()
                    if progress and (done[0] % step == 0 or done[0] == len(tasks)
                                     or outcome.status in BUGS):
                        note = ("" if outcome.status not in BUGS else
                                f"  [{outcome.graph} {outcome.level}: {outcome.status}: "
                                f"{outcome.detail[:160]}]")
                        print(f"  {done[0]}/{len(tasks)} in {time.perf_counter() - start:.0f} s"
                              f"{note}", file=sys.stderr, flush=True)
        finally:
            worker.close()

    threads = [threading.Thread(target=serve, args=(s,), daemon=True)
               for s in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sink:
        sink.close()
    return [r for r in results if r is not None]


# ------------------------------------------------------------------------ runs


def plan(n: int, seed: int, levels: list[str], *, rotate: bool = False,
         int8: bool = False, start: int = 0) -> list[dict]:
    """The tasks: graph i at every level (or, rotating, at levels[i % len(levels)])."""
    tasks = []
    for i in range(start, start + n):
        picked = [levels[i % len(levels)]] if rotate else list(levels)
        if int8:
            picked.append("int8")
        for level in picked:
            tasks.append({"graph": f"s{seed}-g{i}", "seed": seed, "index": i, "level": level})
    return tasks


@dataclass
class Summary:
    graphs: int
    tasks: int
    seconds: float
    ops: dict[str, int]
    features: dict[str, int]
    levels: dict[str, dict[str, int]]
    refusals: dict[str, int]
    failures: list[dict]
    tolerances: dict[str, float]
    seed: int | None = None

    def count(self, status: str) -> int:
        return sum(c.get(status, 0) for c in self.levels.values())

    def to_json(self) -> dict:
        return asdict(self)


def summarise(outcomes: list[Outcome], seconds: float, seed: int | None = None,
              known: list[dict] | None = None) -> Summary:
    graphs: dict[str, Outcome] = {}
    for o in outcomes:
        if o.ops and o.graph not in graphs:
            graphs[o.graph] = o
    ops: Counter = Counter()
    features: Counter = Counter()
    for o in graphs.values():
        ops.update(o.ops)
        features.update(o.features)
    levels: dict[str, Counter] = {}
    refusals: Counter = Counter()
    failures = []
    for o in outcomes:
        levels.setdefault(o.level, Counter())[o.status] += 1
        if o.status == "refused":
            refusals[_reason(o.detail)] += 1
        elif o.status in BUGS:
            k = is_known(o, known or [])
            failures.append({"graph": o.graph, "level": o.level, "status": o.status,
                             "detail": o.detail, "model": o.model,
                             "known": k["reproducer"] if k else None})
    return Summary(
        graphs=len({o.graph for o in outcomes}), tasks=len(outcomes), seconds=round(seconds, 1),
        ops=dict(ops.most_common()), features=dict(sorted(features.items())),
        levels={k: {s: c.get(s, 0) for s in STATUSES} for k, c in sorted(levels.items())},
        refusals=dict(refusals.most_common()), failures=failures,
        tolerances={"rtol": RTOL, "atol_x_scale": ATOL, "int8_min_sqnr_db": INT8_MIN_SQNR_DB,
                    "int8_slack_db": INT8_SLACK_DB}, seed=seed)


def _reason(detail: str) -> str:
    """A refusal message without its file path and node names, to group them."""
    text = re.sub(r"/\S+\.onnx:?\s*", "", detail)
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\d+", "N", text)
    return text[:120]


def load_known(folder: Path) -> list[dict]:
    """The ``known`` entries of the reproducers in ``folder`` whose bug is unfixed (their
    sidecar has ``xfail``): how to recognise that bug in a fuzz outcome."""
    known = []
    for side in sorted(Path(folder).glob("*.json")):
        meta = json.loads(side.read_text())
        if meta.get("xfail") and meta.get("known"):
            entries = meta["known"] if isinstance(meta["known"], list) else [meta["known"]]
            known += [{**k, "reproducer": side.stem} for k in entries]
    return known


def is_known(o: Outcome, known: list[dict]) -> dict | None:
    """The known-bug entry ``o`` matches: same status, a listed level, ``detail`` (a regex)
    found in the outcome's, every listed op and feature in the graph."""
    for k in known:
        if o.status != k.get("status") or o.level not in k.get("levels", [o.level]):
            continue
        if k.get("detail") and not re.search(k["detail"], o.detail):
            continue
        if any(op not in o.ops for op in k.get("ops", [])):
            continue
        if any(f not in o.features for f in k.get("features", [])):
            continue
        return k
    return None


def print_summary(s: Summary, file=sys.stdout) -> None:
    p = functools.partial(print, file=file)
    p(f"graphs {s.graphs}, compiles {s.tasks}, {s.seconds:.0f} s "
      f"({s.seconds / max(s.tasks, 1):.2f} s per compile)")
    p(f"ops ({len(s.ops)} kinds): " + ", ".join(f"{k} {v}" for k, v in s.ops.items()))
    p(f"{'level':<6}" + "".join(f"{st:>10}" for st in STATUSES))
    for level, c in s.levels.items():
        p(f"{level:<6}" + "".join(f"{c[st]:>10}" for st in STATUSES))
    if s.refusals:
        p("refusals:")
        for r, c in list(s.refusals.items())[:10]:
            p(f"  {c:5d}  {r}")
    if s.failures:
        p(f"failures ({len(s.failures)}):")
        for f in s.failures:
            tag = f" [known: {f['known']}]" if f.get("known") else ""
            p(f"  {f['graph']} {f['level']} {f['status']}{tag}: {f['detail'][:200]}")
            if f.get("model"):
                p(f"      {f['model']}")
        new = sum(1 for f in s.failures if not f.get("known"))
        p(f"{len(s.failures) - new} known bugs (tests/data/fuzz), {new} new")
    else:
        p("no mismatch, crash or timeout")


def save_failures(outcomes: list[Outcome], out: Path) -> None:
    """A sidecar beside each failing graph's model (the worker saved the model as it
    generated it; for a worker that died, it is generated again here), for the minimiser."""
    import onnx
    from graphgen import generate

    folder = out / "failures"
    for o in outcomes:
        if o.status not in BUGS:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        seed, index = (int(p[1:]) for p in o.graph.split("-"))
        path = folder / f"{o.graph}-{o.level}.onnx"
        if not path.exists():  # the worker died before saving it
            onnx.save(generate(seed, index).model, str(path))
        path.with_suffix(".json").write_text(json.dumps(
            {"seed": seed, "index": index, "level": o.level, "status": o.status,
             "detail": o.detail}, indent=1) + "\n")
        o.model = str(path)


def fuzz(n: int, seed: int, levels: list[str], *, rotate: bool = False, int8: bool = False,
         jobs: int = 2, timeout: float = 120.0, out: Path | None = None, start: int = 0,
         progress: bool = True) -> tuple[Summary, list[Outcome]]:
    tasks = plan(n, seed, levels, rotate=rotate, int8=int8, start=start)
    if out:
        for t in tasks:
            t["save_dir"] = str(out / "failures")
    t0 = time.perf_counter()
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "outcomes.jsonl").unlink(missing_ok=True)
    outcomes = run_tasks(tasks, jobs=jobs, timeout=timeout, progress=progress,
                         log_dir=(out / "logs") if out else None,
                         stream=(out / "outcomes.jsonl") if out else None)
    seconds = time.perf_counter() - t0
    if out:
        save_failures(outcomes, out)
    summary = summarise(outcomes, seconds, seed, load_known(KNOWN_DIR))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary.to_json(), indent=1) + "\n")
    return summary, outcomes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker_main()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="graphs (default 100)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first graph index")
    ap.add_argument("--levels", default="0,1,2,3",
                    help="-O levels, comma-separated; 'int8' is a level too (int8 at -O2)")
    ap.add_argument("--rotate", action="store_true",
                    help="each graph at one level (levels[i %% len]) instead of all")
    ap.add_argument("--int8", action="store_true", help="also int8 at -O2 per graph")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per compile+run")
    ap.add_argument("--out", type=Path, default=None, help="folder for summary.json, failures")
    ap.add_argument("--minimise", action="store_true",
                    help="minimise every failure into tests/data/fuzz/")
    ap.add_argument("--summarise", type=Path, metavar="OUTCOMES.jsonl",
                    help="only summarise the outcomes file of a run (also a stopped one)")
    args = ap.parse_args(argv)
    if args.summarise:
        outcomes = [Outcome(**json.loads(line))
                    for line in args.summarise.read_text().splitlines() if line.strip()]
        print_summary(summarise(outcomes, 0.0, known=load_known(KNOWN_DIR)))
        return 0
    levels = [v.strip() if v.strip() == "int8" else f"O{int(v)}"
              for v in args.levels.split(",") if v.strip()]
    out = args.out or Path(tempfile.mkdtemp(prefix="edgec-fuzz-out-"))
    summary, _ = fuzz(args.n, args.seed, levels, rotate=args.rotate, int8=args.int8,
                      jobs=args.jobs, timeout=args.timeout, out=out, start=args.start)
    print_summary(summary)
    print(f"summary: {out / 'summary.json'}")
    if args.minimise and summary.failures:
        from minimise import minimise_failure

        for f in summary.failures:
            saved = minimise_failure(Path(f["model"]), timeout=args.timeout)
            print(f"minimised {f['graph']} {f['level']} -> {saved}")
    return 1 if any(not f.get("known") for f in summary.failures) else 0


if __name__ == "__main__":
    sys.exit(main())

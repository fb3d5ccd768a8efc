"""``edgec tune``: MetaSchedule over edgec's kernels, on top of the templates.

The tasks are the model's edgec kernels, each a workload in the packed
layouts (MetaSchedule finds fast code quickly there and crawls on plain
NCHW). Before any search a task's template schedule is built and measured by
the same builder and runner as the candidates and committed to the database,
so the search is seeded with it and the best record is never one measured
slower than the template. Search runs in rounds of ``ROUND`` trials given
to the task with the largest share of the model's estimated kernel time; every
measured candidate is committed at once, so Ctrl-C loses at most one round and
running the same command again resumes. Only edgec's kernels are tuned: the
ops TVM lowers itself keep its default schedules.

The runner is pluggable: the local one measures on this machine; ``device``
measures on boards behind a TVM RPC tracker, up to ``devices`` of them in
parallel (a farm tunes one model together), with code linked by the
target's own compiler.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms
from tvm.support import cc as tvm_cc

from ...devices import DeviceAddress
from ...errors import (
    CompileError,
    UnsupportedError,
    UsageError,
    first_line,
)
from ...target_registry import Target, host_arch, host_core_count, host_cpu_flags
from .build import (
    cpu_side,
    find_cc,
    lower_to_kernels,
    open_tuning_db,
    required_cpu_flags,
    tvm_target,
)
from .kernels.generic import Kernel
from .tuning_db import Schedules, TuningDB, template_schedule, workload_module

ROUND = 16  # trials per round: one batch of candidates built and measured together
RUN_TIMEOUT_S = 30.0
BUILD_TIMEOUT_S = 60.0


@dataclass
class Task:
    name: str
    kernel: Kernel
    uses: int
    mod: tvm.IRModule
    workload: object = None  # ms Workload in the database
    template_s: float = 0.0
    best_s: float = 0.0
    trials: int = 0  # searched candidates on record (the template's record excluded)
    done: bool = False  # the search space gave no new candidate
    cost_model: object = None
    template: Schedule | None = None  # the template's schedule on ``mod`` (_load_state)

    @property
    def weight_s(self) -> float:
        return self.best_s * self.uses

    def to_json(self) -> dict:
        return {"kernel": self.name, "uses": self.uses, "gflop": self.kernel.flops / 1e9,
                "template_ms": self.template_s * 1e3, "best_ms": self.best_s * 1e3,
                "speedup": self.template_s / self.best_s if self.best_s else None,
                "trials": self.trials}


@dataclass
class TuneStatus:
    """What the progress display shows after each measured batch."""

    task: str
    task_gflops: float  # the current task's best
    trials: int  # this run
    max_trials: int | None
    elapsed_s: float
    left_s: float | None
    message: str = ""


@dataclass
class TuneReport:
    db: Path
    target: str
    tasks: list[Task] = field(default_factory=list)
    trials: int = 0  # this run
    seconds: float = 0.0
    interrupted: bool = False

    def to_json(self) -> dict:
        return {"db": str(self.db), "target": self.target, "trials": self.trials,
                "seconds": round(self.seconds, 1), "interrupted": self.interrupted,
                "tasks": [t.to_json() for t in self.tasks]}


def _run_secs(run_secs) -> float | None:
    """A record's time: the mean of its runs, the order MetaSchedule's database keeps
    (compile applies its first record). The median, used before, disagreed with it
    on a loaded machine: a report called a candidate faster than the template while
    the database still put the template first."""
    vals = [float(v) for v in run_secs or []]
    return statistics.fmean(vals) if vals and max(vals) < 1e9 else None


def _export_so(cc: str, flags: list[str], mod) -> str:
    """Builder export: a shared library linked by the target's compiler (what
    an RPC board loads as is; MetaSchedule's default is a tar linked later)."""
    path = os.path.join(tempfile.mkdtemp(prefix="edgec-tune-"), "kernel.so")
    mod.export_library(path, fcompile=tvm_cc.cross_compiler(cc, options=flags))
    return path


def _build(mod, target, _params):
    """Builder build: MetaSchedule's default minus its ``import
    tvm.s_tir.tensor_intrin``, which takes 15 s here and is paid again for every
    batch (its builder starts fresh worker processes each time). Schedules keep
    tensorised bodies inline, so nothing here needs the intrinsics registered."""
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    from tvm.driver import build

    return build(mod, target=target)


def make_runner(target: Target, device: DeviceAddress | None, devices: int = 1):
    """The builder and runner for ``target``: local, or up to ``devices`` boards of one
    key behind a tracker (`edgec.devices.DeviceAddress`), measured in parallel."""
    cc = find_cc(target)
    builder = ms.builder.LocalBuilder(
        timeout_sec=BUILD_TIMEOUT_S, f_build=_build,
        f_export=functools.partial(_export_so, cc, list(target.cc_flags)))
    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=3, min_repeat_ms=50,
                                          enable_cpu_cache_flush=False)
    if device is not None:
        if not device.via_tracker:
            raise UsageError(f"--device {device}: tune measures through a tracker, so that "
                             "several boards can share the work; give KEY@TRACKER_HOST:PORT "
                             "(start one with 'edgec device tracker')")
        _check_tracker(device)
        config = ms.runner.RPCConfig(tracker_host=device.host, tracker_port=device.port,
                                     tracker_key=device.key, session_timeout_sec=120)
        # One worker per board: each holds a session of its own while it measures.
        return builder, ms.runner.RPCRunner(config, evaluator, max_workers=devices,
                                            f_alloc_argument=_alloc_on_device)
    if devices != 1:
        raise UsageError("--devices N measures on N boards of a tracker's key; give --device "
                         "KEY@HOST:PORT too")
    missing = sorted(set(required_cpu_flags(target)) - host_cpu_flags())
    if target.arch != host_arch() or missing:
        why = f"its code is {target.arch}" if target.arch != host_arch() \
            else f"it needs {', '.join(missing)}, which this CPU lacks"
        raise UnsupportedError(f"target '{target.name}' cannot be measured on this machine "
                               f"({why}); measure on the device with --device KEY@HOST:PORT "
                               "(README, Devices)")
    # The runner's workers inherit this: TVM's pool would start half the CPUs.
    os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    return builder, ms.runner.LocalRunner(timeout_sec=RUN_TIMEOUT_S,
                                          evaluator_config=evaluator)


def _alloc_on_device(session, device, args_info, alloc_repeat):
    """Runner arguments filled with random data made here and copied over: TVM's
    default asks the device for tvm.contrib.random, which its runtime library
    (all a board needs for edgec) does not have."""
    import numpy as np
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common

    rng = np.random.default_rng(0)

    def fill(arr) -> None:
        dtype = np.dtype(str(arr.dtype))
        data = (rng.integers(-8, 8, arr.shape) if dtype.kind in "iu" else
                rng.uniform(-1, 1, arr.shape)).astype(dtype)
        arr.copyfrom(data)

    return alloc_argument_common(fill, device, args_info, alloc_repeat)


def _check_tracker(device: DeviceAddress) -> None:
    """Fail in seconds with what to do, not after TVM's minute of retries. Busy boards
    are waited for: the runner's requests queue at the tracker."""
    from ...runtime.device.tracker import require_key

    require_key(device)


def _quiet_logger() -> logging.Logger:
    log = logging.getLogger("edgec.tune.metaschedule")
    log.setLevel(logging.WARNING if not os.environ.get("EDGEC_DEBUG") else logging.DEBUG)
    return log


def extract_tasks(model, target: Target, t, source: str) -> list[Task]:
    """The model's edgec kernels, heaviest first."""
    schedules = Schedules()
    lower_to_kernels(model, target, t, source, None, schedules, {})
    tasks = [Task(name, k, schedules.uses.get(name, 1), workload_module(k))
             for name, k in schedules.kernels.items() if k.flops]  # copies: nothing to search
    return sorted(tasks, key=lambda x: -x.kernel.flops * x.uses)


def _trace_key(trace) -> str:
    return str(trace.as_json(remove_postproc=False))


def _measure_template(task: Task, sch: Schedule, t, db: TuningDB, builder, runner) -> float:
    """Build and time the template's schedule; commit it as the first record."""
    built = builder.build([ms.builder.BuilderInput(sch.mod, t)])[0]
    if built.error_msg:
        raise CompileError(f"kernel {task.name}: its template schedule failed to build for "
                           f"tuning: {first_line(built.error_msg)}")
    args = ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])
    result = runner.run([ms.runner.RunnerInput(built.artifact_path, "cpu", args)])[0].result()
    secs = _run_secs(result.run_secs)
    if secs is None:
        raise CompileError(f"kernel {task.name}: its template schedule failed to run for "
                           f"tuning: {first_line(result.error_msg or 'no time measured')}")
    db.db.commit_tuning_record(ms.database.TuningRecord(
        sch.trace, task.workload, result.run_secs, t, args))
    return secs


def _load_state(task: Task, t, db: TuningDB, builder, runner) -> None:
    """The task's records so far; the template measured first if it is not among them."""
    task.workload = db.db.commit_workload(task.mod)
    task.template = template = template_schedule(task.kernel, task.mod)
    key = _trace_key(template.trace)
    records = db.db.get_top_k(task.workload, 1 << 20)
    found = [_run_secs(r.run_secs) for r in records if _trace_key(r.trace) == key]
    found = [x for x in found if x is not None]
    if found:
        task.template_s = min(found)
    else:
        task.template_s = _measure_template(task, template, t, db, builder, runner)
        records = db.db.get_top_k(task.workload, 1 << 20)
        found = [task.template_s]
    task.trials = len(records) - len(found)
    task.best_s = min(task.template_s, _run_secs(records[0].run_secs) or task.template_s)


@derived_object
class _Reporter(ms.measure_callback.PyMeasureCallback):
    def __init__(self, on_batch: Callable[[list[float]], None]) -> None:
        self.on_batch = on_batch

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results,
              runner_results) -> None:
        self.on_batch([_run_secs(r.run_secs) or 0.0 for r in runner_results])


def tune_model(model, target: Target, *, source: str, db_dir: Path | None,
               max_trials: int | None, budget_s: float | None,
               device: DeviceAddress | None = None, devices: int = 1,
               trials_per_task: int = 256, seed: int = 0,
               progress: Callable[[TuneStatus], None] | None = None) -> TuneReport:
    """Tune ``model``'s edgec kernels for ``target`` until ``max_trials``
    candidates or ``budget_s`` seconds are spent; records go to the database."""
    t = tvm_target(target)
    if t.kind.name != "llvm":
        raise UnsupportedError(f"target '{target.name}' is a {t.kind.name} target; edgec "
                               "tune covers the CPU kernels of CPU targets")
    builder, runner = make_runner(target, device, devices)
    tasks = extract_tasks(model, target, t, source)
    if not tasks:
        raise UnsupportedError(f"{source}: no edgec kernels to tune (no conv or matmul "
                               "with constant weights); TVM's own kernels are not tuned")
    db = open_tuning_db(target, t, db_dir, create=True)
    run = _Run(TuneReport(db.folder, target.name, tasks), cpu_side(t), db, builder, runner,
               max_trials, budget_s, progress or (lambda _s: None))
    with _stop_on_interrupt(run):
        for i, task in enumerate(tasks):
            if run.stop:
                break
            run.say(task, f"measuring template {i + 1}/{len(tasks)}")
            _load_state(task, run.t, db, builder, runner)
        while not run.spent():
            candidates = [x for x in tasks if not x.done and x.trials < trials_per_task]
            if not candidates:
                break
            task = max(candidates, key=lambda x: x.weight_s)
            n = ROUND if max_trials is None else min(ROUND, max_trials - run.report.trials)
            before = task.trials
            # a new seed per round, also across resumed runs (trials on record differ)
            _round(task, run, min(n, trials_per_task - task.trials), seed + task.trials)
            task.done = task.trials == before  # the space has nothing new
    run.report.interrupted = run.stop
    run.report.seconds = time.perf_counter() - run.started
    return run.report


@dataclass
class _Run:
    report: TuneReport
    t: tvm.target.Target
    db: TuningDB
    builder: object
    runner: object
    max_trials: int | None
    budget_s: float | None
    progress: Callable[[TuneStatus], None]
    started: float = field(default_factory=time.perf_counter)
    stop: bool = False  # Ctrl-C: finish the batch being measured, then stop

    def spent(self) -> bool:
        return self.stop or (
            self.budget_s is not None and time.perf_counter() - self.started >= self.budget_s
        ) or (self.max_trials is not None and self.report.trials >= self.max_trials)

    def say(self, task: Task, message: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        left = None
        if self.budget_s is not None:
            left = max(self.budget_s - elapsed, 0.0)
        if self.max_trials is not None and self.report.trials:
            by_trials = (self.max_trials - self.report.trials) * elapsed / self.report.trials
            left = by_trials if left is None else min(left, by_trials)
        gflops = task.kernel.flops / task.best_s / 1e9 if task.best_s else 0.0
        self.progress(TuneStatus(task.name, gflops, self.report.trials, self.max_trials,
                                 elapsed, left, message))

    def measured(self, task: Task, secs: list[float]) -> None:
        ok = [s for s in secs if s > 0]
        task.trials += len(secs)
        self.report.trials += len(secs)
        if ok and min(ok) < task.best_s:
            task.best_s = min(ok)
        self.say(task)


@contextlib.contextmanager
def _stop_on_interrupt(run: _Run):
    """Ctrl-C asks to stop after the batch being measured (its records are
    saved); a second one quits at once. MetaSchedule's loop turns a
    KeyboardInterrupt raised inside its callbacks into a logged error and
    carries on, so the signal cannot be left to Python's default handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_sig, _frame):
        if run.stop:
            os.write(2, b"edgec: interrupted\n")
            os._exit(130)
        run.stop = True
        os.write(2, b"edgec: stopping after the batch being measured (Ctrl-C again to quit "
                    b"now)\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _round(task: Task, run: _Run, n: int, seed: int) -> None:
    """One batch of ``n`` candidates for ``task``: generated by the evolutionary
    search (seeded from the database's best), built, measured and committed.

    The template is measured again first: on a shared machine a slow phase
    while it was first timed would otherwise let any candidate look faster.
    Its records accumulate, and the fastest of them is the bar to beat."""
    again = _measure_template(task, task.template, run.t, run.db, run.builder, run.runner)
    task.template_s = min(task.template_s, again)
    task.best_s = min(task.best_s, again)
    cores = host_core_count()[0]  # the CPUs this process may use, as the runtime does
    if task.cost_model is None:
        task.cost_model = ms.cost_model.CostModel.create("xgb", num_tuning_cores=cores)
    ctx = ms.TuneContext(
        mod=task.mod, target=run.t, space_generator="post-order-apply",
        search_strategy=ms.search_strategy.EvolutionarySearch(
            population_size=128, init_min_unmeasured=32),
        task_name=task.name, rand_state=seed, num_threads=cores, logger=_quiet_logger()).clone()
    with tempfile.TemporaryDirectory(prefix="edgec-tune-") as work:
        ms.tune.tune_tasks(
            tasks=[ctx], task_weights=[1.0], work_dir=work, max_trials_global=n,
            num_trials_per_iter=n, builder=run.builder, runner=run.runner, database=run.db.db,
            cost_model=task.cost_model,
            measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                               _Reporter(lambda secs: run.measured(task, secs))],
            task_scheduler="round-robin")

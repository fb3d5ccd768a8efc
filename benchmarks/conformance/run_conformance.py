"""ONNX conformance: every backend node test case through edgec and onnxruntime.

The onnx package defines ~1900 node test cases (one op, inputs, expected
outputs). Each case runs through onnxruntime (CPUExecutionProvider) and through
edgec (compile for ``host``, run); a sample of the cases edgec compiles also
runs for aarch64 under qemu-user. Both engines are held to the ONNX backend
test tolerances (``onnx.backend.test.runner``: rtol 1e-3, atol 1e-7, NaN equal
to NaN; exact for integers, bools and strings; shape and dtype must match).

Every (case, engine) gets one class: pass, wrong (ran, but values, shape or
dtype differ), refused (compile or session creation raised: for edgec an
EdgecError with its exit code), runfail (raised at run time), crash (the worker
process died) or timeout. Cases run in long-lived worker processes (this file
with ``--worker``) so a segfault costs one case, not the run.

Known edgec failures are listed, with the reason, in exclusions.toml next to
this file; ``--check`` (and tests/test_conformance.py) fails on an unlisted
failure, on a listed case that passes (the list only shrinks) and on fewer
cases than FLOOR.

    python benchmarks/conformance/run_conformance.py [--jobs 2] [--every K]
        [--only REGEX] [--emulate-sample K] [--bound] [--check] [--write-exclusions]

``--bound`` also compiles every case with several inputs with all inputs but the
first bound as constants, as real models hold weights, shapes, axes and scales:
the node tests feed those at run time, which hides edgec's constant-only paths
(its kernels, folding) and ops TVM imports only with constant parameters.

Writes benchmarks/conformance.md (full runs; ``--markdown`` for partial ones)
and out/conformance/results.json.

Recent onnx wheels (1.23.2 here) do not ship ``backend/test/data/node``; its
generators (``onnx.backend.test.case.node``) still ship, so the case folders are
generated from them once per onnx version into edgec's cache (``--data`` takes
an existing folder instead), exactly as ``onnx/backend/test/cmd_tools.py``
writes them.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import functools
import json
import os
import platform
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
import tomllib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXCLUSIONS = HERE / "exclusions.toml"
MARKDOWN = REPO / "benchmarks" / "conformance.md"
JSON_OUT = REPO / "out" / "conformance" / "results.json"

#: onnx.backend.test.runner's tolerances for every node case.
RTOL, ATOL = 1e-3, 1e-7
#: Fewer cases than this in a full run means discovery broke, not that ops got
#: better (onnx 1.23 defines 1884; older supported onnx releases slightly fewer).
FLOOR = 1500
STATUSES = ("pass", "wrong", "refused", "runfail", "crash", "timeout")
FAILURES = STATUSES[1:]
#: Engines: onnxruntime, edgec on this machine, edgec for aarch64 under qemu-user, and
#: edgec on this machine with every input but the first bound as a constant (--bound).
ORT, EDGEC, EDGEC_ARM, EDGEC_BOUND = "onnxruntime", "edgec", "edgec-arm", "edgec-bound"
#: Exclusion sections: which engine each lists failures of.
SECTIONS = {"case": EDGEC, "arm": EDGEC_ARM, "bound": EDGEC_BOUND}
ARM_TARGET = "arm/cortex-a76-dotprod"
#: Tools an emulated run needs (Debian: qemu-user, gcc-aarch64-linux-gnu, g++-...).
ARM_TOOLS = ("qemu-aarch64", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++")
#: A worker is replaced after this many tasks, so leaks in TVM cannot add up.
RECYCLE_AFTER = 400
_EXPANDED = re.compile(r"_expanded(_ver\d+)?$")


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One node test folder: model.onnx and test_data_set_*/{input,output}_*.pb."""

    name: str
    path: Path
    op: str  # "Op", "domain.Op", with " (expanded)" for a function body's expansion
    inputs: int = 1  # graph inputs: a case with more than one also runs --bound


def onnx_node_dir() -> Path:
    """Where the installed onnx keeps its node cases (absent from recent wheels)."""
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"


def _write_value(path: Path, value: Any, type_proto, name: str) -> None:
    """One input/output .pb the way onnx's cmd_tools.generate_data writes it."""
    from onnx import TensorProto, numpy_helper

    kind = type_proto.WhichOneof("value")
    if kind == "map_type":
        proto = numpy_helper.from_dict(value, name)
    elif kind == "sequence_type":
        proto = numpy_helper.from_list(value, name)
    elif kind == "optional_type":
        proto = numpy_helper.from_optional(value, name)
    else:
        proto = value if isinstance(value, TensorProto) else numpy_helper.from_array(value, name)
    path.write_bytes(proto.SerializeToString())


def generate_node_data(dest: Path) -> Path:
    """Write every node case of the installed onnx under ``dest`` (atomically: a
    half-written folder is never taken for a complete one)."""
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for case in cases:
            folder = stage / case.name
            folder.mkdir()
            (folder / "model.onnx").write_bytes(case.model.SerializeToString())
            graph = case.model.graph
            for i, (inputs, outputs) in enumerate(case.data_sets):
                ds = folder / f"test_data_set_{i}"
                ds.mkdir()
                for j, value in enumerate(inputs):
                    _write_value(ds / f"input_{j}.pb", value, graph.input[j].type,
                                 graph.input[j].name)
                for j, value in enumerate(outputs):
                    _write_value(ds / f"output_{j}.pb", value, graph.output[j].type,
                                 graph.output[j].name)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return dest


def node_data_dir(data: str | Path | None = None) -> Path:
    """The folder of case folders: ``data``, else onnx's own, else generated into the cache."""
    if data is not None:
        return Path(data)
    shipped = onnx_node_dir()
    if shipped.is_dir() and any(shipped.iterdir()):
        return shipped
    import onnx

    from edgec.cache import cache_dir

    dest = cache_dir("onnx-node-tests") / f"onnx-{onnx.__version__}"
    if not (dest / "test_abs" / "model.onnx").exists():
        print(f"generating the onnx {onnx.__version__} node test cases into {dest}",
              file=sys.stderr, flush=True)
        generate_node_data(dest)
    return dest


def _op_name(node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def discover(data: str | Path | None = None) -> list[Case]:
    """Every case folder, sorted by name, each with the op it tests.

    The op of a case is its single node's op type. A case named ``*_expanded``
    (or ``*_expanded_verN``) is the function body of its unexpanded twin: it
    counts for "<twin's op> (expanded)", a row of its own, so an op's row says
    how the op itself fares and not how the primitives of its body do.
    """
    import onnx

    root = node_data_dir(data)
    folders = sorted(p for p in root.iterdir() if (p / "model.onnx").is_file())
    single: dict[str, str] = {}
    multi: list[tuple[str, Path, list[str]]] = []
    n_inputs: dict[str, int] = {}
    for folder in folders:
        graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
        inits = {t.name for t in graph.initializer}
        n_inputs[folder.name] = sum(vi.name not in inits for vi in graph.input)
        ops = [_op_name(n) for n in graph.node]
        if len(ops) == 1 and not _EXPANDED.search(folder.name):
            single[folder.name] = ops[0]
        else:
            multi.append((folder.name, folder, ops))
    cases = [Case(name, root / name, op, n_inputs[name]) for name, op in single.items()]
    for name, folder, ops in multi:
        twin = single.get(_EXPANDED.sub("", name))
        op = f"{twin} (expanded)" if twin else "+".join(dict.fromkeys(ops)) or "(no node)"
        cases.append(Case(name, folder, op, n_inputs[name]))
    return sorted(cases, key=lambda c: c.name)


def select_cases(cases: list[Case], only: str | None = None, every: int = 1) -> list[Case]:
    """``only``: a regex searched in the case name; then every ``every``-th case (from the
    first: deterministic, so a CI sample is the same cases every run)."""
    if only:
        pattern = re.compile(only)
        cases = [c for c in cases if pattern.search(c.name)]
    return cases[::max(1, every)]


def read_value(path: Path, type_proto) -> Any:
    """A .pb as the runner reads it: ndarray, list (sequence), value or None (optional)."""
    from onnx import MapProto, OptionalProto, SequenceProto, TensorProto, numpy_helper

    data = path.read_bytes()
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        proto = TensorProto()
        proto.ParseFromString(data)
        return numpy_helper.to_array(proto)
    if kind == "sequence_type":
        proto = SequenceProto()
        proto.ParseFromString(data)
        return numpy_helper.to_list(proto)
    if kind == "optional_type":
        proto = OptionalProto()
        proto.ParseFromString(data)
        return numpy_helper.to_optional(proto)
    if kind == "map_type":
        proto = MapProto()
        proto.ParseFromString(data)
        return numpy_helper.to_dict(proto)
    raise ValueError(f"{path}: values of type {kind} are not read")


def load_data_sets(folder: Path, model) -> list[tuple[dict[str, Any], list[Any]]]:
    """[(feeds by input name, expected outputs in graph order)] of every test_data_set_*."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in inits]
    sets = []
    for ds in sorted(folder.glob("test_data_set_*"), key=lambda p: int(p.name.rsplit("_", 1)[1])):
        n_in = len(list(ds.glob("input_*.pb")))
        n_out = len(list(ds.glob("output_*.pb")))
        feeds = {inputs[j].name: read_value(ds / f"input_{j}.pb", inputs[j].type)
                 for j in range(n_in)}
        expected = [read_value(ds / f"output_{j}.pb", model.graph.output[j].type)
                    for j in range(n_out)]
        sets.append((feeds, expected))
    return sets


# ---------------------------------------------------------------------- comparison


@dataclass
class Verdict:
    """Whether outputs match, the first difference, and the largest absolute error seen."""

    ok: bool
    detail: str = ""
    max_abs: float | None = None


_AS_FLOAT32 = {"bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
               "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn"}
_AS_INT = {"int4", "uint4", "int2", "uint2"}


def _text(a: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else str(s),
                        otypes=[object])(a) if a.size else a.astype(object)


def _index(i: tuple) -> list[int]:
    return [int(k) for k in i]


def _compare_tensor(want: np.ndarray, got: Any, rtol: float, atol: float, where: str) -> Verdict:
    if not isinstance(got, np.ndarray | np.generic):
        return Verdict(False, f"{where}: got {type(got).__name__}, want a tensor")
    got = np.asarray(got)
    if got.shape != want.shape:
        return Verdict(False, f"{where}: shape {list(got.shape)}, want {list(want.shape)}")
    if want.dtype == object or want.dtype.kind in "US":  # strings, as the runner compares
        if got.dtype != object and got.dtype.kind not in "US":
            return Verdict(False, f"{where}: dtype {got.dtype}, want strings")
        bad = int(np.sum(_text(got) != _text(want)))
        return Verdict(bad == 0, f"{where}: {bad} of {want.size} strings differ" if bad else "")
    if got.dtype != want.dtype:
        return Verdict(False, f"{where}: dtype {got.dtype}, want {want.dtype}")
    name = want.dtype.name
    if want.dtype.kind in "biu" or name in _AS_INT:
        g, w = got.astype(np.int64), want.astype(np.int64)
        diff = np.abs(g - w)
        err = float(diff.max()) if diff.size else 0.0
        bad = int(np.count_nonzero(diff))
        if bad:
            i = np.unravel_index(int(np.argmax(diff)), diff.shape)
            return Verdict(False, f"{where}: {bad} of {want.size} elements differ (exact "
                           f"dtype {name}), e.g. at {_index(i)} got {g[i]}, want {w[i]}", err)
        return Verdict(True, "", 0.0)
    if name in _AS_FLOAT32:
        if name == "bfloat16":  # the runner's two-ULP allowance
            rtol = max(rtol, 2 ** -6)
        got, want = got.astype(np.float32), want.astype(np.float32)
    g, w = got.astype(np.complex128 if got.dtype.kind == "c" else np.float64), \
        want.astype(np.complex128 if want.dtype.kind == "c" else np.float64)
    close = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    with np.errstate(invalid="ignore"):
        diff = np.abs(g - w)
    both_nan = np.isnan(g) & np.isnan(w)
    diff = np.where(both_nan | (g == w), 0.0, diff)  # inf == inf, NaN == NaN: no error
    diff = np.where(np.isnan(diff), np.inf, diff)  # NaN against a number
    err = float(diff.max()) if diff.size else 0.0
    bad = int(close.size - np.count_nonzero(close))
    if bad:
        i = np.unravel_index(int(np.argmax(np.where(close, -1.0, diff))), diff.shape)
        return Verdict(False, f"{where}: {bad} of {want.size} elements differ, max abs err "
                       f"{err:.3g}, e.g. at {_index(i)} got {got[i]}, want {want[i]}", err)
    return Verdict(True, "", err)


def compare(expected: list[Any], actual: list[Any], rtol: float = RTOL, atol: float = ATOL,
            names: list[str] | None = None) -> Verdict:
    """``actual`` outputs against ``expected`` as onnx's backend test runner judges them.

    Tensors: same shape and dtype, then ``|got - want| <= atol + rtol * |want|``
    with NaN equal to NaN (np.testing.assert_allclose), exact for integer and
    bool dtypes (where rtol would let 1000 pass for 1001) and for strings.
    Sequences compare element by element, an empty optional is None.
    """
    names = names or [f"output {i}" for i in range(len(expected))]
    if len(actual) != len(expected):
        return Verdict(False, f"{len(actual)} outputs, want {len(expected)}")
    worst: float | None = None
    for want, got, name in zip(expected, actual, names, strict=True):
        v = _compare_value(want, got, rtol, atol, f"'{name}'")
        if v.max_abs is not None:
            worst = v.max_abs if worst is None else max(worst, v.max_abs)
        if not v.ok:
            return Verdict(False, v.detail, worst)
    return Verdict(True, "", worst)


def _compare_value(want: Any, got: Any, rtol: float, atol: float, where: str) -> Verdict:
    if want is None:  # an empty optional
        return Verdict(got is None, "" if got is None else f"{where}: a value, want none")
    if isinstance(want, list):
        if not isinstance(got, list | tuple):
            return Verdict(False, f"{where}: got {type(got).__name__}, want a sequence")
        if len(got) != len(want):
            return Verdict(False, f"{where}: sequence of {len(got)}, want {len(want)}")
        worst = None
        for k, (w, g) in enumerate(zip(want, got, strict=True)):
            v = _compare_value(w, g, rtol, atol, f"{where}[{k}]")
            if v.max_abs is not None:
                worst = v.max_abs if worst is None else max(worst, v.max_abs)
            if not v.ok:
                return Verdict(False, v.detail, worst)
        return Verdict(True, "", worst)
    if isinstance(want, dict):
        return Verdict(want == got, "" if want == got else f"{where}: map differs")
    if got is None:
        return Verdict(False, f"{where}: none, want a value")
    return _compare_tensor(np.asarray(want), got, rtol, atol, where)


# ------------------------------------------------------------------------- engines


@dataclass
class Outcome:
    """What one engine did with one case."""

    case: str
    engine: str
    status: str
    message: str = ""  # the refusal or error (one line), or the first difference
    exit_code: int | None = None  # edgec's, for a refusal
    max_abs: float | None = None
    seconds: float = 0.0


def _one_line(exc: BaseException | str, limit: int = 400) -> str:
    """The first non-blank line of an error (``Type: ...`` unless it is edgec's own
    one-line message), cut to ``limit`` characters for the report."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    line = lines[0] if lines else type(exc).__name__
    if line.endswith(":") and len(lines) > 1:  # "...failed: Compilation error:" says nothing
        line = f"{line} {lines[1]}"
    if isinstance(exc, BaseException) and not hasattr(exc, "exit_code"):
        line = f"{type(exc).__name__}: {line}"
    return line if len(line) <= limit else line[:limit - 3] + "..."


def run_onnxruntime(case: str, folder: Path) -> Outcome:
    """The case through an onnxruntime CPU session (one thread: the jobs share the cores)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(folder / "model.onnx"))
    sets = load_data_sets(folder, model)
    names = [o.name for o in model.graph.output]
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(folder / "model.onnx"), opts,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # any failure to build the session is a refusal
        return Outcome(case, ORT, "refused", _one_line(exc))
    return _judge(case, ORT, sets, names, lambda feeds: session.run(None, feeds))


def run_edgec(case: str, folder: Path, work: Path, *, target: str = "host",
              bound: bool = False) -> Outcome:
    """The case compiled by edgec for ``target`` and run here (aarch64: under qemu-user).

    ``bound``: every graph input but the first becomes a constant (``input_consts``)
    with the test's value, as weights, shapes, axes and scales are in real models;
    the node tests feed them at run time, which TVM often cannot import, and
    edgec's own kernels and folding only see constants.
    """
    import onnx

    import edgec
    from edgec.errors import EdgecError

    engine = EDGEC_BOUND if bound else (EDGEC if target == "host" else EDGEC_ARM)
    model = onnx.load(str(folder / "model.onnx"))
    sets = load_data_sets(folder, model)
    names = [o.name for o in model.graph.output]
    out = work / f"{case}.edgec"
    consts = {}
    if bound:
        feeds = sets[0][0]
        consts = {k: v for k, v in list(feeds.items())[1:] if isinstance(v, np.ndarray)}
        sets = [({k: v for k, v in f.items() if k not in consts}, e) for f, e in sets[:1]]
    try:
        art = edgec.compile(folder / "model.onnx", target=target, output=out,
                            input_consts=consts or None)
    except EdgecError as exc:
        return Outcome(case, engine, "refused", _one_line(exc.message), exc.exit_code)
    except Exception as exc:  # the CLI's exit 70: an internal error
        return Outcome(case, engine, "refused", f"internal error: {_one_line(exc)}", 70)
    emulate = target != "host"

    def run(feeds: dict[str, Any]) -> list[Any]:
        wanted = {s.name for s in art.inputs}
        outs = art.run({k: v for k, v in feeds.items() if k in wanted}, emulate=emulate)
        missing = [n for n in names if n not in outs]
        if missing:
            raise _MissingOutput(f"edgec returned no output {missing[0]!r} "
                                 f"(it returned {sorted(outs)})")
        return [outs[n] for n in names]

    try:
        return _judge(case, engine, sets, names, run)
    finally:
        out.unlink(missing_ok=True)


class _MissingOutput(Exception):
    """An output the model declares that the engine did not return: wrong, not a run failure."""


def _judge(case: str, engine: str, sets, names: list[str], run) -> Outcome:
    worst = None
    for feeds, expected in sets:
        try:
            got = run(feeds)
        except _MissingOutput as exc:
            return Outcome(case, engine, "wrong", str(exc))
        except Exception as exc:  # whatever the engine raises is its failure
            code = getattr(exc, "exit_code", None)
            return Outcome(case, engine, "runfail", _one_line(exc), code)
        v = compare(expected, list(got), names=names[:len(expected)])
        if v.max_abs is not None:
            worst = v.max_abs if worst is None else max(worst, v.max_abs)
        if not v.ok:
            return Outcome(case, engine, "wrong", v.detail, max_abs=worst)
    return Outcome(case, engine, "pass", max_abs=worst)


def run_task(task: dict, work: Path) -> Outcome:
    """One (case, engine) in this process."""
    folder = Path(task["path"])
    if task["engine"] == "selftest:crash":  # tests/test_conformance.py: crash isolation
        os.kill(os.getpid(), signal.SIGSEGV)
    if task["engine"] == "selftest:hang":
        time.sleep(3600)
    if task["engine"] == ORT:
        return run_onnxruntime(task["case"], folder)
    if task["engine"] == EDGEC:
        return run_edgec(task["case"], folder, work)
    if task["engine"] == EDGEC_BOUND:
        return run_edgec(task["case"], folder, work, bound=True)
    return run_edgec(task["case"], folder, work, target=ARM_TARGET)


def worker_main() -> int:
    """Serve tasks: one JSON line in on stdin, one JSON line out on the original stdout.

    Whatever TVM, LLVM or the compiler print goes to stderr (the worker's log),
    so the protocol stream carries only answers.
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    work = Path(tempfile.mkdtemp(prefix="worker-", dir=os.environ.get(_SCRATCH_ENV)))
    try:
        for line in sys.stdin:
            task = json.loads(line)
            print(f"== {task['case']} {task['engine']}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                outcome = run_task(task, work)
            except Exception as exc:  # a harness failure, reported as such
                outcome = Outcome(task["case"], task["engine"], "runfail",
                                  f"harness error: {_one_line(exc)}")
            outcome.seconds = round(time.perf_counter() - start, 3)
            # The case's folder is in every edgec message; the report names the case anyway.
            outcome.message = outcome.message.replace(
                str(Path(task["path"]) / "model.onnx"), "model.onnx").replace(str(work), "WORK")
            proto.write(json.dumps(asdict(outcome)) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


# ------------------------------------------------------------------------- workers


class Worker:
    """One long-lived worker process, replaced when it dies, hangs or has done enough."""

    def __init__(self, slot: int, log_dir: Path, env: dict[str, str]):
        self.slot, self.env, self.proc, self.done = slot, env, None, 0
        self.log_path = log_dir / f"worker-{slot}.log"
        self.log_path.write_text("")

    def _start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=self.env,
            start_new_session=True)  # its own process group: a kill takes gcc/qemu too
        log.close()
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
        """The task's outcome; crash or timeout when the worker dies or overruns."""
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
            return Outcome(task["case"], task["engine"], "timeout",
                           f"no answer within {timeout:g} s; worker killed", seconds=seconds)
        if not line:
            code = self.proc.wait()
            self.proc = None
            how = (f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}")
            tail = self._log_tail()
            return Outcome(task["case"], task["engine"], "crash",
                           f"worker died ({how})" + (f"; last log line: {tail}" if tail else ""),
                           seconds=seconds)
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


_SCRATCH_ENV = "EDGEC_CONFORMANCE_SCRATCH"


@functools.cache
def scratch() -> Path:
    """This run's temporary folder (workers' artifacts, an empty tuning database, logs),
    removed when the process exits, so a killed worker leaves nothing behind."""
    root = Path(tempfile.mkdtemp(prefix="edgec-conformance-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def worker_env() -> dict[str, str]:
    """One thread per worker (--jobs workers share the cores); no user tuning records;
    no downloads (the aarch64 runtime comes from the cache `make setup` fills)."""
    env = dict(os.environ)
    tuning = scratch() / "tuning"
    tuning.mkdir(exist_ok=True)
    env.update(TVM_NUM_THREADS="1", OMP_NUM_THREADS="1", EDGEC_NO_DOWNLOAD="1",
               EDGEC_TUNING_DB=str(tuning), **{_SCRATCH_ENV: str(scratch())})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def run_tasks(tasks: list[tuple[Case, str]], *, jobs: int = 2, timeout: float = 120.0,
              log_dir: Path | None = None, progress: bool = True) -> list[Outcome]:
    """Every (case, engine) on ``jobs`` workers; outcomes in task order."""
    log_dir = log_dir or scratch() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = worker_env()
    todo: queue.Queue = queue.Queue()
    for i, (case, engine) in enumerate(tasks):
        todo.put((i, {"case": case.name, "path": str(case.path), "engine": engine}))
    results: list[Outcome | None] = [None] * len(tasks)
    lock = threading.Lock()
    start = time.perf_counter()
    done = [0]

    def serve(slot: int) -> None:
        worker = Worker(slot, log_dir, env)
        try:
            while True:
                try:
                    i, task = todo.get_nowait()
                except queue.Empty:
                    return
                outcome = worker.run(task, timeout)
                with lock:
                    results[i] = outcome
                    done[0] += 1
                    if progress and (done[0] % 100 == 0 or done[0] == len(tasks)
                                     or outcome.status in ("crash", "timeout")):
                        note = ("" if outcome.status not in ("crash", "timeout") else
                                f"  [{outcome.case} {outcome.engine}: {outcome.status}]")
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
    return [r for r in results if r is not None]


def missing_arm_tools() -> list[str]:
    return [t for t in ARM_TOOLS if shutil.which(t) is None]


def arm_sample(cases: list[Case], host: dict[str, Outcome], k: int) -> list[Case]:
    """``k`` cases spread evenly over those edgec compiles for this machine (a refused case
    is refused for aarch64 too, so emulating it would test nothing)."""
    compiled = [c for c in cases if c.name in host and host[c.name].status != "refused"]
    if k <= 0 or not compiled:
        return []
    if k >= len(compiled):
        return compiled
    return [compiled[(i * len(compiled)) // k] for i in range(k)]


# ------------------------------------------------------------------------- results


@dataclass
class Run:
    """A conformance run: which cases, every outcome, and how it was made."""

    cases: list[Case]
    outcomes: list[Outcome]
    full: bool  # every case found (no --only/--every): the floor and stale entries apply
    seconds: float = 0.0
    arm_note: str = ""  # why the emulated sample did not run, if it did not
    command: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def by_engine(self, engine: str) -> dict[str, Outcome]:
        return {o.case: o for o in self.outcomes if o.engine == engine}

    def to_json(self) -> dict:
        return {"meta": self.meta, "full": self.full, "seconds": self.seconds,
                "arm_note": self.arm_note, "command": self.command,
                "cases": [{"name": c.name, "op": c.op, "path": str(c.path), "inputs": c.inputs}
                          for c in self.cases],
                "outcomes": [asdict(o) for o in self.outcomes]}

    @classmethod
    def from_json(cls, data: dict) -> Run:
        """A saved run (--json), to render or check again without running it."""
        return cls([Case(c["name"], Path(c.get("path", c["name"])), c["op"], c.get("inputs", 1))
                    for c in data["cases"]], [Outcome(**o) for o in data["outcomes"]],
                   data["full"], data["seconds"], data.get("arm_note", ""),
                   data.get("command", ""), data.get("meta", {}))


def run_conformance(cases: list[Case], *, jobs: int = 2, timeout: float = 120.0,
                    emulate_sample: int = 0, bound: bool = False, full: bool = False,
                    log_dir: Path | None = None, progress: bool = True) -> Run:
    """onnxruntime and edgec (host) on every case, edgec with inputs bound (``bound``) on
    those with several inputs, then edgec for aarch64 on a sample."""
    start = time.perf_counter()
    tasks = [(c, e) for c in cases for e in (EDGEC, ORT)]
    if bound:
        tasks += [(c, EDGEC_BOUND) for c in cases if c.inputs > 1]
    outcomes = run_tasks(tasks, jobs=jobs, timeout=timeout, log_dir=log_dir, progress=progress)
    note = ""
    if emulate_sample > 0:
        missing = missing_arm_tools()
        if missing:
            note = (f"emulated aarch64 sample skipped: {', '.join(missing)} not on PATH "
                    "(apt-get install qemu-user gcc-aarch64-linux-gnu g++-aarch64-linux-gnu)")
            print(note, file=sys.stderr)
        else:
            host = {o.case: o for o in outcomes if o.engine == EDGEC}
            sample = arm_sample(cases, host, emulate_sample)
            if progress:
                print(f"emulated aarch64 ({ARM_TARGET}): {len(sample)} cases", file=sys.stderr)
            outcomes += run_tasks([(c, EDGEC_ARM) for c in sample], jobs=jobs, timeout=timeout,
                                  log_dir=log_dir, progress=progress)
    run = Run(cases, outcomes, full, round(time.perf_counter() - start, 1), note)
    run.meta = environment()
    return run


def environment() -> dict[str, Any]:
    """Versions and machine, for the report's header."""
    from importlib.metadata import PackageNotFoundError, version

    def ver(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return "-"

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    host = "-"
    with contextlib.suppress(Exception):
        import edgec

        host = edgec.resolve_target("host").name
    return {"date": datetime.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(),
            "machine": platform.machine(), "host_target": host, "onnx": ver("onnx"),
            "onnxruntime": ver("onnxruntime"), "edgec": ver("edgec"),
            "tvm": ver("apache-tvm"), "python": platform.python_version()}


# ---------------------------------------------------------------------- exclusions


def load_exclusions(path: Path = EXCLUSIONS) -> dict[str, dict[str, dict[str, str]]]:
    """{"case": {name: {status, reason}}, "arm": {...}, "bound": {...}}: ``[case.NAME]``
    lists an edgec failure on this machine, ``[arm.NAME]`` one only the emulated aarch64
    build has, ``[bound.NAME]`` one only the build with bound inputs has."""
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    return {section: dict(data.get(section, {})) for section in SECTIONS}


def check(run: Run, exclusions: dict[str, dict[str, dict[str, str]]],
          floor: int = FLOOR) -> list[str]:
    """What makes the conformance test fail, one line each (empty: all is as listed).

    - an edgec failure not listed (a wrong value above all: it must be listed with
      its reason until edgec refuses the op instead);
    - a listed case that passes now (the list only shrinks) or fails in another
      way than listed (the entry no longer says what happens);
    - in a full run: fewer cases than ``floor``, or a listed case that no longer exists.
    """
    problems = []
    listed = exclusions["case"]
    if run.full and len(run.cases) < floor:
        problems.append(f"only {len(run.cases)} cases found, fewer than the floor of {floor}: "
                        "is the onnx node test data complete?")
    for section, engine in SECTIONS.items():
        table = exclusions.get(section, {})
        where = {EDGEC: "", EDGEC_ARM: " (emulated aarch64)", EDGEC_BOUND: " (inputs bound)"}
        where = where[engine]
        for o in run.by_engine(engine).values():
            # Another build failing the way this machine's does needs no entry of its own.
            entry = table.get(o.case) or (listed.get(o.case) if engine != EDGEC else None)
            if o.status == "pass":
                if o.case in table:
                    problems.append(f"{o.case}{where}: passes now; remove [{section}.{o.case}] "
                                    "from exclusions.toml")
            elif entry is None:
                err = f" (max abs err {o.max_abs:.3g})" if o.max_abs is not None else ""
                problems.append(f"{o.case}{where}: edgec {o.status}{err} and not in "
                                f"exclusions.toml: {o.message}")
            elif entry.get("status") != o.status:
                problems.append(f"{o.case}{where}: listed as {entry.get('status')}, now "
                                f"{o.status}: {o.message}; update its entry")
    if run.full:
        names = {c.name for c in run.cases}
        problems += [f"{n}: listed in exclusions.toml but no such case" for n in listed
                     if n not in names]
    return problems


def normalise(message: str, case: Case | None = None) -> str:
    """A message without what is particular to one case (its path, node and value names),
    so refusals group by what they say."""
    if case is not None:
        message = message.replace(str(case.path / "model.onnx"), "model.onnx")
    message = re.sub(r"/\S*/model\.onnx", "model.onnx", message)
    message = re.sub(r"\S+\.(edgec|npy|so)\b", r"….\1", message)
    message = re.sub(r"\(unnamed, output '[^']*'\)", "(unnamed)", message)
    message = re.sub(r"\b([a-z]+\d*)\[[\d, ]+\]", r"\1[…]", message)  # float32[2,3,1]
    # The names of nodes, values and targets; other quoted words (a missing attribute's
    # name, a type) say what went wrong and stay.
    message = re.sub(r"\b(node|input|output|initializer|compile for) '[^']*'", r"\1 '…'",
                     message)
    return re.sub(r"\('[^']*'\)", "('…')", message)


_ADVICE = re.compile(r"; (rerun with|replace it in|convert the model|convert it|re-export|fix or "
                     r"re-export|recompile|bind the inputs|edgec's '[\w-]+' pass)\b.*$")


def tidy(message: str) -> str:
    """A message as an exclusion's reason quotes it: without the case's paths, temporary
    folders and the advice to the user (what to do is not why it fails)."""
    message = re.sub(r"^(model\.onnx|WORK/\S+\.edgec): ", "", message)
    message = re.sub(r"/tmp/edgec-[\w-]+/", "", message)
    return _ADVICE.sub("", message)


def _reason(o: Outcome, case: Case) -> str:
    """An exclusion's reason for a new entry: what was observed, on one line."""
    msg = tidy(o.message.replace(str(case.path / "model.onnx"), "model.onnx"))
    if o.status == "refused":
        return f"edgec refuses it (exit {o.exit_code}): {msg}"
    if o.status == "wrong":
        return f"wrong values: {msg}"
    if o.status == "runfail":
        return f"compiles, then fails at run time: {msg}"
    return f"{o.status}: {msg}"


def write_exclusions(run: Run, path: Path = EXCLUSIONS) -> None:
    """The exclusion file from this full run: every failing case, keeping the reason of an
    entry whose status is unchanged (hand-written reasons survive), new ones from the
    message observed."""
    old = load_exclusions(path)
    ops = {c.name: c for c in run.cases}
    header = [line for line in (path.read_text().splitlines() if path.exists() else [])
              if line.startswith("#")]
    header = header[:header.index("#")] if "#" in header else header
    if not header:
        header = ["# edgec's known failures on the ONNX backend node tests "
                  "(benchmarks/conformance/run_conformance.py).",
                  "# One entry per failing case; status is what happens, reason what is "
                  "wrong and why.",
                  "# tests/test_conformance.py fails on a failure not listed here and on a "
                  "listed case", "# that passes: the list only shrinks."]
    lines = [*header, "#", f"# Written from a full run on {run.meta.get('date')} "
             f"(onnx {run.meta.get('onnx')}, edgec {run.meta.get('edgec')}, "
             f"TVM {run.meta.get('tvm')}).", ""]
    for section, engine in SECTIONS.items():
        outcomes = run.by_engine(engine)
        for name in sorted(outcomes):
            o = outcomes[name]
            if o.status == "pass":
                continue
            host = run.by_engine(EDGEC).get(name)
            if section != "case" and host is not None and host.status == o.status:
                continue  # the host entry covers it (check() accepts it for both)
            prev = old[section].get(name)
            reason = (prev["reason"] if prev and prev.get("status") == o.status
                      else _reason(o, ops[name]))
            lines += [f"[{section}.{name}]", f'status = "{o.status}"',
                      f"reason = {json.dumps(reason, ensure_ascii=False)}", ""]
    path.write_text("\n".join(lines).rstrip("\n") + "\n")


# ------------------------------------------------------------------ benchmark ops


def _graph_ops(graph, into: set[str]) -> None:
    for node in graph.node:
        into.add(_op_name(node))
        for attr in node.attribute:
            if attr.HasField("g"):
                _graph_ops(attr.g, into)
            for g in attr.graphs:
                _graph_ops(g, into)


def benchmark_ops() -> dict[str, list[str]]:
    """{op: [models using it]} over the catalog models, the bench suite's and models/real;
    a model of the bench suite is marked with '*'."""
    import onnx

    catalog = tomllib.loads((REPO / "models" / "catalog.toml").read_text())["model"]
    suite = set(tomllib.loads((REPO / "benchmarks" / "suite.toml").read_text())["models"])
    paths = {m["name"]: REPO / m["path"] for m in catalog}
    for p in sorted((REPO / "models" / "real").glob("*.onnx")):
        if p not in paths.values():
            paths[p.stem] = p
    users: dict[str, list[str]] = defaultdict(list)
    for name, path in paths.items():
        if not path.exists():
            continue
        ops: set[str] = set()
        _graph_ops(onnx.load(str(path), load_external_data=False).graph, ops)
        for op in ops:
            users[op].append(f"{name}*" if name in suite else name)
    return dict(users)


def tvm_expressible() -> set[str]:
    """Default-domain ops TVM's importer converts or an edgec pass lowers."""
    try:
        from edgec.backend.tvm.coverage import LOWERED_BY_EDGEC, tvm_onnx_ops

        return set(tvm_onnx_ops()) | set(LOWERED_BY_EDGEC)
    except Exception:  # fall back to TVM's own map if edgec's moved
        from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

        return set(_get_convert_map()) | {"If", "Constant"}


# -------------------------------------------------------------------------- report


_ORT_BINDING = re.compile(r"can't be converted to MLDataType|No corresponding Numpy type|"
                          r"dtype uint8, want float8")


def _counts(outcomes) -> Counter:
    return Counter(o.status for o in outcomes)


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def markdown(run: Run, exclusions: dict | None = None) -> str:
    """benchmarks/conformance.md: summary, goals, wrong values, crashes, refusals, per op."""
    m = run.meta
    edgec, ort, arm = run.by_engine(EDGEC), run.by_engine(ORT), run.by_engine(EDGEC_ARM)
    bound = run.by_engine(EDGEC_BOUND)
    ops = {c.name: c.op for c in run.cases}
    case_of = {c.name: c for c in run.cases}
    expressible = tvm_expressible()
    out = ["# ONNX conformance: edgec and onnxruntime on the onnx node tests", "",
           "<!-- written by benchmarks/conformance/run_conformance.py; do not edit -->", "",
           f"{len(run.cases)} cases (onnx {m.get('onnx')} backend node tests"
           f"{'' if run.full else ', a selection'}), run on {m.get('date')} on {m.get('cpu')} "
           f"({m.get('cores')} cores, {m.get('machine')}; edgec's host target "
           f"{m.get('host_target')}) in {run.seconds / 60:.1f} min: edgec {m.get('edgec')} "
           f"(TVM {m.get('tvm')}), onnxruntime {m.get('onnxruntime')} "
           "(CPUExecutionProvider), one thread per worker.", "",
           f"Command: `{run.command or 'python benchmarks/conformance/run_conformance.py'}`", "",
           "Each case's outputs are held to the backend test runner's tolerances (rtol 1e-3, "
           "atol 1e-7, NaN equal to NaN; exact for integer, bool and string outputs; shape and "
           "dtype must match). **wrong**: ran, but a value, shape or dtype differs; "
           "**refused**: compile (edgec) or session creation (onnxruntime) failed; **runfail**: "
           "failed at run time; **crash**: the worker process died; **timeout**: no answer "
           "within the per-case limit.", ""]
    heads = ["", "cases", *STATUSES]
    out += [_row(*heads), _row(*["---"] * len(heads))]
    for label, table in ((f"edgec ({m.get('host_target')})", edgec), ("onnxruntime", ort),
                         (f"edgec {ARM_TARGET}, emulated (sample)", arm),
                         ("edgec, inputs after the first bound as constants", bound)):
        if table:
            c = _counts(table.values())
            out.append(_row(label, len(table), *(c[s] for s in STATUSES)))
    refused = Counter(o.exit_code for o in edgec.values() if o.status == "refused")
    if refused:
        what = {3: "bad model (the ONNX checker failed)", 4: "unsupported (a clear refusal)",
                5: "toolchain (linking failed)", 6: "TVM failed on a model edgec accepted",
                70: "internal error in edgec"}
        out += ["", "edgec's refusals by exit code: " + "; ".join(
            f"{code}, {what.get(code, '?')}: {n}" for code, n in sorted(refused.items()))
            + "."]
    binding = sum(o.status in ("runfail", "wrong") and bool(_ORT_BINDING.search(o.message))
                  for o in ort.values())
    if binding:
        out += ["", f"{binding} of onnxruntime's failures are its Python API's, not its "
                "kernels': it cannot take or return bfloat16, float8, 4-bit or 2-bit arrays "
                "(`Numpy_type ... can't be converted`, `No corresponding Numpy type`) and "
                "returns float8 as uint8."]
    if run.arm_note:
        out += ["", run.arm_note]
    # Goals.
    wrong = sorted(n for n, o in edgec.items() if o.status == "wrong")
    arm_wrong = sorted(n for n, o in arm.items() if o.status == "wrong")
    bound_wrong = sorted(n for n, o in bound.items() if o.status == "wrong")
    on_tvm = [c.name for c in run.cases if c.op in expressible]
    e_tvm = sum(edgec[n].status == "pass" for n in on_tvm if n in edgec)
    o_tvm = sum(ort[n].status == "pass" for n in on_tvm if n in ort)
    e_any = sum(any(t.get(n) is not None and t[n].status == "pass" for t in (edgec, bound))
                for n in on_tvm)
    out += ["", "## Goals", "",
            f"- Wrong values: edgec {len(wrong)} on this machine"
            f"{f', {len(arm_wrong)} emulated aarch64' if arm else ''}"
            f"{f', {len(bound_wrong)} with inputs bound' if bound else ''} (goal 0: an op "
            "edgec cannot do right is refused at compile time).",
            f"- On the {len(on_tvm)} cases of ops TVM's importer converts (or an edgec pass "
            f"lowers; not counting `(expanded)` rows): edgec passes {e_tvm} as given"
            + (f", {e_any} as given or with its inputs after the first bound as constants "
               "(how models hold weights, axes and shapes)" if bound else "")
            + f"; onnxruntime {o_tvm} (goal: edgec >= onnxruntime).",
            ]
    bench = benchmark_ops()
    per_op: dict[str, list[str]] = defaultdict(list)
    for c in run.cases:
        per_op[c.op].append(c.name)
    bad_bench = [op for op in bench if any(edgec.get(n) and edgec[n].status != "pass"
                                           for n in per_op.get(op, []))]
    out.append(f"- Ops of the benchmark models with a failing case: "
               f"{', '.join(sorted(bad_bench)) or 'none'} (goal: none; table below).")
    if exclusions is not None:
        problems = check(run, exclusions)
        out.append(f"- Against exclusions.toml: "
                   f"{'as listed' if not problems else f'{len(problems)} problem(s)'}.")
    # Wrong values.
    out += ["", "## edgec: wrong values", ""]
    if not wrong and not arm_wrong and not bound_wrong:
        out.append("None.")
    else:
        out += [_row("case", "op", "where", "max abs err", "first difference"),
                _row("---", "---", "---", "---", "---")]
        for engine, names, label in ((edgec, wrong, "host"), (arm, arm_wrong, "aarch64 (qemu)"),
                                     (bound, bound_wrong, "host, inputs bound")):
            for n in names:
                o = engine[n]
                err = "-" if o.max_abs is None else f"{o.max_abs:.3g}"
                out.append(_row(n, ops[n], label, err, o.message))
    # Crashes and timeouts.
    bad = [o for o in run.outcomes if o.status in ("crash", "timeout")]
    out += ["", "## Crashes and timeouts", ""]
    if not bad:
        out.append("None.")
    else:
        out += [_row("case", "op", "engine", "class", "what"), _row(*["---"] * 5)]
        out += [_row(o.case, ops[o.case], o.engine, o.status, o.message)
                for o in sorted(bad, key=lambda o: (o.engine, o.case))]
    # edgec fails, onnxruntime passes.
    groups: dict[str, list[str]] = defaultdict(list)
    for n, o in edgec.items():
        if o.status not in ("pass", "wrong") and ort.get(n) and ort[n].status == "pass":
            code = f"exit {o.exit_code}" if o.exit_code is not None else o.status
            groups[f"{o.status} ({code}): {normalise(o.message, case_of[n])}"].append(n)
    out += ["", "## edgec fails, onnxruntime passes", "",
            f"{sum(map(len, groups.values()))} cases, grouped by edgec's message (quoted "
            "names replaced by '…').", ""]
    if groups:
        out += [_row("cases", "ops", "edgec's message", "e.g."), _row(*["---"] * 4)]
        for msg, names in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            op_list = sorted({ops[n] for n in names})
            shown = ", ".join(op_list[:8]) + (f" (+{len(op_list) - 8})" if len(op_list) > 8
                                              else "")
            out.append(_row(len(names), shown, msg, names[0]))
    # Benchmark-model ops.
    out += ["", "## Ops of the benchmark models", "",
            "Op types in models/catalog.toml's models and models/real (`*`: in the `make "
            "bench` suite), with edgec's results on the op's own cases (not its `(expanded)` "
            "row). The node tests feed shapes, axes, scales and weights at run time, where "
            "the models hold constants: bound pass is edgec's result with all inputs but "
            "the first bound as constants (`--bound`).", "",
            _row("op", "cases", "edgec pass", "all pass", "failing cases", "bound pass",
                 "models"), _row(*["---"] * 7)]
    for op in sorted(bench):
        names = per_op.get(op, [])
        passed = sum(edgec.get(n) is not None and edgec[n].status == "pass" for n in names)
        failing = [f"{n} ({edgec[n].status})" for n in names
                   if edgec.get(n) and edgec[n].status != "pass"]
        verdict = "no node test" if not names else ("yes" if passed == len(names) else "**no**")
        in_bound = [n for n in names if n in bound]
        b = (f"{sum(bound[n].status == 'pass' for n in in_bound)} of {len(in_bound)}"
             if in_bound else "-")
        out.append(_row(op, len(names), passed, verdict, ", ".join(failing) or "-", b,
                        ", ".join(sorted(bench[op]))))
    # Per op.
    short = {"pass": "pass", "wrong": "wrong", "refused": "ref", "runfail": "run",
             "crash": "crash", "timeout": "t/o"}
    heads = ["op", "TVM", "cases", *(f"edgec {short[s]}" for s in STATUSES),
             *(f"ort {short[s]}" for s in STATUSES), "bound pass"]
    out += ["", "## Per op", "",
            "The op of a case is its node's op type; a `*_expanded` case (the op's "
            "function body, several nodes) counts for `<op> (expanded)`. TVM: whether "
            "TVM's importer converts the op (or an edgec pass lowers it). ref = refused, "
            "run = runfail, t/o = timeout; bound pass: edgec's passes among the op's cases "
            "with several inputs when all inputs but the first are bound as constants "
            "(`--bound`).", "",
            _row(*heads), _row(*["---"] * len(heads))]
    for op in sorted(per_op, key=str.lower):
        names = per_op[op]
        ce = _counts(edgec[n] for n in names if n in edgec)
        co = _counts(ort[n] for n in names if n in ort)
        base = op.removesuffix(" (expanded)")
        tvm = "-" if op != base else ("yes" if op in expressible else "no")
        in_bound = [n for n in names if n in bound]
        b = (f"{sum(bound[n].status == 'pass' for n in in_bound)} of {len(in_bound)}"
             if in_bound else "")
        out.append(_row(op, tvm, len(names), *(ce[s] or "" for s in STATUSES),
                        *(co[s] or "" for s in STATUSES), b))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """The command line (``--worker``: serve tasks, see worker_main)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker_main()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--only", metavar="REGEX", help="cases whose name matches")
    parser.add_argument("--every", type=int, default=1, metavar="K",
                        help="every K-th case (deterministic sample)")
    parser.add_argument("--emulate-sample", type=int, default=0, metavar="K",
                        help=f"also compile K cases for {ARM_TARGET} and run them under "
                             "qemu-user")
    parser.add_argument("--bound", action="store_true",
                        help="also compile every case with several inputs with all but the "
                             "first bound as constants (how real models hold weights and shapes)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    parser.add_argument("--data", metavar="DIR", help="node test folder (default: onnx's "
                        "own, else generated into edgec's cache)")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help=f"every outcome (default {JSON_OUT.relative_to(REPO)})")
    parser.add_argument("--markdown", metavar="FILE", default=None,
                        help=f"the report (default {MARKDOWN.relative_to(REPO)}, full runs only)")
    parser.add_argument("--exclusions", metavar="FILE", default=str(EXCLUSIONS))
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when an outcome disagrees with the exclusions")
    parser.add_argument("--write-exclusions", action="store_true",
                        help="rewrite the exclusions from this (full) run; review the diff")
    parser.add_argument("--from-json", metavar="FILE",
                        help="render and check a saved run (--json) instead of running")
    args = parser.parse_args(argv)

    if args.from_json:
        json_path = Path(args.from_json)
        run = Run.from_json(json.loads(json_path.read_text()))
        full = run.full
    else:
        cases = discover(args.data)
        chosen = select_cases(cases, args.only, args.every)
        full = not args.only and args.every <= 1
        print(f"{len(chosen)} of {len(cases)} cases, {args.jobs} jobs", file=sys.stderr)
        run = run_conformance(chosen, jobs=args.jobs, timeout=args.timeout,
                              emulate_sample=args.emulate_sample, bound=args.bound, full=full,
                              log_dir=REPO / "out" / "conformance" / "logs")
        run.command = " ".join(["python benchmarks/conformance/run_conformance.py", *argv])
        json_path = Path(args.json) if args.json else JSON_OUT
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(run.to_json(), indent=1) + "\n")
    exclusions_path = Path(args.exclusions)
    if args.write_exclusions:
        if not full:
            parser.error("--write-exclusions needs a full run (no --only / --every)")
        write_exclusions(run, exclusions_path)
    exclusions = load_exclusions(exclusions_path)
    md_path = Path(args.markdown) if args.markdown else (MARKDOWN if full else None)
    if md_path is not None:
        md_path.write_text(markdown(run, exclusions))
    for engine in (EDGEC, ORT, EDGEC_ARM, EDGEC_BOUND):
        c = _counts(run.by_engine(engine).values())
        if c:
            print(f"{engine}: " + ", ".join(f"{s} {c[s]}" for s in STATUSES), file=sys.stderr)
    print(f"{run.seconds:.0f} s; outcomes in {json_path}"
          + (f", report in {md_path}" if md_path else ""), file=sys.stderr)
    problems = check(run, exclusions)
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} outcome(s) disagree with {exclusions_path}", file=sys.stderr)
    return 1 if problems and args.check else 0


if __name__ == "__main__":
    sys.exit(main())

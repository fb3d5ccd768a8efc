"""Per-kernel profile of an artifact, from the Relax VM's call instrumentation.

TVM 0.27 has no VM profiler, but its Relax VM calls an instrument function
before and after every call instruction: each fused TIR kernel and each VM
builtin (``vm.builtin.alloc_tensor``, ``vm.builtin.reshape``, ...). CPU
kernels are synchronous, so each call is timed with ``time.perf_counter_ns``
right around it: a generated kernel is called by the instrument itself (see
``profile``), a builtin between the two callbacks. Times are reported as
measured; they include a little of the Python round trip (a few µs per
builtin call, under 1 µs per kernel call), which ``Profile.overhead``
quantifies instead of subtracting a guess.

Whole-model latency is measured separately, without the instrument (the
same way as ``edgec run``), and the per-call times of the instrumented runs
must add up to within ``COVERAGE_TOLERANCE`` of it. When they do not, the
profile says so (``coverage``, ``warning()``): the table then describes a
model slowed or distorted by the instrumentation, and the user must know.

Which ONNX nodes a kernel came from is read from the manifest's ``kernels``
(written at compile time, see edgec/backend/tvm/provenance.py); artifacts
built before that show them as unknown.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError
from ..stats import LatencyStats

if TYPE_CHECKING:
    from rich.console import Console

    from .session import Session

#: |sum of per-call times / whole-model median - 1| above this is reported.
COVERAGE_TOLERANCE = 0.15
BUILTIN_PREFIX = "vm."  # packed functions of the VM itself, not generated code


@dataclass(frozen=True)
class KernelTime:
    """One called function: time and calls per run (mean over the timed runs)."""

    name: str
    kind: str  # "kernel" (generated TIR code) or "builtin" (a VM packed function)
    ms: float
    calls: int
    onnx_nodes: tuple[str, ...] | None  # None: unknown (or not applicable to builtins)
    ops: tuple[str, ...] | None
    ops_per_call: int = 0  # arithmetic per call (2 per multiply-add), when known
    arith: str = ""  # "int8" or "float32", with ops_per_call

    @property
    def us_per_call(self) -> float:
        return self.ms * 1e3 / self.calls if self.calls else 0.0

    @property
    def gops_per_s(self) -> float | None:
        """Integer ops (int8 kernels) or FLOPs (float ones) per second, in billions."""
        if not self.ops_per_call or not self.us_per_call:
            return None
        return self.ops_per_call / (self.us_per_call * 1e3)

    def to_json(self, total_ms: float) -> dict:
        rate = self.gops_per_s
        return {"name": self.name, "kind": self.kind, "ms": round(self.ms, 4),
                "share": round(self.ms / total_ms, 4) if total_ms else 0.0,
                "calls": self.calls, "us_per_call": round(self.us_per_call, 3),
                "onnx_nodes": list(self.onnx_nodes) if self.onnx_nodes is not None else None,
                "ops": list(self.ops) if self.ops is not None else None,
                **({"ops_per_call": self.ops_per_call, "arith": self.arith,
                    "gops_per_s": round(rate, 2)} if rate is not None else {})}


@dataclass
class Profile:
    """The result of ``profile``: latency, per-kernel times, and how far to trust them."""

    artifact: str
    target: str
    latency: LatencyStats  # whole model, no instrument
    instrumented: LatencyStats  # whole model with the instrument (wall clock)
    kernel_sum: LatencyStats  # per run: the sum of every call's measured time
    rows: list[KernelTime]  # kernels and builtins, slowest first
    calls_per_run: int
    shortest_call_us: float
    has_provenance: bool
    last_run: list[tuple[str, int, int]] = field(default_factory=list)  # (name, start, end) ns
    last_run_span: tuple[int, int] = (0, 0)  # (start, end) ns of that whole run
    device: dict | None = None  # where it ran, when not here (edgec.runtime.device)

    @property
    def coverage(self) -> float:
        """Median per-run sum of call times / median whole-model time (ideal: 1.0)."""
        return self.kernel_sum.median_ms / self.latency.median_ms

    @property
    def coverage_ok(self) -> bool:
        return abs(self.coverage - 1.0) <= COVERAGE_TOLERANCE

    @property
    def total_ms(self) -> float:
        """The rows' times added up (mean per run); shares are fractions of this."""
        return sum(r.ms for r in self.rows)

    @property
    def overhead(self) -> dict[str, float]:
        """What the instrument costs: the instrumented median minus the plain one, per
        run and per call, and the shortest measured call (what timing a near-empty
        call reads, i.e. roughly the overhead inside each measured time)."""
        per_run = self.instrumented.median_ms - self.latency.median_ms
        return {"per_run_ms": round(per_run, 4),
                "per_call_us": round(per_run * 1e3 / max(1, self.calls_per_run), 3),
                "shortest_call_us": round(self.shortest_call_us, 3)}

    def warning(self) -> str | None:
        """One line when the per-call times do not account for the whole-model time."""
        if self.coverage_ok:
            return None
        return (f"{self.artifact}: the per-call times add up to {self.kernel_sum.median_ms:.3f} "
                f"ms per run, {self.coverage:.0%} of the {self.latency.median_ms:.3f} ms "
                f"measured without instrumentation (outside ±{COVERAGE_TOLERANCE:.0%}); "
                "treat the breakdown as approximate")

    def to_json(self) -> dict:
        total = self.total_ms
        return {"artifact": self.artifact, "target": self.target,
                "latency": self.latency.to_json(),
                "instrumented_latency": self.instrumented.to_json(),
                "kernel_sum": self.kernel_sum.to_json(),
                "coverage": round(self.coverage, 4), "coverage_ok": self.coverage_ok,
                "coverage_tolerance": COVERAGE_TOLERANCE,
                "calls_per_run": self.calls_per_run, "overhead": self.overhead,
                "provenance": "manifest" if self.has_provenance else "unknown",
                "device": self.device,
                "kernels": [r.to_json(total) for r in self.rows]}

    def trace(self) -> dict:
        """The last timed run in Chrome's Trace Event Format (ui.perfetto.dev, chrome://tracing).

        One complete event ("ph": "X") per call, ts/dur in microseconds from the
        start of the run, inside one event for the whole run.
        """
        rows = {r.name: r for r in self.rows}
        pid, tid = 1, 1
        events: list[dict] = [
            {"name": "process_name", "ph": "M", "pid": pid, "tid": tid,
             "args": {"name": f"edgec {Path(self.artifact).name} ({self.target})"}},
            {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
             "args": {"name": "Relax VM main"}},
        ]
        if self.last_run:
            t0, end = self.last_run_span
            events.append({"name": "main", "cat": "run", "ph": "X", "ts": 0.0,
                           "dur": round((end - t0) / 1e3, 3), "pid": pid, "tid": tid,
                           "args": {"calls": len(self.last_run)}})
            nth: dict[str, int] = defaultdict(int)
            for name, start, stop in self.last_run:
                row = rows[name]
                nth[name] += 1
                args = {"call": nth[name], "calls": row.calls}
                if row.kind == "kernel":
                    args["onnx_nodes"] = list(row.onnx_nodes) if row.onnx_nodes is not None \
                        else "unknown"
                    args["ops"] = list(row.ops) if row.ops is not None else "unknown"
                events.append({"name": name, "cat": row.kind, "ph": "X",
                               "ts": round((start - t0) / 1e3, 3),
                               "dur": round((stop - start) / 1e3, 3),
                               "pid": pid, "tid": tid, "args": args})
        return {"traceEvents": events, "displayTimeUnit": "ms",
                "otherData": {"artifact": self.artifact, "target": self.target,
                              "latency_median_ms": round(self.latency.median_ms, 4),
                              "coverage": round(self.coverage, 4)}}


def device_label(device: dict) -> str:
    """'KEY at HOST:PORT (aarch64, emulated)': how a remote device is named in output."""
    return f"{device['name']} ({device['arch']}{', emulated' if device.get('emulated') else ''})"


def device_clock_note(device: dict) -> str:
    """What a remote latency is: the device's clock, and never a board's if emulated."""
    if device.get("emulated"):
        return (" [EMULATED under qemu-user on the serving machine: not any board's "
                "latency]")
    return " (device clock)"


def _kind(name: str) -> str:
    return "builtin" if name.startswith(BUILTIN_PREFIX) else "kernel"


def profile(session: Session, feeds: dict[str, np.ndarray], *, repeat: int = 10) -> Profile:
    """Whole-model latency over ``repeat`` runs, then ``repeat`` instrumented runs.

    Each phase starts with one discarded warm-up run.
    """
    if repeat < 1:
        raise UsageError(f"{session.path}: --repeat must be at least 1 to profile")
    latency = session.time(feeds, repeat=repeat)
    vm = session.vm
    vm.set_input("main", *session._args(feeds))
    walls, runs, span = instrumented_runs(vm, repeat, session.manifest.get("kernels"))
    return summarise(session.path, session.manifest, latency, walls, runs, span)


def instrumented_runs(vm, repeat: int, known=None
                      ) -> tuple[list[float], list[list[tuple[str, int, int]]], tuple[int, int]]:
    """``repeat`` instrumented runs of ``main`` on the inputs already set, after one
    discarded warm-up: (wall seconds per run, (symbol, start ns, stop ns) per call
    per run, the last run's span). ``vm`` needs ``set_instrument`` and
    ``invoke_stateful``; ``known`` (the manifest's kernels, or None for any) says
    which symbols are generated kernels. A device server runs this on the device."""
    clock = time.perf_counter_ns
    calls: list[tuple[str, int, int]] = []
    starts: list[int] = []
    direct: set[str] = set()  # kernels the instrument calls itself (see below)
    void: set[str] = set()

    def instrument(func, symbol, before, ret, *args):
        # Runs twice per VM call inside the timed runs: keep it short.
        if before:
            if symbol in direct:
                t0 = clock()
                func(*args)
                calls.append((symbol, t0, clock()))
                return 1  # VMInstrumentReturnKind.SKIP_RUN: done here already
            starts.append(clock())
            return 0
        stop = clock()
        calls.append((symbol, starts.pop(), stop))
        if ret is None:
            void.add(symbol)
        return 0  # VMInstrumentReturnKind.NO_OP

    runs: list[list[tuple[str, int, int]]] = []
    walls: list[float] = []
    span = (0, 0)
    vm.set_instrument(instrument)
    try:
        for i in range(repeat + 1):
            calls.clear()
            t0 = clock()
            vm.invoke_stateful("main")
            t1 = clock()
            if i == 0:
                # After the warm-up: a generated kernel writes into buffers the VM
                # passed it and returns nothing, so the instrument can make the call
                # itself between two clock reads and have the VM skip it. That keeps
                # the after-callback (which converts every argument to a Python
                # object first) out of the kernel's time. Builtins return values the
                # VM needs: they stay timed between the two callbacks.
                direct.update(s for s in void if _kind(s) == "kernel"
                              and (known is None or s in known))
            else:
                walls.append((t1 - t0) / 1e9)
                runs.append([(str(s), a, b) for s, a, b in calls])
                span = (t0, t1)
    finally:
        vm.set_instrument(None)
    return walls, runs, span


def summarise(path, manifest: dict, latency: LatencyStats, walls: list[float],
              runs: list[list[tuple[str, int, int]]], span: tuple[int, int], *,
              device: dict | None = None) -> Profile:
    """The Profile of ``runs`` (from `instrumented_runs`, here or on a device) with
    the artifact's kernel provenance; ``device`` describes where they ran."""
    known = manifest.get("kernels")
    total_ns: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for run in runs:
        for name, start, stop in run:
            total_ns[name] += stop - start
            count[name] += 1
    n = len(runs)
    rows = []
    for name in total_ns:
        kind = _kind(name)
        entry = (known or {}).get(name) if kind == "kernel" else None
        rows.append(KernelTime(
            name=name, kind=kind, ms=total_ns[name] / n / 1e6, calls=round(count[name] / n),
            onnx_nodes=tuple(entry["onnx_nodes"]) if entry else None,
            ops=tuple(entry["ops"]) if entry else None,
            ops_per_call=int(entry.get("ops_per_call", 0)) if entry else 0,
            arith=str(entry.get("arith", "")) if entry else ""))
    rows.sort(key=lambda r: (-r.ms, r.name))
    sums = [sum(b - a for _, a, b in run) / 1e9 for run in runs]
    shortest = min((b - a for run in runs for _, a, b in run), default=0) / 1e3
    return Profile(artifact=str(path), target=manifest["target"]["name"],
                   latency=latency, instrumented=LatencyStats.from_seconds(walls),
                   kernel_sum=LatencyStats.from_seconds(sums), rows=rows,
                   calls_per_run=round(statistics.fmean(len(r) for r in runs)),
                   shortest_call_us=shortest, has_provenance=known is not None,
                   last_run=runs[-1], last_run_span=span, device=device)


def _nodes_text(row: KernelTime, width: int = 3) -> tuple[str, str]:
    if row.kind == "builtin":
        return "(VM)", ""
    if row.onnx_nodes is None:
        return "unknown", "?"
    if not row.onnx_nodes:
        return "(none recorded)", ""
    names = ", ".join(row.onnx_nodes[:width])
    if len(row.onnx_nodes) > width:
        names += f", … (+{len(row.onnx_nodes) - width})"
    ops = "+".join(dict.fromkeys(row.ops or ()))
    return names, ops


def render_profile(prof: Profile, console: Console, *, top: int | None = None) -> None:
    """The kernel table (slowest first; builtins folded into one row) and the summary lines."""
    from rich.markup import escape
    from rich.table import Table

    total = prof.total_ms
    kernels = [r for r in prof.rows if r.kind == "kernel"]
    builtins = [r for r in prof.rows if r.kind == "builtin"]
    shown = kernels if top is None else kernels[:top]
    where = "" if prof.device is None else f" on device {escape(device_label(prof.device))}"
    table = Table(title=f"{escape(prof.artifact)} on {prof.target}{where}: time per run by "
                        f"kernel (mean of {prof.instrumented.runs} instrumented runs)",
                  title_justify="left")
    for col, justify in (("#", "right"), ("kernel", "left"), ("ms", "right"),
                         ("share", "right"), ("calls", "right"), ("µs/call", "right"),
                         ("GOP/s", "right"), ("ONNX ops", "left"), ("ONNX nodes", "left")):
        table.add_column(col, justify=justify)

    def add(label: str, rows: list[KernelTime], index: str = "", nodes=("", ""),
            per_call: bool = True, rate: str = "") -> None:
        ms = sum(r.ms for r in rows)
        calls = sum(r.calls for r in rows)
        table.add_row(index, label, f"{ms:.3f}", f"{ms / total:.1%}" if total else "-",
                      str(calls), f"{ms * 1e3 / calls:.1f}" if calls and per_call else "",
                      rate, escape(nodes[1]), escape(nodes[0]))

    def rate(row: KernelTime) -> str:
        gops = row.gops_per_s
        if gops is None:
            return ""
        return f"{gops:.0f}" + (" int8" if row.arith == "int8" else "")

    for i, row in enumerate(shown, 1):
        add(escape(row.name), [row], str(i), _nodes_text(row), rate=rate(row))
    rest = kernels[len(shown):]
    if rest:
        add(f"({len(rest)} more kernels)", rest)
    if builtins:
        names = ", ".join(r.name.removeprefix("vm.builtin.") for r in builtins[:4])
        add(f"VM builtins ({escape(names)}{', …' if len(builtins) > 4 else ''})", builtins)
    table.add_section()
    add("total", prof.rows, per_call=False)
    console.print(table)
    console.print("latency (no instrumentation): " + prof.latency.line()
                  + ("" if prof.device is None else device_clock_note(prof.device)))
    if any(r.gops_per_s for r in kernels):
        console.print("GOP/s: edgec kernels' multiply-adds (2 ops each) per second of the "
                      "kernel's time; int8: integer ops of the int8 templates, else float32")
    over = prof.overhead
    console.print(f"per-call times add up to {prof.kernel_sum.median_ms:.3f} ms per run = "
                  f"{prof.coverage:.1%} of that median (check: within ±"
                  f"{COVERAGE_TOLERANCE:.0%}: {'ok' if prof.coverage_ok else 'FAILED'}); "
                  f"instrumented runs: median {prof.instrumented.median_ms:.3f} ms "
                  f"({over['per_run_ms']:+.3f} ms, {over['per_call_us']:+.1f} µs per call over "
                  f"{prof.calls_per_run} calls)")
    if not prof.has_provenance:
        console.print("ONNX nodes unknown: the artifact was built before edgec recorded kernel "
                      "provenance; recompile it to see them")

"""Build a static-shape ONNX model into a shared library for a Target.

Steps: TVM target dict from the target file, ONNX -> Relax, TVM's default
Relax pipeline for the target kind (dumped before/after on --save-temps),
``tvm.compile``, and ``export_library`` linked by the target's own C
compiler, so an ARM build is real aarch64 code linked by Debian's
aarch64-linux-gnu-gcc, not an x86 library with an ARM label.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import onnx
import tvm
from tvm import relax
from tvm.support import cc as tvm_cc
from tvm.target import codegen

from ...errors import CompileError, ToolchainError, UnsupportedError, UsageError, first_line
from ...target_registry import Target, host_arch
from . import precise_intrinsics
from .dispatch import dispatch_kernels
from .fp16 import to_fp16
from .fp16_accumulate import accumulate_fp32
from .importer import import_onnx
from .index_bounds import guard_indices
from .kernels.conv2d_int8 import int8_isa
from .kernels.generic import ParallelizeDefaultKernels
from .kernels.vector_unit import vector_unit
from .nan_semantics import propagate_nan
from .provenance import Tracker
from .quantized import fold_weight_dequantize, lower_quantized
from .reductions import reductions_from_infinity
from .tuning_db import Schedules, TuningDB, default_db_dir

# LLVM feature name -> Linux /proc/cpuinfo flag. Code built with the LLVM
# feature may use the instruction; the target file must declare the flag so
# that a machine without it refuses to load the artifact instead of dying
# with SIGILL.
_X86_FLAGS = {
    "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "bmi": "bmi1", "bmi2": "bmi2",
    "movbe": "movbe", "avx512f": "avx512f", "avx512cd": "avx512cd", "avx512bw": "avx512bw",
    "avx512dq": "avx512dq", "avx512vl": "avx512vl", "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16", "avx512ifma": "avx512ifma", "avx512vbmi": "avx512vbmi",
    "avx512vbmi2": "avx512_vbmi2", "avx512bitalg": "avx512_bitalg",
    "avx512vpopcntdq": "avx512_vpopcntdq", "avx512fp16": "avx512_fp16", "avxvnni": "avx_vnni",
    "gfni": "gfni", "vaes": "vaes", "vpclmulqdq": "vpclmulqdq", "amx-tile": "amx_tile",
}
_ARM_FLAGS = {"neon": "asimd", "dotprod": "asimddp", "fullfp16": "asimdhp", "i8mm": "i8mm",
              "sve": "sve", "sve2": "sve2", "bf16": "bf16"}


def tvm_version() -> str:
    return tvm.__version__


def tvm_target(target: Target) -> tvm.target.Target:
    try:
        return tvm.target.Target(target.tvm_dict())
    except Exception as exc:
        raise UsageError(f"{target.path}: TVM rejects this target "
                         f"({first_line(exc, last=True)}); fix the [tvm] table") from None


def cpu_side(t: tvm.target.Target) -> tvm.target.Target:
    return t if t.kind.name == "llvm" else t.host


def required_cpu_flags(target: Target) -> list[str]:
    """/proc/cpuinfo flags the generated CPU code may use, per LLVM's view of the target."""
    cpu = cpu_side(tvm_target(target))
    table = _ARM_FLAGS if target.arch == "aarch64" else _X86_FLAGS
    feats = codegen.llvm_get_cpu_features(cpu)
    return sorted({flag for feat, flag in table.items() if feat in feats})


def check_cpu_flags(target: Target) -> None:
    """The target file must declare every CPU feature its code may use."""
    missing = sorted(set(required_cpu_flags(target)) - set(target.cpu_flags))
    if missing:
        raise UsageError(f"{target.path}: its mcpu/mattr let LLVM use {', '.join(missing)}, "
                         "which [device] cpu_flags does not list; add them so hosts without "
                         "them refuse the artifact")


def find_cc(target: Target) -> str:
    """The linker for the target, or a ToolchainError saying which package provides it."""
    found = shutil.which(target.cc) if target.cc else None
    if found is None:
        pkg = (f"install the Debian package {target.cc_package} (apt-get install "
               f"{target.cc_package})" if target.cc_package else "install it or put it on PATH")
        raise ToolchainError(f"target '{target.name}' links with {target.cc}, which is not on "
                             f"PATH; {pkg}")
    return found


@dataclass
class BuildResult:
    lib_path: Path
    tvm_target: dict
    cpu_flags: list[str]
    device_modules: list[str]  # kinds of the code modules inside, e.g. ["llvm", "cuda"]
    seconds: dict[str, float]
    kernels: dict[str, dict]  # kernel -> the ONNX nodes it came from (provenance.py)
    kernels_error: str | None = None  # why provenance is missing, if it is
    tuning: dict | None = None  # the database used and the kernels it gave a schedule
    integer_chains: int = 0  # quantised conv/matmul chains computed in integers


def _module_kinds(mod) -> list[str]:
    kinds = []
    for sub in mod.imports:
        kinds += [sub.kind, *_module_kinds(sub)]
    return kinds


def _jsonable(value):
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or (hasattr(value, "__iter__") and
                                           not isinstance(value, str)):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)


@contextlib.contextmanager
def _native_log(keep: Path | None):
    """Collect what TVM's C++ side prints to stderr (warnings such as "Fast mode
    segfaults when there are out-of-bounds indices") instead of showing it between
    edgec's own lines; --save-temps keeps it as tvm.log, EDGEC_DEBUG=1 shows it."""
    if os.environ.get("EDGEC_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if keep is not None:
                log.seek(0)
                (keep / "tvm.log").write_bytes(log.read())


def _pipeline(t: tvm.target.Target, lanes: int = 1):
    """TVM's default Relax pipeline for the target; for CPUs with threads added
    to the kernels TVM lowers itself (edgec's own are scheduled already)."""
    if t.kind.name != "llvm":
        return relax.get_default_pipeline(t)
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    return tvm.transform.Sequential(
        cpu.library_dispatch_passes(t) + cpu.legalize_passes(t)
        + [ParallelizeDefaultKernels(lanes)]
        + cpu.dataflow_lower_passes(t) + cpu.finalize_passes(t))


def open_tuning_db(target: Target, t: tvm.target.Target, folder: Path | None, *,
                   create: bool = False) -> TuningDB | None:
    """The target's tuning database: ``folder`` (which must exist unless
    ``create``), else the default one under the cache if it exists."""
    if folder is not None and not create and not folder.is_dir():
        raise UsageError(f"--tuning-db {folder}: no such folder; run 'edgec tune' with "
                         "--db to make one, or leave the option out")
    return TuningDB.open(folder or default_db_dir(target), target, _jsonable(t.export()),
                         create=create)


def build_model(model: onnx.ModelProto, target: Target, lib_path: Path, *, source: str,
                save_temps: Path | None = None, use_tuning_db: bool = True,
                tuning_db: Path | None = None, fp16: bool = False) -> BuildResult:
    """Import, lower and link ``model``; write the library to ``lib_path``.
    Kernels with records in the target's tuning database (``tuning_db``, else
    the default folder) get the fastest schedule on record. ``fp16``: compute
    in float16 (inputs and outputs stay float32)."""
    t = tvm_target(target)
    check_cpu_flags(target)
    cc = find_cc(target)
    precise_intrinsics.install()  # tanh without cancellation near zero
    db = open_tuning_db(target, t, tuning_db) \
        if use_tuning_db and t.kind.name == "llvm" else None
    with _native_log(save_temps):
        return _build(model, target, t, cc, lib_path, source, save_temps,
                      Schedules(db, cpu_side(t)), fp16)


def lower_to_kernels(model, target: Target, t, source: str, tracker: Tracker | None,
                     schedules: Schedules, seconds: dict, save_temps: Path | None = None,
                     fp16: bool = False, counts: dict | None = None):
    """ONNX -> Relax with edgec's kernels in it (CPU targets), before TVM's pipeline:
    float16 if asked, then edgec's kernels (an int8 model's chains on the integer
    templates), then what is left of the quantised ops as TVM's integer ops."""
    t0 = time.perf_counter()
    widen = t.kind.name == "llvm" and not fp16  # a CPU: float16 models in float32
    if tracker is not None:
        with tracker.importing():
            mod = import_onnx(model, source, float16_in_float32=widen)
        mod = tracker.tag(mod)
    else:
        mod = import_onnx(model, source, float16_in_float32=widen)
    seconds["import"] = time.perf_counter() - t0
    mod, _guarded = guard_indices(mod)  # no gather or scatter reads or writes out of bounds
    if save_temps is not None:
        (save_temps / "relax-before.py").write_text(mod.script(show_meta=False))
    features = set(codegen.llvm_get_cpu_features(cpu_side(t)))
    unit = vector_unit(target.arch, features, target.fma_bits)
    if not fp16:
        mod, _ = accumulate_fp32(mod)  # a float16 model's sums in float32 (GPU targets)
    if fp16:
        try:
            mod = to_fp16(mod)
        except Exception as exc:
            raise CompileError(f"{source}: TVM's float16 conversion failed for "
                               f"'{target.name}': {first_line(exc)}; compile without "
                               "--quantize fp16, and report it") from exc
    stats = {"integer_chains": 0}
    if t.kind.name == "llvm":
        t0 = time.perf_counter()
        try:
            mod, notes = dispatch_kernels(mod, unit, schedules, int8_isa(target.arch, features),
                                          stats)
        except Exception as exc:
            raise CompileError(f"{source}: edgec's kernels failed to build for "
                               f"'{target.name}': {first_line(exc)}; rerun with --debug "
                               "--save-temps DIR and report it") from exc
        if tracker is not None:
            tracker.note_kernels(notes)
        seconds["kernels"] = time.perf_counter() - t0
    mod, _ = propagate_nan(mod)  # the relu / clip ops TVM lowers itself keep NaN
    mod, _ = reductions_from_infinity(mod)  # the max of an all -inf row is -inf
    # what no kernel took: quantised ops TVM lowers (integer Relax ops for a
    # chain with an int32 result, the weights of float ops as constants)
    try:
        mod, leftover = lower_quantized(mod)
        mod, folded = fold_weight_dequantize(mod)
    except Exception as exc:
        raise CompileError(f"{source}: edgec's integer lowering failed for '{target.name}': "
                           f"{first_line(exc)}; rerun with --debug --save-temps DIR and report "
                           "it") from exc
    if counts is not None:
        counts["integer_chains"] = leftover + stats["integer_chains"]
        counts["folded_weights"] = folded
    if save_temps is not None and t.kind.name == "llvm":
        (save_temps / "relax-kernels.py").write_text(mod.script(show_meta=False))
    return mod, unit


def _note_ops(kernels: dict, schedules: Schedules) -> None:
    """Each edgec kernel's arithmetic per call in the manifest's kernel table (for
    ``edgec profile``'s GOP/s): ``ops_per_call`` (two per multiply-add) and
    ``arith``, int8 for the integer templates (their names start edgec_q)."""
    for name, kernel in schedules.kernels.items():
        if name in kernels and kernel.flops:
            kernels[name]["ops_per_call"] = int(kernel.flops)
            kernels[name]["arith"] = "int8" if name.startswith("edgec_q") else "float32"


#: packed functions TVM's compiler library registers that the standalone runtime a
#: device or a C bundle links (libtvm_runtime) lacks: relax.run.nonzero (NonZero,
#: Compress, a Squeeze without axes), unique, and the sorts behind TopK / ArgSort
_COMPILER_ONLY = ("relax.run.", "tvm.contrib.sort.")


@relax.expr_functor.visitor
class _ExternNames(relax.PyExprVisitor):
    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def visit_extern_func_(self, op):
        self.names.add(str(op.global_symbol))


def _check_runtime_functions(mod, target: Target, source: str) -> None:
    """Refuse a cross target's model that calls functions only TVM's compiler has:
    it would compile, then fail on the device ("Cannot find ffi::Function")."""
    if target.arch == host_arch():
        return  # runs here under the full TVM; `edgec bundle` checks for itself
    found = _ExternNames()
    for _gv, func in mod.functions.items():
        if isinstance(func, relax.Function):
            found.visit_expr(func)
    missing = sorted(n for n in found.names if n.startswith(_COMPILER_ONLY))
    if missing:
        raise UnsupportedError(
            f"{source}: needs {', '.join(missing)} at run time, which TVM's device runtime "
            f"for '{target.name}' does not have (NonZero, Compress, Unique, TopK or a Squeeze "
            "without axes lower to them); bind the inputs they depend on as constants, or "
            "change those nodes")


def _build(model, target: Target, t, cc: str, lib_path: Path, source: str,
           save_temps: Path | None, schedules: Schedules, fp16: bool = False) -> BuildResult:
    seconds, counts = {}, {}
    tracker = Tracker(model)
    mod, unit = lower_to_kernels(model, target, t, source, tracker, schedules, seconds,
                                 save_temps, fp16, counts)
    t0 = time.perf_counter()
    try:
        with t, tracker.pass_context():
            mod = _pipeline(t, unit.lanes)(mod)
        kernels = tracker.kernels(mod)
        _note_ops(kernels, schedules)
        if save_temps is not None:
            (save_temps / "relax-after.py").write_text(mod.script(show_meta=False))
        executable = tvm.compile(mod, target=t, relax_pipeline=None)
    except Exception as exc:
        raise CompileError(f"{source}: TVM failed to compile for '{target.name}': "
                           f"{first_line(exc)}; rerun with --debug --save-temps DIR and report "
                           "it") from exc
    _check_runtime_functions(mod, target, source)
    seconds["tvm"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fcompile = tvm_cc.cross_compiler(cc, options=list(target.cc_flags))
    triple = cpu_side(t).attrs.get("mtriple")
    if triple:  # TVM asks the wrong compiler (the host's) when no kernel says it
        fcompile.get_target_triple = lambda: str(triple)
    try:
        executable.export_library(str(lib_path), fcompile=fcompile)
    except Exception as exc:
        raise ToolchainError(f"{source}: linking with {target.cc} failed: {first_line(exc)}") \
            from exc
    seconds["link"] = time.perf_counter() - t0
    return BuildResult(lib_path=lib_path, tvm_target=_jsonable(t.export()),
                       cpu_flags=sorted(target.cpu_flags),
                       device_modules=_module_kinds(executable.mod), seconds=seconds,
                       kernels=kernels, kernels_error=tracker.error,
                       integer_chains=counts.get("integer_chains", 0),
                       tuning=None if schedules.db is None else {
                           "db": str(schedules.db.folder),
                           "tuned_kernels": sorted(schedules.tuned)})

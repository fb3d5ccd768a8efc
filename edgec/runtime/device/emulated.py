"""The emulated ARM device: a TVM RPC server whose sessions run on the aarch64 runtime
under qemu-user.

The host's Python RPC server does the network part (listening, handshake, tracker);
each session's process then execs ``worker_command(arch) + [socket fd]``: a small
C++ program (worker/edgec_rpc_worker.cc) cross-built against the same aarch64
libtvm_runtime.so / libtvm_ffi.so that bundles ship, which serves the connection with
the runtime's own ``rpc.ServerLoop``. The client therefore talks to a real aarch64
TVM runtime, as it would to a board; only the CPU is emulated, so its timings say
nothing about a board's.

The program is built once per architecture, runtime release and worker source, into
edgec's cache (``rpc-workers``), the same way as the emulation runner of
edgec/bundle/emulate.py. No TVM import is needed here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from ...bundle.builder import CROSS, TOOLCHAIN_FILES, _need, first_error
from ...bundle.emulate import QEMU, can_emulate
from ...bundle.runtime_libs import include_dir, runtime_libraries
from ...bundle.writer import TEMPLATES
from ...cache import cache_dir
from ...errors import ToolchainError, UnsupportedError, UsageError
from ...target_registry import host_arch

WORKER_SOURCES = Path(__file__).with_name("worker")
SOURCE_FILES = ("CMakeLists.txt", "edgec_rpc_worker.cc")
PROGRAM = "edgec_rpc_worker"
#: what the program prints and exits with when run without a socket (the smoke test)
_USAGE_STATUS = 2


def can_serve(arch: str) -> bool:
    """Whether this machine can emulate an ``arch`` device at all (aarch64 on x86-64).
    Missing tools are reported by ``worker_program`` instead, naming the package."""
    return can_emulate(arch)


def _qemu(arch: str) -> tuple[str, str]:
    """(absolute path of qemu-user for ``arch``, its sysroot): absolute because the
    server execs the command with os.execv, which does not search PATH."""
    if not can_serve(arch):
        raise UnsupportedError(f"edgec emulates aarch64 devices on x86_64 hosts, not {arch} "
                               f"on {host_arch()}")
    qemu, sysroot = QEMU[arch]
    return _need(qemu, "qemu-user"), sysroot


def _digest(arch: str) -> str:
    """Changes with the worker's sources or the cross toolchain file."""
    h = hashlib.sha256()
    for name in SOURCE_FILES:
        h.update(name.encode() + (WORKER_SOURCES / name).read_bytes())
    h.update((TEMPLATES / TOOLCHAIN_FILES[arch]).read_bytes())
    return h.hexdigest()[:16]


def worker_program(arch: str) -> Path:
    """The built worker for ``arch``: built on first use (a few seconds), then cached
    per architecture, apache-tvm and apache-tvm-ffi release and worker source.

    The slot holds src/, lib/ (the target's TVM runtime) and build/PROGRAM, which
    finds lib/ through its $ORIGIN-relative RPATH; it is assembled in a temporary
    folder beside it and renamed into place, so a failed or concurrent build never
    leaves a half-built slot behind."""
    qemu, sysroot = _qemu(arch)
    if arch not in CROSS or arch not in TOOLCHAIN_FILES:
        raise ToolchainError(f"no cross toolchain known for {arch}")
    runtime = f"tvm{version('apache-tvm')}-ffi{version('apache-tvm-ffi')}"
    key = f"{arch}-{runtime}-{_digest(arch)}"
    slot = cache_dir("rpc-workers") / key
    program = slot / "build" / PROGRAM
    if program.exists():
        return program
    libs = runtime_libraries(arch)  # checked to be aarch64 ELFs; may need the wheels
    cmake = _need("cmake", "cmake")
    _need(*CROSS[arch])
    stage = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=slot.parent))
    try:
        for sub in ("src", "lib"):
            (stage / sub).mkdir()
        for name in SOURCE_FILES:
            shutil.copy2(WORKER_SOURCES / name, stage / "src" / name)
        for name, path in libs.items():
            shutil.copy2(path, stage / "lib" / name)
        configure = [cmake, "-S", str(stage / "src"), "-B", str(stage / "build"),
                     "-DCMAKE_BUILD_TYPE=Release",
                     f"-DCMAKE_TOOLCHAIN_FILE={TEMPLATES / TOOLCHAIN_FILES[arch]}",
                     f"-DEDGEC_RUNTIME_LIB_DIR={stage / 'lib'}",
                     f"-DEDGEC_FFI_INCLUDE_DIR={include_dir()}",
                     f"-DEDGEC_RUNTIME_VERSION=apache-tvm {version('apache-tvm')}, "
                     f"apache-tvm-ffi {version('apache-tvm-ffi')}"]
        for cmd in (configure, [cmake, "--build", str(stage / "build"), "--parallel", "2"]):
            _run(cmd, "configuring" if cmd is configure else "building")
        _smoke_test([qemu, "-L", sysroot, str(stage / "build" / PROGRAM)])
        if slot.exists():  # only ever made by the rename below: another build won
            if program.exists():
                shutil.rmtree(stage, ignore_errors=True)
                return program
            shutil.rmtree(slot, ignore_errors=True)
        os.replace(stage, slot)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    for old in slot.parent.glob(f"{arch}-*"):  # workers of older sources or releases
        if old != slot:
            shutil.rmtree(old, ignore_errors=True)
    return program


def _run(cmd: list[str], step: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        log = res.stdout + res.stderr
        if os.environ.get("EDGEC_DEBUG"):
            sys.stderr.write(log)
        raise ToolchainError(f"the emulated device's RPC worker: {step} with CMake failed: "
                             f"{first_error(log)} (edgec --debug shows the whole log)")


def _smoke_test(cmd: list[str]) -> None:
    """Start the program without a socket: it must load the aarch64 runtime under qemu
    and print its usage, else a session would fail only as a dropped connection."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{cmd[-1]}: did not start under {cmd[0]} within 120 s") from None
    if res.returncode != _USAGE_STATUS or "usage:" not in res.stderr:
        last = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
        raise ToolchainError(f"{cmd[-1]}: the emulated device's RPC worker does not start "
                             f"under {Path(cmd[0]).name}: {last}")


def worker_command(arch: str, cpu: str | None = None) -> list[str]:
    """The command that serves one session, without its last argument (the connected
    socket's file descriptor, inherited across exec). Builds the worker if needed.

    ``cpu`` is qemu's CPU model (``cortex-a72``, ``cortex-a76``, ...; default ``max``,
    every feature qemu has): the board the device reports and the code may use."""
    program = worker_program(arch)
    qemu, sysroot = _qemu(arch)
    model = []
    if cpu is not None:
        res = subprocess.run([qemu, "-cpu", "help"], capture_output=True, text=True)
        known = {ln.split()[0] for ln in res.stdout.splitlines()[1:] if ln.strip()}
        if known and cpu not in known:
            raise UsageError(f"--cpu {cpu}: qemu does not know this CPU; choose from "
                             f"{', '.join(sorted(known))}")
        model = ["-cpu", cpu]
    return [qemu, *model, "-L", sysroot, str(program)]

"""Run an aarch64 artifact here: build its C bundle with the cross toolchain and
run the example program under qemu-user.

This is the real deployment path (the C API, the aarch64 TVM runtime from
the wheels, Debian's cross compiler), only with qemu in place of a board.
The program is built once per architecture and runtime (it takes the model
library as an argument), so each run costs one emulated execution. Emulated
timings say nothing about a real board and are not reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

from ..artifact import read_verified
from ..cache import cache_dir
from ..errors import ToolchainError, UnsupportedError
from ..runtime.inputs import checked_inputs
from ..target_registry import EMULATED, host_arch
from .builder import build_bundle
from .runtime_libs import runtime_libraries
from .writer import stage_model, stage_runtime, templates_digest

QEMU = {"aarch64": ("qemu-aarch64", "/usr/aarch64-linux-gnu")}


def can_emulate(arch: str) -> bool:
    return (arch, host_arch()) in EMULATED and arch in QEMU


def runner(arch: str) -> Path:
    """A built bundle without a model (the C API and edgec_run are model-independent),
    cached per architecture, runtime version and template digest: every artifact
    for ``arch`` runs through the same one, so emulation costs one build per setup."""
    key = f"{arch}-tvm{version('apache-tvm')}-ffi{version('apache-tvm-ffi')}-{templates_digest()}"
    slot = cache_dir("runners") / key
    if (slot / "build" / "edgec_run").exists():
        return slot
    stage = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=slot.parent))
    try:
        stage_runtime(stage, arch, runtime_libraries(arch), {"{{MODEL_NAME}}": "(any)",
                                                            "{{TARGET}}": arch,
                                                            "{{ARTIFACT}}": "(any)"})
        (stage / "model").mkdir()
        build_bundle(stage, arch)
        shutil.rmtree(slot, ignore_errors=True)
        os.replace(stage, slot)
        for old in slot.parent.glob(f"{arch}-*"):  # runners of older templates or releases
            if old != slot and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return slot


def run_emulated(artifact, feeds: dict[str, np.ndarray], *, timeout_s: float = 3600
                 ) -> dict[str, np.ndarray]:
    """Outputs of one emulated run of ``artifact`` (an edgec.Artifact) on ``feeds``."""
    arch = artifact.target["arch"]
    if not can_emulate(arch):
        raise UnsupportedError(f"{artifact.path}: edgec can emulate aarch64 artifacts on "
                               f"x86_64, not {arch} on {host_arch()}")
    if artifact.target["tvm"]["kind"] != "llvm":
        raise UnsupportedError(f"{artifact.path}: a GPU artifact cannot be emulated")
    qemu, sysroot = QEMU[arch]
    if shutil.which(qemu) is None:
        raise ToolchainError(f"{qemu} is not on PATH; install the Debian package qemu-user "
                             "(apt-get install qemu-user)")
    built = runner(arch)
    with tempfile.TemporaryDirectory(prefix="edgec-emulate-") as tmp:
        work = Path(tmp)
        manifest = read_verified(artifact.path, extract_to=work)  # hashes checked again
        stage_model(work / "model", manifest, work)
        files = []
        for i, value in enumerate(checked_inputs(artifact.path, manifest, feeds)):
            np.save(work / f"input_{i}.npy", np.asarray(value, order="C"))  # keeps 0-d
            files.append(str(work / f"input_{i}.npy"))
        out_dir = work / "out"
        out_dir.mkdir()
        cmd = [qemu, "-L", sysroot, str(built / "build" / "edgec_run"),
               str(work / "model" / "model.so"), str(out_dir), *files]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise UnsupportedError(f"{artifact.path}: the emulated run took over "
                                   f"{timeout_s:.0f} s") from None
        if res.returncode != 0:
            msg = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
            raise UnsupportedError(f"{artifact.path}: the emulated run failed: {msg}")
        return {spec.name: np.load(out_dir / f"output_{i}.npy")
                for i, spec in enumerate(artifact.outputs)}

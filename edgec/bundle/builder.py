"""Build a bundle with CMake: natively, or with the cross toolchain file for aarch64.

A failed build says what the tool said (CMake's or the compiler's own error
line, the whole log with --debug), since the folder that held the log is
removed again by the caller.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import ToolchainError
from ..target_registry import host_arch

#: compiler the toolchain file uses per arch, and the Debian package that has it
CROSS = {"aarch64": ("aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu")}
TOOLCHAIN_FILES = {"aarch64": "cmake/aarch64-linux-gnu.cmake"}


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolchainError(f"{tool} is not on PATH; install the Debian package {package} "
                             f"(apt-get install {package})")
    return path


def build_bundle(bundle: Path, arch: str) -> Path:
    """Configure and build ``bundle`` into bundle/build; returns the edgec_run program.

    Paths handed to CMake are absolute: it resolves a relative toolchain file
    against the build folder, not the working directory."""
    bundle = Path(bundle).resolve()
    cmake = _need("cmake", "cmake")
    configure = [cmake, "-S", str(bundle), "-B", str(bundle / "build"),
                 "-DCMAKE_BUILD_TYPE=Release"]
    if arch != host_arch():
        if arch not in CROSS:
            raise ToolchainError(f"no cross toolchain known for {arch}; build the bundle "
                                 "with your own CMake toolchain file")
        _need(*CROSS[arch])
        configure.append(f"-DCMAKE_TOOLCHAIN_FILE={bundle / TOOLCHAIN_FILES[arch]}")
    else:
        _need("g++", "g++")
    for cmd in (configure, [cmake, "--build", str(bundle / "build"), "--parallel", "2"]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            log = res.stdout + res.stderr
            if os.environ.get("EDGEC_DEBUG"):
                sys.stderr.write(log)
            step = "configuring" if cmd is configure else "building"
            raise ToolchainError(f"{bundle}: {step} with CMake failed: {first_error(log)} "
                                 "(edgec --debug shows the whole log)")
    program = bundle / "build" / "edgec_run"
    if not program.exists():
        raise ToolchainError(f"{bundle}: the build produced no build/edgec_run")
    return program


def first_error(log: str) -> str:
    """The first real error in a CMake or compiler log, on one line.

    CMake writes ``CMake Error at FILE:LINE (message):`` and the message on
    the indented lines after it; compilers write ``file:line: error: ...``.
    make's own "Error 1" lines and CMake's closing "Configuring incomplete"
    only say that something failed earlier."""
    lines = log.splitlines()
    for i, ln in enumerate(lines):
        text = ln.strip()
        if text.startswith("CMake Error"):
            detail = []
            for nxt in lines[i + 1:]:
                if not nxt.startswith(" ") or not nxt.strip():
                    break
                detail.append(nxt.strip())
            return " ".join([text, *detail])
        if ("error" in text.lower() and not text.startswith(("gmake", "make", "--"))
                and "errors occurred" not in text):
            return text
    rest = [ln.strip() for ln in lines if ln.strip()]
    return rest[-1] if rest else "no output"

"""Build a bundle with CMake: natively, or with the cross toolchain file for aarch64."""

from __future__ import annotations

import shutil
import subprocess
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
    """Configure and build ``bundle`` into bundle/build; returns the edgec_run program."""
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
            raise ToolchainError(f"{bundle}: building failed ({Path(cmd[0]).name} "
                                 f"{cmd[1]}): {_first_error(res.stdout + res.stderr)}; "
                                 f"rerun it there to see the whole log")
    program = bundle / "build" / "edgec_run"
    if not program.exists():
        raise ToolchainError(f"{bundle}: the build produced no build/edgec_run")
    return program


def _first_error(log: str) -> str:
    """The compiler's or CMake's first error line, else the log's last line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower() and not ln.startswith(("gmake", "make")):
            return ln
    return lines[-1] if lines else "no output"

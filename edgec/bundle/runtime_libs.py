"""The TVM runtime libraries for a target architecture, as an app ships them.

libtvm_runtime.so (the Relax VM) and libtvm_ffi.so come from the same
apache-tvm / apache-tvm-ffi releases that compiled the model. For this
machine's architecture they are the installed ones; for another they are
extracted from that release's manylinux wheel, downloaded once with
``pip download`` into edgec's cache. ``--runtime-dir`` supplies them by hand
(for Android, say, which PyPI has no wheels for); every library is checked
to be built for the target's architecture. With EDGEC_NO_DOWNLOAD=1 set,
nothing is downloaded (the tests run that way; ``make setup`` fills the
cache beforehand with ``python -m edgec.bundle.runtime_libs aarch64``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

from ..cache import cache_dir
from ..errors import UnsupportedError, UsageError
from ..fsutil import atomic_write
from ..target_registry import host_arch
from .elf import elf_arch

#: library -> (distribution, path inside its wheel)
LIBRARIES = {
    "libtvm_runtime.so": ("apache-tvm", "tvm/lib/libtvm_runtime.so"),
    "libtvm_ffi.so": ("apache-tvm-ffi", "tvm_ffi/lib/libtvm_ffi.so"),
}
PLATFORMS = {"x86_64": "manylinux_2_28_x86_64", "aarch64": "manylinux_2_28_aarch64"}
PYTHON_TAG = f"{sys.version_info.major}.{sys.version_info.minor}"


def _installed(module: str, member: str) -> Path:
    spec = importlib.util.find_spec(module)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise UnsupportedError(f"{module} is not installed; run 'make setup'")
    return Path(next(iter(spec.submodule_search_locations))).parent / member


def include_dir() -> Path:
    """Headers an app needs to compile the C API's implementation (tvm_ffi's)."""
    return _installed("tvm_ffi", "tvm_ffi/include")


def _hint(arch: str) -> str:
    return (f"provide libtvm_runtime.so and libtvm_ffi.so built for {arch} with "
            "--runtime-dir DIR")


def _from_wheels(arch: str) -> dict[str, Path]:
    platform = PLATFORMS.get(arch)
    if platform is None:
        raise UnsupportedError(f"PyPI has no TVM runtime wheels for {arch}; {_hint(arch)}")
    wheels = cache_dir("wheels")
    out = {}
    for lib, (dist, member) in LIBRARIES.items():
        pinned = f"{dist}=={version(dist)}"
        dest = cache_dir("runtime", arch, pinned) / lib
        if not dest.exists():
            stem = dist.replace("-", "_") + "-" + version(dist) + "-"
            found = [w for w in wheels.glob("*.whl")
                     if w.name.startswith(stem) and arch in w.name]
            if not found and os.environ.get("EDGEC_NO_DOWNLOAD") == "1":
                raise UnsupportedError(f"the {pinned} wheel for {platform} is not in "
                                       f"{wheels} and EDGEC_NO_DOWNLOAD=1 forbids fetching "
                                       f"it; unset it, or {_hint(arch)}")
            if not found:
                cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                       "--only-binary=:all:", "--platform", platform, "--python-version",
                       PYTHON_TAG, "--dest", str(wheels), pinned]
                res = subprocess.run(cmd, capture_output=True, text=True)
                found = [w for w in wheels.glob("*.whl")
                         if w.name.startswith(stem) and arch in w.name]
                if res.returncode != 0 or not found:
                    last = (res.stderr.strip().splitlines() or ["no wheel"])[-1]
                    raise UnsupportedError(f"the {pinned} wheel for {platform} could not be "
                                           f"had ({last}); {_hint(arch)}")
            with zipfile.ZipFile(found[0]) as zf, atomic_write(dest) as f:
                f.write(zf.read(member))
        out[lib] = dest
    return out


def runtime_libraries(arch: str, runtime_dir: Path | None = None) -> dict[str, Path]:
    """{library name: file} for ``arch``, each checked to be an ELF for that arch."""
    if runtime_dir is not None:
        libs = {lib: Path(runtime_dir) / lib for lib in LIBRARIES}
        for lib, path in libs.items():
            if not path.is_file():
                raise UsageError(f"--runtime-dir {runtime_dir}: {lib} is missing; it needs "
                                 f"{' and '.join(LIBRARIES)} built for {arch}")
    elif arch == host_arch():
        libs = {lib: _installed(member.split("/")[0], member)
                for lib, (_, member) in LIBRARIES.items()}
    else:
        libs = _from_wheels(arch)
    for path in libs.values():
        found = elf_arch(path)
        if found != arch:
            raise UsageError(f"{path}: built for {found}, the artifact needs {arch}; "
                             f"{_hint(arch)}")
    return libs


if __name__ == "__main__":  # make setup: fetch the runtime wheels for other architectures
    for _arch in sys.argv[1:]:
        for _lib, _path in runtime_libraries(_arch).items():
            print(f"{_arch} {_lib}: {_path}")

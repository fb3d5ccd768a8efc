"""The TVM runtime without the TVM compiler: tvm_ffi plus libtvm_runtime.so.

``import tvm`` loads the whole compiler (libtvm_compiler.so is 259 MB; the
import takes about 1.4 s here). Running an artifact needs only
``libtvm_runtime.so`` (3.4 MB: the Relax VM and its builtins) and
``tvm_ffi``, so this loads just those: the library from the installed
apache-tvm package, found without importing the package, with RTLD_GLOBAL so
that model libraries resolve the VM's symbols against it.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
from pathlib import Path

from ..errors import UnsupportedError

CPU = 1  # DLPack device type kDLCPU
POOLED_ALLOCATOR = 2


def runtime_library() -> Path:
    """libtvm_runtime.so of the installed apache-tvm package."""
    spec = importlib.util.find_spec("tvm")
    if spec is None or not spec.submodule_search_locations:
        raise UnsupportedError("apache-tvm is not installed; run 'make setup'")
    path = Path(next(iter(spec.submodule_search_locations))) / "lib" / "libtvm_runtime.so"
    if not path.exists():
        raise UnsupportedError(f"{path} is missing; reinstall apache-tvm")
    return path


@functools.cache
def ffi():
    """tvm_ffi, with the TVM runtime library loaded into the process.

    TVM's thread pool assumes two hardware threads per core and starts half
    as many workers as there are CPUs (one on a 2-CPU machine, measured), so
    unless TVM_NUM_THREADS says otherwise edgec asks for every CPU this
    process may run on, as onnxruntime does.
    """
    import tvm_ffi

    os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

    ctypes.CDLL(str(runtime_library()), mode=ctypes.RTLD_GLOBAL)
    return tvm_ffi


def num_threads() -> int:
    return int(ffi().get_global_func("runtime.NumThreads")())

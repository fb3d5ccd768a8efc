"""What ``edgec device serve`` adds to TVM's RPC server, registered as global functions.

A client calls them by name through the session. The emulated aarch64
device implements the same names in C++ (worker/edgec_rpc_worker.cc), so
both answer alike:

- ``edgec.device.info() -> JSON``: architecture, CPU features (as
  /proc/cpuinfo names them), cores, whether it is emulated, whether LiteRT is
  installed: what the client checks an artifact against before uploading it.
- ``edgec.device.profile(vm, repeat) -> JSON``: per-call times of a Relax VM
  whose inputs are set, measured on the device with its own clock
  (runtime/profiler.py `instrumented_runs`).
- ``edgec.device.tflite(file, inputs_npz, io, threads, warmup, repeat, budget_s)
  -> JSON``: an uploaded .tflite run by the device's LiteRT on uploaded inputs
  (bench's TFLite row on the device), only where LiteRT is installed; not in
  the emulated one.

Nothing here imports the compiler: a board runs this with the TVM runtime only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform

from ... import __version__
from ...target_registry import host_cpu, normalize_arch
from ..profiler import instrumented_runs

INFO = "edgec.device.info"
PROFILE = "edgec.device.profile"
TFLITE = "edgec.device.tflite"
SERVER_KIND = "edgec-python"


def _threads() -> int | None:
    """Threads TVM's pool runs kernels on here (set from TVM_NUM_THREADS at its start)."""
    import tvm_ffi

    f = tvm_ffi.get_global_func("runtime.NumThreads", allow_missing=True)
    return int(f()) if f is not None else None


def info_json() -> str:
    cpu = host_cpu()
    return json.dumps({
        "arch": normalize_arch(platform.machine()), "features": sorted(cpu.flags),
        "vendor": cpu.vendor, "family": cpu.family, "model": cpu.model,
        "model_name": cpu.model_name, "cores": len(os.sched_getaffinity(0)),
        "threads": _threads(),
        "emulated": False, "server": SERVER_KIND, "edgec": __version__,
        "litert": importlib.util.find_spec("ai_edge_litert") is not None})


class _ModuleVM:
    """A Relax VM module seen through the two calls `instrumented_runs` makes."""

    def __init__(self, module):
        self.set_instrument = module["set_instrument"]
        self.invoke_stateful = module["invoke_stateful"]


def profile_json(vm, repeat: int) -> str:
    walls, runs, span = instrumented_runs(_ModuleVM(vm), int(repeat))
    return json.dumps({"walls": walls, "runs": runs, "span": list(span)})


def tflite_json(file_name: str, inputs_npz: str, io_json: str, threads: int, warmup: int,
                repeat: int, budget_s: float) -> str:
    """Latency and outputs (an .npz, base64) of the uploaded ``file_name`` in LiteRT,
    on the uploaded ``inputs_npz`` (files: tensors passed as RPC arguments reach a
    Python function as borrowed pointers numpy cannot take)."""
    import base64
    import io

    import numpy as np
    import tvm_ffi

    from ...artifact import TensorSpec
    from ...baselines import tflite

    spec = json.loads(io_json)
    ins = [TensorSpec.from_json(d) for d in spec["inputs"]]
    outs = [TensorSpec.from_json(d) for d in spec["outputs"]]
    workpath = tvm_ffi.get_global_func("tvm.rpc.server.workpath")
    with np.load(workpath(inputs_npz)) as z:
        feeds = {s.name: z[s.name] for s in ins}
    path = workpath(file_name)
    try:
        got = tflite.run(path, feeds, ins, outs, threads=int(threads), warmup=int(warmup),
                         repeat=int(repeat), budget_s=float(budget_s))
    except tflite.TfliteUnavailable as exc:
        return json.dumps({"error": str(exc)})
    buf = io.BytesIO()
    np.savez(buf, **got.outputs)
    return json.dumps({"stats": got.stats.to_json(), "threads": got.threads,
                       "version": tflite.versions(),
                       "outputs": base64.b64encode(buf.getvalue()).decode()})


def register() -> None:
    """Make the functions callable over RPC (in this process and its forks)."""
    import tvm_ffi

    tvm_ffi.register_global_func(INFO, info_json, override=True)
    tvm_ffi.register_global_func(PROFILE, profile_json, override=True)
    if importlib.util.find_spec("ai_edge_litert") is not None:
        tvm_ffi.register_global_func(TFLITE, tflite_json, override=True)

"""Load a verified artifact into a TVM Relax VM and run or time it.

The artifact's hashes are checked and the host is checked against the
target (architecture, GPU kind, CPU features) before any of its code is
mapped into the process: an ARM library on x86 or an AVX-512 library on an
AVX2 machine is refused with a message, never a crash or SIGILL.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from ..artifact import LIBRARY, TensorSpec, read_verified
from ..errors import UnsupportedError, UsageError
from ..stats import LatencyStats
from ..targets import host_compatibility


class Session:
    """One loaded artifact, ready to run on this machine's CPU."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._tmp = tempfile.TemporaryDirectory(prefix="edgec-run-")
        manifest = read_verified(self.path, extract_to=Path(self._tmp.name))
        t = manifest["target"]
        ok, why = host_compatibility(t["name"], t["tvm"]["kind"], t["arch"], t["cpu_flags"])
        if not ok:
            raise UnsupportedError(f"{self.path}: cannot run here: {why}")
        self.manifest = manifest
        self.inputs = [TensorSpec.from_json(d) for d in manifest["inputs"]]
        self.outputs = [TensorSpec.from_json(d) for d in manifest["outputs"]]
        self.device = tvm.cpu(0)
        lib = tvm.runtime.load_module(str(Path(self._tmp.name) / LIBRARY))
        self.vm = relax.VirtualMachine(lib, self.device)

    @property
    def threads(self) -> int:
        """Threads TVM's pool runs kernels on (set by TVM_NUM_THREADS before it starts)."""
        return int(tvm.runtime.num_threads())

    def _args(self, feeds: dict[str, np.ndarray]) -> list:
        unknown = sorted(set(feeds) - {s.name for s in self.inputs})
        if unknown:
            raise UsageError(f"{self.path}: no input named {', '.join(unknown)}; inputs are: "
                             + ", ".join(s.describe() for s in self.inputs))
        args = []
        for spec in self.inputs:
            if spec.name not in feeds:
                raise UsageError(f"{self.path}: input '{spec.name}' is missing; give "
                                 f"{spec.describe()} (or use --random)")
            arr = np.asarray(feeds[spec.name])
            if tuple(arr.shape) != spec.shape:
                raise UsageError(f"{self.path}: input '{spec.name}' has shape "
                                 f"{list(arr.shape)}, the artifact was compiled for "
                                 f"{list(spec.shape)}; recompile with --input-shape")
            if arr.dtype != np.dtype(spec.dtype):
                if not np.can_cast(arr.dtype, spec.dtype, casting="same_kind"):
                    raise UsageError(f"{self.path}: input '{spec.name}' is {arr.dtype}, the "
                                     f"model takes {spec.dtype}")
                arr = arr.astype(spec.dtype)
            args.append(tvm.runtime.tensor(np.ascontiguousarray(arr), self.device))
        return args

    def _collect(self, result) -> dict[str, np.ndarray]:
        values = [result] if hasattr(result, "numpy") else list(result)
        if len(values) != len(self.outputs):
            raise UnsupportedError(f"{self.path}: the library returned {len(values)} outputs, "
                                   f"the manifest lists {len(self.outputs)}; recompile it")
        return {spec.name: v.numpy() for spec, v in zip(self.outputs, values, strict=True)}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._collect(self.vm["main"](*self._args(feeds)))

    def time(self, feeds: dict[str, np.ndarray], *, repeat: int = 20,
             min_repeat_ms: int = 0) -> LatencyStats:
        """Latency of ``main`` measured inside the runtime (one warm-up run is discarded)."""
        self.vm.set_input("main", *self._args(feeds))
        timer = self.vm.time_evaluator("invoke_stateful", self.device, number=1,
                                       repeat=max(1, repeat), min_repeat_ms=min_repeat_ms)
        return LatencyStats.from_seconds(list(timer("main").results))

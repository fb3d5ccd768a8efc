"""Load a verified artifact into a Relax VM and run or time it, with the runtime only.

The artifact's hashes are checked and the host is checked against the
target (architecture, GPU kind, CPU features) before any of its code is
mapped into the process: an ARM library on x86 or an AVX-512 library on an
AVX2 machine is refused with a message, never a crash or SIGILL. Nothing
here imports the ``tvm`` package (see native.py): an app that only runs
artifacts never loads the compiler.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from ..artifact import LIBRARY, TensorSpec, read_verified
from ..errors import ArtifactError, UnsupportedError
from ..stats import LatencyStats
from ..target_registry import host_compatibility
from . import native
from .inputs import checked_inputs

#: TVM's generated code assumes tensor data aligned to 64 bytes (it may use
#: aligned vector loads); numpy only guarantees 16, which crashed at random.
ALIGNMENT = 64


def aligned_copy(arr: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``arr`` whose data starts on an ALIGNMENT-byte boundary."""
    buf = np.empty(arr.nbytes + ALIGNMENT, dtype=np.uint8)
    offset = -buf.ctypes.data % ALIGNMENT
    out = buf[offset:offset + arr.nbytes].view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out


class VirtualMachine:
    """The Relax VM module's packed functions, by the names the VM registers."""

    def __init__(self, library: Path):
        """Load the extracted model library and initialise its VM on the CPU."""
        ffi = native.ffi()
        self.module = ffi.load_module(str(library)).get_function("vm_load_executable")()
        # One (device type, id, allocator) triple per device; the CPU is also the host.
        self.module["vm_initialization"](native.CPU, 0, native.POOLED_ALLOCATOR)
        self._set_input = self.module["set_input"]
        self._invoke_stateful = self.module["invoke_stateful"]
        self._set_instrument = self.module["set_instrument"]
        self._main = self.module["main"]

    def __call__(self, *args):
        """Call ``main`` with tensors; returns a tensor or a tuple of them."""
        return self._main(*args)

    def set_input(self, func_name: str, *args) -> None:
        """Store the arguments of ``func_name`` in the VM for `invoke_stateful`."""
        self._set_input(func_name, *args)

    def invoke_stateful(self, func_name: str) -> None:
        """Call ``func_name`` on the stored inputs (no argument conversion: for timing)."""
        self._invoke_stateful(func_name)

    def set_instrument(self, instrument) -> None:
        """Called before and after every VM call (see runtime/profiler.py); None clears it."""
        self._set_instrument(instrument)


class Session:
    """One loaded artifact, ready to run on this machine's CPU.

    Made by `edgec.Artifact.session`; keeps the library loaded, so repeated
    runs pay no loading cost. Threads: TVM's pool, sized by
    ``TVM_NUM_THREADS`` (edgec sets it to every CPU the process may use
    unless it is set already) before the first session starts.

    Attributes:
        path: the artifact file.
        manifest: its verified manifest.
        inputs: the inputs (`edgec.TensorSpec`) in call order.
        outputs: the outputs (`edgec.TensorSpec`) in order.
    """

    def __init__(self, path: str | Path):
        """Check the artifact's hashes and the host, then load its library.

        Raises:
            edgec.errors.UsageError: ``path`` does not exist.
            edgec.errors.ArtifactError: the artifact fails its integrity check.
            edgec.errors.UnsupportedError: this machine cannot run the target's code.
        """
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
        self.vm = VirtualMachine(Path(self._tmp.name) / LIBRARY)

    @property
    def threads(self) -> int:
        """Threads TVM's pool runs kernels on (set by TVM_NUM_THREADS before it starts)."""
        return native.num_threads()

    def _args(self, feeds: dict[str, np.ndarray]) -> list:
        ffi = native.ffi()
        return [ffi.from_dlpack(aligned_copy(a))
                for a in checked_inputs(self.path, self.manifest, feeds)]

    def _collect(self, result) -> dict[str, np.ndarray]:
        values = [result] if hasattr(result, "__dlpack__") else list(result)
        if len(values) != len(self.outputs):
            raise UnsupportedError(f"{self.path}: the library returned {len(values)} outputs, "
                                   f"the manifest lists {len(self.outputs)}; recompile it")
        # Copies: the VM's pooled allocator reuses output buffers on the next run.
        out = {spec.name: np.from_dlpack(v).copy()
               for spec, v in zip(self.outputs, values, strict=True)}
        for spec in self.outputs:
            got = out[spec.name]
            if tuple(got.shape) != spec.shape or got.dtype != np.dtype(spec.dtype):
                raise ArtifactError(f"{self.path}: output '{spec.name}' came back as "
                                    f"{got.dtype}{list(got.shape)}, the manifest says "
                                    f"{spec.describe()}; the library does not match its "
                                    "manifest: recompile it, and report it if it persists")
        return out

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``main`` once; as `edgec.Artifact.run`.

        Args:
            feeds: ``{input name: array}`` for every input, of the compiled shape
                and dtype (a dtype of the same kind is cast).

        Returns:
            ``{output name: array}``, copied out of the VM's buffers.

        Raises:
            edgec.errors.UsageError: an input missing, unknown, or of the wrong
                shape or dtype.
        """
        return self._collect(self.vm(*self._args(feeds)))

    def time(self, feeds: dict[str, np.ndarray], *, repeat: int = 20) -> LatencyStats:
        """Latency of ``main`` over ``repeat`` runs after one discarded warm-up run.

        Inputs are set once; each sample is one ``invoke_stateful`` call
        between two clock reads (about a microsecond of Python around it), so
        the numbers are the model's, not the input conversion's. This is what
        ``edgec run`` and ``edgec verify`` print.

        Returns:
            `edgec.stats.LatencyStats` in milliseconds (median, mean, min, p90,
            p99, stdev, runs).

        Raises:
            edgec.errors.UsageError: as `run`, for bad ``feeds``.
        """
        return LatencyStats.from_seconds(self.samples(feeds, repeat=repeat))

    def samples(self, feeds: dict[str, np.ndarray], *, repeat: int = 20,
                warm: bool = True) -> list[float]:
        """Seconds per run of ``main`` (``time`` without the statistics);
        ``warm=False`` skips the discarded run when the caller just ran it."""
        self.vm.set_input("main", *self._args(feeds))
        if warm:
            self.vm.invoke_stateful("main")
        out = []
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            self.vm.invoke_stateful("main")
            out.append(time.perf_counter() - t0)
        return out

"""Load a verified artifact into a Relax VM and run or time it, with the runtime only.

The artifact's hashes are checked and the host is checked against the
target (architecture, GPU kind, CPU features) before any of its code is
mapped into the process: an ARM library on x86 or an AVX-512 library on an
AVX2 machine is refused with a message, never a crash or SIGILL. Nothing
here imports the ``tvm`` package (see native.py): an app that only runs
artifacts never loads the compiler.
"""

from __future__ import annotations

import platform
import re
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from ..artifact import LIBRARY, TensorSpec, check_runnable, read_artifact
from ..errors import ArtifactError, UnsupportedError, first_line
from ..signing import TrustStore
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
    if out.size == 0:  # numpy gives an empty array zero strides; TVM wants compact ones
        strides = [arr.dtype.itemsize * int(np.prod(arr.shape[i + 1:], dtype=np.int64))
                   for i in range(arr.ndim)]
        out = np.lib.stride_tricks.as_strided(out, strides=strides)  # reads nothing
    return out


#: ELF e_machine of each architecture edgec runs libraries on
ELF_MACHINES = {"x86_64": 62, "aarch64": 183}


def check_elf(path: Path, library: Path, arch: str | None = None) -> None:
    """Refuse a library the dynamic loader would crash on, before it is loaded.

    A library whose segments reach past the end of the file is mapped anyway
    and dies of SIGBUS when touched (a truncated model.so, hash recomputed);
    text or another machine's code fails inside dlopen. This checks the ELF
    header and every program header against the file's size and the host's
    machine. It is no defence against a malicious library, which is code by
    design: signed artifacts (edgec.signing) are.
    """
    size = library.stat().st_size
    bad = f"{path}: the library ({LIBRARY}) "
    end = "; the artifact is corrupt or was tampered with, do not load it"
    with open(library, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF":
            raise ArtifactError(bad + "is not an ELF shared library" + end)
        if head[4] != 2 or head[5] != 1:
            raise ArtifactError(bad + "is not a 64-bit little-endian ELF file" + end)
        e_type, e_machine = struct.unpack_from("<HH", head, 16)
        (e_phoff, e_shoff) = struct.unpack_from("<QQ", head, 32)
        e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", head, 54)
        if e_type != 3:  # ET_DYN
            raise ArtifactError(bad + f"is an ELF file of type {e_type}, not a shared "
                                "library" + end)
        machine = arch or platform.machine()
        want = ELF_MACHINES.get(machine)
        if want is not None and e_machine != want:
            raise ArtifactError(bad + f"is code for ELF machine {e_machine}, not this "
                                f"{machine} machine, whatever the manifest says"
                                + end)
        if e_phentsize < 56 or e_phnum == 0 or e_phoff + e_phnum * e_phentsize > size:
            raise ArtifactError(bad + "has its program headers outside the file" + end)
        if e_shnum and e_shoff + e_shnum * max(e_shentsize, 64) > size:
            raise ArtifactError(bad + "is truncated (its section headers lie past the end "
                                "of the file)" + end)
        f.seek(e_phoff)
        table = f.read(e_phnum * e_phentsize)
    for i in range(e_phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", table,
                                                                i * e_phentsize)
        if p_type in (1, 2) and p_offset + p_filesz > size:  # PT_LOAD, PT_DYNAMIC
            raise ArtifactError(bad + f"is truncated: segment {i} ends at byte "
                                f"{p_offset + p_filesz}, the file has {size}" + end)


#: the Relax VM's check of a parameter, as its message (and constant pool) spell it
_PARAM = re.compile(r'ErrorContext\(fn=main, loc=param\[(\d+)\], param=([^,]*), '
                    r'annotation=R\.Tensor\(\(([^)]*)\), dtype="(\w+)"\)\)')


def library_params(module) -> dict[int, tuple[str, tuple[int | str, ...], str]]:
    """Position -> (name, shape, dtype) of ``main``'s tensor parameters, as the
    executable's own argument checks state them (symbolic dims as names); positions
    it does not state are absent. Read from the constant pool TVM 0.27 lists in
    ``stats()``: no code of the model runs."""
    try:
        text = str(module["stats"]())
    except Exception:  # another TVM: the checks at the call still catch mismatches
        return {}
    out = {}
    for m in _PARAM.finditer(text):
        dims = tuple(int(d) if d.strip().lstrip("-").isdigit() else d.strip()
                     for d in m.group(3).split(",") if d.strip())
        out[int(m.group(1))] = (m.group(2), dims, m.group(4))
    return out


class VirtualMachine:
    """The Relax VM module's packed functions, by the names the VM registers."""

    def __init__(self, library: Path, path: Path | None = None):
        """Load the extracted model library and initialise its VM on the CPU
        (``path``, the artifact, names it in errors)."""
        ffi = native.ffi()
        where = path if path is not None else library
        try:
            lib = ffi.load_module(str(library))
            self.module = lib.get_function("vm_load_executable")()
        except Exception as exc:
            raise ArtifactError(f"{where}: the library ({LIBRARY}) does not load as a TVM "
                                f"executable ({_tail(exc)}); the artifact is corrupt or "
                                "was tampered with, do not load it") from None
        self.params = library_params(lib)
        try:
            self.arity = int(self.module["get_function_arity"]("main"))
        except Exception as exc:
            raise ArtifactError(f"{where}: the library has no usable 'main' function "
                                f"({_tail(exc)}); the artifact is corrupt, recompile it"
                                ) from None
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


def extract_runnable(path: Path, trust: TrustStore | None
                     ) -> tuple[tempfile.TemporaryDirectory, dict]:
    """The artifact's members extracted (hashes and, with ``trust``, the signature
    checked) into a temporary folder, and its manifest, once this machine is known
    to run the target's code (UnsupportedError otherwise)."""
    tmp = tempfile.TemporaryDirectory(prefix="edgec-run-")
    manifest = read_artifact(path, extract_to=Path(tmp.name), trust=trust).manifest
    check_runnable(manifest, path)
    t = manifest["target"]
    ok, why = host_compatibility(t["name"], t["tvm"]["kind"], t["arch"], t["cpu_flags"])
    if not ok:
        tmp.cleanup()
        raise UnsupportedError(f"{path}: cannot run here: {why}")
    return tmp, manifest


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

    def __init__(self, path: str | Path, *, trust: TrustStore | None = None):
        """Check the artifact's signature (with ``trust``), hashes and the host, then
        load its library; the manifest's inputs are checked against the library's.

        Raises:
            edgec.errors.UsageError: ``path`` does not exist.
            edgec.errors.ArtifactError: the artifact fails its integrity or signature
                check, its library is not a loadable one, or its manifest does not
                match the library.
            edgec.errors.UnsupportedError: this machine cannot run the target's code.
        """
        self.path = Path(path)
        self._tmp, manifest = extract_runnable(self.path, trust)
        self.manifest = manifest
        self.inputs = [TensorSpec.from_json(d) for d in manifest["inputs"]]
        self.outputs = [TensorSpec.from_json(d) for d in manifest["outputs"]]
        library = Path(self._tmp.name) / LIBRARY
        if LIBRARY not in manifest["members"]:
            raise ArtifactError(f"{self.path}: the artifact has no {LIBRARY}; compile it again")
        check_elf(self.path, library)
        self.vm = VirtualMachine(library, self.path)
        self._check_against_library()

    def _check_against_library(self) -> None:
        """The manifest's inputs against what the library's ``main`` takes: how many,
        and each one's dtype and static dims (as far as the library states them)."""
        if self.vm.arity != len(self.inputs):
            raise ArtifactError(f"{self.path}: the library's main takes {self.vm.arity} "
                                f"input(s), the manifest lists {len(self.inputs)}; the "
                                "manifest does not match its library, do not load it")
        for i, spec in enumerate(self.inputs):
            if i not in self.vm.params:
                continue
            _, dims, dtype = self.vm.params[i]
            same_dims = len(dims) == len(spec.shape) and all(
                not isinstance(d, int) or d == s for d, s in zip(dims, spec.shape, strict=True))
            if dtype != spec.dtype or not same_dims:
                takes = f"{dtype}[{','.join(map(str, dims))}]"
                raise ArtifactError(f"{self.path}: input '{spec.name}' is "
                                    f"{spec.describe().removeprefix(spec.name + ' ')} in the "
                                    f"manifest, the library takes {takes}; the manifest does "
                                    "not match its library, do not load it")

    def _mismatch(self, exc: Exception) -> Exception:
        """The VM's argument check failing (a manifest that the signature check could
        not compare) as an ArtifactError naming the input; other errors unchanged."""
        m = _PARAM.search(str(exc))
        if m is None:
            return exc
        i = int(m.group(1))
        name = self.inputs[i].name if i < len(self.inputs) else m.group(2)
        return ArtifactError(f"{self.path}: input '{name}': the library takes "
                             f"{m.group(4)}[{m.group(3).replace(' ', '')}] "
                             f"({first_line(exc, last=True)[-120:]}); the manifest does not "
                             "match its library, do not load it")

    @property
    def threads(self) -> int:
        """Threads TVM's pool runs kernels on (set by TVM_NUM_THREADS before it starts)."""
        return native.num_threads()

    def _args(self, feeds: dict[str, np.ndarray]) -> list:
        ffi = native.ffi()
        return [ffi.from_dlpack(aligned_copy(a))
                for a in checked_inputs(self.path, self.manifest, feeds)]

    def _collect(self, result) -> dict[str, np.ndarray]:
        return named_outputs(self.path, self.outputs, result_arrays(result), "the library")

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
        args = self._args(feeds)
        try:
            result = self.vm(*args)
        except Exception as exc:
            raise self._mismatch(exc) from None
        return self._collect(result)

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
        try:
            self.vm.set_input("main", *self._args(feeds))
            if warm:
                self.vm.invoke_stateful("main")
        except Exception as exc:
            raise self._mismatch(exc) from None
        out = []
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            self.vm.invoke_stateful("main")
            out.append(time.perf_counter() - t0)
        return out


def result_arrays(result) -> list[np.ndarray]:
    """What ``main`` returned (a tensor or a tuple of them) as numpy arrays, copied:
    the VM's pooled allocator reuses output buffers on the next run."""
    values = [result] if hasattr(result, "__dlpack__") else list(result)
    return [np.from_dlpack(v).copy() for v in values]


def named_outputs(path: Path, specs: list[TensorSpec], values: list[np.ndarray],
                  source: str) -> dict[str, np.ndarray]:
    """``values`` by output name, after checking them against the manifest's outputs
    (how many, each one's shape and dtype); ``source`` names what returned them."""
    if len(values) != len(specs):
        raise ArtifactError(f"{path}: {source} returned {len(values)} outputs, the manifest "
                            f"lists {len(specs)}; {source} does not match its manifest: "
                            "recompile it")
    for spec, got in zip(specs, values, strict=True):
        if tuple(got.shape) != spec.shape or got.dtype != np.dtype(spec.dtype):
            raise ArtifactError(f"{path}: output '{spec.name}' came back as "
                                f"{got.dtype}{list(got.shape)}, the manifest says "
                                f"{spec.describe()}; {source} does not match its manifest: "
                                "recompile it, and report it if it persists")
    return {spec.name: v for spec, v in zip(specs, values, strict=True)}


def _tail(exc: BaseException) -> str:
    """The last line of a (TVM) error, shortened: what failed, without the backtrace."""
    line = first_line(exc, last=True)
    return line if len(line) <= 160 else line[:157] + "..."

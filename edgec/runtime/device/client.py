"""The build machine's side of a device: connect, check, upload, run, time, profile.

An artifact is checked before anything leaves this machine: its hashes (and
signature, with a trust set), its library's ELF header, and its target
against what the device reports about itself (architecture, CPU features,
the GPU a GPU artifact needs). Only then is the library uploaded, loaded into
a Relax VM on the device and run there; outputs are copied back.

Latency comes from the device's own clock: TVM's time evaluator runs on the
device and sends back only the measured times, never network round trips.
A latency from an emulated device is labelled as such wherever it is shown.

Every remote call runs under a deadline (``timeout``): in the main thread a
SIGALRM interrupts even a blocked socket read (TVM's socket loop runs Python
signal handlers), elsewhere the session timeout the server enforces is the
limit. Failures become one-line `DeviceError`s that name the device.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...artifact import LIBRARY, TensorSpec, check_runnable, read_artifact
from ...devices import DeviceAddress
from ...errors import ArtifactError, DeviceError, EdgecError, UnsupportedError, first_line
from ...signing import TrustStore
from ...stats import LatencyStats
from ..inputs import checked_inputs
from ..session import aligned_copy, check_elf, named_outputs
from .functions import INFO, PROFILE

DEFAULT_TIMEOUT_S = 120.0
CONNECT_ATTEMPTS = 3  # boards asked for, via a tracker, before giving up
#: GPU kinds a target may name -> the name of the RPC session's device for it
GPU_DEVICES = {"cuda": "cuda", "opencl": "cl", "vulkan": "vulkan", "rocm": "rocm",
               "metal": "metal"}
CPU, POOLED = 1, 2  # DLPack kDLCPU; the VM's pooled allocator


class _Deadline(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise _Deadline inside the block after ``seconds`` (main thread only; elsewhere
    a no-op, and the server's session timeout bounds the call). Nests: an inner
    deadline never outlasts an outer one, and the outer one is re-armed after it."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def fire(*_):
        raise _Deadline()

    outer_left = signal.getitimer(signal.ITIMER_REAL)[0]
    start = time.monotonic()
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer_left) if outer_left else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer_left:
            left = outer_left - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))


def _reason(exc: BaseException) -> str:
    """TVM's many-line RPC errors, as the one line that says what happened."""
    text = str(exc)
    for needle, say in (("RPCSessionTimeoutError", "the server ended the session at its "
                         "session timeout"),
                        ("Connection refused", "connection refused: nothing answers there "
                         "(is 'edgec device serve' running?)"),
                        ("Connect to", "nothing answers there (is 'edgec device serve' "
                         "running?)"),
                        ("mismatch", "the server refused the key"),
                        ("closed", "the connection was closed"),
                        ("Broken pipe", "the connection was closed"),
                        ("Connection reset", "the connection was reset")):
        if needle in text:
            return say
    line = first_line(exc, last=True)
    return line if len(line) <= 200 else line[:197] + "..."


class Device:
    """One open session with a device, and what it says about itself.

    Attributes:
        address: where it was reached (`edgec.devices.DeviceAddress`).
        name: how messages name it: ``KEY at HOST:PORT`` (the server the tracker
            handed out) or ``HOST:PORT``.
        info: the device's ``edgec.device.info``: arch, features, cores, emulated.
    """

    def __init__(self, address: DeviceAddress, *, timeout: float = DEFAULT_TIMEOUT_S):
        self.address, self.timeout = address, timeout
        self.name = str(address)
        with self.call("connecting"):
            self.session = self._connect()
        with self.call("asking what it is"):
            try:
                get_info = self.session.get_function(INFO)
            except Exception:
                get_info = None
            if get_info is None:
                raise DeviceError(f"{self.name}: the server is a TVM RPC server without "
                                  "edgec's device functions; start it with 'edgec device "
                                  "serve' on the device")
            info = json.loads(get_info())
        if not isinstance(info, dict) or not isinstance(info.get("arch"), str):
            raise DeviceError(f"{self.name}: the device's edgec.device.info is not what edgec "
                              "serves (no 'arch'); update edgec on the device")
        self.info = info
        self.info["name"] = self.name

    def _connect(self):
        from tvm import rpc

        a = self.address
        # The server kills a session that outlives this (a client that died mid-run
        # does not hold the device); the deadline below bounds each call.
        session_timeout = max(60.0, self.timeout * 4)
        if not a.via_tracker:
            return rpc.connect(a.host, a.port, session_timeout=session_timeout)
        from .tracker import require_key

        row = require_key(a, timeout=min(10.0, self.timeout))
        busy, waiting = row["free"] == 0, row["pending"]
        tracker = rpc.connect_tracker(a.host, a.port)
        # TrackerSession.request, unrolled to learn which server the tracker chose.
        # A board the tracker still lists may be gone (powered off, its registration
        # not yet expired): asking again for another is safe, nothing was sent to it.
        from tvm.rpc import base

        for attempt in range(CONNECT_ATTEMPTS):
            # Queued like TVM's own clients: a board that just ended a session
            # registers again a moment later. The deadline bounds the wait.
            base.sendjson(tracker._sock, [base.TrackerCode.REQUEST, a.key, "", 1])
            try:
                reply = base.recvjson(tracker._sock)
            except _Deadline:
                state = "every one was busy" if busy else "none became free"
                raise DeviceError(f"{a.describe()}: no free device with key '{a.key}' within "
                                  f"{self.timeout:g} s ({state}, {waiting} other request(s) "
                                  "waiting); retry later, raise --timeout or add a board "
                                  f"('edgec device list --tracker {a.address}')") from None
            if reply[0] != base.TrackerCode.SUCCESS:
                raise DeviceError(f"{a.describe()}: the tracker refused the request ({reply})")
            host, port, matchkey = reply[1]
            self.name = f"{a.key} at {host}:{port}"
            try:
                session = rpc.connect(host, port, matchkey, session_timeout=session_timeout)
            except Exception as exc:
                if attempt + 1 == CONNECT_ATTEMPTS or isinstance(exc, _Deadline):
                    raise
                sys.stderr.write(f"edgec: warning: {self.name} did not answer "
                                 f"({_reason(exc)}); asking the tracker for another board\n")
                continue
            tracker.close()
            return session
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def call(self, what: str, timeout: float | None = None) -> Iterator[None]:
        """Run a remote step under the deadline; failures become a DeviceError
        naming the device and the step. edgec's own errors pass unchanged."""
        limit = self.timeout if timeout is None else timeout
        try:
            with deadline(limit):
                yield
        except _Deadline:
            raise DeviceError(f"{self.name}: no answer within {limit:g} s while {what}; the "
                              "device is busy, hung or unreachable (raise --timeout for a "
                              "slow board)") from None
        except EdgecError:
            raise
        except Exception as exc:
            raise DeviceError(f"{self.name}: failed while {what}: {_reason(exc)}") from None

    def describe(self) -> str:
        i = self.info
        emu = ", EMULATED under qemu-user" if i.get("emulated") else ""
        return f"{self.name} ({i['arch']}, {i.get('cores', '?')} cores{emu})"

    def close(self) -> None:
        self.session = None


def check_fits(path: Path, target: dict, device: Device) -> None:
    """Refuse an artifact the device cannot run, naming both, before any upload."""
    info, name = device.info, device.name
    if target["arch"] != info["arch"]:
        raise UnsupportedError(f"{path}: built for {target['arch']} (target '{target['name']}'), "
                               f"but {name} is {info['arch']}; compile for a target of that "
                               "architecture ('edgec targets')")
    missing = sorted(set(target["cpu_flags"]) - set(info.get("features", ())))
    if missing:
        raise UnsupportedError(f"{path}: target '{target['name']}' needs CPU features "
                               f"{name} lacks ({', '.join(missing)}); compile for a target "
                               "without them (e.g. --target arm for any ARMv8 board)")


def device_cpu(info: dict):
    """The device's CPU as target_registry sees a host's, to pick its target file."""
    from ...target_registry import HostCPU

    return HostCPU(arch=info["arch"], vendor=info.get("vendor"), family=info.get("family"),
                   model=info.get("model"), model_name=info.get("model_name") or "",
                   flags=frozenset(info.get("features", ())))


def pick_device_target(device: Device):
    """The target file that best fits the device's CPU (as 'host' does for this one)."""
    from ...target_registry import explain_host

    pick = explain_host(cpu=device_cpu(device.info))
    if pick.chosen is None:
        raise UnsupportedError(f"{device.name}: no target file fits this {device.info['arch']} "
                               "device; give -t TARGET (see 'edgec device info')")
    return pick.chosen


class RemoteSession:
    """An artifact loaded into a Relax VM on a device: the remote twin of
    `edgec.runtime.session.Session` (``run``, ``samples``, ``time``), plus the raw
    per-call timings a profile is made of."""

    def __init__(self, path: Path, device: Device, *, trust: TrustStore | None = None):
        self.path, self.device = Path(path), device
        with tempfile.TemporaryDirectory(prefix="edgec-device-") as tmp:
            manifest = read_artifact(self.path, extract_to=Path(tmp), trust=trust).manifest
            check_runnable(manifest, self.path)
            if LIBRARY not in manifest["members"]:
                raise ArtifactError(f"{self.path}: the artifact has no {LIBRARY}; compile it "
                                    "again")
            check_fits(self.path, manifest["target"], device)
            library = Path(tmp) / LIBRARY
            check_elf(self.path, library, device.info["arch"])
            data = library.read_bytes()
        self.manifest = manifest
        self.inputs = [TensorSpec.from_json(d) for d in manifest["inputs"]]
        self.outputs = [TensorSpec.from_json(d) for d in manifest["outputs"]]
        sess = device.session
        kind = manifest["target"]["tvm"]["kind"]
        with device.call(f"checking its {kind} device"):
            if kind in GPU_DEVICES:
                self.dev = getattr(sess, GPU_DEVICES[kind])(0)
                if not self.dev.exist:
                    raise UnsupportedError(f"{self.path}: built for a {kind} GPU (target "
                                           f"'{manifest['target']['name']}'), and {device.name}"
                                           f" has no {kind} device")
            else:
                self.dev = sess.cpu(0)
        remote = f"model-{manifest['members'][LIBRARY]['sha256'][:16]}.so"
        with device.call(f"uploading {self.path.name} ({len(data) / 1e6:.1f} MB)"):
            sess.upload(bytearray(data), remote)
        with device.call("loading the model"):
            self._lib = sess.load_module(remote)
            self.vm = self._lib["vm_load_executable"]()
            init = [self.dev.dlpack_device_type() % _mask(), self.dev.index, POOLED]
            if kind in GPU_DEVICES:
                init += [CPU, 0, POOLED]  # the host side of the VM
            self.vm["vm_initialization"](*init)
            arity = int(self.vm["get_function_arity"]("main"))
        if arity != len(self.inputs):
            raise ArtifactError(f"{self.path}: the library's main takes {arity} input(s), "
                                f"the manifest lists {len(self.inputs)}; do not run it")
        self._fed: object = None

    def _set_inputs(self, feeds: dict[str, np.ndarray]) -> None:
        from tvm.runtime import tensor

        arrays = checked_inputs(self.path, self.manifest, feeds)
        with self.device.call("sending the inputs"):
            args = [tensor(aligned_copy(a), self.dev) for a in arrays]
            self.vm["set_input"]("main", *args)
        self._fed = feeds

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``main`` once on the device; outputs copied back, by name."""
        self._set_inputs(feeds)
        with self.device.call("running the model"):
            self.vm["invoke_stateful"]("main")
            arity = int(self.vm["get_output_arity"]("main"))
            values = ([self.vm["get_output"]("main")] if arity < 0 else
                      [self.vm["get_output"]("main", i) for i in range(arity)])
            got = [v.numpy() for v in values]
        return named_outputs(self.path, self.outputs, got, "the device")

    def samples(self, feeds: dict[str, np.ndarray], *, repeat: int = 20) -> list[float]:
        """Seconds per run of ``main``, each one run timed by the device's own clock
        (TVM's time evaluator on the device; one discarded warm-up run first)."""
        if self._fed is not feeds:
            self._set_inputs(feeds)
        repeat = max(1, repeat)
        with self.device.call(f"timing {repeat} runs"):
            timer = self.vm.time_evaluator("invoke_stateful", self.dev, number=1,
                                           repeat=repeat, min_repeat_ms=0)
            return [float(x) for x in timer("main").results]

    def time(self, feeds: dict[str, np.ndarray], *, repeat: int = 20) -> LatencyStats:
        return LatencyStats.from_seconds(self.samples(feeds, repeat=repeat))

    def instrumented_runs(self, feeds: dict[str, np.ndarray], repeat: int):
        """`edgec.runtime.profiler.instrumented_runs`, run on the device."""
        if self._fed is not feeds:
            self._set_inputs(feeds)
        with self.device.call(f"profiling {repeat} runs"):
            raw = json.loads(self.device.session.get_function(PROFILE)(self.vm, repeat))
        runs = [[(str(s), int(a), int(b)) for s, a, b in run] for run in raw["runs"]]
        return [float(w) for w in raw["walls"]], runs, tuple(raw["span"])


def _mask() -> int:
    from tvm.rpc.base import RPC_SESS_MASK

    return RPC_SESS_MASK


def profile_remote(session: RemoteSession, feeds: dict[str, np.ndarray], *, repeat: int = 10):
    """`edgec.runtime.profiler.profile`, measured on the device."""
    from ..profiler import summarise

    latency = session.time(feeds, repeat=repeat)
    walls, runs, span = session.instrumented_runs(feeds, repeat)
    return summarise(session.path, session.manifest, latency, walls, runs, span,
                     device=session.device.info)


def connect(spec: str | DeviceAddress, *, timeout: float = DEFAULT_TIMEOUT_S) -> Device:
    """Open a session with the device ``spec`` names (`edgec.devices.parse_device`)."""
    from ...devices import parse_device

    address = spec if isinstance(spec, DeviceAddress) else parse_device(spec)
    t0 = time.monotonic()
    device = Device(address, timeout=timeout)
    device.info["connect_s"] = round(time.monotonic() - t0, 3)
    return device

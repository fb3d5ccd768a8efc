"""Running an accelerator artifact: its steps in order, CPU libraries and partitions.

CPU steps are Relax VM libraries like any artifact's; each accelerator
partition runs through its plugin's runtime hook, which says what actually
runs it (on a machine without the accelerator, a reference form of the
partition, never presented as the device). Latency is measured for the CPU
steps only; the accelerator's share is its toolchain's estimate, labelled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import TensorSpec
from ..errors import ArtifactError
from ..signing import TrustStore
from ..stats import LatencyStats
from . import native
from .inputs import checked_inputs
from .session import (
    VirtualMachine,
    aligned_copy,
    check_elf,
    extract_runnable,
    named_outputs,
    result_arrays,
)


@dataclass
class _Step:
    device: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    run: Any  # {name: array} -> {name: array}
    label: str  # what runs it
    entry: dict[str, Any]
    timed: bool  # its time is this machine's latency (CPU steps, accelerators run for real)


class OffloadSession:
    """An accelerator artifact loaded for repeated runs (as `Session`)."""

    def __init__(self, path: str | Path, *, trust: TrustStore | None = None):
        from ..accel import registry

        self.path = Path(path)
        self._tmp, manifest = extract_runnable(self.path, trust)
        tmp = Path(self._tmp.name)
        self.manifest = manifest
        self.offload = manifest["offload"]
        self.inputs = [TensorSpec.from_json(d) for d in manifest["inputs"]]
        self.outputs = [TensorSpec.from_json(d) for d in manifest["outputs"]]
        self.plugin = plugin = registry.get(self.offload["plugin"], str(self.path))
        self.config = config = plugin.configure(self.offload["config"], str(self.path))
        self.steps: list[_Step] = []
        for entry in self.offload["steps"]:
            ins = [TensorSpec.from_json(d) for d in entry["inputs"]]
            outs = [TensorSpec.from_json(d) for d in entry["outputs"]]
            if entry["device"] == "cpu":
                lib = tmp / entry["library"]
                check_elf(self.path, lib)
                vm = VirtualMachine(lib, self.path)
                run, label, timed = _vm_runner(vm, ins, outs), "TVM on this CPU", True
            else:
                files = {role: tmp / member for role, member in entry["files"].items()}
                loaded = plugin.load(files, entry["record"], config)
                run, label, timed = loaded.run, loaded.label, loaded.on_device
            self.steps.append(_Step(entry["device"], ins, outs, run, label, entry, timed))

    def extracted(self, member: str) -> Path:
        """Where the artifact's ``member`` was extracted (valid while the session lives)."""
        return Path(self._tmp.name) / member

    @property
    def threads(self) -> int:
        return native.num_threads()

    def run_steps(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every tensor that crosses a step's edge, by name (inputs included)."""
        values = checked_inputs(self.path, self.manifest, feeds)
        env = {s.name: v for s, v in zip(self.inputs, values, strict=True)}
        for step in self.steps:
            got = step.run({s.name: env[s.name] for s in step.inputs})
            env.update(named_outputs(self.path, step.outputs,
                                     [np.asarray(got[s.name]) for s in step.outputs],
                                     f"step {step.device}"))
        return env

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run every step once; the model's outputs by name."""
        env = self.run_steps(feeds)
        return {s.name: env[s.name] for s in self.outputs}

    def cpu_samples(self, feeds: dict[str, np.ndarray], *, repeat: int = 20) -> list[float]:
        """Seconds per run spent in the steps that ran on their real device: the CPU
        steps, and accelerator steps whose runtime hook is the device (not those run in
        a reference form here)."""
        env = self.run_steps(feeds)
        cpu = [s for s in self.steps if s.timed]
        out = []
        for _ in range(max(1, repeat)):
            total = 0.0
            for s in cpu:
                args = {t.name: env[t.name] for t in s.inputs}
                t0 = time.perf_counter()
                s.run(args)
                total += time.perf_counter() - t0
            out.append(total)
        return out

    def time(self, feeds: dict[str, np.ndarray], *, repeat: int = 20) -> LatencyStats:
        """Latency of the timed steps (see `cpu_samples`); `estimate` has the rest."""
        return LatencyStats.from_seconds(self.cpu_samples(feeds, repeat=repeat))

    def estimate(self) -> tuple[float, str] | None:
        """(seconds, label): the accelerator steps' latency as their toolchain
        estimates it, or None when it gives none."""
        est = [s.entry.get("estimate") or {} for s in self.steps if not s.timed]
        secs = [e["seconds"] for e in est if e.get("seconds") is not None]
        return (sum(secs), est[0].get("label", "")) if secs else None

    def latency_line(self, feeds: dict[str, np.ndarray], repeat: int) -> str:
        """The CPU steps measured here; then, one line each, the accelerator steps'
        estimate and what ran the partitions here."""
        cpu = self.time(feeds, repeat=repeat)
        real = any(s.timed for s in self.steps if s.device != "cpu")
        parts = [f"{'CPU and accelerator' if real else 'CPU'} steps {cpu.line()} "
                 "(measured here)"]
        est = self.estimate()
        if est is not None:
            parts.append(f"accelerator steps {est[0] * 1e3:.3f} ms: {est[1]} (an estimate, "
                         "not a measurement)")
        ref = sorted({s.label for s in self.steps if s.device != "cpu"})
        if ref:
            parts.append("partitions ran as: " + "; ".join(ref))
        return "\n  ".join(parts)


def _vm_runner(vm: VirtualMachine, ins: list[TensorSpec], outs: list[TensorSpec]):
    ffi = native.ffi()
    if vm.arity != len(ins):
        raise ArtifactError(f"a CPU step's library takes {vm.arity} inputs, its manifest lists "
                            f"{len(ins)}; the artifact is corrupt, recompile it")

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [ffi.from_dlpack(aligned_copy(np.ascontiguousarray(
            feeds[s.name], dtype=s.dtype))) for s in ins]
        return dict(zip((s.name for s in outs), result_arrays(vm(*args)), strict=True))

    return run

"""The accelerator plugin interface: what a vendor writes to add an NPU to edgec.

A plugin is one folder (a Python package) exposing ``PLUGIN``, an instance of a
subclass of `AcceleratorPlugin`, plus a target file whose ``[accelerator]``
table names it (README, "Accelerator targets"). edgec's partitioner asks the
plugin four things and does the rest (splitting the graph, compiling what
stays on the CPU with TVM, the artifact, the manifest, run and verify):

- **pattern table with constraints** (`check`): may the device run this node,
  and if not, why (one line, shown by ``edgec inspect --offload``);
- **codegen** (`codegen`): compile one partition, a self-contained ONNX
  sub-model, into files the device runs; it may hand back nodes its own
  compiler refused, which then go to the CPU with its reason;
- **cost model** (`worth_offloading`): is the compiled partition worth the
  round trip from the CPU;
- **runtime hook** (`load`): a callable that runs a compiled partition, and a
  label saying what actually runs it (the device, or a reference form of it).

Plugins never import TVM: the CPU side is edgec's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx

from .graph import GraphView

#: a compiled partition's callable: {input name: array} -> {output name: array}
Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Partition:
    """A run of nodes the partitioner offers the device, cut out as its own model.

    ``model``'s inputs and outputs are the tensors crossing the partition's edge
    (for an int8 plugin: the integer tensors around QuantizeLinear/DequantizeLinear),
    in ONNX layout, with static shapes; ``nodes`` are its compute nodes' names."""

    name: str  # "npu-0": also the prefix of its files in the artifact
    model: onnx.ModelProto
    nodes: tuple[str, ...]
    macs: int


@dataclass
class Compiled:
    """What `AcceleratorPlugin.codegen` made of a partition.

    ``files``: role -> file written under the work folder (stored in the artifact
    as ``<partition>.<role>``, e.g. ``npu-0.command_stream``); ``record``: what the
    manifest keeps (placement, estimates: JSON); ``rejected``: node name -> reason,
    for nodes the device's own compiler would not take (the partitioner moves them to
    the CPU and asks again); ``error``: one line when the whole partition failed;
    ``estimate_seconds``/``estimate_label``: the device's latency as its toolchain
    estimates it, always labelled as an estimate with its configuration."""

    files: dict[str, Path] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    error: str = ""
    estimate_seconds: float | None = None
    estimate_label: str = ""


@dataclass(frozen=True)
class Loaded:
    """What the runtime hook gives back: the callable, what runs it, and whether that is
    the device itself (its time is then latency) or a stand-in for it (a reference
    form on a machine without the device: never timed as the device)."""

    run: Runner
    label: str
    on_device: bool


class AcceleratorPlugin:
    """Base class of accelerator plugins; see the module docstring.

    Class attributes:
        name: what ``[accelerator] plugin = "..."`` in a target file names.
        description: one line for ``edgec targets`` and ``inspect --offload``.
        precision: ``"int8"`` (the graph is quantised with every tensor int8 and
            partitions are QDQ sub-models) or ``"float32"``.
        patterns: ONNX op type -> ``check(node, graph, config) -> reason | None``.
        config_keys: the keys the plugin reads from the target's ``[accelerator]``.
        partition_prefix: how partitions are named (``npu`` gives npu-0, npu-1...).
    """

    name: str = ""
    description: str = ""
    precision: str = "float32"
    patterns: ClassVar[dict[str, Callable[[onnx.NodeProto, GraphView, Any], str | None]]] = {}
    config_keys: frozenset[str] = frozenset()
    partition_prefix: str = "acc"  # partitions are named <prefix>-0, <prefix>-1, ...

    def configure(self, table: dict[str, Any], where: str) -> Any:
        """The plugin's configuration from the target file's ``[accelerator]`` table
        (without ``plugin``); raise `edgec.errors.UsageError` naming ``where`` and the
        key for anything wrong. Default: the table as it is, unknown keys refused."""
        from ..errors import UsageError

        unknown = sorted(set(table) - set(self.config_keys))
        if unknown:
            raise UsageError(f"{where}: [accelerator] key(s) {unknown} are not read by the "
                             f"'{self.name}' plugin (it reads: "
                             f"{', '.join(sorted(self.config_keys)) or 'none'}); fix the "
                             "target file")
        return dict(table)

    def config_json(self, config: Any) -> dict[str, Any]:
        """The configuration as the manifest keeps it; `configure` must read it back."""
        return dict(config)

    def check(self, node: onnx.NodeProto, graph: GraphView, config: Any) -> str | None:
        """Why the device cannot run ``node`` (one line naming the op), or None."""
        rule = self.patterns.get(node.op_type)
        if rule is None:
            return f"{node.op_type}: not an operator the {self.name} plugin offloads"
        return rule(node, graph, config)

    def codegen(self, partition: Partition, workdir: Path, config: Any) -> Compiled:
        """Compile ``partition`` into files under ``workdir``."""
        raise NotImplementedError

    def worth_offloading(self, partition: Partition, compiled: Compiled,
                         config: Any) -> str | None:
        """None when offloading the compiled partition pays, else the reason it does
        not (its nodes then stay on the CPU with that reason). Default: a partition
        with no multiply-accumulates is not worth a round trip to the device."""
        if partition.macs == 0:
            return ("no multiply-accumulate work in this partition: the round trip to "
                    f"the {self.name} device would cost more than it saves (cost model)")
        return None

    def load(self, files: dict[str, Path], record: dict[str, Any], config: Any) -> Loaded:
        """The runtime hook: a callable running the compiled partition from its files
        (role -> extracted path), labelled with what runs it."""
        raise NotImplementedError

    def reference(self, model: onnx.ModelProto, workdir: Path, config: Any) -> Runner | None:
        """A runner for any piece of a partition (one node with its quantisation, as
        `partition.units` cuts it) in the form the device compiler consumed, for
        ``verify``'s op-by-op check against onnxruntime on identical inputs; None
        when the plugin has no such form (then only whole partitions are compared)."""
        return None

    def versions(self) -> dict[str, str]:
        """Versions of the plugin's toolchain, for the manifest."""
        return {}

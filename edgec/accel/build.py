"""Building an accelerator artifact: the plugin compiles the partitions, TVM the rest.

The compiler hands this module the quantised (or float) graph and a function
that builds a graph for the CPU with TVM; it splits the graph
(`partition.split`), builds every CPU step into a library of its own and
collects the members and the manifest's ``offload`` section: the steps in
order with their tensors, where each compute node runs (and why not on the
accelerator), and the accelerator toolchain's estimates, labelled as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from ..errors import UsageError
from . import registry
from .graph import GraphView
from .partition import CPU, Split, split
from .plugin import AcceleratorPlugin


@dataclass
class OffloadBuild:
    """What the compiler writes for an accelerator target."""

    section: dict[str, Any]  # manifest["offload"]
    members: dict[str, Path]  # artifact member name -> file
    cpu_results: list[Any]  # the backend's BuildResult of each CPU step, in order


def plugin_for(target) -> tuple[AcceleratorPlugin, Any]:
    """The target's plugin and its configuration (checked against the plugin)."""
    table = dict(target.accelerator)
    name = table.pop("plugin")
    plugin = registry.get(name, str(target.path))
    return plugin, plugin.configure(table, str(target.path))


def check_precision(target, quantize) -> None:
    """An int8 plugin needs an int8 compile: refuse anything else before any work."""
    plugin, _ = plugin_for(target)
    mode = quantize.mode if quantize is not None else "float32"
    if plugin.precision == "int8" and mode != "int8":
        raise UsageError(f"target '{target.name}' offloads int8 graphs only ({plugin.name}); "
                         "add --quantize int8 --calibration DIR (a folder of real inputs)")
    if plugin.precision == "float32" and mode != "float32":
        raise UsageError(f"target '{target.name}' offloads float32 graphs only "
                         f"({plugin.name}); drop --quantize {mode}")


def _specs(model: onnx.ModelProto, which: str) -> list[dict[str, Any]]:
    g = GraphView(model)
    names = g.inputs if which == "inputs" else g.outputs
    return [{"name": n, "shape": list(g.shape(n)), "dtype": g.dtype(n).name} for n in names]


def describe_step(s: Split, step) -> dict[str, Any]:
    """One step as the manifest and ``inspect --offload --json`` show it: device, compute
    nodes, op counts, MACs and, for a partition, the toolchain's record and estimate."""
    entry: dict[str, Any] = {"device": step.device, "nodes": step.nodes,
                             "ops": s.op_counts(step), "macs": step.macs}
    if step.compiled is not None:
        c = step.compiled
        entry.update(record=c.record,
                     estimate={"seconds": c.estimate_seconds, "label": c.estimate_label})
    return entry


def describe_split(s: Split, config_json: dict[str, Any]) -> dict[str, Any]:
    """The manifest's (and ``inspect --offload --json``'s) account of a split."""
    return {
        "plugin": s.plugin.name,
        "description": s.plugin.description,
        "precision": s.plugin.precision,
        "config": config_json,
        "versions": s.plugin.versions(),
        "rounds": s.rounds,
        "notes": s.notes,
        "summary": s.summary(),
        "placements": [p.to_json() for p in s.placements],
        "steps": [describe_step(s, step) for step in s.steps],
    }


def build_offloaded(model: onnx.ModelProto, target, work: Path, temps: Path | None,
                    build_cpu: Callable[[onnx.ModelProto, Path, Path | None], Any],
                    say: Callable[[str], None]) -> OffloadBuild:
    """Split ``model`` for the target's accelerator and build every step."""
    plugin, config = plugin_for(target)
    say(f"partitioning for {plugin.name}")
    s = split(model, plugin, config, work / "partitions", say=say)
    members: dict[str, Path] = {}
    results = []
    section = describe_split(s, plugin.config_json(config))
    for i, (step, entry) in enumerate(zip(s.steps, section["steps"], strict=True)):
        entry.update(inputs=_specs(step.model, "inputs"), outputs=_specs(step.model, "outputs"))
        if step.device == CPU:
            name = f"cpu-{i}"
            lib = work / f"{name}.so"
            say(f"building {name} ({len(step.nodes)} ops) with TVM for {target.name}")
            step_temps = temps / name if temps is not None else None
            if step_temps is not None:
                step_temps.mkdir(parents=True, exist_ok=True)
                onnx.save(step.model, step_temps / f"{name}.onnx")
            result = build_cpu(step.model, lib, step_temps)
            results.append(result)
            members[f"{name}.so"] = lib
            entry.update(library=f"{name}.so", integer_chains=result.integer_chains)
        else:
            c = step.compiled
            ref = work / f"{step.device}.onnx"
            onnx.save(step.model, ref)
            members[f"{step.device}.onnx"] = ref
            files = {}
            for role, path in c.files.items():
                files[role] = f"{step.device}.{role}"
                members[files[role]] = path
            entry.update(plugin=plugin.name, model=f"{step.device}.onnx", files=files)
            if temps is not None:
                onnx.save(step.model, temps / f"{step.device}.onnx")
    return OffloadBuild(section, members, results)

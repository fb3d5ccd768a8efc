"""Splitting a graph between an accelerator and the CPU.

Each compute node is asked of the plugin (`AcceleratorPlugin.check`); in an
int8 graph a supported node takes its DequantizeLinear inputs and its
QuantizeLinear output with it, so a partition's edges are integer tensors.
Nodes are then scheduled in a topological order that stays on one side as
long as it can (fewest switches); each maximal run of one side is a step.
A contiguous run of a topological order is convex (no path leaves it and comes
back), so every step can run to completion before the next. Constant nodes
(weight dequantisation) are copied into each step that reads them.

The plugin compiles each accelerator step; nodes its compiler refuses, whole
partitions it fails on and partitions its cost model rejects go back to the CPU
with the reason, and the split is made again until it is stable.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from .graph import GraphView
from .plugin import AcceleratorPlugin, Compiled, Partition

CPU = "cpu"
_GLUE = {"QuantizeLinear", "DequantizeLinear"}
_MAX_ROUNDS = 8


def macs(node: onnx.NodeProto, graph: GraphView) -> int:
    """Multiply-accumulates of a Conv, ConvTranspose, Gemm or MatMul (0 for others)."""
    op = node.op_type
    if op in ("Conv", "ConvTranspose"):
        w, y = graph.shape(node.input[1]), graph.shape(node.output[0])
        if w is None or y is None:
            return 0
        if op == "Conv":  # every output element: Cin/group x kernel
            return int(np.prod(y)) * int(np.prod(w[1:]))
        x = graph.shape(node.input[0])
        return 0 if x is None else int(np.prod(x)) * int(np.prod(w[1:]))
    if op in ("Gemm", "MatMul"):
        a, y = graph.shape(node.input[0]), graph.shape(node.output[0])
        if a is None or y is None:
            return 0
        k = a[-2] if op == "Gemm" and graph.attrs(node).get("transA", 0) else a[-1]
        return int(np.prod(y)) * int(k)
    return 0


@dataclass
class Step:
    """One step of the split: ``device`` is "cpu" or the partition's name."""

    device: str
    model: onnx.ModelProto
    nodes: list[str]  # compute node names (no Q/DQ glue)
    macs: int
    compiled: Compiled | None = None


@dataclass
class Placement:
    """Where one compute node runs and, on the CPU, why."""

    node: str
    op: str
    device: str
    macs: int
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "op": self.op, "device": self.device, "macs": self.macs,
                **({"reason": self.reason} if self.reason else {})}


@dataclass
class Split:
    """The result: steps in execution order and every compute node's placement."""

    plugin: AcceleratorPlugin
    steps: list[Step]
    placements: list[Placement]
    rounds: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def partitions(self) -> list[Step]:
        return [s for s in self.steps if s.device != CPU]

    def op_counts(self, step: Step) -> dict[str, int]:
        """Op type -> how many of the step's compute nodes are of it."""
        ops = {p.node: p.op for p in self.placements}
        return dict(collections.Counter(ops[n] for n in step.nodes))

    def summary(self) -> dict[str, Any]:
        total = sum(p.macs for p in self.placements)
        off = sum(p.macs for p in self.placements if p.device != CPU)
        est = [s.compiled for s in self.partitions if s.compiled is not None]
        seconds = [c.estimate_seconds for c in est if c.estimate_seconds is not None]
        return {
            "nodes": len(self.placements),
            "nodes_offloaded": sum(p.device != CPU for p in self.placements),
            "macs": total, "macs_offloaded": off,
            "macs_share_offloaded": round(off / total, 4) if total else 0.0,
            "partitions": len(self.partitions),
            "cpu_steps": sum(s.device == CPU for s in self.steps),
            **({"estimated_accelerator_seconds": sum(seconds),
                "estimate": est[0].estimate_label} if seconds else {}),
        }


def unshare_dequantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where every DequantizeLinear output has one consumer, so a partition
    can take a node's dequantisation without cutting another consumer's."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    users: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            users.setdefault(name, []).append((node, i))
    outputs = {o.name for o in g.output}
    new_nodes: list[onnx.NodeProto] = []
    for node in g.node:
        new_nodes.append(node)
        if node.op_type != "DequantizeLinear":
            continue
        out = node.output[0]
        extra = users.get(out, [])[1:] if out not in outputs else users.get(out, [])
        for k, (user, i) in enumerate(extra, 1):
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = f"{node.name or out}__{k}"
            copy.output[0] = f"{out}__{k}"
            user.input[i] = copy.output[0]
            new_nodes.append(copy)
    del g.node[:]
    g.node.extend(new_nodes)
    return model


def _is_constant(node: onnx.NodeProto, graph: GraphView, const_nodes: set[str]) -> bool:
    return all(not n or graph.const(n) is not None or n in const_nodes for n in node.input)


def _constant_nodes(graph: GraphView) -> set[int]:
    """Indices of the nodes that compute constants (weight dequantisation, Constant)."""
    outputs: set[str] = set()
    found: set[int] = set()
    for i, node in enumerate(graph.nodes):
        if node.op_type in ("Constant", "DequantizeLinear", "Identity") and \
                _is_constant(node, graph, outputs):
            found.add(i)
            outputs.update(node.output)
    return found


class _Labeller:
    """Which side each node is on, given the compute nodes forced to the CPU."""

    def __init__(self, graph: GraphView, plugin: AcceleratorPlugin, config: Any,
                 forced: dict[str, str]):
        self.label: dict[int, str] = {}
        self.reasons: dict[str, str] = {}
        self.int8 = int8 = plugin.precision == "int8"
        self.constant = _constant_nodes(graph)
        for i, node in enumerate(graph.nodes):
            self.label.setdefault(i, CPU)
            if i in self.constant or (int8 and node.op_type in _GLUE):
                continue
            name = node.name
            reason = forced.get(name) or plugin.check(node, graph, config)
            if reason:
                self.reasons[name] = reason
                continue
            self.label[i] = "acc"
            if int8:  # the node's dequantised inputs and its quantised output come along
                for t in node.input:
                    p = graph.producer(t)
                    if p is not None and p.op_type == "DequantizeLinear" and \
                            graph.index(p) not in self.constant:
                        self.label[graph.index(p)] = "acc"
                for t in node.output:
                    for q in graph.consumers(t):
                        if q.op_type == "QuantizeLinear":
                            self.label[graph.index(q)] = "acc"


def _schedule(graph: GraphView, lab: _Labeller) -> list[tuple[str, list[int]]]:
    """Runs of (side, node indices) in a topological order with the fewest switches.

    In an int8 graph a DequantizeLinear is scheduled together with the one node that
    reads it: run as soon as its QuantizeLinear is, it could land in an earlier run
    than its reader and make a float tensor cross a partition's edge."""
    nodes = graph.nodes
    producers = {out: i for i, n in enumerate(nodes) for out in n.output}
    attached: dict[int, list[int]] = {}
    if lab.int8:
        for i, n in enumerate(nodes):
            if i in lab.constant or n.op_type != "DequantizeLinear" or \
                    n.output[0] in graph.outputs:
                continue
            readers = graph.consumers(n.output[0])
            if len(readers) == 1:
                attached.setdefault(graph.index(readers[0]), []).append(i)
    riders = {i for group in attached.values() for i in group}

    def sources(i: int) -> set[int]:
        found = set()
        for t in nodes[i].input:
            j = producers.get(t)
            if j is None or j in lab.constant:
                continue
            found |= sources(j) if j in riders else {j}
        return found

    deps: dict[int, set[int]] = {}
    users: dict[int, set[int]] = {}
    for i in range(len(nodes)):
        if i in lab.constant or i in riders:
            continue
        deps[i] = sources(i) | {k for r in attached.get(i, ()) for k in sources(r)}
        for j in deps[i]:
            users.setdefault(j, set()).add(i)
    waiting = {i: len(d) for i, d in deps.items()}
    ready = sorted(i for i, k in waiting.items() if k == 0)
    runs: list[tuple[str, list[int]]] = []
    side = lab.label[ready[0]] if ready else CPU
    while ready:
        same = [i for i in ready if lab.label[i] == side]
        if not same:
            side = lab.label[ready[0]]
            continue
        i = same[0]
        ready.remove(i)
        if not runs or runs[-1][0] != side:
            runs.append((side, []))
        runs[-1][1].extend([*sorted(attached.get(i, ())), i])
        for j in sorted(users.get(i, ())):
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
        ready.sort()
    return runs


def _value_info(graph: GraphView, name: str) -> onnx.ValueInfoProto:
    dtype, shape = graph.dtype(name), graph.shape(name)
    if dtype is None or shape is None:
        raise ValueError(f"tensor '{name}' has no static shape or type")
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dtype), shape)


def _cut(graph: GraphView, constant: set[int], run: list[int], later: set[str],
         name: str) -> onnx.ModelProto:
    """The run's nodes (and the constant nodes they read) as a model of their own."""
    nodes = graph.nodes
    inside = set(run)
    produced = {t for i in run for t in nodes[i].output}
    const_of = {t: i for i in constant for t in nodes[i].output}
    need_const: list[int] = []
    inputs: list[str] = []
    inits: dict[str, onnx.TensorProto] = {i.name: i for i in graph.model.graph.initializer}
    used_inits: list[onnx.TensorProto] = []

    def read(t: str) -> None:
        if not t or t in produced or t in inputs:
            return
        if t in const_of:
            j = const_of[t]
            if j not in need_const:
                need_const.append(j)
                for u in nodes[j].input:
                    read(u)
            return
        if t in inits:
            if inits[t] not in used_inits:
                used_inits.append(inits[t])
            return
        inputs.append(t)

    for i in run:
        for t in nodes[i].input:
            read(t)
    outputs = [t for i in run for t in nodes[i].output if t in later]
    body = [nodes[j] for j in sorted(need_const)] + [nodes[i] for i in sorted(inside)]
    value_info = [_value_info(graph, t) for n in body for t in n.output
                  if t not in outputs and graph.shape(t) is not None]
    g = helper.make_graph(body, name, [_value_info(graph, t) for t in inputs],
                          [_value_info(graph, t) for t in outputs], list(used_inits),
                          value_info=value_info)
    m = graph.model
    return helper.make_model(g, opset_imports=list(m.opset_import), ir_version=m.ir_version)


def _compute_nodes(graph: GraphView, run: list[int], int8: bool) -> list[str]:
    return [graph.nodes[i].name for i in run
            if not (int8 and graph.nodes[i].op_type in _GLUE)]


def _steps(graph: GraphView, lab: _Labeller, int8: bool, prefix: str) -> list[Step]:
    runs = _schedule(graph, lab)
    needed_after: list[set[str]] = []
    tail = set(graph.outputs)
    for _side, run in reversed(runs):
        needed_after.append(set(tail))
        for i in run:
            tail.update(t for t in graph.nodes[i].input if t)
    needed_after.reverse()
    steps, k = [], 0
    for (side, run), later in zip(runs, needed_after, strict=True):
        name = CPU if side == CPU else f"{prefix}-{k}"
        k += side != CPU
        model = _cut(graph, lab.constant, run, later,
                     name if side != CPU else f"cpu-{len(steps)}")
        names = _compute_nodes(graph, run, int8)
        steps.append(Step(name, model, names, sum(macs(graph.node(n), graph) for n in names)))
    return steps


def units(model: onnx.ModelProto, int8: bool) -> list[tuple[str, onnx.ModelProto]]:
    """Each compute node of a partition as a model of its own: in an int8 partition
    with its DequantizeLinear inputs and its QuantizeLinear output, so its edges are
    the partition's integer tensors (for verify's op-by-op check)."""
    graph = GraphView(model)
    constant = _constant_nodes(graph)
    out = []
    for i, node in enumerate(graph.nodes):
        if i in constant or (int8 and node.op_type in _GLUE):
            continue
        members = [i]
        if int8:
            members += [graph.index(p) for t in node.input if (p := graph.producer(t))
                        is not None and p.op_type == "DequantizeLinear"
                        and graph.index(p) not in constant]
            members += [graph.index(q) for t in node.output for q in graph.consumers(t)
                        if q.op_type == "QuantizeLinear"]
        ends = {t for j in members for t in graph.nodes[j].output
                if not any(graph.index(c) in members for c in graph.consumers(t))}
        out.append((node.name, _cut(graph, constant, sorted(members), ends, node.name)))
    return out


def name_nodes(model: onnx.ModelProto) -> None:
    """Give unnamed nodes unique names (reasons and placements are by node name)."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def split(model: onnx.ModelProto, plugin: AcceleratorPlugin, config: Any, workdir: Path,
          *, compile_partitions: bool = True,
          say: Callable[[str], None] = lambda _m: None) -> Split:
    """Partition ``model`` (static shapes; int8 QDQ for an int8 plugin) for ``plugin``.

    With ``compile_partitions``, each partition is compiled by the plugin (files
    under ``workdir``) and what it refuses goes back to the CPU until the split is
    stable; without, the split is the pattern table's alone."""
    int8 = plugin.precision == "int8"
    model = unshare_dequantize(model) if int8 else onnx.ModelProto.FromString(
        model.SerializeToString())
    name_nodes(model)
    graph = GraphView(model)
    forced: dict[str, str] = {}
    notes: list[str] = []
    for rounds in range(1, _MAX_ROUNDS + 1):
        lab = _Labeller(graph, plugin, config, forced)
        steps = _steps(graph, lab, int8, plugin.partition_prefix)
        changed = False
        if compile_partitions:
            for step in steps:
                if step.device == CPU:
                    continue
                part = Partition(step.device, step.model, tuple(step.nodes), step.macs)
                out = workdir / f"round{rounds}" / step.device
                out.mkdir(parents=True, exist_ok=True)
                say(f"{plugin.name}: compiling {step.device} ({len(step.nodes)} ops)")
                compiled = plugin.codegen(part, out, config)
                step.compiled = compiled
                if compiled.error:
                    why = f"{plugin.name} compiler failed on this partition: {compiled.error}"
                    forced.update({n: _prefixed(graph, n, why) for n in step.nodes})
                    notes.append(f"{step.device}: {why}")
                    changed = True
                elif compiled.rejected:
                    forced.update({n: r for n, r in compiled.rejected.items()})
                    changed = True
                else:
                    why = plugin.worth_offloading(part, compiled, config)
                    if why:
                        forced.update({n: _prefixed(graph, n, why) for n in step.nodes})
                        changed = True
        if not changed:
            break
    else:
        raise RuntimeError(f"the {plugin.name} split did not settle in {_MAX_ROUNDS} rounds")
    side = {n: s.device for s in steps for n in s.nodes}
    placements = [Placement(n.name, n.op_type, side.get(n.name, CPU), macs(n, graph),
                            lab.reasons.get(n.name, ""))
                  for n in graph.nodes if n.name in side]
    return Split(plugin, steps, placements, rounds, notes)


def _prefixed(graph: GraphView, node: str, why: str) -> str:
    return f"{graph.node(node).op_type}: {why}"

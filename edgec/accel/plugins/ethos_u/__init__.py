"""Arm Ethos-U55/U65/U85 microNPUs through Arm's Vela compiler: edgec's worked example
of an accelerator plugin (README, "Accelerator targets").

- pattern table: `patterns.py`, the int8 operators and parameters this path
  turns into TFLite operators Vela places on the NPU;
- codegen: each partition (an int8 QDQ sub-model) becomes an int8 TFLite model
  (`tflite_writer.py`, NHWC, per-channel weights) and Vela compiles it into an
  Ethos-U command stream (`vela.py`); operators Vela still puts on the CPU go
  back to edgec's CPU side with Vela's reason;
- cost model: the default (a partition without multiply-accumulates is not
  worth the round trip); Vela's cycle estimate is recorded, labelled;
- runtime hook: no Ethos-U is reachable from this machine (Vela's output runs
  on the NPU through Arm's ethos-u driver, which edgec does not ship), so the
  partition runs here in its reference form, LiteRT on the same int8 TFLite
  Vela compiled, and is labelled so. Its time is never reported as the NPU's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ...graph import GraphView
from ...plugin import AcceleratorPlugin, Compiled, Loaded, Partition
from . import patterns
from .tflite_writer import write_tflite
from .vela import VelaConfig, compile_tflite, vela_version

REFERENCE_LABEL = ("LiteRT's int8 kernels on the int8 TFLite given to Vela (reference form: "
                   "no Ethos-U here)")
#: LiteRT's kernels for the reference form: its built-in optimised kernels, without the
#: XNNPACK delegate (which rescales int8 with coarser multipliers). Not TFLite's
#: reference kernels: their int8 SOFTMAX aborts the process on a constant 1000-wide
#: row (LiteRT 2.3; a saturated classifier's logits), which no input may do.
KERNELS = "builtin"


class EthosUPlugin(AcceleratorPlugin):
    name = "ethos-u"
    description = "Arm Ethos-U microNPU, int8, command streams compiled by Arm's Vela"
    precision = "int8"
    partition_prefix = "npu"
    config_keys = frozenset({"accelerator", "system_config", "memory_mode", "optimise"})

    def configure(self, table: dict[str, Any], where: str) -> VelaConfig:
        return VelaConfig.from_table(table, where)

    def config_json(self, config: VelaConfig) -> dict[str, Any]:
        return config.to_json()

    def check(self, node: onnx.NodeProto, graph: GraphView, config: Any) -> str | None:
        """patterns.check: the QDQ form every op needs, then the op's rule in
        patterns.PATTERNS (the table; its rules take no configuration)."""
        return patterns.check(node, graph)

    def versions(self) -> dict[str, str]:
        return {"ethos-u-vela": vela_version()}

    def codegen(self, partition: Partition, workdir: Path, config: VelaConfig) -> Compiled:
        tflite = workdir / f"{partition.name}.tflite"
        try:
            io = write_tflite(partition.model, tflite)
        except ValueError as exc:
            return Compiled(error=f"no TFLite form: {exc}")
        result = compile_tflite(tflite, config, workdir / "vela")
        if not result.ok:
            return Compiled(error=result.error)
        ops = {n.name: n.op_type for n in partition.model.graph.node}
        rejected: dict[str, str] = {}
        for layer in result.layers:
            if layer.on_npu:
                continue
            node = io.node_for(layer.name)
            if node not in ops:
                return Compiled(error=f"Vela placed {layer.op} '{layer.name}' on the CPU and "
                                      "it maps to no ONNX node of the partition")
            rejected[node] = (f"{ops[node]}: Vela places it on the CPU"
                              + (f" ({layer.reason})" if layer.reason else ""))
        if rejected:
            return Compiled(rejected=rejected)
        return Compiled(files={"tflite": tflite, "vela.tflite": result.command_stream},
                        record={"io": io.to_json(), "vela": result.to_json()},
                        estimate_seconds=result.seconds, estimate_label=config.label())

    def load(self, files: dict[str, Path], record: dict[str, Any], config: Any) -> Loaded:
        return Loaded(_litert_runner(files["tflite"], record["io"]), REFERENCE_LABEL,
                      on_device=False)

    def reference(self, model: onnx.ModelProto, workdir: Path, config: Any):
        """One node of a partition as its own int8 TFLite, run by LiteRT."""
        path = workdir / "unit.tflite"
        return _litert_runner(path, write_tflite(model, path).to_json())


def _litert_runner(path: Path, io: dict[str, Any]):
    """LiteRT (KERNELS) on the TFLite at ``path``: ONNX-layout int8 arrays in and out."""
    from ....baselines.litert import TfliteRunner

    tflite = TfliteRunner(path, kernels=KERNELS)

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [np.ascontiguousarray(np.transpose(feeds[t["name"]], t["perm"])
                                     if t.get("perm") else feeds[t["name"]])
                for t in io["inputs"]]
        outs = tflite(args)
        return {t["name"]: np.ascontiguousarray(
            np.transpose(v, np.argsort(t["perm"])) if t.get("perm") else v)
            for t, v in zip(io["outputs"], outs, strict=True)}

    return run


PLUGIN = EthosUPlugin()

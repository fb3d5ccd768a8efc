"""The pass registry and named pipelines.

A pass is an onnx-ir pass (``call(model) -> PassResult(model, modified)``)
registered here under a unique name. A pipeline is a named list of pass names;
``-O0`` .. ``-O3`` are the pipelines called ``O0`` .. ``O3``. Keeping both as
data makes a compile plan printable and testable without running it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx_ir as ir


@dataclass(frozen=True)
class PassInfo:
    name: str
    description: str
    factory: Callable[..., ir.passes.PassBase]


PASSES: dict[str, PassInfo] = {}


def register(name: str, description: str):
    """Class decorator: make an onnx-ir pass available to pipelines under ``name``."""

    def deco(cls):
        if name in PASSES:
            raise ValueError(f"pass name {name!r} is registered twice")
        PASSES[name] = PassInfo(name, description, cls)
        cls.edgec_name = name
        return cls

    return deco


def count_nodes(model: ir.Model) -> int:
    """Nodes in the main graph and every subgraph (If branches, functions excluded)."""
    return sum(1 for _ in ir.traversal.RecursiveGraphIterator(model.graph))

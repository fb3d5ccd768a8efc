"""Load, check, bind and run a pass pipeline: the ONNX side of every compile.

Shared by ``compile`` (which hands the result to TVM) and ``bench`` (which
hands a static-shape copy to the TFLite converter), so both see the very
same model for the same bindings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx_ir as ir

from ..errors import EdgecError, UsageError
from ..passes import PassReport, run_pipeline
from ..passes.pipelines import Observer
from ..specs import DEFAULT_MAX_NODES
from .binding import Bindings, bind_inputs, binding_hint, unbound_inputs
from .loader import DEFAULT_MAX_MODEL_BYTES, LoadedModel, load_model, to_ir
from .refusals import check_refusals
from .types import check_types


@dataclass
class Prepared:
    loaded: LoadedModel
    model: ir.Model  # after binding and the passes
    reports: list[PassReport]


def bind(path: Path, bindings: Bindings, *, max_bytes: int = DEFAULT_MAX_MODEL_BYTES,
         max_nodes: int = DEFAULT_MAX_NODES) -> tuple[LoadedModel, ir.Model]:
    """The checked model with every input bound; an unbound dynamic dim is an error."""
    loaded = load_model(path, max_bytes=max_bytes, max_nodes=max_nodes)
    model = to_ir(path, loaded.proto)
    check_types(model, path)
    check_refusals(model, path, as_loaded=True)
    bind_inputs(model, bindings, path)
    loose = unbound_inputs(model)
    if loose:
        raise UsageError(f"{path}: input(s) {', '.join(v.name for v in loose)} have "
                         f"dynamic dims; bind them, e.g. {binding_hint(loose)}")
    return loaded, model


def run_passes(path: Path, model: ir.Model, passes: tuple[str, ...], *,
               observer: Observer | None = None) -> list[PassReport]:
    """Run ``passes``, then refuse what TVM would compute wrongly (refusals.py);
    errors from a pass name the node, this adds the file."""
    try:
        reports = run_pipeline(model, passes, observer=observer)
    except EdgecError as exc:
        if not exc.message.startswith(str(path)):
            exc.message = f"{path}: {exc.message}"
        raise
    check_refusals(model, path)
    return reports


def prepare(path: Path, bindings: Bindings, passes: tuple[str, ...], *,
            max_bytes: int = DEFAULT_MAX_MODEL_BYTES) -> Prepared:
    loaded, model = bind(path, bindings, max_bytes=max_bytes)
    return Prepared(loaded, model, run_passes(path, model, passes))

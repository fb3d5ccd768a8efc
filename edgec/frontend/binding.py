"""Bind a model's inputs: dynamic dims to sizes, and chosen inputs to constants.

Binding comes first because everything after it (shape inference, folding of
shape subgraphs and ``If`` nodes, unrolling recurrent ops, TVM's importer)
works only on static shapes. A named dim (``batch``) bound on one input is
bound on every input that uses the same name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx_ir as ir

from ..errors import UsageError
from ..specs import parse_const_spec, parse_shape_spec  # noqa: F401  (re-exported)

_NAME = re.compile(r"^[A-Za-z_][\w.:/-]*$")


@dataclass(frozen=True)
class Bindings:
    """What the user fixed: input name -> shape, and input name -> constant value."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "input_shapes": {k: list(v) for k, v in self.shapes.items()},
            "input_consts": {k: v.tolist() for k, v in self.consts.items()},
        }


def _static(dim) -> bool:
    """A known size. Some exporters (Paddle2ONNX) write dynamic dims as -1."""
    return isinstance(dim, int) and dim >= 0


def _named(dim) -> bool:
    """A dim with a real name ("batch"), which binds the same size everywhere it appears.

    Placeholders such as "?" (Paddle2ONNX) or "unk__3" (shape inference) are
    anonymous: two of them are not the same dim.
    """
    return (isinstance(dim, ir.SymbolicDim) and dim.value is not None
            and _NAME.match(dim.value) is not None and not dim.value.startswith("unk__"))


def _dims_text(value: ir.Value) -> str:
    if value.shape is None:
        return "unknown shape"
    return "[" + ",".join(str(d) for d in value.shape) + "]"


def bind_inputs(model: ir.Model, bindings: Bindings, source: str | Path) -> ir.Model:
    """Apply ``bindings`` in place; every contradiction is a UsageError naming ``source``."""
    graph = model.graph
    inputs = {v.name: v for v in graph.inputs}
    names = ", ".join(inputs) or "(none)"
    for name in [*bindings.shapes, *bindings.consts]:
        if name not in inputs:
            raise UsageError(f"{source}: the model has no input named '{name}'; its inputs are: "
                             f"{names}")
    # 1. explicit shapes, and the sizes they give to named dims
    sym: dict[str, int] = {}
    for name, dims in bindings.shapes.items():
        value = inputs[name]
        declared = value.shape
        if declared is not None and len(declared) != len(dims):
            raise UsageError(f"{source}: input '{name}' has rank {len(declared)} "
                             f"{_dims_text(value)}, but --input-shape gives {len(dims)} dims")
        for i, size in enumerate(dims):
            d = declared[i] if declared is not None else None
            if _static(d) and d != size:
                raise UsageError(f"{source}: --input-shape {name}={','.join(map(str, dims))} "
                                 f"contradicts the model: dim {i} of '{name}' is {d}, not {size}")
            if _named(d) and sym.setdefault(d.value, size) != size:
                raise UsageError(f"{source}: dim '{d.value}' is bound to both "
                                 f"{sym[d.value]} and {size}; give one size")
    # 2. constants: checked against the declared shape, turned into initializers
    for name, array in bindings.consts.items():
        value = inputs[name]
        dtype = value.dtype.numpy() if value.dtype is not None else array.dtype
        arr = np.asarray(array).astype(dtype)
        declared = value.shape
        if declared is not None:
            if len(declared) != arr.ndim or any(
                    _static(d) and d != s for d, s in zip(declared, arr.shape, strict=False)):
                raise UsageError(f"{source}: --input-const {name} has shape {list(arr.shape)} "
                                 f"but input '{name}' is {_dims_text(value)}")
            for d, s in zip(declared, arr.shape, strict=True):
                if _named(d) and sym.setdefault(d.value, s) != s:
                    raise UsageError(f"{source}: dim '{d.value}' is bound to both "
                                     f"{sym[d.value]} and {s}; give one size")
        graph.inputs.remove(value)
        value.const_value = ir.tensor(arr, name=name)
        value.shape = ir.Shape(arr.shape)
        graph.register_initializer(value)
    # 3. every remaining input: explicit shape, else named dims bound elsewhere
    for value in graph.inputs:
        if value.name in bindings.shapes:
            value.shape = ir.Shape(bindings.shapes[value.name])
        elif value.shape is not None:
            value.shape = ir.Shape([
                sym.get(d.value, d) if _named(d) else d
                for d in value.shape])
    return model


def unbound_inputs(model: ir.Model) -> list[ir.Value]:
    """Inputs whose shape still has a dynamic dim after binding."""
    return [v for v in model.graph.inputs
            if v.shape is None or not all(_static(d) for d in v.shape)]


_PLACEHOLDER = re.compile(r"^[A-Za-z_]\w{0,15}$")


def _placeholders(values: list[ir.Value]) -> dict[tuple[str, int], str]:
    """(input, dim index) -> what to type there: "1" for a batch dim, else an
    upper-case placeholder: the dim's own name when it reads as one
    (``sequence`` -> SEQUENCE), H/W for an image's spatial dims, else D<i>."""
    batch_names = {v.shape[0].value for v in values if v.shape and _named(v.shape[0])}
    out: dict[tuple[str, int], str] = {}
    for v in values:
        shape = list(v.shape or [])
        image = len(shape) == 4 and shape[1] in (1, 3)
        for i, d in enumerate(shape):
            if _static(d):
                continue
            if i == 0 or (_named(d) and d.value in batch_names):
                out[v.name, i] = "1"
            elif _named(d) and _PLACEHOLDER.match(d.value):
                out[v.name, i] = d.value.upper()
            elif image and i >= 2:
                out[v.name, i] = "HW"[i - 2]
            else:
                out[v.name, i] = f"D{i}"
    return out


def suggest_binding(values: list[ir.Value]) -> str:
    """An --input-shape flag per value: static dims as they are, a dynamic
    leading (batch) dim as 1 wherever its name appears, other dynamic dims as
    placeholders (see binding_hint) for the user to replace with sizes."""
    marks = _placeholders(values)
    flags = []
    for v in values:
        dims = [str(d) if _static(d) else marks[v.name, i] for i, d in enumerate(v.shape or [])]
        flags.append(f"--input-shape {v.name}={','.join(dims) or 'D1,D2,...'}")
    return " ".join(flags)


def binding_hint(values: list[ir.Value]) -> str:
    """suggest_binding's flags and, in words, what each placeholder stands for,
    so the hint can be pasted once the placeholders are replaced."""
    flags = suggest_binding(values)
    meaning: dict[str, list[str]] = {}
    for (name, i), mark in _placeholders(values).items():
        if mark == "1":
            continue
        d = next(v for v in values if v.name == name).shape[i]
        called = f"'{d.value}'" if _named(d) else "unnamed"
        meaning.setdefault(mark, []).append(f"dim {i} of {name}, {called} in the model")
    if any(v.shape is None for v in values):
        meaning["D1,D2,..."] = ["the full shape of an input whose rank the model leaves open"]
    if not meaning:
        return flags
    legend = "; ".join(f"{mark} = {' and '.join(where)}" for mark, where in meaning.items())
    return f"{flags} (replace each placeholder with the size to compile for: {legend})"

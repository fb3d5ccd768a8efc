"""Inputs checked before a model runs: names, shapes, dtypes and index ranges.

Shared by the in-process run (session.py) and the emulated one (the C
bundle under qemu: bundle/emulate.py), so both refuse the same inputs with
the same one-line messages, and an out-of-range index never reaches a
kernel (the kernels would not crash on it either: backend/tvm/index_bounds.py,
but what they read for it is not the model's answer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifact import TensorSpec
from ..errors import UsageError


def index_extents(manifest: dict) -> dict[str, list[int]]:
    """Index inputs -> the extents they must stay within (``index_extents``; artifacts
    from before it: ``valid_range``'s upper end)."""
    return {d["name"]: d["index_extents"] if "index_extents" in d else [d["valid_range"][1]]
            for d in manifest["inputs"] if "index_extents" in d or "valid_range" in d}


def checked_inputs(path: Path, manifest: dict, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``feeds`` as arrays in the manifest's input order, each of its compiled shape
    and dtype (a dtype of the same kind is cast), index inputs in range; anything
    else is a UsageError that says what to give."""
    specs = [TensorSpec.from_json(d) for d in manifest["inputs"]]
    unknown = sorted(set(feeds) - {s.name for s in specs})
    if unknown:
        raise UsageError(f"{path}: no input named {', '.join(unknown)}; inputs are: "
                         + ", ".join(s.describe() for s in specs))
    extents = index_extents(manifest)
    out = []
    for spec in specs:
        if spec.name not in feeds:
            raise UsageError(f"{path}: input '{spec.name}' is missing; give "
                             f"{spec.describe()} (or use --random)")
        arr = np.asarray(feeds[spec.name])
        if tuple(arr.shape) != spec.shape:
            raise UsageError(f"{path}: input '{spec.name}' has shape {list(arr.shape)}, the "
                             f"artifact takes {list(spec.shape)}; "
                             + reshape_hint(manifest, spec, tuple(arr.shape)))
        if spec.name in extents:  # on the values given, before a cast could wrap them
            check_indices(path, spec.name, arr, extents[spec.name])
        if arr.dtype != np.dtype(spec.dtype):
            if not np.can_cast(arr.dtype, spec.dtype, casting="same_kind"):
                raise UsageError(f"{path}: input '{spec.name}' is {arr.dtype}, the model "
                                 f"takes {spec.dtype}")
            check_integer_range(path, spec.name, arr, np.dtype(spec.dtype))
            arr = arr.astype(spec.dtype)
        out.append(arr)
    return out


def reshape_hint(manifest: dict, spec: TensorSpec, shape: tuple[int, ...]) -> str:
    """What to do about a wrong shape: recompile only where the model's own dims
    allow the given shape (dynamic there), else fix the data."""
    declared = manifest["source_model"].get("inputs", {}).get(spec.name, "unknown")
    if declared == "unknown":  # an artifact from before the manifest kept them
        return (f"give an array of that shape, or recompile with --input-shape "
                f"{spec.name}=... if the model's dims are dynamic")
    if declared is not None and (len(declared) != len(shape) or any(
            isinstance(d, int) and d != s for d, s in zip(declared, shape, strict=False))):
        dims = ",".join("?" if d is None or isinstance(d, str) else str(d) for d in declared)
        legend = " ('?': dynamic)" if "?" in dims else ""
        return (f"the model itself fixes it to [{dims}]{legend}, so give an array of shape "
                f"{list(spec.shape)}")
    return ("the model allows other sizes there: recompile with --input-shape "
            f"{spec.name}={','.join(map(str, shape))} to run this one")


def check_integer_range(path: Path, name: str, arr: np.ndarray, dtype: np.dtype) -> None:
    """Integers cast to a narrower (or differently signed) type must keep their value:
    numpy wraps them (a uint64 of 2^63 became -2^63 in an int64 model)."""
    if arr.size == 0 or arr.dtype.kind not in "iu" or dtype.kind not in "iu" \
            or np.can_cast(arr.dtype, dtype, casting="safe"):
        return
    info = np.iinfo(dtype)
    lo, hi = arr.min(), arr.max()
    if int(lo) < info.min or int(hi) > info.max:
        bad = int(lo) if int(lo) < info.min else int(hi)
        raise UsageError(f"{path}: input '{name}' holds {bad}, which {dtype} (the model's "
                         f"type) cannot hold ([{info.min}, {info.max}]); give values in "
                         "that range")


def check_indices(path: Path, name: str, arr: np.ndarray, extents: list[int]) -> None:
    """An index input must be in [-extent, extent), as ONNX says (one extent per
    last-dim slot for GatherND / ScatterND)."""
    if arr.size == 0:
        return
    if arr.dtype.kind not in "iu":
        raise UsageError(f"{path}: input '{name}' indexes a table, so it must hold integers, "
                         f"not {arr.dtype}")
    ext = np.asarray(extents, np.int64)
    if len(extents) > 1:
        ext = np.broadcast_to(ext, arr.shape)
    if arr.dtype.kind == "u":  # compared in uint64: no wrap to negative
        bad = arr.astype(np.uint64) >= ext.astype(np.uint64)
    else:
        wide = arr.astype(np.int64)
        bad = (wide < -ext) | (wide >= ext)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        ranges = ", ".join(f"[-{e}, {e})" for e in dict.fromkeys(extents))
        raise UsageError(f"{path}: input '{name}' holds index {arr[at]} at {list(at)}, outside "
                         f"the valid range {ranges} of the table it indexes; give indices "
                         "inside it")

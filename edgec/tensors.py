"""Model inputs: random test data of the right shape and dtype, and .npy/.npz files.

Random data is seeded so a failure can be reproduced. Integer inputs that
feed a Gather (token ids, say) are drawn below the table size so they are
valid indices; other integers are small non-negative numbers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .artifact import TensorSpec
from .errors import UnsupportedError, UsageError
from .specs import load_array_file


def _memory_bytes() -> int | None:
    """This machine's physical memory, when the OS says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _too_big(spec: TensorSpec, need: int, than: str) -> UnsupportedError:
    return UnsupportedError(f"random input {spec.describe()} needs {need / 2**30:.1f} GiB to "
                            f"draw, more than {than}; give the input from a file, or run it "
                            "where it fits")


def random_inputs(specs: list[TensorSpec], *, seed: int = 0,
                  int_bounds: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded random inputs for ``specs``: normal floats, booleans, small integers.

    Integers are drawn from ``[0, int_bounds[name])`` (default ``[0, 8)``), so
    inputs used as Gather indices stay valid (`edgec.Artifact.input_bounds`).
    """
    rng = np.random.default_rng(seed)
    memory = _memory_bytes()
    out = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        # drawn in 8-byte numbers, then cast: that is the peak, not the input's own size
        need = math.prod(spec.shape) * (dtype.itemsize + 8)

        if memory is not None and need > memory:
            raise _too_big(spec, need, f"this machine's {memory / 2**30:.1f} GiB")
        try:
            if dtype == np.bool_:
                out[spec.name] = rng.random(spec.shape) < 0.5
            elif np.issubdtype(dtype, np.integer):
                high = (int_bounds or {}).get(spec.name, 8)
                out[spec.name] = rng.integers(0, max(1, high), size=spec.shape).astype(dtype)
            else:
                out[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
        except MemoryError:  # a memory limit (ulimit -v, a container) below the machine's
            raise _too_big(spec, need, "this process could allocate") from None
    return out


def load_input_files(specs: list[TensorSpec], items: list[str]) -> dict[str, np.ndarray]:
    """``["x=img.npy", "inputs.npz"]`` -> {name: array}; an .npz may hold several inputs."""
    names = {s.name for s in specs}
    feeds: dict[str, np.ndarray] = {}
    for item in items:
        name, eq, file = item.partition("=")
        if not eq:
            name, file = "", item
        path = Path(file)
        if not path.is_file():
            raise UsageError(f"--input {item}: {path} does not exist; give NAME=FILE.npy or "
                             "FILE.npz")
        data = load_array_file(f"--input {item}", path)
        if isinstance(data, dict):
            loaded = data
            if name:
                raise UsageError(f"--input {item}: give an .npz file without NAME=")
        else:
            if not name:
                if len(specs) != 1:
                    raise UsageError(f"--input {item}: the model has {len(specs)} inputs; "
                                     "say which one with NAME=FILE.npy")
                name = specs[0].name
            loaded = {name: data}
        for k in loaded:
            if k not in names:
                raise UsageError(f"--input {item}: the model has no input '{k}'; inputs are: "
                                 + ", ".join(s.describe() for s in specs))
        feeds.update(loaded)
    return feeds

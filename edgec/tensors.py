"""Model inputs: random test data of the right shape and dtype, and .npy/.npz files.

Random data is seeded so a failure can be reproduced. Integer inputs that
feed a Gather (token ids, say) are drawn below the table size so they are
valid indices; other integers are small non-negative numbers.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .artifact import TensorSpec
from .errors import UsageError


def random_inputs(specs: list[TensorSpec], *, seed: int = 0,
                  int_bounds: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded random inputs for ``specs``: normal floats, booleans, small integers.

    Integers are drawn from ``[0, int_bounds[name])`` (default ``[0, 8)``), so
    inputs used as Gather indices stay valid (`edgec.Artifact.input_bounds`).
    """
    rng = np.random.default_rng(seed)
    out = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            out[spec.name] = rng.random(spec.shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            high = (int_bounds or {}).get(spec.name, 8)
            out[spec.name] = rng.integers(0, max(1, high), size=spec.shape).astype(dtype)
        else:
            out[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
    return out


_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def _load_array_file(item: str, path: Path):
    """np.load with pickles refused, and errors that say what the file is instead.

    The magic bytes are checked first: numpy reports any file that is neither
    .npy nor .npz as "pickled data" and suggests allow_pickle, which edgec
    never sets (a pickle runs code)."""
    with path.open("rb") as f:
        head = f.read(6)
    if not head.startswith((_NPY_MAGIC, _ZIP_MAGIC)):
        raise UsageError(f"--input {item}: {path} is not a .npy or .npz file (no NumPy "
                         "header); save arrays with numpy.save or numpy.savez")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):  # members load lazily: read them now
            with data:
                return {k: data[k] for k in data.files}
        return data
    except (ValueError, zipfile.BadZipFile) as exc:
        if "allow_pickle" in str(exc) or "pickled" in str(exc):
            raise UsageError(f"--input {item}: {path} holds Python objects (a pickled object "
                             "array), which edgec never loads; save a numeric array") from None
        raise UsageError(f"--input {item}: {path} is a damaged .npy/.npz file "
                         f"({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise UsageError(f"--input {item}: cannot read {path} ({exc.strerror or exc})") \
            from None


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
        data = _load_array_file(item, path)
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

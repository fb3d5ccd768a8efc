"""Parsing what users type for bindings and limits, without loading ONNX.

Kept apart from frontend/ so the CLI can parse options (and ``edgec run``
can start) without importing onnx or onnx-ir.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from .errors import UsageError

#: Largest model (protobuf plus external data) edgec accepts unless told otherwise.
DEFAULT_MAX_MODEL_BYTES = 2 * 1024**3
#: models with more nodes (counting subgraphs) are refused unless --max-nodes says
#: otherwise: measured here, compile time grows about linearly (a 20000-node chain
#: 38 s) and a 10^5-node chain ran past five minutes; real models (transformers
#: exported layer by layer) stay well below
DEFAULT_MAX_NODES = 50_000
_DIMS = re.compile(r"^\d+(,\d+)*$")


def parse_shape_spec(spec: str) -> tuple[str, tuple[int, ...]]:
    """``"x=1,3,224,224"`` -> ``("x", (1, 3, 224, 224))``."""
    name, eq, dims = spec.rpartition("=")
    dims = dims.replace(" ", "").replace("x", ",") if eq else dims
    words = [d for d in dims.split(",") if re.fullmatch(r"[A-Za-z_]\w*", d)] if eq else []
    if name and words:  # a placeholder from edgec's own hint, pasted as it is
        raise UsageError(f"--input-shape '{spec}': {', '.join(words)} "
                         f"{'is a placeholder' if len(words) == 1 else 'are placeholders'}; "
                         "replace each with the size to compile for (a positive integer)")
    if not eq or not name or not _DIMS.match(dims) or any(int(d) == 0 for d in dims.split(",")):
        raise UsageError(f"--input-shape '{spec}': expected NAME=D1,D2,... with positive "
                         "integers, e.g. --input-shape x=1,3,224,224")
    return name, tuple(int(d) for d in dims.split(","))


def parse_const_spec(spec: str) -> tuple[str, np.ndarray]:
    """``"sr=16000"``, ``"w=0.5,1,2"`` or ``"state=state.npy"`` -> (name, array)."""
    name, eq, value = spec.partition("=")
    if not eq or not name or not value:
        raise UsageError(f"--input-const '{spec}': expected NAME=VALUE, NAME=V1,V2,... or "
                         "NAME=file.npy, e.g. --input-const sr=16000")
    if value.endswith(".npy"):
        path = Path(value)
        if not path.is_file():
            raise UsageError(f"--input-const {name}: {value} does not exist")
        data = load_array_file(f"--input-const {name}", path)
        if isinstance(data, dict):
            raise UsageError(f"--input-const {name}: {value} is an .npz archive; give a .npy")
        return name, data
    try:
        numbers = [float(v) if any(c in v for c in ".eE") or v in ("nan", "inf", "-inf")
                   else int(v) for v in value.split(",")]
    except ValueError:
        raise UsageError(f"--input-const '{spec}': '{value}' is not a number or a list of "
                         "numbers; give e.g. sr=16000 or a .npy file") from None
    arr = np.array(numbers)
    return name, (arr.reshape(()) if arr.size == 1 and "," not in value else arr)


_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def _npy_header(f):
    """(shape, dtype) from a .npy stream's header, or None when it has none."""
    version = np.lib.format.read_magic(f)
    read = {(1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        return None
    shape, _fortran, dtype = read(f)
    return shape, dtype


def _check_declared_sizes(flag: str, path: Path, is_zip: bool) -> None:
    """Refuse an array whose header declares more data than its file holds, before
    numpy allocates it (a 4-TiB shape in a 100-byte file was a MemoryError)."""
    def check(f, available: int, where: str) -> None:
        try:
            found = _npy_header(f)
        except (ValueError, EOFError, SyntaxError):
            return  # np.load reports the damage in its own words
        if found is None:
            return
        shape, dtype = found
        if dtype.hasobject:
            return  # refused as pickled data below
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if declared > available:
            raise UsageError(f"{flag}: {where} declares a {dtype}{list(shape)} array "
                             f"({declared} bytes) but holds {available}; the file is "
                             "damaged or truncated")

    try:
        if not is_zip:
            with path.open("rb") as f:
                check(f, path.stat().st_size, str(path))  # header bytes count as slack
            return
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.filename.endswith(".npy"):
                    with z.open(info) as f:
                        check(f, info.file_size, f"{path}:{info.filename}")
    except (zipfile.BadZipFile, OSError, RuntimeError):
        return  # np.load reports it


def load_array_file(flag: str, path: Path):
    """np.load with pickles refused, and errors (prefixed by ``flag``, the option the
    file came from) that say what the file is instead; an .npz becomes a dict.

    The magic bytes are checked first: numpy reports any file that is neither
    .npy nor .npz as "pickled data" and suggests allow_pickle, which edgec
    never sets (a pickle runs code)."""
    with path.open("rb") as f:
        head = f.read(6)
    if not head.startswith((_NPY_MAGIC, _ZIP_MAGIC)):
        raise UsageError(f"{flag}: {path} is not a .npy or .npz file (no NumPy "
                         "header); save arrays with numpy.save or numpy.savez")
    _check_declared_sizes(flag, path, head.startswith(_ZIP_MAGIC))
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):  # members load lazily: read them now
            with data:
                return {k: data[k] for k in data.files}
        return data
    except (ValueError, zipfile.BadZipFile) as exc:
        if "allow_pickle" in str(exc) or "pickled" in str(exc):
            raise UsageError(f"{flag}: {path} holds Python objects (a pickled object "
                             "array), which edgec never loads; save a numeric array") from None
        raise UsageError(f"{flag}: {path} is a damaged .npy/.npz file "
                         f"({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {path} ({exc.strerror or exc})") from None

"""Load an ONNX file and refuse, with one clear line, anything that is not a sound model.

Checks happen before anything else touches the model: the file exists and is
within the size limit, it parses as an ONNX protobuf, external-data paths stay
inside the model's folder (no ``../``, absolute paths or symlinks out), the
opset is one edgec can import, and ``onnx.checker`` passes with full checks.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from ..errors import ModelError, UnsupportedError, UsageError, first_line
from ..specs import DEFAULT_MAX_MODEL_BYTES, DEFAULT_MAX_NODES

#: Oldest default-domain opset TVM's importer handles.
MIN_OPSET = 7


@dataclass
class LoadedModel:
    """A checked model and where it came from."""

    path: Path
    proto: onnx.ModelProto
    sha256: str
    size_bytes: int

    @property
    def opset(self) -> int:
        return default_opset(self.proto)

    def declared_inputs(self) -> dict[str, list[int | str | None]]:
        """Each graph input's dims as the file declares them: a size, a dim name,
        or None (unknown); the manifest keeps them so a wrong-shape input can be
        told whether another shape needs a recompile or cannot work at all."""
        out = {}
        for v in self.proto.graph.input:
            dims = v.type.tensor_type.shape.dim if v.type.tensor_type.HasField("shape") else None
            out[v.name] = None if dims is None else [
                d.dim_value if d.HasField("dim_value") and d.dim_value >= 0
                else (d.dim_param or None) for d in dims]
        return out


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 0


def _tensors(graph: onnx.GraphProto):
    """Every TensorProto in a graph, its nodes' attributes and subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def _all_tensors(model: onnx.ModelProto):
    yield from _tensors(model.graph)
    for fn in model.functions:
        for node in fn.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t


def _check_external_data(path: Path, model: onnx.ModelProto) -> int:
    """Validate every external-data reference; return the bytes they add."""
    base = path.parent.resolve()
    total = 0
    seen: set[Path] = set()
    for tensor in _all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        try:
            info = external_data_helper.ExternalDataInfo(tensor)
        except (ValueError, TypeError) as exc:  # onnx checks offsets and lengths as it
            # reads them; a key that is not UTF-8 arrives as bytes (TypeError)
            raise ModelError(f"{path}: tensor '{tensor.name}' has invalid external-data "
                             f"fields ({first_line(exc)}); re-export the model") from None
        loc = info.location
        if not isinstance(loc, str):  # not UTF-8: protobuf hands it over as bytes
            raise ModelError(f"{path}: tensor '{tensor.name}' has an external-data location "
                             "that is not UTF-8 text; re-export the model")
        shown = loc if len(loc) <= 200 else f"{loc[:100]}... ({len(loc)} characters)"
        where = f"{path}: tensor '{tensor.name}' has external data at '{shown}'"
        if not loc or os.path.isabs(loc) or Path(loc).drive or ".." in Path(loc).parts:
            raise ModelError(f"{where}, outside the model's folder; external data must be "
                             "a relative path next to the model")
        if "\0" in loc:
            raise ModelError(f"{where}, a name holding a NUL byte, which no file can have; "
                             "re-export the model")
        try:
            total += _check_external_file(base, loc, where, info, seen)
        except OSError as exc:  # a name too long, a folder that cannot be read, ...
            raise ModelError(f"{where}, which cannot be read ({exc.strerror or exc}); copy "
                             "it next to the model") from None
    return total


def _check_external_file(base: Path, loc: str, where: str, info, seen: set[Path]) -> int:
    """The bytes one external-data file adds (0 when seen before); a ModelError when
    it is outside ``base``, a link, not a regular file, or shorter than its entry."""
    raw = base / loc
    if raw.is_symlink() or any(p.is_symlink() for p in raw.parents if p != base and
                               base in p.parents):
        raise ModelError(f"{where}, which is a symlink; copy the data file next to the "
                         "model instead")
    real = raw.resolve()
    if base not in real.parents:
        raise ModelError(f"{where}, outside the model's folder; move it next to the model")
    if not real.exists():
        raise ModelError(f"{where}, which does not exist; copy it next to the model")
    if not real.is_file():
        raise ModelError(f"{where}, which is not a regular file (a folder, pipe or "
                         "device); give the data a file of its own next to the model")
    stat = real.stat()
    if stat.st_nlink > 1:  # it may be any file of the disk, linked in (onnx refuses too)
        raise ModelError(f"{where}, a file with {stat.st_nlink} hard links; copy the data "
                         "into a file of its own next to the model")
    size = stat.st_size
    offset, length = info.offset or 0, info.length
    if offset < 0 or (length is not None and length < 0):
        raise ModelError(f"{where} with offset {offset} and length {length}; both must "
                         "be non-negative: re-export the model")
    if offset > size or (length is not None and offset + length > size):
        raise ModelError(f"{where} from byte {offset}"
                         + (f" for {length} bytes" if length is not None else "")
                         + f", but that file has only {size} bytes; it is truncated")
    if real not in seen:
        seen.add(real)
        return size
    return 0


def count_nodes(graph: onnx.GraphProto) -> int:
    """Nodes of ``graph`` and of every subgraph (If / Loop / Scan bodies)."""
    total = 0
    for node in graph.node:
        total += 1
        for attr in node.attribute:
            if attr.HasField("g"):
                total += count_nodes(attr.g)
            for g in attr.graphs:
                total += count_nodes(g)
    return total


def load_model(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_MODEL_BYTES,
               full_check: bool = True, max_nodes: int = DEFAULT_MAX_NODES) -> LoadedModel:
    """Read, validate and return the model at ``path`` (external data loaded)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise UsageError(f"{path}: not a file; give the path of a .onnx model")
    size = path.stat().st_size
    if size > max_bytes:
        raise ModelError(f"{path}: model is {size / 2**20:.1f} MiB, over the limit of "
                         f"{max_bytes / 2**20:.1f} MiB; raise it with --max-model-size")
    data = path.read_bytes()
    if size == 0:
        raise ModelError(f"{path}: file is empty; re-export the model")
    try:
        proto = onnx.ModelProto.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{path}: not an ONNX model or truncated (protobuf parse failed: "
                         f"{first_line(exc)}); "
                         "re-export or re-download it") from None
    if not proto.HasField("graph") or proto.ir_version == 0 or not proto.opset_import:
        raise ModelError(f"{path}: not an ONNX model (no graph, IR version or opset); "
                         "check that the file is a .onnx export")
    nodes = count_nodes(proto.graph) + sum(len(f.node) for f in proto.functions)
    if nodes > max_nodes:
        raise ModelError(f"{path}: model has {nodes} nodes, over the limit of {max_nodes} "
                         "(compile time grows with them: minutes at 10^5); raise it with "
                         "--max-nodes if the model is meant to be that big")
    total = size + _check_external_data(path, proto)
    if total > max_bytes:
        raise ModelError(f"{path}: model with external data is {total / 2**20:.1f} MiB, over "
                         f"the limit of {max_bytes / 2**20:.1f} MiB; raise it with "
                         "--max-model-size")
    if total > size:
        external_data_helper.load_external_data_for_model(proto, str(path.parent))
    opset = default_opset(proto)
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ModelError(f"{path}: uses opset {opset}, newer than this onnx knows ({newest}); "
                         "upgrade onnx or export with an older opset")
    if opset == 0:
        domains = sorted({imp.domain for imp in proto.opset_import})
        raise UnsupportedError(f"{path}: imports no standard ONNX opset (only "
                               f"{', '.join(domains)}); edgec compiles standard ONNX "
                               "(ai.onnx) ops: export the model with them")
    if opset < MIN_OPSET:
        raise UnsupportedError(f"{path}: uses opset {opset}; edgec needs {MIN_OPSET} or newer "
                               "(convert it with onnx.version_converter)")
    _check_raw_sizes(path, proto)
    _check_declared_sizes(path, proto)
    if full_check:
        _check(path, proto, total)
    return LoadedModel(path=path, proto=proto, sha256=hashlib.sha256(data).hexdigest(),
                       size_bytes=total)


#: bits per element of the types packed below a byte (raw_data rounds up to whole bytes)
_SUB_BYTE_BITS = {getattr(onnx.TensorProto, n): b for n, b in (
    ("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2))
    if hasattr(onnx.TensorProto, n)}


def _check_raw_sizes(path: Path, proto: onnx.ModelProto) -> None:
    """raw_data longer than its tensor's shape and type need: onnx.checker refuses
    raw_data that is too short but lets a longer one through, which later folds or
    imports as a reshape error (exit 6)."""
    for tensor in _all_tensors(proto):
        if not tensor.raw_data or any(d < 0 for d in tensor.dims):
            continue
        count = 1
        for d in tensor.dims:
            count *= d
        bits = _SUB_BYTE_BITS.get(tensor.data_type)
        if bits is not None:
            need = (count * bits + 7) // 8
        else:
            try:
                need = count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
            except (KeyError, TypeError, ValueError):
                continue  # an unknown or string type: onnx.checker refuses or reads it
        if len(tensor.raw_data) > need:
            raise ModelError(f"{path}: tensor '{tensor.name}' has {len(tensor.raw_data)} bytes "
                             f"of raw_data, but its shape {list(tensor.dims)} and type "
                             f"{onnx.TensorProto.DataType.Name(tensor.data_type)} hold "
                             f"{need}; fix or re-export the model")


#: bytes no tensor can reach: sizes and offsets are int64 in TVM and onnxruntime
_MAX_TENSOR_BYTES = 1 << 63


def _check_declared_sizes(path: Path, proto: onnx.ModelProto) -> None:
    """A graph input or output whose declared dims hold 2^63 bytes or more (one dim of
    2^63-1, two of 2^32): no runtime can index it, and TVM fails on the literal (exit 6)."""
    graph = proto.graph
    for kind, values in (("input", graph.input), ("output", graph.output)):
        for v in values:
            if not v.type.HasField("tensor_type") or not v.type.tensor_type.HasField("shape"):
                continue
            dims = [d.dim_value for d in v.type.tensor_type.shape.dim if d.HasField("dim_value")]
            count = 1
            for d in dims:
                count *= max(d, 0)
            try:
                size = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).itemsize
            except (KeyError, TypeError, ValueError):
                size = 1
            if count * size >= _MAX_TENSOR_BYTES:
                raise ModelError(f"{path}: {kind} '{v.name}' is declared with dims {dims}, "
                                 f"{count * size} bytes, past the 2^63 any tensor can index; "
                                 "fix the model's shapes")


def _check(path: Path, proto: onnx.ModelProto, total: int) -> None:
    try:
        if total < 2 * 1024**3 - 2**20:
            onnx.checker.check_model(proto, full_check=True)
        else:  # the checker takes big models only by path
            onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError,
            ValueError) as exc:  # ValueError: a data type onnx does not know (999)
        raise ModelError(f"{path}: invalid ONNX model ({first_line(exc)}); fix or re-export it") \
            from None


def to_ir(path: Path, proto: onnx.ModelProto):
    """``proto`` as an onnx_ir model; a model it cannot read (a name that is not UTF-8
    text, say) is a ModelError naming the file."""
    import onnx_ir as ir

    try:
        return ir.serde.deserialize_model(proto)
    except (TypeError, ValueError, ir.serde.SerdeError) as exc:
        raise ModelError(f"{path}: the model cannot be read ({first_line(exc)}); "
                         "re-export it") from None

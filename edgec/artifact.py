"""The .edgec artifact: one tar file with the compiled library and manifest.json.

Layout (README, "Artifact format"):

    manifest.json   what was built, from what, for which target, and the
                    sha256 of every other member
    model.so        the TVM Relax executable (weights embedded), linked for the
                    target's architecture
    signature.ed25519   optional: an Ed25519 signature of manifest.json's exact
                    bytes (edgec/signing.py); not listed in the manifest it signs

``write_artifact`` is atomic (temp file in the destination folder, then
``os.replace``): a failed compile never leaves a half-written artifact.
``read_verified`` checks the hashes of every member before anything loads
code from it; a tampered, truncated or unknown member is refused, and so is
a manifest whose structure is not what edgec writes (``check_manifest``).
Given a trust set (``--trust``), it first checks the manifest's signature:
hashes catch corruption, a signature catches an author the device does not
trust (a library replaced and the manifest re-hashed).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import json
import math
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, UnsupportedError, UsageError
from .fsutil import atomic_write
from .signing import MAX_SIGNATURE_BYTES, SIGNATURE, Signature, TrustStore

FORMAT = "edgec-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LIBRARY = "model.so"
#: no manifest needs more (ResNet-50's is 40 KB): a bigger one is not read
MAX_MANIFEST_BYTES = 16 << 20
#: members are hashed (and extracted) in chunks of this size, never whole in memory
CHUNK_BYTES = 1 << 20
#: element types an artifact's inputs and outputs may have (numpy names; what
#: frontend/types.py lets a compile through)
DTYPES = frozenset({"bool", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
                    "uint8", "uint16", "uint32", "uint64"})
#: bounds on a manifest's tensors: no model edgec runs comes near them, and past
#: them a shape is a hostile one (a 12 TiB "input" to draw random data for)
MAX_RANK = 64
MAX_TENSOR_BYTES = 1 << 40
MAX_NAME_CHARS = 1 << 20  # ONNX sets none; the manifest's 16 MiB bounds them all


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    """Name, static shape and numpy dtype name of a model input or output.

    What `Artifact.inputs` and `Artifact.outputs` list: feed ``run`` arrays of
    exactly this shape, and of this dtype (or one that casts to it within its
    kind).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str

    def to_json(self) -> dict:
        """``{"name", "shape", "dtype"}``, as in the manifest's ``inputs`` and ``outputs``."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, d: dict) -> TensorSpec:
        """The spec from a manifest entry (extra keys such as ``valid_range`` are ignored)."""
        return cls(d["name"], tuple(d["shape"]), d["dtype"])

    def describe(self) -> str:
        """``name dtype[d1,d2,...]``, as messages print it."""
        return f"{self.name} {self.dtype}[{','.join(map(str, self.shape))}]"


def write_artifact(path: Path, manifest: dict[str, Any], members: dict[str, Path], *,
                   sign_key=None) -> None:
    """Write ``members`` (name -> file) and the manifest (with their hashes) atomically;
    with ``sign_key`` (an Ed25519 private key, `edgec.signing.load_private_key`), also
    the manifest's signature."""
    manifest = dict(manifest)
    manifest["format"] = FORMAT
    manifest["format_version"] = FORMAT_VERSION
    manifest["members"] = {name: {"sha256": sha256_file(src), "bytes": src.stat().st_size}
                           for name, src in members.items()}
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    _write_tar(path, data, members, sign_key)


def _write_tar(path: Path, manifest_bytes: bytes, members: dict[str, Path], sign_key) -> None:
    """The archive: the manifest's exact bytes, its signature if a key is given, members."""
    for name in members:
        if name in (MANIFEST, SIGNATURE):
            raise UsageError(f"{path}: '{name}' cannot be an artifact member's name")
    with atomic_write(path) as f, tarfile.open(fileobj=f, mode="w") as tar:
        extra = {}
        if sign_key is not None:
            from .signing import sign_manifest

            extra[SIGNATURE] = sign_manifest(sign_key, manifest_bytes).to_bytes()
        for name, data in {MANIFEST: manifest_bytes, **extra}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, src in members.items():
            info = tar.gettarinfo(str(src), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with open(src, "rb") as fh:
                tar.addfile(info, fh)


def _open(path: Path) -> tarfile.TarFile:
    if not path.exists():  # a usage mistake (exit 2), like any missing file
        raise UsageError(f"{path}: no such artifact; check the path, or compile one with "
                         "'edgec compile'")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not an .edgec artifact")
    try:
        return tarfile.open(path, mode="r:")
    except (tarfile.TarError, OSError) as exc:
        raise ArtifactError(f"{path}: not an edgec artifact or truncated ({exc}); "
                            "compile it again") from None


#: the trust set `read_verified` applies when its caller passes none (`trusting`)
_TRUST: contextvars.ContextVar[TrustStore | None] = contextvars.ContextVar("edgec_trust",
                                                                          default=None)


@contextlib.contextmanager
def trusting(trust: TrustStore | None) -> Iterator[None]:
    """Within the block, every artifact read (`read_verified`) must be signed by a key
    of ``trust`` (None: no requirement). For code that reads an artifact again by its
    path, such as the emulated run and the bundle writer, so the read that extracts the
    library is the one whose signature is checked."""
    token = _TRUST.set(trust)
    try:
        yield
    finally:
        _TRUST.reset(token)


@dataclass(frozen=True)
class ReadArtifact:
    """What `read_artifact` returns: the manifest, its exact bytes and the signature
    (checked against a trust set only when one was given)."""

    manifest: dict[str, Any]
    manifest_bytes: bytes
    signature: Signature | None
    trusted: bool  # the signature was verified against a trust set


def read_verified(path: Path, extract_to: Path | None = None, *,
                  trust: TrustStore | None = None) -> dict[str, Any]:
    """The manifest, after checking every member's sha256; extract members if asked.

    Hashes are checked on the bytes read from the archive before anything is
    written, so code is never loaded from an artifact that fails the check.
    With ``trust`` (or inside `trusting`), the artifact must also carry a
    signature of its manifest by one of the trusted keys, checked before the
    manifest is even parsed.
    """
    return read_artifact(path, extract_to, trust=trust).manifest


def read_artifact(path: Path, extract_to: Path | None = None, *,
                  trust: TrustStore | None = None) -> ReadArtifact:
    """`read_verified`, also returning the manifest's bytes and its signature."""
    path = Path(path)
    trust = trust if trust is not None else _TRUST.get()
    with _open(path) as tar:
        try:
            entries = {m.name: m for m in tar.getmembers()}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArtifactError(f"{path}: artifact is truncated or corrupt ({exc}); "
                                "compile it again") from None
        if MANIFEST not in entries:
            raise ArtifactError(f"{path}: no {MANIFEST}; not an edgec artifact")
        for name, bound in ((MANIFEST, MAX_MANIFEST_BYTES), (SIGNATURE, MAX_SIGNATURE_BYTES)):
            if name not in entries:
                continue
            if not entries[name].isfile():
                raise ArtifactError(f"{path}: {name} is not a plain file; the artifact is "
                                    "corrupt or hostile, do not load it")
            if entries[name].size > bound:
                limit = f"{bound >> 20} MiB" if bound >= 1 << 20 else f"{bound} bytes"
                raise ArtifactError(f"{path}: {name} declares {entries[name].size} bytes, "
                                    f"over the {limit} any {name} needs; the artifact is "
                                    "corrupt or hostile, do not load it")
        raw = _read(tar, entries[MANIFEST], path)
        signature = (Signature.parse(_read(tar, entries[SIGNATURE], path), path)
                     if SIGNATURE in entries else None)
        if trust is not None:  # before the manifest is parsed: its author is unknown yet
            trust.verify(raw, signature, path)
        manifest = parse_manifest(raw, path)
        declared = manifest["members"]
        extra = sorted(set(entries) - set(declared) - {MANIFEST, SIGNATURE})
        if extra:
            raise ArtifactError(f"{path}: unexpected member(s) {extra}; the artifact was "
                                "tampered with, do not load it")
        file_size = path.stat().st_size
        written: list[Path] = []
        try:
            for name, meta in declared.items():
                if name not in entries or not entries[name].isfile() or "/" in name or \
                        name.startswith(".") or name in (MANIFEST, SIGNATURE):
                    raise ArtifactError(f"{path}: member '{name}' is missing or not a plain "
                                        "file; the artifact is corrupt, compile it again")
                size = entries[name].size
                if size != meta["bytes"] or size > file_size:
                    raise ArtifactError(f"{path}: member '{name}' is {size} bytes, the "
                                        f"manifest says {meta['bytes']} and the file has "
                                        f"{file_size}; the artifact is corrupt or was "
                                        "tampered with, do not load it")
                dest = Path(extract_to) / name if extract_to is not None else None
                if dest is not None:
                    written.append(dest)
                if _stream(tar, entries[name], path, dest) != meta["sha256"]:
                    raise ArtifactError(f"{path}: member '{name}' does not match its sha256 "
                                        "in the manifest; the artifact was tampered with or "
                                        "corrupted, do not load it")
        except BaseException:
            for dest in written:  # nothing of a refused artifact stays on disk
                dest.unlink(missing_ok=True)
            raise
    return ReadArtifact(manifest, raw, signature, trusted=trust is not None)


def sign_artifact(path: Path, key, output: Path | None = None) -> Signature:
    """Sign the artifact at ``path`` with ``key`` (an Ed25519 private key), in place or
    into ``output``: the manifest's bytes and members are kept as they are (hashes
    checked first), and a signature already there is replaced. Atomic."""
    import tempfile

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="edgec-sign-") as tmp:
        read = read_artifact(path, Path(tmp), trust=None)
        members = {name: Path(tmp) / name for name in read.manifest["members"]}
        _write_tar(Path(output) if output is not None else path, read.manifest_bytes,
                   members, key)
    from .signing import sign_manifest

    return sign_manifest(key, read.manifest_bytes)


# ------------------------------------------------------------------ manifest schema


def parse_manifest(raw: bytes, path: Path) -> dict[str, Any]:
    """The manifest in ``raw``, its structure checked (`check_manifest`)."""
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ArtifactError(f"{path}: {MANIFEST} is not valid JSON; the artifact is "
                            "corrupt, compile it again") from None
    except RecursionError:
        raise ArtifactError(f"{path}: {MANIFEST} is nested too deeply; the artifact is "
                            "corrupt or hostile, do not load it") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: {MANIFEST} is not a JSON object; not an edgec "
                            "artifact")
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not an edgec artifact (format "
                            f"{_short(manifest.get('format'))})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ArtifactError(f"{path}: artifact format version {_short(version)} is not "
                            f"supported by this edgec (reads {FORMAT_VERSION}); recompile it")
    check_manifest(manifest, path)
    return manifest


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _Schema:
    """Checks of one manifest, each raising an ArtifactError naming the field."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, what: str) -> ArtifactError:
        return ArtifactError(f"{self.path}: manifest {where + ' ' if where else ''}{what}; "
                             "the artifact is corrupt or was tampered with, do not load it")

    def require(self, ok: bool, where: str, what: str) -> None:
        if not ok:
            raise self.fail(where, what)

    def field(self, d: dict, key: str, types: type | tuple, where: str, *,
              required: bool = True) -> Any:
        if key not in d:
            if required:
                raise self.fail(where, f"has no '{key}'")
            return None
        v = d[key]
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in (
            types if isinstance(types, tuple) else (types,)))
        if not ok:
            names = types if isinstance(types, tuple) else (types,)
            kinds = " or ".join({dict: "an object", list: "a list", str: "a string",
                                 int: "an integer", float: "a number", bool: "a boolean",
                                 type(None): "null"}.get(t, t.__name__) for t in names)
            raise self.fail(f"{where}.{key}" if where else key, f"is {_short(v)}, not {kinds}")
        return v

    def name(self, v: Any, where: str) -> None:
        self.require(isinstance(v, str) and 0 < len(v) <= MAX_NAME_CHARS and "\0" not in v,
                     where, f"is {_short(v)}, not a name (1 to {MAX_NAME_CHARS} characters)")

    def tensor(self, d: Any, where: str) -> None:
        self.require(isinstance(d, dict), where, f"is {_short(d)}, not an object")
        self.name(d.get("name"), f"{where}.name")
        dtype = self.field(d, "dtype", str, where)
        self.require(dtype in DTYPES, f"{where}.dtype", f"is {_short(dtype)}, not one of "
                     + ", ".join(sorted(DTYPES)))
        shape = self.field(d, "shape", list, where)
        self.require(len(shape) <= MAX_RANK, f"{where}.shape", f"has {len(shape)} dims, over "
                     f"{MAX_RANK}")
        for i, dim in enumerate(shape):
            self.require(_int(dim) and 0 <= dim < 1 << 62, f"{where}.shape[{i}]",
                         f"is {_short(dim)}, not a size (a non-negative integer)")
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > MAX_TENSOR_BYTES:
            size = (f"{nbytes >> 40} TiB" if nbytes < 1 << 60
                    else f"2^{nbytes.bit_length() - 1}-byte")
            raise self.fail(f"{where}.shape", f"{_short(shape)} makes a {size} tensor, over "
                            f"the {MAX_TENSOR_BYTES >> 40} TiB any artifact has")
        if "valid_range" in d:
            vr = d["valid_range"]
            self.require(isinstance(vr, list) and len(vr) == 2 and all(map(_int, vr))
                         and 0 <= vr[0] <= vr[1], f"{where}.valid_range",
                         f"is {_short(vr)}, not [low, high]")
        if "index_extents" in d:
            # a compile writes both; readers take valid_range from an entry that has extents
            self.require("valid_range" in d, where, "has index_extents but no valid_range")
            ext = d["index_extents"]
            self.require(isinstance(ext, list) and 0 < len(ext) <= MAX_RANK
                         and all(_int(e) and 0 < e < 1 << 62 for e in ext),
                         f"{where}.index_extents", f"is {_short(ext)}, not a list of sizes")

    def tensors(self, manifest: dict, key: str) -> None:
        specs = self.field(manifest, key, list, "")
        names = set()
        for i, d in enumerate(specs):
            self.tensor(d, f"{key}[{i}]")
            self.require(d["name"] not in names, f"{key}[{i}].name",
                         f"repeats {_short(d['name'])}")
            names.add(d["name"])


def check_io(manifest: dict[str, Any], path: Path) -> None:
    """The schema's rules for ``inputs`` and ``outputs`` alone: the compiler checks a
    manifest with them before writing it, so it never writes what it would refuse."""
    s = _Schema(path)
    s.tensors(manifest, "inputs")
    s.tensors(manifest, "outputs")


def check_manifest(manifest: dict[str, Any], path: Path) -> None:
    """Refuse (ArtifactError, one line naming the field) a manifest whose structure is
    not what edgec writes: members with their hashes and sizes; inputs and outputs
    with names, sizes and dtypes edgec runs (within bounds: no negative, overflowing
    or absurdly large shapes); a target object; the optional sections of the
    right types. Fields a reader of artifacts needs (the target's name, arch, CPU
    flags and kind, the source model) are checked by `check_runnable`."""
    s = _Schema(path)
    members = s.field(manifest, "members", dict, "")
    for name, meta in members.items():
        s.require(isinstance(meta, dict) and isinstance(meta.get("sha256"), str)
                  and len(meta["sha256"]) == 64 and _int(meta.get("bytes"))
                  and meta["bytes"] >= 0, f"members.{_short(name)}",
                  f"is {_short(meta)}, not {{sha256, bytes}}")
    s.tensors(manifest, "inputs")
    s.tensors(manifest, "outputs")
    target = s.field(manifest, "target", dict, "")
    for key in ("name", "arch"):
        s.field(target, key, str, "target", required=False)
    flags = s.field(target, "cpu_flags", list, "target", required=False)
    s.require(flags is None or all(isinstance(f, str) for f in flags), "target.cpu_flags",
              "is not a list of strings")
    tvm = s.field(target, "tvm", dict, "target", required=False)
    if tvm is not None:
        s.field(tvm, "kind", str, "target.tvm", required=False)
    src = s.field(manifest, "source_model", dict, "", required=False)
    if src is not None:
        s.field(src, "file", str, "source_model", required=False)
        s.field(src, "sha256", str, "source_model", required=False)
        declared = s.field(src, "inputs", dict, "source_model", required=False)
        for k, dims in (declared or {}).items():
            s.require(dims is None or (isinstance(dims, list) and all(
                d is None or isinstance(d, str) or _int(d) for d in dims)),
                f"source_model.inputs.{_short(k)}", f"is {_short(dims)}, not a list of dims")
    for key, types in (("bindings", dict), ("passes", list), ("kernels", (dict, type(None))),
                       ("tuning", (dict, type(None))), ("quantization", (dict, type(None))),
                       ("pipeline", str), ("edgec_version", str), ("tvm_version", str),
                       ("created", str)):
        s.field(manifest, key, types, "", required=False)
    for i, p in enumerate(manifest.get("passes", [])):
        s.require(isinstance(p, dict), f"passes[{i}]", "is not an object")
    bindings = manifest.get("bindings")
    if bindings is not None:
        s.field(bindings, "input_consts", dict, "bindings", required=False)
    if "offload" in manifest:
        _check_offload(s, manifest)


def _check_offload(s: _Schema, manifest: dict[str, Any]) -> None:
    """An accelerator artifact's steps: each names its tensors and only members the
    artifact has; every tensor a step reads is a model input or an earlier step's
    output; the model's outputs come from some step."""
    off = s.field(manifest, "offload", dict, "")
    s.field(off, "plugin", str, "offload")
    s.field(off, "config", dict, "offload")
    steps = s.field(off, "steps", list, "offload")
    s.require(bool(steps), "offload.steps", "is empty")
    members = manifest["members"]
    known = {d["name"] for d in manifest["inputs"]}
    for i, step in enumerate(steps):
        where = f"offload.steps[{i}]"
        s.require(isinstance(step, dict), where, f"is {_short(step)}, not an object")
        device = s.field(step, "device", str, where)
        for key in ("inputs", "outputs"):
            for j, t in enumerate(s.field(step, key, list, where)):
                s.tensor(t, f"{where}.{key}[{j}]")
        for j, t in enumerate(step["inputs"]):
            s.require(t["name"] in known, f"{where}.inputs[{j}]",
                      f"reads {_short(t['name'])}, which no earlier step writes")
        known.update(t["name"] for t in step["outputs"])
        if device == "cpu":
            refs = [s.field(step, "library", str, where)]
        else:
            files = s.field(step, "files", dict, where)
            refs = [s.field(step, "model", str, where), *files.values()]
            s.field(step, "record", dict, where)
        for ref in refs:
            s.require(isinstance(ref, str) and ref in members, where,
                      f"names {_short(ref)}, which is not a member")
    for j, t in enumerate(manifest["outputs"]):
        s.require(t["name"] in known, f"outputs[{j}]", f"{_short(t['name'])} is written by "
                  "no step")


def check_runnable(manifest: dict[str, Any], path: Path) -> None:
    """What every reader of a compiled artifact relies on, beyond `check_manifest`: the
    target's name, arch, CPU flags and TVM kind, and the source model's file and sha256."""
    s = _Schema(path)
    target = manifest["target"]
    for key in ("name", "arch"):
        s.field(target, key, str, "target")
    s.field(target, "cpu_flags", list, "target")
    s.field(s.field(target, "tvm", dict, "target"), "kind", str, "target.tvm")
    src = s.field(manifest, "source_model", dict, "")
    s.field(src, "file", str, "source_model")
    s.field(src, "sha256", str, "source_model")


def _stream(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path,
            dest: Path | None) -> str:
    """The sha256 of a member read in chunks (never whole into memory), copied to
    ``dest`` as it is read when given (the caller removes it if the hash fails)."""
    digest = hashlib.sha256()
    seen = 0
    try:
        src = tar.extractfile(member)
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(open(dest, "wb")) if dest is not None else None
            while src is not None and (chunk := src.read(CHUNK_BYTES)):
                digest.update(chunk)
                seen += len(chunk)
                if out is not None:
                    out.write(chunk)
    except (tarfile.TarError, EOFError) as exc:
        raise ArtifactError(f"{path}: artifact is truncated or corrupt ({exc}); "
                            "compile it again") from None
    if seen != member.size:
        raise ArtifactError(f"{path}: member '{member.name}' is truncated; compile it again")
    return digest.hexdigest()


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    try:
        f = tar.extractfile(member)
        data = f.read() if f is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"{path}: artifact is truncated or corrupt ({exc}); "
                            "compile it again") from None
    if len(data) != member.size:
        raise ArtifactError(f"{path}: member '{member.name}' is truncated; compile it again")
    return data


class Artifact:
    """A compiled model on disk: the ``.edgec`` file and its verified manifest.

    Made by `edgec.compile` or `edgec.load`. Opening one checks every member's
    sha256 but loads no code; ``run`` and ``session`` load the TVM runtime
    (not the compiler) on first use and check that this machine can run the
    target's code.

    Attributes:
        path: the artifact file.
        manifest: the parsed ``manifest.json`` (see the README's "Artifact
            format"): source model, target, inputs, outputs, bindings, passes,
            kernels, member hashes.
        signature: the `edgec.signing.Signature` the artifact carries (its
            ``key_id`` names the key), or None when it is unsigned. Verified
            only when ``trust`` was given.
        trust: the `edgec.signing.TrustStore` the artifact was checked against,
            or None; sessions and emulated runs check it again as they extract.
    """

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any] | None = None, *,
                 trust: TrustStore | None = None):
        """Open ``path``, checking its hashes (and with ``trust``, its signature),
        unless ``manifest`` is given already.

        Raises:
            edgec.errors.UsageError: ``path`` does not exist or is a folder.
            edgec.errors.ArtifactError: not an artifact, truncated, tampered
                with, of another format version, a manifest that is not what
                edgec writes; with ``trust``: unsigned, signed by a key not in
                it, or a signature that does not match.
        """
        self.path = Path(path)
        self.trust = trust if trust is not None else _TRUST.get()  # inside `trusting` too
        self.signature: Signature | None = None
        if manifest is None:
            read = read_artifact(self.path, trust=self.trust)
            manifest, self.signature = read.manifest, read.signature
        check_runnable(manifest, self.path)
        self.manifest = manifest
        self._session = None

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs in call order, with their compiled (static) shapes."""
        return [TensorSpec.from_json(d) for d in self.manifest["inputs"]]

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's outputs in order; `run` returns them by these names."""
        return [TensorSpec.from_json(d) for d in self.manifest["outputs"]]

    @property
    def input_bounds(self) -> dict[str, int]:
        """Integer inputs used as Gather indices -> the size their values must stay below."""
        return {d["name"]: d["valid_range"][1] for d in self.manifest["inputs"]
                if "valid_range" in d}

    @property
    def target(self) -> dict[str, Any]:
        """The manifest's target: name, arch, cpu_flags, the resolved TVM target dict,
        toolchain and the kinds of code inside."""
        return self.manifest["target"]

    def session(self):
        """The model loaded into a Relax VM, kept for repeated runs and timing.

        Returns:
            An `edgec.runtime.session.Session`, made on the first call and reused
            after: ``session().run(feeds)`` runs once, ``session().time(feeds)``
            returns latency statistics.

        Raises:
            edgec.errors.ArtifactError: the file changed since it was opened (the
                hashes are checked again before the library is loaded).
            edgec.errors.UnsupportedError: this machine cannot run the target's
                code (other architecture, GPU target, missing CPU features); the
                message says what to do (for an aarch64 artifact on x86:
                ``run(..., emulate=True)``).
        """
        if self._session is None:
            if self.offload is not None:
                from .runtime.offload import OffloadSession

                self._session = OffloadSession(self.path, trust=self.trust)
            else:
                from .runtime.session import Session

                self._session = Session(self.path, trust=self.trust)
        return self._session

    @property
    def offload(self) -> dict[str, Any] | None:
        """An accelerator artifact's split (steps, placements, estimates), else None."""
        return self.manifest.get("offload")

    def refuse_offload(self, what: str) -> None:
        """UnsupportedError (exit 4) when ``what`` cannot take an accelerator artifact."""
        if self.offload is not None:
            raise UnsupportedError(f"{self.path}: {what} does not take accelerator artifacts "
                                   f"yet (this one offloads to {self.offload['plugin']}); "
                                   "use 'edgec run' or 'edgec verify' on it here")

    def remote(self, device: str, *, timeout: float = 120.0):
        """The artifact uploaded to a device over TVM RPC, ready to run and time there.

        Args:
            device: ``KEY@TRACKER_HOST:PORT`` (any free board of KEY) or ``HOST:PORT``
                (one ``edgec device serve``); see the README, "Devices over TVM RPC".
            timeout: seconds any remote step may take.

        Returns:
            An `edgec.runtime.device.client.RemoteSession`: ``run(feeds)``,
            ``time(feeds, repeat=N)`` (the device's clock), ``device.info``.

        Raises:
            edgec.errors.DeviceError: the device cannot be reached or used (exit code 8).
            edgec.errors.UnsupportedError: the device cannot run the target's code.
            edgec.errors.ArtifactError: the artifact changed since it was opened.
        """
        from .runtime.device.client import RemoteSession, connect

        self.refuse_offload("running on a device over RPC")
        return RemoteSession(self.path, connect(device, timeout=timeout), trust=self.trust)

    def run(self, inputs: dict[str, np.ndarray], *, emulate: bool = False
            ) -> dict[str, np.ndarray]:
        """Run the model once and return its outputs.

        Args:
            inputs: ``{input name: array}`` for every input, each of the shape in
                `inputs` and of its dtype (or one that casts to it within its kind).
            emulate: run an aarch64 artifact through its C bundle under qemu-user
                (edgec/bundle/emulate.py) instead of in this process: outputs only,
                no latency. Needs the cross toolchain and qemu-user.

        Returns:
            ``{output name: array}``, copies that stay valid after the next run.

        Raises:
            edgec.errors.UsageError: an input is missing, unknown, or of the wrong
                shape or dtype.
            edgec.errors.UnsupportedError: this machine cannot run (or, with
                ``emulate``, emulate) the artifact, or the emulated run failed.
            edgec.errors.ToolchainError: ``emulate`` without qemu-user or the
                cross toolchain installed.
        """
        if emulate:
            from .bundle.emulate import run_emulated

            self.refuse_offload("--emulate")
            with trusting(self.trust):  # its own read of the artifact checks it too
                return run_emulated(self, inputs)
        return self.session().run(inputs)

    @property
    def needs_emulation(self) -> bool:
        """True when this machine cannot run the artifact but qemu-user can.

        That is when ``verify`` emulates by default: an llvm (CPU) target for
        another architecture edgec emulates here (aarch64 on x86-64). Whether
        qemu-user is installed is checked when the emulated run starts.
        """
        from .bundle.emulate import can_emulate
        from .target_registry import host_compatibility

        t = self.target
        ok, _ = host_compatibility(t["name"], t["tvm"]["kind"], t["arch"], t["cpu_flags"])
        return not ok and t["tvm"]["kind"] == "llvm" and can_emulate(t["arch"])

    @property
    def signed_by(self) -> str | None:
        """The id of the key that signed the artifact, or None when it is unsigned."""
        return self.signature.key_id if self.signature is not None else None

    def __repr__(self) -> str:
        """``Artifact('path', target='name', inputs=[...])``."""
        ins = ", ".join(s.describe() for s in self.inputs)
        return f"Artifact({str(self.path)!r}, target={self.target['name']!r}, inputs=[{ins}])"

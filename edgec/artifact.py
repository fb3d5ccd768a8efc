"""The .edgec artifact: one tar file with the compiled library and manifest.json.

Layout (README, "Artifact format"):

    manifest.json   what was built, from what, for which target, and the
                    sha256 of every other member
    model.so        the TVM Relax executable (weights embedded), linked for the
                    target's architecture

``write_artifact`` is atomic (temp file in the destination folder, then
``os.replace``): a failed compile never leaves a half-written artifact.
``read_manifest`` checks the hashes of every member before anything loads
code from it; a tampered, truncated or unknown member is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, UsageError
from .fsutil import atomic_write

FORMAT = "edgec-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LIBRARY = "model.so"
#: no manifest needs more (ResNet-50's is 40 KB): a bigger one is not read
MAX_MANIFEST_BYTES = 16 << 20
#: members are hashed (and extracted) in chunks of this size, never whole in memory
CHUNK_BYTES = 1 << 20


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


def write_artifact(path: Path, manifest: dict[str, Any], members: dict[str, Path]) -> None:
    """Write ``members`` (name -> file) and the manifest (with their hashes) atomically."""
    manifest = dict(manifest)
    manifest["format"] = FORMAT
    manifest["format_version"] = FORMAT_VERSION
    manifest["members"] = {name: {"sha256": sha256_file(src), "bytes": src.stat().st_size}
                           for name, src in members.items()}
    with atomic_write(path) as f, tarfile.open(fileobj=f, mode="w") as tar:
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
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


def read_verified(path: Path, extract_to: Path | None = None) -> dict[str, Any]:
    """The manifest, after checking every member's sha256; extract members if asked.

    Hashes are checked on the bytes read from the archive before anything is
    written, so code is never loaded from an artifact that fails the check.
    """
    path = Path(path)
    with _open(path) as tar:
        try:
            entries = {m.name: m for m in tar.getmembers()}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArtifactError(f"{path}: artifact is truncated or corrupt ({exc}); "
                                "compile it again") from None
        if MANIFEST not in entries:
            raise ArtifactError(f"{path}: no {MANIFEST}; not an edgec artifact")
        if entries[MANIFEST].size > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{path}: {MANIFEST} declares {entries[MANIFEST].size} bytes, "
                                f"over the {MAX_MANIFEST_BYTES >> 20} MiB any manifest "
                                "needs; the artifact is corrupt or hostile, do not load it")
        try:
            manifest = json.loads(_read(tar, entries[MANIFEST], path))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ArtifactError(f"{path}: {MANIFEST} is not valid JSON; the artifact is "
                                "corrupt, compile it again") from None
        if manifest.get("format") != FORMAT:
            raise ArtifactError(f"{path}: not an edgec artifact (format "
                                f"{manifest.get('format')!r})")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(f"{path}: artifact format version "
                                f"{manifest.get('format_version')} is not supported by this "
                                f"edgec (reads {FORMAT_VERSION}); recompile it")
        declared = manifest.get("members", {})
        extra = sorted(set(entries) - set(declared) - {MANIFEST})
        if extra:
            raise ArtifactError(f"{path}: unexpected member(s) {extra}; the artifact was "
                                "tampered with, do not load it")
        file_size = path.stat().st_size
        written: list[Path] = []
        try:
            for name, meta in declared.items():
                if name not in entries or not entries[name].isfile() or "/" in name or \
                        name.startswith(".") or not isinstance(meta, dict):
                    raise ArtifactError(f"{path}: member '{name}' is missing or not a plain "
                                        "file; the artifact is corrupt, compile it again")
                size = entries[name].size
                if size != meta.get("bytes") or size > file_size:
                    raise ArtifactError(f"{path}: member '{name}' is {size} bytes, the "
                                        f"manifest says {meta.get('bytes')} and the file has "
                                        f"{file_size}; the artifact is corrupt or was "
                                        "tampered with, do not load it")
                dest = Path(extract_to) / name if extract_to is not None else None
                if dest is not None:
                    written.append(dest)
                if _stream(tar, entries[name], path, dest) != meta.get("sha256"):
                    raise ArtifactError(f"{path}: member '{name}' does not match its sha256 "
                                        "in the manifest; the artifact was tampered with or "
                                        "corrupted, do not load it")
        except BaseException:
            for dest in written:  # nothing of a refused artifact stays on disk
                dest.unlink(missing_ok=True)
            raise
    return manifest


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
    """

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any] | None = None):
        """Open ``path``, checking its hashes, unless ``manifest`` is given already.

        Raises:
            edgec.errors.UsageError: ``path`` does not exist or is a folder.
            edgec.errors.ArtifactError: not an artifact, truncated, tampered
                with, or of another format version.
        """
        self.path = Path(path)
        self.manifest = manifest if manifest is not None else read_verified(self.path)
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
            from .runtime.session import Session

            self._session = Session(self.path)
        return self._session

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

    def __repr__(self) -> str:
        """``Artifact('path', target='name', inputs=[...])``."""
        ins = ", ".join(s.describe() for s in self.inputs)
        return f"Artifact({str(self.path)!r}, target={self.target['name']!r}, inputs=[{ins}])"

"""Write a bundle folder from an artifact (layout in templates/README.md).

The folder is assembled next to its destination and renamed into place, so
a failure never leaves half a bundle; a requested build that fails removes
the folder again, so the same command can simply be rerun. The artifact's hashes are checked
first, and the runtime libraries are checked to match the target's
architecture.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from .. import __version__
from ..artifact import LIBRARY, MANIFEST, read_verified
from ..errors import UnsupportedError, UsageError
from .runtime_libs import include_dir, runtime_libraries

TEMPLATES = Path(__file__).with_name("templates")
TRIPLES = {"aarch64": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}


@dataclass
class BundleInfo:
    path: Path
    arch: str
    footprint: dict[str, int]  # bytes of each library that ships with the app
    program: Path | None = None  # build/edgec_run, when the bundle was built

    @property
    def total_bytes(self) -> int:
        return sum(self.footprint.values())

    def largest(self) -> tuple[str, int]:
        return max(self.footprint.items(), key=lambda kv: kv[1])


def model_io(manifest: dict) -> str:
    """model.io: one tab-separated line per tensor, read by the C API."""
    lines = []
    for kind in ("input", "output"):
        for d in manifest[f"{kind}s"]:
            lines.append("\t".join([kind, d["name"], d["dtype"], ",".join(map(str, d["shape"]))]))
    return "\n".join(lines) + "\n"


def write_bundle(artifact: Path, out: Path, *, runtime_dir: Path | None = None,
                 build: bool = False) -> BundleInfo:
    """Write the bundle folder ``out`` (absent or empty) for ``artifact``; with
    ``build``, also build it with CMake, and remove it again if that fails."""
    artifact, out = Path(artifact), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out}: exists and is not empty; remove it or choose another -o")
    was_empty_dir = out.is_dir()
    with tempfile.TemporaryDirectory(prefix="edgec-bundle-art-") as tmp:
        manifest = read_verified(artifact, extract_to=Path(tmp))
        target = manifest["target"]
        if target["tvm"]["kind"] != "llvm":
            raise UnsupportedError(f"{artifact}: built for a {target['tvm']['kind']} GPU; "
                                   "bundles carry the CPU runtime only so far")
        arch = target["arch"]
        libs = runtime_libraries(arch, runtime_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            _fill(stage, manifest, Path(tmp), libs, artifact)
            footprint = {f"model/{LIBRARY}": (stage / "model" / LIBRARY).stat().st_size}
            footprint.update({f"runtime/lib/{n}": (stage / "runtime" / "lib" / n).stat().st_size
                              for n in libs})
            (stage / "bundle.json").write_text(json.dumps({
                "edgec_version": __version__, "artifact": artifact.name,
                "source_model_sha256": manifest["source_model"]["sha256"],
                "target": target["name"], "arch": arch,
                "runtime": {"apache-tvm": version("apache-tvm"),
                            "apache-tvm-ffi": version("apache-tvm-ffi"),
                            "from": str(runtime_dir) if runtime_dir else "PyPI wheels"},
                "footprint_bytes": footprint}, indent=2) + "\n")
            if out.exists():
                out.rmdir()
            os.replace(stage, out)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    info = BundleInfo(out, arch, footprint)
    if build:
        from .builder import build_bundle

        try:
            info.program = build_bundle(out, arch)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            if was_empty_dir:
                out.mkdir()
            raise
    return info


def _fill(stage: Path, manifest: dict, extracted: Path, libs: dict[str, Path],
          artifact: Path) -> None:
    arch = manifest["target"]["arch"]
    stage_runtime(stage, arch, libs, {
        "{{MODEL_NAME}}": manifest["source_model"]["file"],
        "{{TARGET}}": manifest["target"]["name"], "{{ARTIFACT}}": artifact.name})
    stage_model(stage / "model", manifest, extracted)


def stage_runtime(stage: Path, arch: str, libs: dict[str, Path],
                  values: dict[str, str]) -> None:
    """Everything but the model: sources, build files, runtime libraries, headers."""
    values = {"{{TRIPLE}}": TRIPLES.get(arch, arch), **values}
    for src in sorted(TEMPLATES.rglob("*")):
        if src.is_dir() or "__pycache__" in src.parts:
            continue
        dest = stage / src.relative_to(TEMPLATES)
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        dest.write_text(text)
    lib_dir = stage / "runtime" / "lib"
    lib_dir.mkdir(parents=True)
    for name, path in libs.items():
        shutil.copy2(path, lib_dir / name)
    shutil.copytree(include_dir(), stage / "runtime" / "include")


def stage_model(model: Path, manifest: dict, extracted: Path) -> None:
    """model.so, its manifest and model.io (the tensor table the C API reads)."""
    model.mkdir(parents=True, exist_ok=True)
    shutil.copy2(extracted / LIBRARY, model / LIBRARY)
    (model / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (model / "model.io").write_text(model_io(manifest))


def templates_digest() -> str:
    """Changes when any template changes: keys the cached emulation runners."""
    import hashlib

    h = hashlib.sha256()
    for src in sorted(TEMPLATES.rglob("*")):
        if src.is_file() and "__pycache__" not in src.parts:
            h.update(str(src.relative_to(TEMPLATES)).encode() + src.read_bytes())
    return h.hexdigest()[:16]
